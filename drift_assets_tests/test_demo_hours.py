"""The demo's hours in two processes (cli/hours.py): real ``python -m drift_assets.cli.demo llm``
processes on real instances over a simulated day (24 hours: a refusal spike in the first half, an
output-length collapse in the second). Two workers print what one prints, store the same results,
and leave the same two backfills; a killed worker fails the demo in one line and leaves nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support import PROJECT_ROOT

from drift_assets.cli import hours

DAY = [f"2026-10-06-{h:02d}:00" for h in range(24)]
SPIKE_HOURS = (3, 5)  # refusal spike, day 2 (parent's chunk)
COLLAPSE_HOUR = 18  # output-length collapse from here (the worker's chunk)


def test_chunks_are_contiguous_in_order_and_balanced():
    keys = [str(i) for i in range(7)]
    assert hours.chunks(keys, 2) == [keys[:4], keys[4:]]
    assert hours.chunks(keys, 3) == [keys[:3], keys[3:5], keys[5:]]
    assert hours.chunks(keys, 1) == [keys]
    assert hours.chunks(keys[:1], 4) == [keys[:1]]
    assert sum(hours.chunks(keys, 5), []) == keys


def test_hour_workers_env(monkeypatch):
    monkeypatch.setenv(hours.HOUR_WORKERS_ENV, "3")
    assert hours.hour_workers() == 3
    monkeypatch.delenv(hours.HOUR_WORKERS_ENV)
    assert hours.hour_workers() == (2 if (os.cpu_count() or 1) > 1 else 1)
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(hours.HOUR_WORKERS_ENV, bad)
        with pytest.raises(ValueError, match=hours.HOUR_WORKERS_ENV):
            hours.hour_workers()


def test_bad_worker_count_is_one_line_and_exit_2(tmp_path):
    env = {**os.environ, hours.HOUR_WORKERS_ENV: "zero", "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "drift_assets.cli.app", "demo"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2
    assert proc.stdout.strip().splitlines() == [
        f"drift-assets demo: {hours.HOUR_WORKERS_ENV} must be a positive integer, got 'zero'"
    ]
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def day_data(tmp_path_factory):
    from drift_assets.simulate import simulate_llm

    root = tmp_path_factory.mktemp("hours")
    simulate_llm(
        str(root / "data" / "llm"),
        start=dt.date(2026, 10, 5),
        days=2,
        refusal_spike_day=2,
        refusal_spike_hours=SPIKE_HOURS,
        version_change_day=2,
        version_change_hour=COLLAPSE_HOUR,
    )
    config = yaml.safe_load((PROJECT_ROOT / "monitors.yaml").read_text())
    llm = config["monitors"]["llm"]
    llm["start"], llm["end"] = "2026-10-06", "2026-10-07"  # 24 hourly partitions, all evaluated
    (root / "monitors.yaml").write_text(yaml.safe_dump({"monitors": {"llm": llm}}, sort_keys=False))
    return root


def _env(root: Path, label: str, workers: int) -> dict[str, str]:
    home = root / label / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    return {
        **os.environ,
        "DRIFT_ASSETS_ENV": "local",
        "DRIFT_ASSETS_DATA_ROOT": str(root / "data"),
        "DRIFT_ASSETS_ASSETS_ROOT": str(root / label / "assets"),
        "DRIFT_ASSETS_REPORTS_ROOT": str(root / label / "reports"),
        "DRIFT_ASSETS_MONITORS": str(root / "monitors.yaml"),
        "DAGSTER_HOME": str(home),
        hours.HOUR_WORKERS_ENV: str(workers),
        "DRIFT_ASSETS_PROGRESS_SECONDS": "0",  # a progress line per hour: they must not matter
    }


DEMO = [sys.executable, "-m", "drift_assets.cli.demo", "llm"]  # what the demo's second process runs
TIMING = re.compile(r"elapsed|\(llm [a-z]+: [0-9.]+s\)|^Elapsed:|^   hour worker |Dagster backfills ")


def _printed(stdout: str) -> list[str]:
    """The demo's lines without timings, progress, worker lines and backfill ids."""
    return [line for line in stdout.splitlines() if not TIMING.search(line)]


def _results(reports: Path) -> dict[str, object]:
    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k != "evaluated_at"}
        return [strip(v) for v in o] if isinstance(o, list) else o

    return {str(p.relative_to(reports)): strip(json.loads(p.read_text())) for p in sorted(reports.rglob("*.json"))}


