"""Wall time and peak memory: this engine vs Evidently's legacy DataDriftPreset, same data.

    python benchmarks/bench_compare.py              # 1,000,000 rows (Evidently takes ~50 s)
    python benchmarks/bench_compare.py --rows 100000

Reference and current frames of N rows each, 20 numerical + 5 categorical columns, moderate drift
in five of them. Each engine runs in its own fresh process (multiprocessing, 'spawn'), which:

1. builds the data from a fixed seed (identical values for both engines) in the form the engine
   consumes: pyarrow tables for ours, pandas DataFrames (object strings for categories) for
   Evidently, both from the same numpy columns;
2. records its resident memory with the inputs loaded, and resets the kernel's peak-RSS mark
   (``/proc/self/clear_refs``; if that is not allowed it samples RSS every 2 ms instead);
3. runs the engine once, timed with ``time.perf_counter``:
   - ours: ``fit_profile(reference)`` + ``summarize(current batches)`` + ``compare`` + ``to_dict()``;
   - Evidently: ``Report([DataDriftPreset()]).run(...)`` + ``as_dict()``;
4. reports the peak RSS during step 3 (inputs included) and that peak minus the inputs-loaded RSS.

Data generation is in neither time nor "peak above inputs". "Peak RSS" includes the inputs, which
differ a little between engines (arrow strings vs pandas objects): both columns are printed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import threading
import time

import numpy as np

from drift_assets.simulate.synthetic import (
    AMOUNTS,
    CATEGORICAL,
    CATEGORIES,
    COUNTS,
    NORMALS,
    NUMERICAL,
    ZERO_INFLATED,
)

# Moderate drift in the current frame: a mean shift, a scale change, more counts, a share change,
# a new category.
DRIFT = {
    "normal_0": "mean +0.2 sd",
    "amount_1": "x1.2 (log-mean +0.18)",
    "count_2": "Poisson 2.0 -> 2.3",
    "merchant_type": "first category +8 points",
    "country": "new category on 3% of rows",
}


def make_columns(rows: int, seed: int, drifted: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for name, (mean, sd) in NORMALS.items():
        cols[name] = rng.normal(mean + (0.2 * sd if drifted and name == "normal_0" else 0.0), sd, rows)
    for name, (mu, sigma) in AMOUNTS.items():
        cols[name] = rng.lognormal(mu + (np.log(1.2) if drifted and name == "amount_1" else 0.0), sigma, rows)
    for name, lam in COUNTS.items():
        cols[name] = rng.poisson(lam * (1.15 if drifted and name == "count_2" else 1.0), rows)
    refunds = rng.lognormal(2.0, 1.0, rows)
    refunds[rng.random(rows) < 0.4] = 0.0
    cols[ZERO_INFLATED] = refunds
    for name, shares in CATEGORIES.items():
        p = np.array(shares)
        vocab = np.array([f"{name}_{k}" for k in range(len(p))], dtype=object)
        if drifted and name == "merchant_type":
            q = p.copy()
            q[0] += 0.08
            q[1:] *= (1 - q[0]) / p[1:].sum()
            p = q
        values = vocab[rng.choice(len(p), size=rows, p=p)]
        if drifted and name == "country":
            values[rng.random(rows) < 0.03] = f"{name}_new"
        cols[name] = values
    return cols


def make_frames(rows: int, seed: int):
    import pandas as pd

    reference = pd.DataFrame(make_columns(rows, seed, drifted=False))
    current = pd.DataFrame(make_columns(rows, seed + 1, drifted=True))
    return reference, current


def rss_kb(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakTracker:
    """Peak RSS from here on: the kernel's high-water mark after a reset, else 2 ms sampling."""

    def __init__(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            self.method = "VmHWM after clear_refs"
            self._thread = None
        except OSError:
            self.method = "RSS sampled every 2 ms"
            self._peak = rss_kb()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, rss_kb())
            time.sleep(0.002)

    def peak_kb(self) -> int:
        if self._thread is None:
            return rss_kb("VmHWM")
        self._stop.set()
        self._thread.join()
        return max(self._peak, rss_kb())


def run_ours(reference, current):

    from drift_assets.stats import ColumnSpec, compare, fit_profile, summarize

    specs = [ColumnSpec(n, "numerical") for n in NUMERICAL] + [ColumnSpec(c, "categorical") for c in CATEGORICAL]

    def run():
        profile = fit_profile(reference, specs)
        summary = summarize(profile, current.to_batches(max_chunksize=1 << 18))
        result = compare(profile, summary)
        out = result.to_dict()
        return {c: result.columns[c].drifted for c in result.columns}, out["summary"]["drifted_features"]

    return run


