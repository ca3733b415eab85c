"""Nothing stuck (issue 12, item 1): a retraining whose run worker dies does not block retraining.

* ``dagster.yaml`` turns on Dagster's run monitoring with the keys Dagster 1.13 accepts;
* the retraining sensor fails a STARTED retraining run whose recorded worker process is gone, frees
  the one-retraining slot and requests the trigger again (table of worker states below);
* end to end: a real run worker (``dagster job execute`` on an on-disk DAGSTER_HOME) retrains with
  a DVC ``train`` stage that sleeps; ``kill -9`` of the worker mid-``dvc repro`` ends the DVC
  process group within seconds, the sensor's next tick fails the run and re-requests, champion.json
  is unchanged byte for byte, and the re-requested run retrains and promotes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dagster import DagsterInstance, DagsterRunStatus, instance_for_test
from dagster._core.test_utils import create_run_for_test
from servers import wait_until
from support import PROJECT_ROOT, write_monitors_file

from drift_assets.cli.demo import evaluate_sensor
from drift_assets.definitions import build_definitions
from drift_assets.monitoring.registry import ModelRegistry
from drift_assets.orchestration.keys import (
    MAX_RUNTIME_TAG,
    RETRAINING_TAG,
    RETRY_OF_TAG,
    TRIGGER_CHECK_TAG,
    TRIGGER_PARTITION_TAG,
    TRIGGER_RUN_TAG,
    WORKER_LOST_TAG,
    WORKER_TAG,
)
from drift_assets.orchestration.resources import DvcResource
from drift_assets.orchestration.sensors import MAX_ATTEMPTS_PER_TRIGGER
from drift_assets.retraining.process_guard import process_identity
from drift_assets.storage.root import Root

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
FAILING = "2026-08-17"
SENSOR = "fraud_retraining_sensor"
ON_CHECKS = ["feature_psi_below_retrain_threshold", "prediction_has_no_drift"]
DVC = os.environ.get("DRIFT_ASSETS_DVC") or DvcResource().executable


def test_dagster_yaml_turns_on_run_monitoring(tmp_path, monkeypatch):
    """The instance accepts the keys (a typo fails here) and reads the values."""
    (tmp_path / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))  # the storage's base_dir is {env: DAGSTER_HOME}
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_start_timeout_seconds == 180
        assert instance.run_monitoring_cancel_timeout_seconds == 180
        assert instance.run_monitoring_max_runtime_seconds == 0  # per run: dagster/max_runtime
        assert instance.run_monitoring_poll_interval_seconds == 60
    finally:
        instance.dispose()


def test_retraining_runs_carry_a_max_runtime_and_run_in_process():
    defs = build_definitions()
    job = defs.resolve_job_def("fraud_retraining_job")
    assert job.tags[MAX_RUNTIME_TAG] == "7200" and job.tags[RETRAINING_TAG] == "fraud"
    assert job.get_run_config_for_partition_key("2026-08-17") == {"execution": {"config": {"in_process": {}}}}


def _dead_identity() -> str:
    child = subprocess.Popen(["true"])
    child.wait()
    return f"{socket.gethostname()}:{process_identity(child.pid)}"


def _live_identity() -> str:
    return f"{socket.gethostname()}:{process_identity()}"


def _trigger_tags(trigger_run: str) -> dict:
    return {
        RETRAINING_TAG: "fraud",
        TRIGGER_PARTITION_TAG: FAILING,
        TRIGGER_RUN_TAG: trigger_run,
        TRIGGER_CHECK_TAG: "prediction_has_no_drift",
        "dagster/partition": FAILING,
    }


@pytest.fixture
def one_failing_week(project):
    path = write_monitors_file(
        project / "monitors-hygiene.yaml",
        retraining={"enabled": True, "on_checks": ON_CHECKS, "cooldown_hours": 0, "holdout_weeks": 1},
    )
    defs = build_definitions(monitors_file=path)
    with instance_for_test() as instance:
        assert (
            defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET).success
        )
        window = defs.resolve_job_def("fraud_window_job").execute_in_process(
            partition_key=FAILING, instance=instance, run_config=QUIET
        )
        first = evaluate_sensor(defs, SENSOR, instance, None)
        [request] = first.run_requests
        yield defs, instance, window.run_id, first.cursor, request


# (worker tag of a STARTED retraining run, whether the sensor fails it and re-requests)
WORKER_STATES = {
    "worker process gone": (_dead_identity, True),
    "worker alive": (_live_identity, False),
    "worker on another host": (lambda: f"not-{socket.gethostname()}:1:1", False),
    "no worker recorded yet": (lambda: None, False),
    "malformed worker tag": (lambda: "garbage", False),
}


@pytest.mark.slow  # the shared simulation and Dagster runs
@pytest.mark.parametrize(("identity", "lost"), WORKER_STATES.values(), ids=WORKER_STATES.keys())
def test_a_started_run_whose_worker_is_gone_is_failed_and_its_trigger_requested_again(one_failing_week, identity, lost):
    defs, instance, window_run, cursor, request = one_failing_week
    worker = identity()
    tags = {**request.tags, "dagster/partition": FAILING, **({WORKER_TAG: worker} if worker else {})}
    run = create_run_for_test(instance, job_name="fraud_retraining_job", status=DagsterRunStatus.STARTED, tags=tags)
    tick = evaluate_sensor(defs, SENSOR, instance, cursor)
    record = instance.get_run_record_by_id(run.run_id)
    if not lost:
        assert tick.run_requests == [] and run.run_id in tick.skip_reason.skip_message
        assert record.dagster_run.status == DagsterRunStatus.STARTED
        return
    assert record.dagster_run.status == DagsterRunStatus.FAILURE
    assert "is gone" in record.dagster_run.tags[WORKER_LOST_TAG]
    [retry] = tick.run_requests
    assert retry.partition_key == FAILING and retry.tags[RETRY_OF_TAG] == run.run_id
    assert retry.tags[TRIGGER_RUN_TAG] == window_run and retry.tags[MAX_RUNTIME_TAG] == "7200"
    assert retry.run_config == {"execution": {"config": {"in_process": {}}}}
    assert json.loads(tick.cursor) == json.loads(cursor)  # nothing consumed


# (status and tags of an ended retraining run, whether its trigger is requested again)
ENDED_RUNS = {
    "failed by run monitoring: start timeout": (
        DagsterRunStatus.FAILURE,
        {"dagster/failure_reason": "START_TIMEOUT"},
        True,
    ),
    "failed by the sensor: worker lost": (DagsterRunStatus.FAILURE, {WORKER_LOST_TAG: "gone"}, True),
    "canceled after a lost worker": (DagsterRunStatus.CANCELED, {WORKER_LOST_TAG: "gone"}, True),
    "failed by its own step (dvc error)": (DagsterRunStatus.FAILURE, {"dagster/failure_reason": "STEP_FAILURE"}, False),
    "succeeded": (DagsterRunStatus.SUCCESS, {WORKER_LOST_TAG: "gone"}, False),
}


@pytest.mark.slow
@pytest.mark.parametrize(("status", "extra", "retried"), ENDED_RUNS.values(), ids=ENDED_RUNS.keys())
def test_only_runs_that_lost_their_worker_are_retried(one_failing_week, status, extra, retried):
    defs, instance, window_run, cursor, _ = one_failing_week
    run = create_run_for_test(
        instance, job_name="fraud_retraining_job", status=status, tags={**_trigger_tags(window_run), **extra}
    )
    tick = evaluate_sensor(defs, SENSOR, instance, cursor)
    retries = [r for r in tick.run_requests if RETRY_OF_TAG in r.tags]
    assert [r.tags[RETRY_OF_TAG] for r in retries] == ([run.run_id] if retried else [])


@pytest.mark.slow
def test_retries_are_bounded_and_never_repeated(one_failing_week):
    defs, instance, window_run, cursor, _ = one_failing_week
    lost = {WORKER_LOST_TAG: "gone"}
    first = create_run_for_test(
        instance, job_name="j", status=DagsterRunStatus.FAILURE, tags={**_trigger_tags(window_run), **lost}
    )
    # Its retry exists (and was lost too): that one is retried, the first is not again.
    second = create_run_for_test(
        instance,
        job_name="j",
        status=DagsterRunStatus.FAILURE,
        tags={**_trigger_tags(window_run), **lost, RETRY_OF_TAG: first.run_id},
    )
    [retry] = evaluate_sensor(defs, SENSOR, instance, cursor).run_requests
    assert retry.tags[RETRY_OF_TAG] == second.run_id
    for _ in range(MAX_ATTEMPTS_PER_TRIGGER - 2):
        create_run_for_test(
            instance,
            job_name="j",
            status=DagsterRunStatus.FAILURE,
            tags={**_trigger_tags(window_run), **lost, RETRY_OF_TAG: second.run_id},
        )
    tick = evaluate_sensor(defs, SENSOR, instance, cursor)
    assert not [r for r in tick.run_requests if RETRY_OF_TAG in r.tags]  # gave up after MAX attempts


# --------------------------------------------------------------------------- end to end
def _slow_template(tmp: Path, gate: Path, stage_pid: Path) -> Path:
    """The training template whose ``train`` stage sleeps (recording its pid) while ``gate`` exists."""
    template = tmp / "training"
    shutil.copytree(PROJECT_ROOT / "training", template, ignore=shutil.ignore_patterns("__pycache__", "tmp"))
    pipeline = yaml.safe_load((template / "dvc.yaml").read_text())
    pipeline["stages"]["train"]["cmd"] = (
        f"if [ -f {gate} ]; then echo $$ > {stage_pid}; sleep 600; fi; " + pipeline["stages"]["train"]["cmd"]
    )
    (template / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    return template


def _group_members(pgid: int) -> list[str]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getpgid(int(name)) == pgid:
                    out.append(Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120])
            except OSError:
                continue
    return out


def _processes_mentioning(text: str) -> list[str]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                out.append(f"{name}: {cmdline[:160]}")
    return out


def _run_worker(env: dict, tags: dict) -> subprocess.Popen:
    """A real run worker: ``dagster job execute`` (the CLI process runs the run, in process)."""
    return subprocess.Popen(
        [sys.executable, "-m", "dagster", "job", "execute", "-m", "drift_assets.definitions"]
        + ["-j", "fraud_retraining_job", "--tags", json.dumps(tags)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.skipif(not Path(DVC).is_file(), reason=f"DVC executable {DVC} not found (make .venv-dvc)")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process semantics")
def test_kill_9_of_the_run_worker_mid_dvc_repro_fails_the_run_and_the_next_trigger_promotes(project, monkeypatch):
    tmp = project
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    gate, stage_pid = tmp / "SLOW", tmp / "stage.pid"
    gate.write_text("train sleeps while this file exists\n")
    monitors = write_monitors_file(
        tmp / "monitors-e2e.yaml",
        retraining={
            "enabled": True,
            "on_checks": ON_CHECKS,
            "cooldown_hours": 0,
            "min_auc_gain": 0.0,
            "holdout_weeks": 1,
        },
    )
    env_vars = {
        "DAGSTER_HOME": str(home),
        "DRIFT_ASSETS_MONITORS": str(monitors),
        "DRIFT_ASSETS_TRAINING_TEMPLATE": str(_slow_template(tmp, gate, stage_pid)),
        "DRIFT_ASSETS_RETRAINING_DIR": str(tmp / "retraining"),
        "DRIFT_ASSETS_DVC": DVC,
        "OMP_NUM_THREADS": "1",
    }
    for key, value in env_vars.items():
        monkeypatch.setenv(key, value)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    pointer_file = tmp / "data" / "fraud" / "models" / "champion.json"
    pointer = pointer_file.read_bytes()

    defs = build_definitions()
    instance = DagsterInstance.get()
    try:
        assert (
            defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET).success
        )
        window = defs.resolve_job_def("fraud_window_job").execute_in_process(
            partition_key=FAILING, instance=instance, run_config=QUIET
        )
        first = evaluate_sensor(defs, SENSOR, instance, None)
        [request] = first.run_requests
        worker = _run_worker(env, {**request.tags, "dagster/partition": FAILING})
        wait_until(
            lambda: stage_pid.is_file() and stage_pid.read_text().strip(), 300, message="the train stage to sleep"
        )
        pgid = os.getpgid(int(stage_pid.read_text()))
        assert len(_group_members(pgid)) >= 3, _group_members(pgid)  # guard, dvc, the stage (sh, sleep)
        [started] = instance.get_run_records()[:1]
        run_id = started.dagster_run.run_id
        assert started.dagster_run.status == DagsterRunStatus.STARTED and WORKER_TAG in started.dagster_run.tags

        os.kill(worker.pid, signal.SIGKILL)
        killed = time.monotonic()
        worker.wait(timeout=30)
        wait_until(lambda: not _group_members(pgid), 20, message=f"DVC process group {pgid} to end")
        group_gone = time.monotonic() - killed
        assert not _processes_mentioning(str(tmp / "retraining")), "orphans of the killed run"
        # The instance alone would count it as running forever (no worker health check):
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED

        tick = evaluate_sensor(defs, SENSOR, instance, first.cursor)
        noticed = time.monotonic() - killed
        failed = instance.get_run_by_id(run_id)
        assert failed.status == DagsterRunStatus.FAILURE and "is gone" in failed.tags[WORKER_LOST_TAG]
        [retry] = tick.run_requests
        assert retry.tags[RETRY_OF_TAG] == run_id and retry.tags[TRIGGER_RUN_TAG] == window.run_id
        assert noticed < 60  # within one sensor interval (minimum_interval_seconds=60)
        assert pointer_file.read_bytes() == pointer  # champion.json unchanged byte for byte
        assert sorted(os.listdir(tmp / "data" / "fraud" / "models" / "versions")) == ["v0001"]

        gate.unlink()  # the next attempt trains normally
        again = _run_worker(env, {**retry.tags, "dagster/partition": FAILING})
        _, stderr = again.communicate(timeout=900)
        assert again.returncode == 0, stderr[-3000:]
        registry = ModelRegistry(Root.open(str(tmp / "data")), "fraud/models")
        champion = registry.champion()
        assert champion.name == "v0002" and champion.metadata["trigger"]["partition"] == FAILING
        assert registry.load_model(champion) is not None  # sha256 recorded and verified
        quiet = evaluate_sensor(defs, SENSOR, instance, tick.cursor)
        assert not [r for r in quiet.run_requests if RETRY_OF_TAG in r.tags]
        print(f"group ended {group_gone:.1f} s after kill -9; sensor failed the run {noticed:.1f} s after")
    finally:
        instance.dispose()