def _backfills(home: Path) -> dict[str, dict]:
    """Per partition set: the backfill record's partitions, status and its runs' tags and pids."""
    from dagster import DagsterInstance
    from dagster._core.storage.dagster_run import RunsFilter

    with DagsterInstance.from_config(str(home)) as instance:
        out = {}
        for b in instance.get_backfills():
            runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": b.backfill_id}))
            pids = set()
            for run in runs:
                for record in instance.all_logs(run.run_id):
                    match = re.search(r"Started process for run \(pid: (\d+)\)", record.message or "")
                    if match:
                        pids.add(int(match.group(1)))
            out[b.partition_set_origin.partition_set_name] = {
                "id": b.backfill_id,
                "partitions": list(b.partition_names),
                "status": b.status.value,
                "ended": b.backfill_end_timestamp is not None,
                "runs": sorted((r.tags["dagster/partition"], r.status.value) for r in runs),
                "tags": [r.tags for r in runs],
                "pids": pids,
            }
        return out


@pytest.mark.slow  # two demo processes over 24 hours, ~50 s
def test_two_workers_print_store_and_record_what_one_does(day_data):
    one = subprocess.run(DEMO, capture_output=True, text=True, env=_env(day_data, "one", 1), timeout=600)
    two = subprocess.run(DEMO, capture_output=True, text=True, env=_env(day_data, "two", 2), timeout=600)
    assert one.returncode == 0 and two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    assert "hour worker" not in one.stdout
    started = [line for line in two.stdout.splitlines() if "hour worker" in line and "started" in line]
    assert len(started) == 1 and "started, 12 hours from 2026-10-06-12:00" in started[0]
    assert _printed(two.stdout) == _printed(one.stdout)
    assert "   2026-10-06" in "\n".join(_printed(one.stdout))  # the day's row is there
    assert "2026-10-06-18:00 .. 2026-10-06-23:00" in one.stdout  # an incident in the worker's half

    # Stored results: the same documents (the HTML pages carry run ids in their names).
    reports_one, reports_two = _results(day_data / "one" / "reports"), _results(day_data / "two" / "reports")
    assert reports_one.keys() == reports_two.keys() and len(reports_one) >= 24
    assert reports_one == reports_two
    # The worker's first hour continued the CUSUM of the 12 hours before it (computed from the log).
    noon = reports_two["llm/drift/2026-10-06-12:00.json"]
    gradual = [c for c in noon["checks"] if c["name"] == "no_gradual_drift"]
    assert [c["windows"] for c in gradual] == [13] and gradual[0]["cusum_upper"] > 0

    recorded = {label: _backfills(day_data / label / "dagster_home") for label in ("one", "two")}
    errors = sorted({line.split()[0] for line in _incident_hours(one.stdout)})
    for label, backfills in recorded.items():
        assert set(backfills) == {"llm_window_job_partition_set", "llm_alert_job_partition_set"}
        window, alert = backfills["llm_window_job_partition_set"], backfills["llm_alert_job_partition_set"]
        assert window["partitions"] == DAY and window["status"] == "COMPLETED_SUCCESS" and window["ended"]
        assert [k for k, _ in window["runs"]] == DAY and {s for _, s in window["runs"]} == {"SUCCESS"}
        assert alert["partitions"] == errors and alert["status"] == "COMPLETED_FAILED" and alert["ended"]
        assert [k for k, _ in alert["runs"]] == errors and {s for _, s in alert["runs"]} == {"FAILURE"}
        for batch in (window, alert):
            job = "llm_window_job" if batch is window else "llm_alert_job"
            for tags in batch["tags"]:
                assert tags["dagster/backfill"] == batch["id"]
                assert tags["dagster/partition_set"] == f"{job}_partition_set"
                assert tags["drift_assets/monitor"] == "llm"
                assert tags["drift_assets/launched_by"] == "drift-assets demo"
        assert len(window["pids"]) == (1 if label == "one" else 2)  # the watchdog's pid per run
    assert {k: v["partitions"] for k, v in recorded["one"].items()} == {
        k: v["partitions"] for k, v in recorded["two"].items()
    }
    # Verdicts on both sides of the split: the spike (parent's half) and the collapse (worker's).
    assert any(k < "2026-10-06-12:00" for k in errors) and any(k >= "2026-10-06-12:00" for k in errors)


def _incident_hours(stdout: str) -> list[str]:
    """The hours inside the printed incident runs ``start .. end``."""
    out = []
    for line in stdout.splitlines():
        match = re.match(r"\s+(2026-10-06-(\d\d):00) \.\. 2026-10-06-(\d\d):00:", line)
        if match:
            out += [f"2026-10-06-{h:02d}:00" for h in range(int(match.group(2)), int(match.group(3)) + 1)]
    return out


def _processes_with(home: Path) -> list[int]:
    """Pids of live processes whose environment names ``home`` as DAGSTER_HOME."""
    needle = f"DAGSTER_HOME={home}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow  # a demo process until its worker is killed, ~20 s