def run_evidently(reference, current):
    from evidently.legacy.metric_preset import DataDriftPreset
    from evidently.legacy.pipeline.column_mapping import ColumnMapping
    from evidently.legacy.report import Report

    mapping = ColumnMapping(
        target=None, prediction=None, numerical_features=NUMERICAL, categorical_features=CATEGORICAL
    )

    def run():
        report = Report(metrics=[DataDriftPreset()])
        report.run(reference_data=reference, current_data=current, column_mapping=mapping)
        out = report.as_dict()
        by_column = out["metrics"][1]["result"]["drift_by_columns"]
        drifted = {c: bool(v["drift_detected"]) for c, v in by_column.items()}
        return drifted, sorted(c for c, d in drifted.items() if d)

    return run


def child(engine: str, rows: int, seed: int, conn) -> None:
    try:
        if engine == "ours":
            # Arrow tables straight from the same numpy columns (no pandas in this process, so no
            # freed DataFrame memory for the engine to reuse unseen).
            import pyarrow as pa

            reference = pa.table(make_columns(rows, seed, drifted=False))
            current = pa.table(make_columns(rows, seed + 1, drifted=True))
            run = run_ours(reference, current)
        else:
            reference, current = make_frames(rows, seed)
            run = run_evidently(reference, current)
        import gc

        gc.collect()
        inputs_kb = rss_kb()
        tracker = PeakTracker()
        start = time.perf_counter()
        drifted, drifted_list = run()
        seconds = time.perf_counter() - start
        peak_kb = tracker.peak_kb()
        conn.send(
            {
                "engine": engine,
                "seconds": seconds,
                "inputs_mb": inputs_kb / 1024,
                "peak_mb": peak_kb / 1024,
                "process_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "method": tracker.method,
                "drifted": drifted_list,
            }
        )
    except BaseException as exc:  # report, don't hang the parent
        conn.send({"engine": engine, "error": repr(exc)})
        raise
    finally:
        conn.close()


def measure(engine: str, rows: int, seed: int) -> dict:
    ctx = mp.get_context("spawn")
    parent, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=child, args=(engine, rows, seed, child_conn))
    proc.start()
    child_conn.close()
    result = parent.recv()
    proc.join()
    if "error" in result:
        raise RuntimeError(f"{engine} failed: {result['error']}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows in reference and in current (default 1,000,000)"
    )
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--engines", default="ours,evidently", help="comma-separated: ours, evidently")
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    print(
        f"rows={args.rows:,} per frame, 20 numerical + 5 categorical columns, drift in: "
        + ", ".join(f"{k} ({v})" for k, v in DRIFT.items()),
        flush=True,
    )
    results = {}
    for engine in engines:
        results[engine] = measure(engine, args.rows, args.seed)
        r = results[engine]
        print(f"  {engine}: {r['seconds']:.2f} s, drifted: {r['drifted']}", flush=True)
    print()
    print(f"{'engine':<28}{'seconds':>10}{'peak MB':>10}{'inputs MB':>11}{'peak-inputs':>13}")
    labels = {"ours": "drift_assets.stats", "evidently": "evidently legacy DataDrift"}
    for engine, r in results.items():
        print(
            f"{labels[engine]:<28}{r['seconds']:>10.2f}{r['peak_mb']:>10.0f}{r['inputs_mb']:>11.0f}"
            f"{r['peak_mb'] - r['inputs_mb']:>13.0f}"
        )
    if {"ours", "evidently"} <= results.keys():
        o, e = results["ours"], results["evidently"]
        print(
            f"{'ratio evidently/ours':<28}{e['seconds'] / o['seconds']:>10.1f}{e['peak_mb'] / o['peak_mb']:>10.1f}"
            f"{'':>11}{(e['peak_mb'] - e['inputs_mb']) / max(o['peak_mb'] - o['inputs_mb'], 1.0):>13.1f}"
        )
    print(
        f"\npeak = max RSS while the engine ran ({next(iter(results.values()))['method']}), inputs"
        f" included; inputs = RSS with the frames loaded, before the run; python {sys.version.split()[0]},"
        f" {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
