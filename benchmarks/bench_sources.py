"""One week's window read and summarised from three sources (issue 18): the default parquet reader,
DuckDB over the same hive-partitioned files, and a PostgreSQL table (ADBC, server-side cursor).

    python benchmarks/bench_sources.py                     # 1M rows in the week (~2 min)
    python benchmarks/bench_sources.py --rows 200000 --repeat 3
    python benchmarks/bench_sources.py --sources parquet duckdb   # no PostgreSQL server

The log: ``date=YYYY-MM-DD/part-0.parquet`` for 9 days (the week and a day either side, so the
window filter has rows to drop), 8 columns like the fraud log's (a UTC timestamp, 4 numerical --
normal, lognormal amount, Poisson counts as int64, uniform -- 2 categorical with 5 and 40
categories, an id string). PostgreSQL: a temporary cluster on 127.0.0.1 (the test fixture
``drift_assets_tests/cluster_servers.start_postgres``), the same rows loaded with ADBC's bulk
ingest, an index on the timestamp. Each case runs in a fresh process (``subprocess``) that builds
the monitor and the profile (fitted on a 200k-row sample, saved once), records its RSS, then runs
``preflight_log`` + ``summarize(profile, stream_log(...))`` once, and reports wall time and peak RSS
(``ru_maxrss``). ``peak - start`` is what reading and summarising the window added.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START = dt.datetime(2026, 8, 3, tzinfo=dt.UTC)  # a Monday
NUMERICAL = ["normal", "amount", "count", "uniform"]
CATEGORICAL = ["segment", "merchant"]


def generate(log: Path, rows_in_week: int, seed: int = 0) -> int:
    """Nine day folders; ``rows_in_week`` rows fall in the week [START, START + 7 days)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    per_day = rows_in_week // 7
    segments = np.array([f"s{i}" for i in range(5)])
    merchants = np.array([f"m{i:02d}" for i in range(40)])
    total = 0
    for d in range(-1, 8):
        day = START + dt.timedelta(days=d)
        n = per_day
        us = int(day.timestamp() * 1e6) + np.sort(rng.integers(0, 86_400_000_000, n))
        table = pa.table(
            {
                "id": pa.array([f"t{total + i}" for i in range(n)]),
                "timestamp": pa.array(us, pa.timestamp("us", tz="UTC")),
                "normal": rng.normal(0, 1, n),
                "amount": rng.lognormal(3, 1, n),
                "count": rng.poisson(2, n).astype(np.int64),
                "uniform": rng.random(n),
                "segment": segments[rng.integers(0, 5, n)],
                "merchant": merchants[rng.integers(0, 40, n)],
            }
        )
        folder = log / f"date={day.date().isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / "part-0.parquet", compression="zstd")
        total += n
    return per_day * 7


MONITOR = {
    "cadence": "weekly",
    "start": START.date().isoformat(),
    "reference": "reference.parquet",
    "log": "log",
    "timestamp_column": "timestamp",
    "features": {"numerical": NUMERICAL, "categorical": CATEGORICAL},
}

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from drift_assets.monitoring.config import parse_monitors
from drift_assets.monitoring.sources import preflight_log, stream_log
from drift_assets.monitoring.windows import expected_log_types, parse_partition_key
from drift_assets.stats import ReferenceProfile, summarize
from drift_assets.storage.root import Root

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

source, data, profile_path, monitor_json = sys.argv[1:5]
body = json.loads(monitor_json)
if source == "duckdb":
    body["log"] = {"kind": "duckdb", "path": "log"}
elif source == "postgres":
    body["log"] = {"kind": "postgres", "dsn_env": "BENCH_PG_DSN", "table": "bench_log"}
monitor = parse_monitors({"monitors": {"bench": body}}, Path("bench.yaml")).get("bench")
profile = ReferenceProfile.from_json(open(profile_path).read())
root = Root.open(data)
window = parse_partition_key("2026-08-03", "weekly")
before = rss_mb()
started = time.perf_counter()
_, rows = preflight_log(root, monitor, window)
summary = summarize(profile, stream_log(root, monitor, window, types=expected_log_types(monitor)))
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out = {"rows": summary.rows, "preflight_rows": rows, "seconds": seconds, "peak_mb": peak, "start_mb": before}
print(json.dumps(out))
"""


def run_case(source: str, data: Path, profile: Path, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, source, str(data), str(profile), json.dumps(MONITOR)],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode != 0:
        raise SystemExit(f"{source}: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fit_profile_once(data: Path, profile: Path) -> None:
    import pyarrow.parquet as pq

    from drift_assets.stats import ColumnSpec, fit_profile

    specs = [ColumnSpec(c, "numerical") for c in NUMERICAL] + [ColumnSpec(c, "categorical") for c in CATEGORICAL]
    sample = pq.read_table(next((data / "log").glob("date=*/part-0.parquet"))).slice(0, 200_000)
    profile.write_text(fit_profile(sample, specs).to_json())


def load_postgres(server, data: Path) -> str:
    import pyarrow.parquet as pq

    from drift_assets.storage.sql import load_table

    database = "bench"
    server.create_database(database)
    dsn = f"postgresql://postgres@127.0.0.1:{server.port}/{database}"
    files = sorted((data / "log").glob("date=*/part-0.parquet"))
    t = time.perf_counter()
    rows = load_table(dsn, "bench_log", (b for f in files for b in pq.ParquetFile(f).iter_batches()))
    server.psql('CREATE INDEX ON bench_log ("timestamp"); ANALYZE bench_log', database)
    print(f"loaded {rows:,} rows into PostgreSQL in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return dsn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the week (default 1M)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--sources", nargs="+", default=["parquet", "duckdb", "postgres"])
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        rows = generate(data / "log", args.rows)
        profile = data / "profile.json"
        fit_profile_once(data, profile)
        servers = None
        try:
            if "postgres" in args.sources:
                sys.path.insert(0, str(REPO / "drift_assets_tests"))
                from cluster_servers import start_postgres

                servers = start_postgres()
                env["BENCH_PG_DSN"] = load_postgres(servers.__enter__(), data)
            print("| source | rows in window | seconds | peak RSS MB | RSS at start MB | peak - start MB |")
            print("|---|---|---|---|---|---|")
            for _ in range(args.repeat):
                for source in args.sources:
                    r = run_case(source, data, profile, env)
                    assert r["rows"] == r["preflight_rows"] == rows, (source, r, rows)
                    print(
                        f"| {source} | {r['rows']:,} | {r['seconds']:.2f} | {r['peak_mb']:,.0f} |"
                        f" {r['start_mb']:,.0f} | {r['peak_mb'] - r['start_mb']:,.0f} |",
                        flush=True,
                    )
        finally:
            if servers is not None:
                servers.__exit__(None, None, None)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # this checkout, not wherever the venv's editable install points
    main()
