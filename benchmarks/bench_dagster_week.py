"""The Dagster weekly-run figure: one fraud week (20,000 rows), in process and as a fresh process.

    python benchmarks/bench_dagster_week.py --repeat 3

A temporary project: the fraud simulation (20,000 rows a week, the project's fraud monitor over
its first weeks) and a fresh ``DAGSTER_HOME`` (SQLite); the reference is materialised once. Then,
for one week, with the Evidently HTML off and on (``DRIFT_ASSETS_HTML_REPORTS=0|1``):

- **in process**: ``fraud_window_job.execute_in_process(partition_key=week)`` (definitions loaded
  and imports paid before the clock starts), wall time of that call;
- **fresh process**: ``dagster asset materialize -m drift_assets.definitions --select
  fraud/production_window,fraud/drift_report --partition week`` under ``/usr/bin/time -v``: what an
  operator waits for from the shell (interpreter, imports, definitions, the run with Dagster's
  default executor for ad-hoc asset runs).

Runs are interleaved (HTML off / on, in process / fresh) and medians reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
WEEK = "2026-08-17"


def setup(root: Path, weeks: int = 4) -> dict[str, str]:
    from drift_assets.simulate import simulate_fraud

    simulate_fraud(str(root / "data" / "fraud"), weeks=weeks, drift_week=2)
    config = yaml.safe_load((PROJECT / "monitors.yaml").read_text())
    fraud = config["monitors"]["fraud"]
    fraud["end"] = (dt.date(2026, 8, 3) + dt.timedelta(weeks=weeks)).isoformat()
    fraud.setdefault("extra", {})["html_report"] = True  # DRIFT_ASSETS_HTML_REPORTS=0 turns it off
    (root / "monitors.yaml").write_text(yaml.safe_dump({"monitors": {"fraud": fraud}}, sort_keys=False))
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        "DRIFT_ASSETS_ENV": "local",
        "DRIFT_ASSETS_DATA_ROOT": str(root / "data"),
        "DRIFT_ASSETS_ASSETS_ROOT": str(root / "assets"),
        "DRIFT_ASSETS_REPORTS_ROOT": str(root / "reports"),
        "DRIFT_ASSETS_MONITORS": str(root / "monitors.yaml"),
        "DAGSTER_HOME": str(home),
    }


def in_process(html: bool) -> float:
    from dagster import DagsterInstance

    from drift_assets.definitions import build_definitions

    os.environ["DRIFT_ASSETS_HTML_REPORTS"] = "1" if html else "0"
    defs = build_definitions()
    job = defs.resolve_job_def("fraud_window_job")
    instance = DagsterInstance.get()
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    start = time.perf_counter()
    result = job.execute_in_process(partition_key=WEEK, instance=instance, run_config=quiet, raise_on_error=False)
    seconds = time.perf_counter() - start
    assert result.success
    return seconds


def fresh_process(html: bool) -> tuple[float, float]:
    env = {**os.environ, "DRIFT_ASSETS_HTML_REPORTS": "1" if html else "0"}
    dagster = str(Path(sys.executable).with_name("dagster"))
    cmd = ["/usr/bin/time", "-v", dagster, "asset", "materialize", "-m", "drift_assets.definitions"]
    cmd += ["--select", "fraud/production_window,fraud/drift_report", "--partition", WEEK]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", proc.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    assert wall and rss
    seconds = 0.0
    for part in wall.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    return seconds, int(rss.group(1)) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="drift-assets-week-"))
    try:
        os.environ.update(setup(root))
        from dagster import DagsterInstance

        from drift_assets.definitions import build_definitions

        quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
        ref = build_definitions().resolve_job_def("fraud_reference_job")
        assert ref.execute_in_process(instance=DagsterInstance.get(), run_config=quiet).success
        in_proc: dict[bool, list[float]] = {False: [], True: []}
        fresh: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for i in range(args.repeat):
            for html in (False, True):
                in_proc[html].append(in_process(html))
                fresh[html].append(fresh_process(html))
                print(
                    f"  run {i + 1} html={'on' if html else 'off'}: in process {in_proc[html][-1]:.2f} s,"
                    f" fresh process {fresh[html][-1][0]:.2f} s ({fresh[html][-1][1]:.0f} MB)",
                    flush=True,
                )
        print(f"\nfraud week {WEEK} (20,000 rows), medians of {args.repeat}; {os.cpu_count()} CPUs")
        for html in (False, True):
            f = fresh[html]
            print(
                f"  HTML {'on ' if html else 'off'}: in process {statistics.median(in_proc[html]):.2f} s;"
                f" fresh `dagster asset materialize` {statistics.median(s for s, _ in f):.2f} s,"
                f" peak {statistics.median(m for _, m in f):.0f} MB"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
