"""Detection benchmark: false alarms on stationary windows and power per shift, for every detector.

    python benchmarks/detection/run.py            # quick: ~7 CPU-minutes, the run published in docs/detection.md
    python benchmarks/detection/run.py --full     # 10x the windows (~1.5 CPU-hours): for a quiet machine
    python benchmarks/detection/run.py --full --detectors ours,naive &  # or split in two processes
    python benchmarks/detection/run.py --full --detectors evidently

Writes ``benchmarks/detection/results[-full].json`` and then, through ``report.py``,
``docs/detection.md`` and the PNG plots in ``docs/detection/``. Seeded: a cell (detector, rows,
column, window index) is reproducible from its seed alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from detectors import Evidently, Ours, naive_alarm  # noqa: E402
from families import FAMILIES, FAMILY, SHIFTS, column_name, draw_shift  # noqa: E402

from drift_assets.stats.checks import DEFAULT_CHECKS  # noqa: E402

REFERENCE_ROWS = 100_000
SIZES = (30, 100, 300, 1_000, 3_000, 10_000, 100_000, 1_000_000)
# Windows per cell. Evidently costs ~6 s per window here (39 columns, 100,000 reference rows), so
# it runs on fewer windows and not at 1M rows (75 s per report for 25 columns, library-facts.md).
WINDOWS = {
    "quick": dict(zip(SIZES, (30, 30, 30, 30, 15, 10, 2, 1), strict=True)),
    "full": dict(zip(SIZES, (300, 300, 300, 300, 150, 100, 20, 4), strict=True)),
}
# Stationary windows only, drift_assets only, at the small sizes where a few percent of windows
# alarming cannot be resolved with 30 windows: the window-level rate and which checks fire.
STATIONARY_WINDOWS = {
    "quick": {30: 1_000, 100: 1_000, 300: 1_000, 1_000: 1_000},
    "full": {30: 5_000, 100: 5_000, 300: 5_000, 1_000: 2_000, 3_000: 500},
}
EVIDENTLY_WINDOWS = {
    "quick": dict(zip(SIZES, (5, 5, 5, 5, 5, 5, 1, 0), strict=True)),
    "full": dict(zip(SIZES, (40, 40, 40, 40, 30, 30, 5, 0), strict=True)),
}


def rng(*seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(seed)))


def reference_columns() -> tuple[dict, dict, list[str]]:
    g = rng(0, REFERENCE_ROWS)
    ref = {f.name: f.draw(g, REFERENCE_ROWS) for f in FAMILIES}
    kinds = {f.name: f.kind for f in FAMILIES}
    shifted = []
    for shift in SHIFTS:
        for m in shift.magnitudes:
            name = column_name(shift, m)
            ref[name], kinds[name] = ref[shift.base], FAMILY[shift.base].kind
            shifted.append(name)
    return ref, kinds, shifted


def window(n: int, index: int, reference_max: float) -> tuple[dict, dict]:
    g = rng(1, n, index)
    stationary = {f.name: f.draw(g, n) for f in FAMILIES}
    shifted = {
        column_name(s, m): draw_shift(s, rng(2, n, index, k), n, m, reference_max)
        for k, (s, m) in enumerate((s, m) for s in SHIFTS for m in s.magnitudes)
    }
    return stationary, shifted


class Tally:
    def __init__(self) -> None:
        self.counts: dict = {}

    def add(self, detector: str, n: int, column: str, alarm: bool) -> None:
        cell = self.counts.setdefault(detector, {}).setdefault(str(n), {}).setdefault(column, [0, 0])
        cell[0] += int(alarm)
        cell[1] += 1


def stationary_only(tally: Tally, ours: Ours, n: int, windows: int) -> None:
    """``windows`` stationary windows (seeds disjoint from the main run's): per family, per check
    (a window counts once per check that failed on it) and ``(window)``, under ``ours_stationary``."""
    for index in range(windows):
        g = rng(3, n, index)
        failed = ours.failed(ours.measure(ours.summarize({f.name: f.draw(g, n) for f in FAMILIES})))
        for family in FAMILIES:
            tally.add("ours_stationary", n, family.name, any(o.column == family.name for o in failed))
        for name in DEFAULT_CHECKS.names:
            tally.add("ours_stationary_checks", n, name, any(o.name == name for o in failed))
        tally.add("ours_stationary", n, "(window)", bool(failed))


def run_window(tally: Tally, ctx: dict, n: int, index: int, detectors: set[str], mode: str = "quick") -> None:
    ref, kinds, ours = ctx["ref"], ctx["kinds"], ctx["ours"]
    stationary, shifted = window(n, index, ctx["reference_max"])
    if "ours" in detectors:
        base = ours.measure(ours.summarize(stationary))
        for column, alarm in ours.alarms(base).items():
            tally.add("ours", n, column, alarm)
        for column, measured in ours.measure(ours.summarize(shifted)).items():
            tally.add("ours", n, column, ours.alarms(base, {column: measured})[column])
    if "naive" in detectors:
        naive_any = False
        for column, values in {**stationary, **shifted}.items():
            alarm = naive_alarm(ref[column], values, kinds[column])
            tally.add("naive", n, column, alarm)
            naive_any |= alarm and column in stationary
        tally.add("naive", n, "(window)", naive_any)
    if "evidently" in detectors:
        evidently = ctx["evidently"]
        for part in (stationary, shifted):
            verdicts = evidently.alarms(part)
            for column, alarm in verdicts.items():
                if column != "(window)" or part is stationary:
                    tally.add("evidently", n, column, alarm)
            if index < REPORT_CHECK_WINDOWS[mode].get(n, 0):  # the real Report must agree, column by column
                report = evidently.report_alarms(part)
                for column in part:
                    tally.add("evidently_report_agrees", n, column, report[column] == verdicts[column])


# Windows on which Evidently's full Report is also run and compared verdict by verdict.
REPORT_CHECK_WINDOWS = {"quick": {1_000: 1}, "full": {100: 1, 1_000: 1, 10_000: 1}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the published run (more windows per cell)")
    parser.add_argument("--sizes", default=None, help="comma-separated row counts (default: all)")
    parser.add_argument(
        "--detectors", default="ours,naive,evidently", help="comma-separated subset (runs can be split in two)"
    )
    args = parser.parse_args(argv)
    mode = "full" if args.full else "quick"
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(SIZES)
    started = time.perf_counter()
    ref, kinds, shifted = reference_columns()
    stationary_names = [f.name for f in FAMILIES]
    ctx = {
        "ref": ref,
        "kinds": kinds,
        "ours": Ours(ref, kinds, stationary_names),
        "reference_max": float(np.max(ref["lognormal"])),
        "evidently": Evidently(ref, kinds),
    }
    detectors = set(args.detectors.split(","))
    tally, seconds = Tally(), {}
    for n in sizes:
        t0 = time.perf_counter()
        windows = max(
            WINDOWS[mode][n] if detectors - {"evidently"} else 0,
            EVIDENTLY_WINDOWS[mode][n] if "evidently" in detectors else 0,
        )
        for index in range(windows):
            use = set(detectors)
            if index >= EVIDENTLY_WINDOWS[mode][n]:
                use.discard("evidently")
            if index >= WINDOWS[mode][n]:
                use -= {"ours", "naive"}
            run_window(tally, ctx, n, index, use, mode)
        if "ours" in detectors and STATIONARY_WINDOWS[mode].get(n):
            stationary_only(tally, ctx["ours"], n, STATIONARY_WINDOWS[mode][n])
        seconds[str(n)] = round(time.perf_counter() - t0, 1)
        print(f"{n:>9,} rows: {windows} windows in {seconds[str(n)]} s", flush=True)
    out = {
        "mode": mode,
        "reference_rows": REFERENCE_ROWS,
        "windows": {str(n): WINDOWS[mode][n] for n in sizes},
        "evidently_windows": {str(n): EVIDENTLY_WINDOWS[mode][n] for n in sizes},
        "stationary_windows": {str(n): w for n, w in STATIONARY_WINDOWS[mode].items() if n in sizes},
        "detectors": sorted(detectors),
        "seconds": seconds,
        "total_seconds": round(time.perf_counter() - started, 1),
        "counts": tally.counts,
    }
    part = "-".join(sorted(detectors))
    path = HERE / f"results-{mode}-{part}.json"
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")
    from report import write_report

    write_report(mode, HERE, HERE.parent.parent / "docs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
