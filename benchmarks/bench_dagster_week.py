"""The Dagster figures of issue 16: one fraud week (20,000 rows) in process and as a fresh process, and
the LLM monitor's cost per hourly window, optionally against another checkout in the same run.

    python benchmarks/bench_dagster_week.py                                   # this checkout
    python benchmarks/bench_dagster_week.py --before /tmp/main-checkout       # before/after, interleaved
    python benchmarks/bench_dagster_week.py --repeat 3 --hours 48

A temporary project: the fraud simulation (4 weeks of 20,000 rows) and the LLM simulation (16 days),
both monitors of monitors.yaml (the fraud monitor's end moved to its 4 weeks). Each checkout gets its
own assets, reports and ``DAGSTER_HOME`` (on-disk SQLite, the checkout's dagster.yaml) over the same data, so
one checkout's stored counts never serve the other's baselines. The Evidently HTML is off
(``DRIFT_ASSETS_HTML_REPORTS=0``): it is moving to its own asset. Every case runs in a subprocess with
``PYTHONPATH`` at the checkout; bytecode is written and a first import is not timed.

- **week in process**: ``fraud_window_job.execute_in_process(partition_key=2026-08-17)``, plus
  ``fraud_alert_job`` when the window failed an ERROR check (it does: the drift week), in a process that
  loaded the definitions and evaluated another week first (imports and per-process caches warm, as
  in the demo or a long-lived run worker); wall time of the two calls, median of ``--repeat`` in one
  process.
- **week, fresh process**: ``dagster asset materialize -m drift_assets.definitions --select
  fraud/production_window,fraud/drift_report --partition 2026-08-17`` under ``/usr/bin/time -v``;
  and the same with ``fraud/model_performance`` added (the whole window job; the week's labels are
  pending, as for the latest week a schedule or the UI runs).
- **LLM hour**: ``--hours`` consecutive hourly windows from the start of the demo's range (the last 9
  days), each run as ``cli/demo.py`` ``run_window`` runs it (the window job; the alert job only for
  hours that failed an ERROR check); mean and median per hour, and 216 x the mean.
- **Dagster floor** (this checkout only): a job of the LLM window job's shape (two hourly-partitioned
  assets, the second with as many checks as ``llm/drift_report``, bodies that return at once, Dagster's
  default IO manager) on the same kind of instance: what a run costs before any of this project's code.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
WEEK, WARM_WEEK = "2026-08-17", "2026-08-10"
DEMO_HOURS = 216
HOURS_CHUNK = 12
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
SILENT = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


# ----------------------------------------------------------------------------------------- workers
# Run inside a subprocess whose PYTHONPATH is the checkout under test; print one JSON line.


def _cpu() -> float:
    """CPU seconds of this process and of its children waited for (Dagster's compute-log ``tail``
    processes were children: ``process_time`` alone never saw them)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _failed_error(result) -> bool:
    return any(not e.passed and e.severity.value == "ERROR" for e in result.get_asset_check_evaluations())


def _run_window(defs, instance, monitor: str, key: str) -> bool:
    result = defs.resolve_job_def(f"{monitor}_window_job").execute_in_process(
        partition_key=key, instance=instance, run_config=QUIET, raise_on_error=False
    )
    assert result.success, f"{monitor} {key}: window job failed"
    failed = _failed_error(result)
    if failed:
        defs.resolve_job_def(f"{monitor}_alert_job").execute_in_process(
            partition_key=key, instance=instance, run_config=SILENT, raise_on_error=False
        )
    return failed


def worker_setup(_: str = "") -> dict:
    from dagster import DagsterInstance

    from drift_assets.definitions import build_definitions

    defs, instance = build_definitions(), DagsterInstance.get()
    for monitor in ("fraud", "llm"):
        job = defs.resolve_job_def(f"{monitor}_reference_job")
        assert job.execute_in_process(instance=instance, run_config=QUIET).success
    return {}


def worker_week(repeat: str) -> dict:
    from dagster import DagsterInstance

    from drift_assets.definitions import build_definitions

    defs, instance = build_definitions(), DagsterInstance.get()
    _run_window(defs, instance, "fraud", WARM_WEEK)
    seconds, cpu, failed = [], [], False
    for _ in range(int(repeat)):
        start, start_cpu = time.perf_counter(), _cpu()
        failed = _run_window(defs, instance, "fraud", WEEK)
        seconds.append(time.perf_counter() - start)
        cpu.append(_cpu() - start_cpu)
    return {"seconds": seconds, "cpu": cpu, "alert_job_ran": failed}


