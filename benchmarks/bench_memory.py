"""Peak memory of fitting a reference and summarising a window, at 1M, 5M and 20M rows (issue 12).

    python benchmarks/bench_memory.py                      # 1M, 5M and 20M rows (~10 min, ~1.3 GB of disk)
    python benchmarks/bench_memory.py --rows 1000000 5000000
    python benchmarks/bench_memory.py --keep DIR           # reuse the generated files in DIR
    python benchmarks/bench_memory.py --cases fit "window streamed"

One parquet file of N rows per size (6 columns: 4 numerical -- normal, lognormal, Poisson
counts as int64, uniform -- and 2 categorical with 5 and 40 categories; row groups of 1M rows),
written chunk by chunk so generating it is bounded too. Each case runs in a fresh process
(``subprocess``) that imports the libraries, records its RSS (``VmRSS``), runs the case once and
reports its peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and wall time:

- ``fit``: ``fit_profile(TableSource)``, the path the CLI and the Dagster asset take: each column
  sorted in memory up to ``DEFAULT_MAX_IN_MEMORY_ROWS`` (2M) rows, fitted streamed above;
- ``fit in memory``: the same with ``max_in_memory_rows`` raised past the rows (always sorted in
  memory, one column at a time: what ``fit`` did before the streamed fit);
- ``fit streamed``: the same with ``max_in_memory_rows=0`` (always streamed, exact, in passes);
- ``fit whole table``: ``fit_profile(pq.read_table(file))``, the path before issue 12;
- ``window streamed``: ``summarize(profile, TableSource.batches())`` (``pre_buffer=False``);
- ``window pre_buffer``: the same with pyarrow's default ``ParquetFile(pre_buffer=True)``, the
  path before issue 12.

The window cases use a profile fitted on the 1M-row file (saved once as JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NUMERICAL = ["normal", "amount", "count", "uniform"]
CATEGORICAL = ["segment", "merchant"]
CHUNK = 1_000_000


def generate(path: Path, rows: int, seed: int = 0) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    segments = np.array([f"s{i}" for i in range(5)])
    merchants = np.array([f"m{i:02d}" for i in range(40)])
    writer = None
    for start in range(0, rows, CHUNK):
        n = min(CHUNK, rows - start)
        table = pa.table(
            {
                "normal": rng.normal(0, 1, n),
                "amount": rng.lognormal(3, 1, n),
                "count": rng.poisson(2, n).astype(np.int64),
                "uniform": rng.random(n),
                "segment": segments[rng.integers(0, 5, n)],
                "merchant": merchants[rng.integers(0, 40, n)],
            }
        )
        writer = writer or pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=CHUNK)
    assert writer is not None
    writer.close()


CHILD = r"""
import json, resource, sys, time
import pyarrow.parquet as pq
from drift_assets.stats import ColumnSpec, ReferenceProfile, fit_profile, summarize
from drift_assets.storage.tables import TableSource

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

case, path, profile_path = sys.argv[1], sys.argv[2], sys.argv[3]
numerical, categorical = json.loads(sys.argv[4]), json.loads(sys.argv[5])
specs = [ColumnSpec(c, "numerical") for c in numerical] + [ColumnSpec(c, "categorical") for c in categorical]
names = numerical + categorical
before = rss_mb()
started = time.perf_counter()
if case == "fit":
    out = fit_profile(TableSource.open(path), specs).reference_rows
elif case == "fit in memory":
    out = fit_profile(TableSource.open(path), specs, max_in_memory_rows=10**12).reference_rows
elif case == "fit streamed":
    out = fit_profile(TableSource.open(path), specs, max_in_memory_rows=0).reference_rows
elif case == "fit whole table":
    out = fit_profile(pq.read_table(path, columns=names), specs).reference_rows
else:
    profile = ReferenceProfile.from_json(open(profile_path).read())
    if case == "window streamed":
        batches = TableSource.open(path).batches(names)
    else:  # pyarrow's default: pre_buffer=True
        batches = pq.ParquetFile(path).iter_batches(batch_size=256_000, columns=names)
    out = summarize(profile, batches).rows
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": out, "seconds": seconds, "peak_mb": peak, "start_mb": before}))
"""

CASES = ("fit", "fit in memory", "fit streamed", "fit whole table", "window streamed", "window pre_buffer")
DEFAULT_CASES = ("fit", "fit in memory", "fit streamed", "window streamed")


def run_case(case: str, path: Path, profile_path: Path) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            case,
            str(path),
            str(profile_path),
            json.dumps(NUMERICAL),
            json.dumps(CATEGORICAL),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--keep", help="directory for the generated files (default: a temporary one, removed)")
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), choices=CASES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        files = {}
        for rows in sorted(set(args.rows) | {1_000_000}):
            files[rows] = work / f"rows_{rows}.parquet"
            if not files[rows].exists():
                t = time.perf_counter()
                generate(files[rows], rows)
                print(f"generated {rows:,} rows in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        profile_path = work / "profile_1m.json"
        if not profile_path.exists():
            from drift_assets.stats import ColumnSpec, fit_profile
            from drift_assets.storage.tables import TableSource

            specs = [ColumnSpec(c, "numerical") for c in NUMERICAL] + [
                ColumnSpec(c, "categorical") for c in CATEGORICAL
            ]
            profile_path.write_text(fit_profile(TableSource.open(str(files[1_000_000])), specs).to_json())
        print("| rows | case | seconds | peak RSS MB | RSS after imports MB | peak - imports MB |")
        print("|---|---|---|---|---|---|")
        for rows in args.rows:
            with open(files[rows], "rb") as fh:  # warm the page cache: the first case must not pay the disk
                while fh.read(1 << 24):
                    pass
            for case in args.cases:
                r = run_case(case, files[rows], profile_path)
                assert r["rows"] == rows, r
                print(
                    f"| {rows:,} | {case} | {r['seconds']:.1f} | {r['peak_mb']:,.0f} | {r['start_mb']:,.0f} |"
                    f" {r['peak_mb'] - r['start_mb']:,.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
