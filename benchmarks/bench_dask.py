"""One week of 20M rows x 25 columns: counted in one process vs on a 2-worker Dask cluster.

    python benchmarks/bench_dask.py                      # 20,000,000 rows (~2 GB of parquet)
    python benchmarks/bench_dask.py --rows 2000000       # quick run
    python benchmarks/bench_dask.py --modes dask --repeat 2

The week is written once under ``--workdir`` (reused while --rows/--row-group-rows match): seven
daily files ``log/date=YYYY-MM-DD/part-0.parquet`` in row groups of ``--row-group-rows``, the 20
numerical + 5 categorical columns of ``bench_compare.py`` (drifted current) plus a timestamp, and a
200k-row reference. The profile is fitted once and saved; every mode loads it.

Modes, each in a fresh process so its memory is its own:

- ``stream``: today's path, ``stream_window`` + ``summarize`` (256k-row batches, one process);
- ``in_process``: ``dask_compute.summarize_window_in_process`` (one task per row group, in a loop);
- ``dask``: ``dask_compute.summarize_window_on_dask`` against a scheduler and 2 single-threaded
  workers started as processes on 127.0.0.1 (the test fixtures' ``start_dask_cluster``).

Measured: wall time of the summary only (profile loaded, libraries imported, workers warm), and
each process's peak resident memory during it: the kernel's high-water mark (``VmHWM``) reset
through ``/proc/<pid>/clear_refs`` just before the run. For the cluster: the client, the scheduler
and each worker. The summaries are checked equal (dask == in_process exactly; stream: counts).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "drift_assets_tests"))

from bench_compare import make_columns  # noqa: E402

from drift_assets.simulate.synthetic import CATEGORICAL, NUMERICAL  # noqa: E402

WEEK = dt.datetime(2026, 8, 17, tzinfo=dt.UTC)
REFERENCE_ROWS = 200_000
SEED = 20260817


# --------------------------------------------------------------------------- data
def write_week(workdir: Path, rows: int, row_group_rows: int) -> None:
    """Seven daily files in row groups; one row group of columns is generated at a time."""
    manifest = workdir / "manifest.json"
    wanted = {"rows": rows, "row_group_rows": row_group_rows, "seed": SEED}
    if manifest.exists() and json.loads(manifest.read_text()) == wanted:
        return
    started = time.perf_counter()
    (workdir / "reference").mkdir(parents=True, exist_ok=True)
    reference = pa.table(make_columns(REFERENCE_ROWS, SEED, drifted=False))
    pq.write_table(reference, workdir / "reference" / "reference.parquet")
    per_day = [rows // 7 + (1 if d < rows % 7 else 0) for d in range(7)]
    for day, day_rows in enumerate(per_day):
        directory = workdir / "log" / f"date={(WEEK + dt.timedelta(days=day)).date().isoformat()}"
        directory.mkdir(parents=True, exist_ok=True)
        writer = None
        for first in range(0, day_rows, row_group_rows):
            n = min(row_group_rows, day_rows - first)
            table = _row_group(n, day, first)
            writer = writer or pq.ParquetWriter(directory / "part-0.parquet", table.schema)
            writer.write_table(table, row_group_size=row_group_rows)
        if writer is not None:
            writer.close()
    manifest.write_text(json.dumps(wanted))
    size = sum(f.stat().st_size for f in (workdir / "log").rglob("*.parquet"))
    print(f"wrote {rows:,} rows in {time.perf_counter() - started:.0f} s: {size / 1e9:.2f} GB of parquet", flush=True)


def _row_group(n: int, day: int, first: int) -> pa.Table:
    columns = make_columns(n, SEED + 1 + day * 10_000 + first // 1000, drifted=True)
    rng = np.random.default_rng(SEED + day * 7919 + first)
    day_start = np.datetime64((WEEK + dt.timedelta(days=day)).replace(tzinfo=None), "us")
    offsets = np.sort(rng.integers(0, 86_400 * 10**6, n)).astype("timedelta64[us]")
    table = pa.table(columns)
    return table.append_column("timestamp", pa.array(day_start + offsets, type=pa.timestamp("us", tz="UTC")))


def fit_and_save_profile(workdir: Path) -> Path:
    from drift_assets.stats import ColumnSpec, fit_profile

    path = workdir / "profile.json"
    if not path.exists():
        specs = [ColumnSpec(n, "numerical") for n in NUMERICAL] + [ColumnSpec(c, "categorical") for c in CATEGORICAL]
        path.write_text(fit_profile(pq.read_table(workdir / "reference" / "reference.parquet"), specs).to_json())
    return path


# --------------------------------------------------------------------------- memory
def status_kb(pid: int | str, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def reset_peak(pid: int | str = "self") -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # VmHWM := current RSS


# --------------------------------------------------------------------------- one mode, in its own process
def run_child(mode: str, workdir: Path, address: str | None) -> dict:
    from drift_assets.monitoring.dask_compute import WindowRead, summarize_window_in_process, summarize_window_on_dask
    from drift_assets.monitoring.windows import Window, stream_window
    from drift_assets.stats import ReferenceProfile, compare, summarize
    from drift_assets.storage.root import Root

    profile = ReferenceProfile.from_json((workdir / "profile.json").read_text())
    window = Window("bench", WEEK, WEEK + dt.timedelta(days=7))
    types = {
        **{c: pa.float64() for c in NUMERICAL},
        **{c: pa.string() for c in CATEGORICAL},
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    root = Root.open(str(workdir))
    files = [str(p) for p in sorted((workdir / "log").rglob("*.parquet"))]
    client = None
    if mode == "dask":
        from distributed import Client, get_task_stream

        client = Client(address, set_as_default=False)

    def run(paths: list[str], within: Window):
        if mode == "stream":
            batches = stream_window(root, "log", within, timestamp_column="timestamp", types=types)
            return summarize(profile, batches, table_name="bench week")
        part = WindowRead(within, "timestamp", types, (), "bench week")
        if mode == "in_process":
            return summarize_window_in_process(profile, paths, part)
        return summarize_window_on_dask(client, profile, paths, part)

    # Warm up on the first two days (first calls into numpy/arrow kernels; on a cluster, the scheduler
    # and workers importing the project): not part of the measure.
    run(files[:2], Window("warm-up", WEEK, WEEK + dt.timedelta(days=2)))
    reset_peak()
    before_kb = status_kb("self", "VmRSS")
    cpu_before = time.process_time()
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stream = stack.enter_context(get_task_stream(client)) if client else None
        summary = run(files, window)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_before
    busy: dict[str, float] = {}  # worker -> seconds computing this run's tasks (the scheduler's task stream)
    for record in stream.data if stream else []:
        for span in record["startstops"]:
            if span["action"] == "compute":
                busy[record["worker"]] = busy.get(record["worker"], 0.0) + span["stop"] - span["start"]
    drifted = compare(profile, summary).drifted_features
    (workdir / f"summary-{mode}.json").write_text(json.dumps(summary.to_dict()))
    return {
        "mode": mode,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "rows": summary.rows,
        "drifted": drifted,
        "client_rss_before_mb": before_kb / 1024,
        "client_peak_mb": status_kb("self", "VmHWM") / 1024,
        "worker_busy_seconds": sorted(busy.values()),
    }


def measure(mode: str, workdir: Path, cluster=None) -> dict:
    address = cluster.address if cluster else None
    if cluster:
        for started in cluster.processes:
            reset_peak(started.pid)
        base = {p.name: status_kb(p.pid, "VmRSS") / 1024 for p in cluster.processes}
    argv = [sys.executable, __file__, "--child", mode, "--workdir", str(workdir)]
    argv += ["--address", address] if address else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if cluster:
        result["cluster"] = {
            p.name: {"rss_before_mb": base[p.name], "peak_mb": status_kb(p.pid, "VmHWM") / 1024}
            for p in cluster.processes
        }
    return result


def check_equal(workdir: Path, modes: list[str]) -> str:
    from drift_assets.stats.summary import WindowSummary

    summaries = {m: json.loads((workdir / f"summary-{m}.json").read_text()) for m in modes}
    notes = []
    if {"dask", "in_process"} <= set(summaries):
        notes.append("dask == in_process exactly: " + str(summaries["dask"] == summaries["in_process"]))
    if "stream" in summaries and len(summaries) > 1:
        other = WindowSummary.from_dict(summaries[next(m for m in modes if m != "stream")])
        stream = WindowSummary.from_dict(summaries["stream"])
        same = other.rows == stream.rows and all(
            np.array_equal(
                getattr(a, "sketch_counts", getattr(a, "counts", None)),
                getattr(stream.columns[n], "sketch_counts", getattr(stream.columns[n], "counts", None)),
            )
            for n, a in other.columns.items()
        )
        notes.append(f"stream counts equal: {same}")
    return "; ".join(notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--row-group-rows", type=int, default=250_000)
    parser.add_argument("--workdir", default="/tmp/drift-bench-dask")
    parser.add_argument("--modes", default="stream,in_process,dask")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = Path(args.workdir)
    if args.child:
        print(json.dumps(run_child(args.child, workdir, args.address)))
        return 0

    write_week(workdir, args.rows, args.row_group_rows)
    fit_and_save_profile(workdir)
    modes = args.modes.split(",")
    results = [measure(m, workdir) for m in modes if m != "dask" for _ in range(args.repeat)]
    if "dask" in modes:
        from cluster_servers import start_dask_cluster

        with start_dask_cluster(workdir / "cluster", n_workers=2) as cluster:
            results += [measure("dask", workdir, cluster) for _ in range(args.repeat)]
    print(f"{args.rows:,} rows x 25 columns, row groups of {args.row_group_rows:,}; {check_equal(workdir, modes)}")
    for r in results:
        line = f"{r['mode']:>10}: {r['seconds']:6.1f} s  client cpu {r['cpu_seconds']:5.1f} s"
        line += f" peak {r['client_peak_mb']:5.0f} MB"
        if r["worker_busy_seconds"]:
            line += "  workers computing " + " + ".join(f"{b:.1f}" for b in r["worker_busy_seconds"]) + " s"
        for name, mem in r.get("cluster", {}).items():
            line += f"  {name} peak {mem['peak_mb']:.0f} MB (before {mem['rss_before_mb']:.0f})"
        print(line + f"  rows {r['rows']:,}  drifted {len(r['drifted'])}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