def test_a_killed_worker_fails_the_demo_in_one_line_and_leaves_no_process(day_data):
    env = _env(day_data, "killed", 2)
    home = Path(env["DAGSTER_HOME"])
    demo = subprocess.Popen(DEMO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    try:
        for line in demo.stdout:
            lines.append(line)
            match = re.search(r"hour worker 1 \(pid (\d+)\): started", line)
            if match:
                worker = int(match.group(1))
                time.sleep(3)  # let it start its runs
                os.kill(worker, signal.SIGKILL)
                break
        rest, _ = demo.communicate(timeout=300)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    text = "".join(lines) + rest
    assert demo.returncode == 1, text
    failed = [line for line in text.splitlines() if f"hour worker 1 (pid {worker})" in line and "failed" in line]
    assert len(failed) == 1 and "killed by signal 9" in failed[0], text
    assert failed[0].startswith(f"   hour worker 1 (pid {worker}) failed (killed by signal 9)")
    assert failed[0].endswith("the backfills are marked failed")
    assert "Traceback" not in text
    assert "incident hours found" not in text  # no summary of a half-evaluated range
    statuses = {name: b["status"] for name, b in _backfills(home).items()}
    assert statuses["llm_window_job_partition_set"] == "FAILED", statuses
    assert all(s != "COMPLETED_SUCCESS" for s in statuses.values())
    assert _processes_with(home) == []


@pytest.mark.slow  # a demo process until it is killed, then its worker until it stops, ~20 s
def test_a_worker_whose_demo_is_killed_stops_after_its_hour(day_data):
    env = _env(day_data, "orphaned", 2)
    home = Path(env["DAGSTER_HOME"])
    demo = subprocess.Popen(DEMO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    worker, log = None, None
    try:
        for line in demo.stdout:
            match = re.search(r"hour worker 1 \(pid (\d+)\): started", line)
            if match:
                worker = int(match.group(1))
                argv = Path(f"/proc/{worker}/cmdline").read_bytes().decode().split("\0")
                log = Path(argv[argv.index("--out") + 1]).with_suffix(".log")  # hours.start's naming
                time.sleep(3)  # let it start its runs
                demo.kill()  # SIGKILL: no finally of the demo's runs, as a crashed machine session
                break
        demo.wait()
        assert worker is not None
        deadline = time.monotonic() + 60  # an hour or two of runs, not the ~10 hours it had left
        while time.monotonic() < deadline and worker in _processes_with(home):
            time.sleep(0.2)
        assert worker not in _processes_with(home)
        said = [line for line in log.read_text().splitlines() if line.strip()]
        assert said[-1] == f"the demo's process (pid {demo.pid}) is gone: this hour worker stops", said[-3:]
        assert len(_window_runs(home)) < len(DAY)  # it stopped early: not every hour has its run
    finally:
        if log is not None:
            log.unlink(missing_ok=True)
        for pid in _processes_with(home):  # stopped by pid if the test failed midway
            os.kill(pid, signal.SIGKILL)
        if demo.poll() is None:
            demo.kill()
            demo.wait()


def _window_runs(home: Path) -> list[str]:
    """Partition keys of the window runs recorded in the instance at ``home``."""
    script = (
        "from dagster import DagsterInstance; from dagster._core.storage.dagster_run import RunsFilter; "
        "i = DagsterInstance.get(); print('\\n'.join(r.tags.get('dagster/partition', '') for r in "
        "i.get_runs(RunsFilter(job_name='llm_window_job'))))"
    )
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    return [k for k in out.stdout.splitlines() if k]


def test_claims_give_each_hour_once_and_a_done_process_takes_half_of_the_largest_range(tmp_path):
    keys = [str(i) for i in range(24)]
    claims = hours.Claims.create(tmp_path / "claims", [keys[:4], keys[4:]])
    assert [claims.claim(0) for _ in range(4)] == [0, 1, 2, 3]
    assert claims.claim(1) == 4  # process 1 is at 5..23 now: 19 left
    assert claims.claim(0) == 5 + 19 // 2 + 1  # 15: process 0 takes 15..23, process 1 keeps 5..14
    assert [claims.claim(1) for _ in range(10)] == list(range(5, 15))
    taken = [claims.claim(1)]  # process 1 is done: takes the second half of 16..23
    assert taken == [20]
    rest = [claims.claim(0) for _ in range(4)] + [claims.claim(1) for _ in range(3)]
    assert rest == [16, 17, 18, 19, 21, 22, 23]
    assert claims.claim(0) is None and claims.claim(1) is None  # nothing left (and nothing to take)
    ranges = json.loads((tmp_path / "claims").read_text())["ranges"]
    assert all(start == end for start, end in ranges)
