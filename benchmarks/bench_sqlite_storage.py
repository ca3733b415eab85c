"""Dagster's SQLite storage classes against ``orchestration/sqlite_storage.py``, per run.

    python benchmarks/bench_sqlite_storage.py                 # 3 rounds x 20 runs per storage
    python benchmarks/bench_sqlite_storage.py --rounds 5 --runs 40

The run is shaped like the LLM window job (two hourly-partitioned assets, the second with 13 asset
checks; bodies that return at once; in-process executor), so what it measures is Dagster's own cost
of a run on each storage: the events it stores (~55 a run), the run record, the new run's file.
Each storage gets its own on-disk DAGSTER_HOME (telemetry off, SQLite's default synchronous=FULL,
the project's ``relax_sqlite_sync`` not applied); rounds alternate between the two, each in a fresh
subprocess whose first run is not timed (imports, first files).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
POOLED = (
    "storage:\n  custom:\n    module: drift_assets.orchestration.sqlite_storage\n"
    "    class: PooledSqliteStorage\n    config:\n      base_dir: {env: DAGSTER_HOME}\n"
)
CHECKS = 13


def floor_job(names: list[str], hourly=None):
    """A job of the LLM window job's shape whose bodies return at once: two hourly assets, the
    second with the asset checks ``names``; the in-process executor."""
    from dagster import (
        AssetCheckResult,
        AssetCheckSpec,
        AssetKey,
        Definitions,
        HourlyPartitionsDefinition,
        MaterializeResult,
        asset,
        define_asset_job,
        in_process_executor,
    )

    hourly = hourly or HourlyPartitionsDefinition(start_date="2026-10-05-00:00", end_date="2026-10-21-00:00")
    report_key = AssetKey(["floor", "report"])

    @asset(key=["floor", "window"], partitions_def=hourly)
    def window() -> int:
        return 1

    @asset(
        key=report_key,
        partitions_def=hourly,
        deps=[window],
        check_specs=[AssetCheckSpec(n, asset=report_key, partitions_def=hourly) for n in names],
    )
    def report():
        return MaterializeResult(check_results=[AssetCheckResult(check_name=n, passed=True) for n in names])

    return Definitions(
        assets=[window, report], jobs=[define_asset_job("floor_job", executor_def=in_process_executor)]
    ).resolve_job_def("floor_job")


def worker(runs: int, offset: int) -> dict:
    from dagster import DagsterInstance

    job = floor_job([f"check_{i}" for i in range(CHECKS)])
    hourly = job.partitions_def
    instance = DagsterInstance.get()
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    keys = hourly.get_partition_keys()[offset : offset + runs + 1]
    job.execute_in_process(partition_key=keys[0], instance=instance, run_config=quiet)  # warm-up
    seconds, cpu = [], []
    for key in keys[1:]:
        start, start_cpu = time.perf_counter(), time.process_time()
        assert job.execute_in_process(partition_key=key, instance=instance, run_config=quiet).success
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    events = len(instance.all_logs(instance.get_runs(limit=1)[0].run_id))
    return {"storage": type(instance.event_log_storage).__name__, "seconds": seconds, "cpu": cpu, "events": events}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per round and storage")
    parser.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return 0
    root = Path(tempfile.mkdtemp(prefix="drift-assets-sqlite-"))
    homes = {"dagster": root / "dagster", "pooled": root / "pooled"}
    for name, home in homes.items():
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n" + (POOLED if name == "pooled" else ""))
    results: dict[str, dict[str, list[float]]] = {name: {"seconds": [], "cpu": []} for name in homes}
    events = {}
    for i in range(args.rounds):
        for name, home in homes.items():
            env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(PROJECT)}
            cmd = [sys.executable, __file__, "--worker", str(args.runs), str(i * (args.runs + 1))]
            out = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)
            results[name]["seconds"] += out["seconds"]
            results[name]["cpu"] += out["cpu"]
            events[name] = out["events"]
            print(f"  round {i + 1} {out['storage']}: median {statistics.median(out['seconds']):.3f} s", flush=True)
    med = statistics.median
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs")
    for name in homes:
        s, c = results[name]["seconds"], results[name]["cpu"]
        print(f"  {name:<8} {len(s)} runs, {events[name]} events a run: median {med(s):.3f} s (CPU {med(c):.3f} s)")
    d, p = results["dagster"], results["pooled"]
    print(
        f"  Dagster's classes / pooled: {med(d['seconds']) / med(p['seconds']):.2f}x wall, "
        f"{med(d['cpu']) / med(p['cpu']):.2f}x CPU"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