def worker_hours(span: str) -> dict:
    """``span`` = "first:count": hours of the demo's range, consecutive across calls."""
    from dagster import DagsterInstance

    from drift_assets.definitions import build_definitions

    defs, instance = build_definitions(), DagsterInstance.get()
    first, count = map(int, span.split(":"))
    keys = defs.resolve_job_def("llm_window_job").partitions_def.get_partition_keys()[-DEMO_HOURS:][first:][:count]
    seconds, cpu, errors = [], [], 0
    for key in keys:
        start, start_cpu = time.perf_counter(), _cpu()
        errors += _run_window(defs, instance, "llm", key)
        seconds.append(time.perf_counter() - start)
        cpu.append(_cpu() - start_cpu)
    return {"seconds": seconds, "cpu": cpu, "error_hours": errors, "first": keys[0], "last": keys[-1]}


def worker_floor(runs: str) -> dict:
    """Dagster's own cost of a run shaped like the LLM window job, on the on-disk instance."""
    from bench_sqlite_storage import floor_job as shaped_like
    from dagster import AssetKey, DagsterInstance

    from drift_assets.definitions import build_definitions

    real = build_definitions()
    checks = [k.name for k in real.resolve_asset_graph().get(AssetKey(["llm", "drift_report"])).check_keys]
    floor_job = shaped_like(checks)
    hourly = floor_job.partitions_def
    instance = DagsterInstance.get()
    keys = hourly.get_partition_keys()[-DEMO_HOURS:][: int(runs)]
    seconds, cpu = [], []
    for key in keys:
        start, start_cpu = time.perf_counter(), _cpu()
        assert floor_job.execute_in_process(partition_key=key, instance=instance, run_config=QUIET).success
        seconds.append(time.perf_counter() - start)
        cpu.append(_cpu() - start_cpu)
    events = len(instance.all_logs(instance.get_runs(limit=1)[0].run_id))
    return {"seconds": seconds, "cpu": cpu, "checks": len(checks), "events_per_run": events}


WORKERS = {"setup": worker_setup, "week": worker_week, "hours": worker_hours, "floor": worker_floor}


# ------------------------------------------------------------------------------------------ driver


def setup_data(root: Path) -> None:
    import yaml

    from drift_assets.simulate import simulate_fraud, simulate_llm

    simulate_fraud(str(root / "data" / "fraud"), weeks=4, drift_week=2)
    simulate_llm(str(root / "data" / "llm"), days=16)
    config = yaml.safe_load((PROJECT / "monitors.yaml").read_text())["monitors"]
    config["fraud"]["end"] = (dt.date(2026, 8, 3) + dt.timedelta(weeks=4)).isoformat()
    (root / "monitors.yaml").write_text(yaml.safe_dump({"monitors": config}, sort_keys=False))


def code_env(
    root: Path, label: str, checkout: Path, *, monitors: Path | None = None, html: bool = False
) -> dict[str, str]:
    """The environment of a worker for ``checkout``: its own assets, reports and DAGSTER_HOME (with
    the checkout's dagster.yaml) under ``root / label``; the data and monitors file shared."""
    state = root / label
    home = state / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text((checkout / "dagster.yaml").read_text())  # each checkout's instance settings
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "DRIFT_ASSETS_HTML_REPORTS")}
    env.update(
        {
            "PYTHONPATH": str(checkout),
            "DRIFT_ASSETS_ENV": "local",
            "DRIFT_ASSETS_DATA_ROOT": str(root / "data"),
            "DRIFT_ASSETS_ASSETS_ROOT": str(state / "assets"),
            "DRIFT_ASSETS_REPORTS_ROOT": str(state / "reports"),
            "DRIFT_ASSETS_MONITORS": str(monitors or root / "monitors.yaml"),
            "DAGSTER_HOME": str(home),
        }
    )
    if not html:
        env["DRIFT_ASSETS_HTML_REPORTS"] = "0"
    return env


