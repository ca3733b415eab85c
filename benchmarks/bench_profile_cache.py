"""Whole-process `drift-assets compare`, parquet in, JSON out: first call vs profile cached (issue 16).

    python benchmarks/bench_profile_cache.py                 # 1M rows x 25 columns, 3 repeats
    python benchmarks/bench_profile_cache.py --rows 100000 --repeat 5
    python benchmarks/bench_profile_cache.py --compare-args=--no-multivariate   # per-column drift only

Reference and current are `bench_compare.py`'s frames (20 numerical + 5 categorical columns, the
current one drifted), written once as parquet (row groups of 250k rows). Each figure is one fresh
`python -m drift_assets compare REF CUR --json OUT` process timed by `/usr/bin/time` (wall seconds,
peak RSS), in this order per repeat: `--no-cache` (fits, stores nothing), first call with an
empty cache (hashes, fits, stores), second call (hashes, reads the cached profile).

Then, in this process (less exposed to other load than whole processes): `fit_profile_cached`
on the reference, fitted (cache emptied before each) and cached, split into hashing and fitting.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def write_frames(folder: Path, rows: int) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from bench_compare import make_columns

    paths = []
    for name, seed, drifted in (("reference", 0, False), ("current", 1, True)):
        path = folder / f"{name}_{rows}.parquet"
        if not path.exists():
            pq.write_table(pa.table(make_columns(rows, seed, drifted)), path, row_group_size=250_000)
        paths.append(path)
    return paths[0], paths[1]


def timed(args: list[str], env: dict) -> tuple[float, float]:
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M", *args], capture_output=True, text=True, env=env, check=False)
    if out.returncode not in (0, 1):
        raise SystemExit(out.stderr)
    seconds, kb = out.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kb) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", help="directory for the generated files (default: a temporary one)")
    parser.add_argument("--compare-args", default="", help="extra compare options, space-separated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        reference, current = write_frames(work, args.rows)
        env = {**os.environ, "DRIFT_ASSETS_CACHE_DIR": str(work / "cache")}
        base = [sys.executable, "-m", "drift_assets", "compare", str(reference), str(current)]
        base += ["--json", str(work / "out.json"), *args.compare_args.split()]
        results: dict[str, list[tuple[float, float]]] = {"--no-cache": [], "first call": [], "cached": []}
        for _ in range(args.repeat):
            shutil.rmtree(work / ".drift_assets", ignore_errors=True)
            results["--no-cache"].append(timed([*base, "--no-cache"], env))
            results["first call"].append(timed(base, env))
            results["cached"].append(timed(base, env))
        label = f"{args.rows:,} rows x 25 columns {args.compare_args}".strip()
        print(f"| {label} | median s | runs s | peak RSS MB |")
        print("|---|---|---|---|")
        for case, runs in results.items():
            times = ", ".join(f"{s:.2f}" for s, _ in runs)
            peak = max(m for _, m in runs)
            print(f"| {case} | {statistics.median(s for s, _ in runs):.2f} | {times} | {peak:,.0f} |")
        in_process(reference, args.repeat)


def in_process(reference: Path, repeat: int) -> None:
    import time

    from drift_assets.monitoring.profile_cache import fit_profile_cached
    from drift_assets.stats import infer_column_specs
    from drift_assets.storage.tables import TableSource

    specs = infer_column_specs(TableSource.open(str(reference)).schema())
    rows: dict[str, list[tuple[float, float, float]]] = {"fitted (cache empty)": [], "cached": []}
    for _ in range(repeat):
        shutil.rmtree(reference.parent / ".drift_assets", ignore_errors=True)
        for case in rows:
            started = time.perf_counter()
            _, outcome = fit_profile_cached(TableSource.open(str(reference)), specs, psi_bins=10)
            assert outcome.hit == (case == "cached")
            rows[case].append((time.perf_counter() - started, outcome.hash_seconds, outcome.fit_seconds))
    print()
    print("| in process | median total s | of which hashing s | of which fitting s |")
    print("|---|---|---|---|")
    for case, runs in rows.items():
        total, hashing, fitting = (statistics.median(r[i] for r in runs) for i in range(3))
        print(f"| {case} | {total:.2f} | {hashing:.2f} | {fitting:.2f} |")


if __name__ == "__main__":
    main()
