"""The lost-run watchdog on a real (on-disk SQLite) instance and real processes: a STARTED run whose
worker process is gone is failed; a live worker, a worker on another host, a run with no record of
its worker and an ended run are left alone; a pid taken by a process that started after the run
(pid reuse) is not the run's worker.

The Celery case (a worker SIGKILLed mid-run, found through the result backend) runs against real
Postgres, Redis, a daemon and Celery workers in ``test_celery_backfill.py``.
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
from dagster import DagsterRunStatus, build_sensor_context, instance_for_test
from dagster._core.events import EngineEventData
from dagster._core.test_utils import create_run_for_test

from drift_assets.orchestration.keys import WORKER_LOST_TAG, WORKER_TAG
from drift_assets.orchestration.run_watchdog import (
    START_SLACK_SECONDS,
    WATCHDOG_SENSOR_NAME,
    fail_lost_runs,
    lost_worker_reason,
)
from drift_assets.retraining.process_guard import process_identity, process_started_at


@pytest.fixture
def instance():
    with instance_for_test() as inst:
        yield inst


@pytest.fixture
def sleeper():
    """A real process, stopped by its pid at the end."""
    started = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(["sleep", "300"])
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _kill(proc: subprocess.Popen) -> int:
    proc.kill()
    proc.wait()  # reaped: the pid names no process now
    return proc.pid


def _started_run(instance, pid: int | None = None, tags: dict | None = None):
    run = create_run_for_test(instance, job_name="fraud_window_job", status=DagsterRunStatus.STARTED, tags=tags or {})
    if pid is not None:  # what every run worker logs first (dagster._cli.api: _execute_run_command_body)
        instance.report_engine_event(f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid))
    return run


def _status(instance, run) -> DagsterRunStatus:
    return instance.get_run_by_id(run.run_id).status


def test_a_started_run_whose_worker_process_is_gone_is_failed_naming_the_pid(instance, sleeper):
    pid = _kill(sleeper())
    run = _started_run(instance, pid)
    [line] = fail_lost_runs(instance)
    assert run.run_id[:8] in line and f"pid {pid}" in line
    after = instance.get_run_by_id(run.run_id)
    assert after.status == DagsterRunStatus.FAILURE
    assert f"run worker pid {pid} on {socket.gethostname()} is gone" in after.tags[WORKER_LOST_TAG]
    assert fail_lost_runs(instance) == []  # failed once, not again


def test_a_live_worker_that_started_before_the_run_is_left_alone(instance, sleeper):
    proc = sleeper()
    run = _started_run(instance, proc.pid)
    assert fail_lost_runs(instance) == []
    assert _status(instance, run) == DagsterRunStatus.STARTED


def test_a_pid_taken_by_a_process_started_after_the_run_is_not_its_worker(instance, sleeper):
    run = _started_run(instance)
    time.sleep(START_SLACK_SECONDS + 0.5)
    newer = sleeper()  # alive, but younger than the run: a reused pid, not the run's worker
    assert process_started_at(newer.pid) > instance.get_run_record_by_id(run.run_id).create_timestamp.timestamp()
    instance.report_engine_event(
        f"Started process for run (pid: {newer.pid}).", run, EngineEventData.in_process(newer.pid)
    )
    assert "is gone" in (lost_worker_reason(instance, instance.get_run_by_id(run.run_id)) or "")


# (worker tag of a STARTED run, whether the watchdog fails it)
TAGGED = {
    "recorded worker gone": (lambda s: f"{socket.gethostname()}:{process_identity(_kill(s()))}", True),
    "recorded worker alive": (lambda s: f"{socket.gethostname()}:{process_identity(s().pid)}", False),
    "recorded worker on another host": (lambda s: f"not-{socket.gethostname()}:1:1", False),
    "malformed record": (lambda s: "garbage", False),
}


@pytest.mark.parametrize(("identity", "lost"), TAGGED.values(), ids=TAGGED.keys())
def test_the_recorded_worker_tag_decides_first(instance, sleeper, identity, lost):
    alive = sleeper()  # the engine event names a live process: only the tag can make the run lost
    run = _started_run(instance, alive.pid, tags={WORKER_TAG: identity(sleeper)})
    assert bool(fail_lost_runs(instance)) is lost
    assert _status(instance, run) == (DagsterRunStatus.FAILURE if lost else DagsterRunStatus.STARTED)


def test_no_record_of_the_worker_and_ended_runs_are_left_to_the_instance(instance, sleeper):
    unknown = _started_run(instance)  # no engine event yet: the worker may still be starting
    dead = _kill(sleeper())
    ended = create_run_for_test(instance, job_name="fraud_window_job", status=DagsterRunStatus.SUCCESS)
    instance.report_engine_event(f"Started process for run (pid: {dead}).", ended, EngineEventData.in_process(dead))
    assert fail_lost_runs(instance) == []
    assert _status(instance, unknown) == DagsterRunStatus.STARTED
    assert _status(instance, ended) == DagsterRunStatus.SUCCESS


def test_the_watchdog_is_a_running_sensor_of_the_definitions_and_fails_the_lost_run(instance, sleeper):
    from drift_assets.definitions import build_definitions

    defs = build_definitions()
    sensor = defs.resolve_sensor_def(WATCHDOG_SENSOR_NAME)
    assert sensor.default_status.value == "RUNNING"
    run = _started_run(instance, _kill(sleeper()))
    result = sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs))
    assert result.run_requests == [] and run.run_id[:8] in result.skip_message
    assert _status(instance, run) == DagsterRunStatus.FAILURE