def run_worker(env: dict[str, str], mode: str, arg: object = "", script: str = __file__) -> dict:
    """Run ``script --worker mode arg`` in ``env``; its last stdout line is the JSON answer."""
    proc = subprocess.run([sys.executable, script, "--worker", mode, str(arg)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


FRESH_SELECTION = "fraud/production_window,fraud/drift_report"
WHOLE_WINDOW_JOB = FRESH_SELECTION + ",fraud/model_performance"  # what fraud_window_job materialises


def fresh_process(env: dict[str, str], selection: str = FRESH_SELECTION) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system, children included) and peak MB of one fresh process."""
    dagster = str(Path(sys.executable).with_name("dagster"))
    cmd = ["/usr/bin/time", "-v", dagster, "asset", "materialize", "-m", "drift_assets.definitions"]
    cmd += ["--select", selection, "--partition", WEEK]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", proc.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    user = re.search(r"User time \(seconds\): (\S+)", proc.stderr)
    system = re.search(r"System time \(seconds\): (\S+)", proc.stderr)
    assert wall and rss and user and system
    seconds = 0.0
    for part in wall.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    return seconds, float(user.group(1)) + float(system.group(1)), int(rss.group(1)) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="another checkout (e.g. main) to measure in the same run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hours", type=int, default=36, help="consecutive LLM hours per checkout (chunks of 12)")
    parser.add_argument("--floor-runs", type=int, default=12)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker[0]](args.worker[1])))
        return 0
    trees = {"after": PROJECT} | ({"before": args.before.resolve()} if args.before else {})
    root = Path(tempfile.mkdtemp(prefix="drift-assets-dagster-"))
    try:
        setup_data(root)
        envs = {label: code_env(root, label, tree) for label, tree in trees.items()}
        for env in envs.values():
            run_worker(env, "setup")  # reference assets; also writes this checkout's bytecode
        week: dict[str, list[float]] = {label: [] for label in trees}
        week_cpu: dict[str, list[float]] = {label: [] for label in trees}
        fresh: dict[str, list[tuple[float, float, float]]] = {label: [] for label in trees}
        whole: dict[str, list[tuple[float, float, float]]] = {label: [] for label in trees}
        alert = {}
        for i in range(args.repeat):
            for label, env in envs.items():
                out = run_worker(env, "week", 1)
                week[label] += out["seconds"]
                week_cpu[label] += out["cpu"]
                alert[label] = out["alert_job_ran"]
                fresh[label].append(fresh_process(env))
                whole[label].append(fresh_process(env, WHOLE_WINDOW_JOB))
                wall, cpu, mb = fresh[label][-1]
                print(
                    f"  round {i + 1} {label}: week in process {week[label][-1]:.2f} s (CPU {week_cpu[label][-1]:.2f}),"
                    f" fresh process {wall:.2f} s (CPU {cpu:.2f} s, {mb:.0f} MB), whole window job fresh"
                    f" {whole[label][-1][0]:.2f} s (CPU {whole[label][-1][1]:.2f} s, {whole[label][-1][2]:.0f} MB)",
                    flush=True,
                )
        # Hours in chunks, alternating between checkouts (each continues its own consecutive hours).
        hours: dict[str, dict] = {label: {"seconds": [], "cpu": [], "error_hours": 0} for label in trees}
        for first in range(0, args.hours, HOURS_CHUNK):
            for label, env in envs.items():
                out = run_worker(env, "hours", f"{first}:{min(HOURS_CHUNK, args.hours - first)}")
                for name in ("seconds", "cpu"):
                    hours[label][name] += out[name]
                hours[label]["error_hours"] += out["error_hours"]
                hours[label].setdefault("first", out["first"])
                hours[label]["last"] = out["last"]
                chunk = statistics.mean(out["seconds"])
                print(f"  {label}: LLM hours {out['first']} .. {out['last']}, mean {chunk:.2f} s", flush=True)
        floor = run_worker(envs["after"], "floor", args.floor_runs)
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs; HTML off")
        print(f"fraud week {WEEK} (20,000 rows), medians of {args.repeat} (wall s / CPU s):")
        med, mean = statistics.median, statistics.mean
        for label in trees:
            f = fresh[label]
            print(
                f"  {label:<6} in process {med(week[label]):.2f} / {med(week_cpu[label]):.2f} "
                f"(alert job ran: {alert[label]}); fresh `dagster asset materialize` "
                f"{med(s for s, _, _ in f):.2f} / {med(c for _, c, _ in f):.2f}, peak {med(m for _, _, m in f):.0f} MB"
            )
            w = whole[label]
            print(
                f"         whole window job (labels pending), fresh {med(s for s, _, _ in w):.2f} / "
                f"{med(c for _, c, _ in w):.2f}, peak {med(m for _, _, m in w):.0f} MB"
            )
        h0 = hours["after"]
        print(f"LLM hours {h0['first']} .. {h0['last']} ({args.hours} runs, wall s / CPU s):")
        for label in trees:
            s, c = hours[label]["seconds"], hours[label]["cpu"]
            print(
                f"  {label:<6} mean {statistics.mean(s):.2f} / {statistics.mean(c):.2f}, median {med(s):.2f} / "
                f"{med(c):.2f} per hour -> 216 hours ~{216 * statistics.mean(s):.0f} s "
                f"({hours[label]['error_hours']} hours failed an ERROR check)"
            )
        print(
            f"Dagster floor: a run of the same shape (2 assets, {floor['checks']} checks, {floor['events_per_run']} "
            f"events) with empty bodies: median {med(floor['seconds']):.2f} s (CPU {med(floor['cpu']):.2f} s), "
            f"mean {mean(floor['seconds']):.2f} s -> 216 runs ~{DEMO_HOURS * mean(floor['seconds']):.0f} s"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
