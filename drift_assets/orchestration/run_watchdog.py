"""The lost-run watchdog: a run the instance counts as STARTED whose worker process is gone is
failed, so its concurrency slot is freed and the next run of that partition can start.

Dagster's run monitoring ends runs that never start, that hang canceling or that exceed
``dagster/max_runtime``, and asks the run launcher about the worker's health; but the default run
launcher has no health check, and ``CeleryRunLauncher``'s asks the Celery result backend, which still
says STARTED (with the dead pid) after a worker was SIGKILLed. Both leave the run STARTED for ever.

Where the worker was, per run, first found wins:

* ``drift_assets/run_worker`` (``HOST:PID:START``), recorded by the retraining assets;
* a Celery run (``dagster-celery/task_id``): the task's STARTED meta in the result backend,
  ``{"pid": ..., "hostname": "worker1@HOST"}``;
* the default run launcher: the run's engine event "Started process for run (pid: N)", on this
  host (that launcher starts run workers on the host of the code server that launched them).

A pid is taken as that run's worker only if the process on this host with that pid started before
the run did (a pid reused later is a different process): then "gone" means no such process, or a
zombie. A worker on another host, or no record at all, is left to run monitoring
(``max_runtime``). The retraining sensor reads ``drift_assets/worker_lost`` to request the
retraining again; window runs are simply failed (their schedule or a backfill runs the partition
again, and a new run of it is not blocked).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from dagster import (
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from drift_assets.orchestration.keys import WORKER_LOST_TAG, WORKER_TAG
from drift_assets.retraining.process_guard import process_started_at, worker_alive

WATCHDOG_SENSOR_NAME = "lost_run_watchdog"
CELERY_TASK_TAG = "dagster-celery/task_id"  # dagster_celery.tags.DAGSTER_CELERY_TASK_ID_TAG
STARTED_PROCESS_PREFIX = "Started process for run (pid: "
# Clock ticks and the time a run record is written: a worker may start this much after the run.
START_SLACK_SECONDS = 2.0
WATCHDOG_INTERVAL_SECONDS = 30
INTERVAL_ENV = "DRIFT_ASSETS_WATCHDOG_INTERVAL_SECONDS"  # tests tick faster


@dataclass(frozen=True)
class RunWorker:
    """Where a run's worker process is: ``host`` None means this host could not tell."""

    host: str | None
    pid: int
    source: str  # what said so: "run tag", "celery result backend", "engine event"


def lost_run_watchdog_sensor(interval_seconds: int | None = None):
    if interval_seconds is None:
        interval_seconds = int(os.environ.get(INTERVAL_ENV, WATCHDOG_INTERVAL_SECONDS))

    @sensor(
        name=WATCHDOG_SENSOR_NAME,
        minimum_interval_seconds=interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Fails runs the instance counts as STARTED whose worker process is gone (kill -9, OOM, a "
        "killed Celery worker), freeing their slot; see drift_assets.orchestration.run_watchdog.",
    )
    def lost_run_watchdog(context: SensorEvaluationContext):
        failed = fail_lost_runs(context.instance)
        for line in failed:
            context.log.warning(line)
        return SkipReason("; ".join(failed) if failed else "every STARTED run's worker is alive or on another host")

    return lost_run_watchdog


def fail_lost_runs(instance) -> list[str]:
    """Fail every STARTED run whose worker is known to be gone; one line per run failed."""
    out = []
    for run in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        why = lost_worker_reason(instance, run)
        if why is not None:
            fail_lost_run(instance, run, why, "lost-run watchdog")
            out.append(f"run {run.run_id[:8]} ({run.job_name}) failed: {why}")
    return out


def fail_lost_run(instance, run, why: str, by: str) -> None:
    """Mark ``run`` failed because its worker is gone, with ``drift_assets/worker_lost`` saying why."""
    instance.add_run_tags(run.run_id, {WORKER_LOST_TAG: why})
    instance.report_run_failed(run, f"{by}: {why}; the run is marked failed")


def lost_worker_reason(instance, run) -> str | None:
    """Why ``run``'s worker is known to be gone, or None (alive, elsewhere, or unknown)."""
    if run.status != DagsterRunStatus.STARTED:
        return None
    identity = run.tags.get(WORKER_TAG)
    if identity:
        if worker_alive(identity) is not False:
            return None
        host, pid = identity.rsplit(":", 2)[:2]
        return f"run worker pid {pid} on {host} is gone"
    worker = _celery_worker(instance, run) if CELERY_TASK_TAG in run.tags else _engine_event_worker(instance, run)
    if worker is None or worker.host != socket.gethostname():
        return None  # no record, or another host: this host cannot tell
    record = instance.get_run_record_by_id(run.run_id)
    if record is None:
        return None
    run_started = record.start_time or record.create_timestamp.timestamp()
    started = process_started_at(worker.pid)
    if started is not None and started <= run_started + START_SLACK_SECONDS:
        return None  # the worker (or a process older than the run: cannot be a reuse) still runs
    return f"run worker pid {worker.pid} on {worker.host} is gone ({worker.source})"


def _celery_worker(instance, run) -> RunWorker | None:
    """The pid and host of the Celery worker that took the run's task, from the result backend of
    the instance's ``CeleryRunLauncher``."""
    app = getattr(instance.run_launcher, "celery", None)
    if app is None:
        return None
    from celery.result import AsyncResult

    try:
        result = AsyncResult(run.tags[CELERY_TASK_TAG], app=app)
        state, info = result.state, result.info
    except Exception:  # an unreachable backend says nothing about the worker
        return None
    if state != "STARTED" or not isinstance(info, dict) or not str(info.get("pid", "")).isdigit():
        return None
    hostname = str(info.get("hostname") or "")
    return RunWorker(hostname.rsplit("@", 1)[-1] or None, int(info["pid"]), "celery result backend")


def _engine_event_worker(instance, run) -> RunWorker | None:
    """The pid in the run's "Started process for run" engine event, for runs of the default launcher."""
    from dagster._core.launcher import DefaultRunLauncher

    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return None
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ENGINE_EVENT).records
    for record in records:
        entry = record.event_log_entry
        message = entry.message or entry.user_message or ""
        if message.startswith(STARTED_PROCESS_PREFIX):
            pid = message[len(STARTED_PROCESS_PREFIX) :].split(")", 1)[0]
            if pid.isdigit():
                return RunWorker(socket.gethostname(), int(pid), "engine event")
    return None
