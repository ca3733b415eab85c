"""The LLM monitor's hours with the Evidently HTML on: ``html_report: on_failure`` (a page for every
hour failing an ERROR check) against ``on_new_failure`` (the first hour of each incident), in the
same run, interleaved in chunks of hours (which policy runs first alternates chunk by chunk).

    python benchmarks/bench_report_policy.py                       # hours 120..155 of the demo's 216
    python benchmarks/bench_report_policy.py --first 0 --hours 216 # the demo's whole LLM part
    python benchmarks/bench_report_policy.py --before /work/main   # on_failure measured on another checkout

A temporary project: the demo's LLM simulation (16 days, the simulator's default seed) and the llm
monitor of monitors.yaml, once per policy (own assets, reports and on-disk ``DAGSTER_HOME`` over the
same data). Each hour runs as ``cli/demo.py`` runs it: the window job, then the alert job for an hour
that failed an ERROR check. Reported per policy: seconds per failing and per passing hour, the
reports written; and, from the stored drift records, how many pages each policy writes over the
demo's 216 hours.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bench_dagster_week as dagster_week

PROJECT = Path(__file__).resolve().parent.parent
DEMO_HOURS = 216
CHUNK = 12
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
SILENT = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _keys(defs) -> list[str]:
    return defs.resolve_job_def("llm_window_job").partitions_def.get_partition_keys()[-DEMO_HOURS:]


def worker_setup(_: str) -> dict:
    from dagster import DagsterInstance

    from drift_assets.definitions import build_definitions

    defs = build_definitions()
    assert defs.resolve_job_def("llm_reference_job").execute_in_process(instance=DagsterInstance.get()).success
    return {}


def worker_hours(span: str) -> dict:
    """``span`` = "first:count" of the demo's 216 hours; per hour: seconds, failed ERROR, report written."""
    from dagster import AssetKey, DagsterInstance

    from drift_assets.definitions import build_definitions

    defs, instance = build_definitions(), DagsterInstance.get()
    first, count = map(int, span.split(":"))
    report = AssetKey(["llm", "evidently_report"])
    rows = []
    for key in _keys(defs)[first:][:count]:
        start, start_cpu = time.perf_counter(), time.process_time()
        result = defs.resolve_job_def("llm_window_job").execute_in_process(
            partition_key=key, instance=instance, run_config=QUIET, raise_on_error=False
        )
        assert result.success, key
        failed = any(not e.passed and e.severity.value == "ERROR" for e in result.get_asset_check_evaluations())
        if failed:
            defs.resolve_job_def("llm_alert_job").execute_in_process(
                partition_key=key, instance=instance, run_config=SILENT, raise_on_error=False
            )
        written = report in {e.asset_key for e in result.get_asset_materialization_events()}
        seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        rows.append({"key": key, "seconds": seconds, "cpu": cpu, "failed": failed, "report": written})
    return {"rows": rows}


def worker_count(_: str) -> dict:
    """Pages each policy writes over the hours whose drift records are stored (no Evidently run)."""
    from drift_assets.definitions import build_definitions
    from drift_assets.monitoring.config import load_monitors
    from drift_assets.orchestration.report_asset import stored_history, wants_report

    defs = build_definitions()
    storage = defs.resources["storage"]
    monitor = load_monitors().get("llm")
    counts = {"on_failure": 0, "on_new_failure": 0, "evaluated": 0}
    written = []
    for key in _keys(defs):
        history = stored_history(storage, monitor, key)
        record = history._load(key)
        if record is None:
            continue
        counts["evaluated"] += 1
        counts["on_failure"] += wants_report("on_failure", record)[0]
        write, reason = wants_report("on_new_failure", record, history)
        if write:
            counts["on_new_failure"] += 1
            written.append(f"{key}: {reason}")
    return {**counts, "written": written}


WORKERS = {"setup": worker_setup, "hours": worker_hours, "count": worker_count}


def setup_data(root: Path, policies: dict[str, str]) -> None:
    import yaml

    from drift_assets.simulate import simulate_llm

    simulate_llm(str(root / "data" / "llm"), days=16)  # the demo's call (cli/demo.py simulate_all)
    config = yaml.safe_load((PROJECT / "monitors.yaml").read_text())["monitors"]
    for label, policy in policies.items():
        llm = {**config["llm"], "extra": {**config["llm"].get("extra", {}), "html_report": policy}}
        (root / f"monitors-{label}.yaml").write_text(yaml.safe_dump({"monitors": {"llm": llm}}, sort_keys=False))


def code_env(root: Path, label: str, checkout: Path) -> dict[str, str]:
    """The Dagster week bench's worker environment, with this policy's monitors file and the HTML on."""
    return dagster_week.code_env(root, label, checkout, monitors=root / f"monitors-{label}.yaml", html=True)


def run_worker(env: dict[str, str], mode: str, arg: object = "") -> dict:
    return dagster_week.run_worker(env, mode, arg, script=__file__)


def _line(label: str, rows: list[dict]) -> str:
    """Wall / CPU seconds: per failing hour, per passing hour (means), and in all."""

    def mean(subset: list[dict]) -> str:
        if not subset:
            return "-"
        return (
            f"{statistics.mean(r['seconds'] for r in subset):.2f} / {statistics.mean(r['cpu'] for r in subset):.2f} s"
        )

    failing = [r for r in rows if r["failed"]]
    passing = [r for r in rows if not r["failed"]]
    total, cpu = sum(r["seconds"] for r in rows), sum(r["cpu"] for r in rows)
    return (
        f"  {label:<15} {len(rows)} hours in {total:.0f} / {cpu:.0f} s: failing hours ({len(failing)}) "
        f"{mean(failing)} each, passing ({len(passing)}) {mean(passing)}; reports written "
        f"{sum(r['report'] for r in rows)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="checkout measured with on_failure (default: this one)")
    parser.add_argument("--first", type=int, default=120, help="first of the demo's 216 hours (default 120)")
    parser.add_argument("--hours", type=int, default=36)
    parser.add_argument("--chunk", type=int, default=CHUNK, help="hours per worker process (default 12)")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker[0]](args.worker[1])))
        return 0
    policies = {"on_failure": "on_failure", "on_new_failure": "on_new_failure"}
    trees = {"on_failure": (args.before or PROJECT).resolve(), "on_new_failure": PROJECT}
    root = Path(tempfile.mkdtemp(prefix="drift-assets-report-policy-"))
    try:
        setup_data(root, policies)
        envs = {label: code_env(root, label, trees[label]) for label in policies}
        for env in envs.values():
            run_worker(env, "setup")
        rows: dict[str, list[dict]] = {label: [] for label in policies}
        for i, first in enumerate(range(args.first, args.first + args.hours, args.chunk)):
            for label, env in list(envs.items())[:: 1 if i % 2 == 0 else -1]:  # ABBA: neither always first
                out = run_worker(env, "hours", f"{first}:{min(args.chunk, args.first + args.hours - first)}")["rows"]
                rows[label] += out
                print(_line(label, out).replace("  ", f"  {out[0]['key']}.. ", 1), flush=True)
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs")
        h = rows["on_new_failure"]
        print(f"LLM hours {h[0]['key']} .. {h[-1]['key']} with the Evidently HTML on (wall / CPU s):")
        for label in policies:
            print(_line(label, rows[label]))
        count = run_worker(envs["on_new_failure"], "count")
        print(
            f"pages over the {count['evaluated']} evaluated hours of the demo's {DEMO_HOURS}: on_failure "
            f"{count['on_failure']}, on_new_failure {count['on_new_failure']}"
        )
        for line in count["written"]:
            print(f"  {line}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
