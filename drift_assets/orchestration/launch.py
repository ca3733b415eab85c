"""Runs the Dagster UI can see, launched from the CLI without a daemon or a webserver.

``drift-assets demo`` and ``drift-assets backfill`` create each run through the instance with the
origin of the code location that ``workspace.yaml`` declares (location ``drift_assets``, repository
``__repository__``): the run carries the ``.dagster/repository`` label the UI filters on, so it shows
under its job, on the Overview timeline and in the run list of its code location. The run is then
executed in this process (the step plan of the caller's job definition, in-process executor), which
costs what ``execute_in_process`` costs: no run worker process, no definitions import per run.

A range of partitions is grouped as a Dagster job backfill: a ``PartitionBackfill`` record in the
instance whose runs carry ``dagster/backfill``, so the Backfills page lists it with each partition's
run status. The record says that every partition is submitted (``last_submitted_partition_name``),
so a daemon started meanwhile never launches runs of it; this process sets the final status
(completed, completed with failures, or canceled when interrupted).

Each run records an engine event naming this process (``Started process for run (pid: N)``, the
default run launcher's wording): if the process is killed mid-run, the lost-run watchdog sensor
(``run_watchdog.py``) fails the run instead of leaving it STARTED.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dagster import AssetKey, DagsterInstance, Definitions, in_process_executor
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.definitions.job_definition import JobDefinition
from dagster._core.execution.api import ExecuteRunWithPlanIterable, create_execution_plan, job_execution_iterator
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.execution.context_creation_job import (
    PlanOrchestrationContextManager,
    orchestration_context_event_generator,
)
from dagster._core.execution.execute_in_process import merge_run_tags
from dagster._core.execution.execute_in_process_result import ExecuteInProcessResult
from dagster._core.origin import DEFAULT_DAGSTER_ENTRY_POINT, JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.remote_origin import RemotePartitionSetOrigin, RemoteRepositoryOrigin
from dagster._core.remote_representation.external_data import partition_set_snap_name_for_job_name
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.storage.tags import PARTITION_SET_TAG
from dagster._core.utils import make_new_backfill_id
from dagster._core.workspace.load import location_origins_from_yaml_paths
from dagster._time import get_current_timestamp

from drift_assets.monitoring.config import PROJECT_ROOT
from drift_assets.orchestration.keys import IN_PROCESS_RUN_CONFIG, LAUNCHED_BY_TAG, MONITOR_TAG

WORKSPACE_FILE = PROJECT_ROOT / "workspace.yaml"
DEFINITIONS_ATTRIBUTE = "defs"  # drift_assets/definitions.py; workspace.yaml names only the module
# The run-watchdog reads the pid after this prefix (the default run launcher's wording).
STARTED_PROCESS_MESSAGE = "Started process for run (pid: {pid}): executing in process ({by})."
# Executors that run a job's steps in this process without a reconstructable job.
IN_PROCESS_EXECUTORS = {"in_process", "execute_in_process_executor"}


@dataclass(frozen=True)
class CodeLocation:
    """The origins a run of this repository gets when the webserver or daemon launches it."""

    remote: RemoteRepositoryOrigin
    python: RepositoryPythonOrigin

    @property
    def label(self) -> str:
        """``<repository>@<location>``: the ``.dagster/repository`` tag the UI filters runs by."""
        return self.remote.get_label()


def code_location(repository_name: str, workspace_file: str | Path | None = None) -> CodeLocation:
    """The code location of ``workspace.yaml`` (its only entry), as the webserver names it."""
    path = Path(workspace_file or WORKSPACE_FILE)
    origins = location_origins_from_yaml_paths([str(path)])
    if len(origins) != 1:
        raise ValueError(f"{path}: expected one code location under load_from, found {len(origins)}")
    origin = origins[0]
    target = origin.loadable_target_origin
    working_directory = str((path.parent / (target.working_directory or ".")).resolve())
    pointer = ModuleCodePointer(target.module_name, target.attribute or DEFINITIONS_ATTRIBUTE, working_directory)
    python = RepositoryPythonOrigin(
        executable_path=target.executable_path or sys.executable,
        code_pointer=pointer,
        entry_point=DEFAULT_DAGSTER_ENTRY_POINT,
    )
    return CodeLocation(RemoteRepositoryOrigin(code_location_origin=origin, repository_name=repository_name), python)


SQLITE_SYNCHRONOUS_ENV = "DRIFT_ASSETS_SQLITE_SYNCHRONOUS"
_SQLITE_SYNCHRONOUS_MODES = {"OFF", "NORMAL", "FULL", "EXTRA"}


def relax_sqlite_sync(default: str | None = None) -> str | None:
    """Set SQLite's ``synchronous`` pragma on every SQLite connection this process opens from now on
    (``$DRIFT_ASSETS_SQLITE_SYNCHRONOUS``, else ``default``; None: SQLite's FULL). Dagster's SQLite
    storage opens a connection and commits per event (~65 events per hourly run): with FULL each
    commit waits for the disk, most of a run's cost on a busy disk. OFF keeps the data consistent if
    this process dies, not if the machine loses power; the demo's throwaway instance uses it."""
    mode = (os.environ.get(SQLITE_SYNCHRONOUS_ENV) or default or "").upper()
    if not mode:
        return None
    if mode not in _SQLITE_SYNCHRONOUS_MODES:
        raise ValueError(f"{SQLITE_SYNCHRONOUS_ENV} must be one of {sorted(_SQLITE_SYNCHRONOUS_MODES)}, got {mode!r}")
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def _pragma(dbapi_connection, _record) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute(f"PRAGMA synchronous={mode}")

    for listener in _SQLITE_LISTENER:  # one listener per process: the last mode set wins
        event.remove(Engine, "connect", listener)
    _SQLITE_LISTENER[:] = [_pragma]
    event.listen(Engine, "connect", _pragma)
    return mode


_SQLITE_LISTENER: list = []


def _executable(job_def: JobDefinition, run_config: Mapping) -> tuple[JobDefinition, dict]:
    """The job and run config that execute its steps in this process. Dagster's default executor is
    told so in the run config (the UI shows it there); a multiprocess-only executor is swapped."""
    run_config = dict(run_config)
    name = job_def.executor_def.name
    if name == "multi_or_in_process_executor":
        run_config.setdefault("execution", IN_PROCESS_RUN_CONFIG["execution"])
    elif name not in IN_PROCESS_EXECUTORS:
        job_def = job_def.with_executor_def(in_process_executor)
        run_config.pop("execution", None)
    return job_def, run_config


class InProcessLauncher:
    """Creates runs of ``defs``' jobs in ``instance``, tied to the code location, and executes them here."""

    def __init__(
        self,
        defs: Definitions,
        instance: DagsterInstance,
        *,
        launched_by: str,
        workspace_file: str | Path | None = None,
    ):
        self.defs = defs
        self.instance = instance
        self.launched_by = launched_by
        self.location = code_location(defs.get_repository_def().name, workspace_file)

    def run(
        self,
        job_name: str,
        *,
        partition_key: str | None = None,
        tags: Mapping[str, str] | None = None,
        asset_selection: Sequence[AssetKey] | None = None,
        run_config: Mapping | None = None,
    ) -> ExecuteInProcessResult:
        """One run, start to end; the result has the interface of ``execute_in_process``'s."""
        job_def, config = _executable(self.defs.resolve_job_def(job_name), run_config or {})
        selection = frozenset(asset_selection or ())
        job = InMemoryJob(job_def)
        if selection:
            job = job.get_subset(asset_selection=selection)
        definition = job.get_definition()
        if partition_key and not run_config and definition.partitioned_config:
            config = {**definition.partitioned_config.get_run_config_for_partition_key(partition_key), **config}
        run_tags = {
            **merge_run_tags(definition, partition_key, tags, list(selection) or None, self.instance, config),
            LAUNCHED_BY_TAG: self.launched_by,
        }
        instance_ref = self.instance.get_ref() if self.instance.is_persistent else None
        plan = create_execution_plan(job, run_config=config, instance_ref=instance_ref)
        run = self.instance.create_run_for_job(
            job_def=definition,
            execution_plan=plan,
            run_config=config,
            tags=run_tags,
            asset_selection=selection or None,
            status=DagsterRunStatus.NOT_STARTED,
            remote_job_origin=self.location.remote.get_job_origin(job_name),
            job_code_origin=JobPythonOrigin(job_name, self.location.python),
        )
        self.instance.report_engine_event(STARTED_PROCESS_MESSAGE.format(pid=os.getpid(), by=self.launched_by), run)
        events = list(
            ExecuteRunWithPlanIterable(
                execution_plan=plan,
                iterator=job_execution_iterator,
                execution_context_manager=PlanOrchestrationContextManager(
                    context_event_generator=orchestration_context_event_generator,
                    job=job,
                    execution_plan=plan,
                    dagster_run=run,
                    instance=self.instance,
                    run_config=config,
                    executor_defs=None,
                    output_capture=None,
                    raise_on_error=False,
                ),
            )
        )
        finished = self.instance.get_run_by_id(run.run_id) or run
        return ExecuteInProcessResult(event_list=events, dagster_run=finished, output_capture=None, job_def=definition)

    @contextmanager
    def backfill(
        self,
        job_name: str,
        partition_keys: Sequence[str] = (),
        *,
        tags: Mapping[str, str] | None = None,
        title: str | None = None,
    ) -> Iterator[Backfill]:
        """A job backfill of ``job_name``: its record is written at the first run (partitions
        run later are added to it) and gets its final status when the block ends."""
        backfill = Backfill(self, job_name, list(partition_keys), dict(tags or {}), title)
        try:
            yield backfill
        except BaseException as exc:
            backfill.finish(
                BulkActionStatus.CANCELED if isinstance(exc, KeyboardInterrupt) else BulkActionStatus.FAILED
            )
            raise
        backfill.finish()


@dataclass
class Backfill:
    """A PartitionBackfill whose runs this process executes (see the module docstring)."""

    launcher: InProcessLauncher
    job_name: str
    partition_names: list[str]
    tags: dict[str, str]
    title: str | None
    backfill_id: str = field(default_factory=make_new_backfill_id)
    record: PartitionBackfill | None = None
    failed: int = 0
    # Joined: the runs of another process's backfill (``backfill_id``): tagged and counted here,
    # the record is that process's to write (``add_runs``) and finish.
    joined: bool = False

    def run(self, partition_key: str, **kwargs) -> ExecuteInProcessResult:
        """Run one partition of the backfill (``kwargs`` as for ``InProcessLauncher.run``)."""
        if self.joined:
            if partition_key not in self.partition_names:
                self.partition_names.append(partition_key)
        elif partition_key not in self.partition_names:
            self.partition_names.append(partition_key)
            self._save()
        elif self.record is None:
            self._save()
        tags = {
            **self.tags,
            **kwargs.pop("tags", {}),
            **DagsterRun.tags_for_backfill_id(self.backfill_id),
            PARTITION_SET_TAG: partition_set_snap_name_for_job_name(self.job_name),
        }
        result = self.launcher.run(self.job_name, partition_key=partition_key, tags=tags, **kwargs)
        self.failed += not result.success
        return result

    def _save(self, status: BulkActionStatus = BulkActionStatus.REQUESTED) -> None:
        instance = self.launcher.instance
        if self.record is None:
            self.record = PartitionBackfill(
                backfill_id=self.backfill_id,
                status=status,
                from_failure=False,
                tags=self.tags,
                backfill_timestamp=get_current_timestamp(),
                title=self.title,
                partition_set_origin=RemotePartitionSetOrigin(
                    repository_origin=self.launcher.location.remote,
                    partition_set_name=partition_set_snap_name_for_job_name(self.job_name),
                ),
                partition_names=list(self.partition_names),
                last_submitted_partition_name=self.partition_names[-1],
            )
            instance.add_backfill(self.record)
            return
        self.record = self.record._replace(
            status=status,
            partition_names=list(self.partition_names),
            last_submitted_partition_name=self.partition_names[-1],
        )
        if status != BulkActionStatus.REQUESTED:
            self.record = self.record.with_end_timestamp(get_current_timestamp())
        instance.update_backfill(self.record)

    def add_runs(self, partition_keys: Sequence[str], failed: int, order: Sequence[str] = ()) -> None:
        """Partitions another process ran for this backfill (joined to it), ``failed`` of them failed;
        with ``order`` (every partition, in order) the record lists them in that order."""
        new = [k for k in partition_keys if k not in self.partition_names]
        self.failed += failed
        names = self.partition_names + new
        if order:
            rank = {k: i for i, k in enumerate(order)}
            names.sort(key=lambda k: rank.get(k, len(rank)))
        if names and (names != self.partition_names or self.record is None):
            self.partition_names[:] = names
            self._save()

    def finish(self, status: BulkActionStatus | None = None) -> None:
        """The final status; a backfill that ran nothing leaves no record."""
        if self.record is None or self.joined:
            return
        if status is None:
            status = BulkActionStatus.COMPLETED_FAILED if self.failed else BulkActionStatus.COMPLETED_SUCCESS
        self._save(status)


class MonitorRuns:
    """The runs of one monitor's jobs, tagged with the monitor. Inside ``backfill(keys)`` the window
    runs form one job backfill of ``<monitor>_window_job`` over ``keys`` and the verdicts another of
    ``<monitor>_alert_job`` (over the windows it ran for); outside it each run stands alone."""

    def __init__(self, launcher: InProcessLauncher, monitor_name: str):
        self.launcher = launcher
        self.monitor_name = monitor_name
        self.tags = {MONITOR_TAG: monitor_name}
        self._window: Backfill | None = None
        self._alert: Backfill | None = None

    def job(self, kind: str) -> str:
        return f"{self.monitor_name}_{kind}_job"

    @contextmanager
    def backfill(self, keys: Sequence[str], *, title: str) -> Iterator[MonitorRuns]:
        launcher = self.launcher
        with (
            launcher.backfill(self.job("window"), keys, tags=self.tags, title=title) as window,
            launcher.backfill(self.job("alert"), tags=self.tags, title=f"{title}: verdicts") as alert,
        ):
            self._window, self._alert = window, alert
            try:
                yield self
            finally:
                self._window = self._alert = None

    @contextmanager
    def joined(self, window_id: str, alert_id: str) -> Iterator[MonitorRuns]:
        """Inside it, runs of the window and verdict backfills ``window_id``/``alert_id`` that another
        process created and finishes (the demo's hour workers): tagged as theirs, no record written."""
        self._window, self._alert = (
            Backfill(self.launcher, self.job(kind), [], dict(self.tags), None, backfill_id, joined=True)
            for kind, backfill_id in (("window", window_id), ("alert", alert_id))
        )
        try:
            yield self
        finally:
            self._window = self._alert = None

    @property
    def batches(self) -> tuple[Backfill, Backfill] | None:
        """(window backfill, verdict backfill) inside ``backfill`` or ``joined``."""
        return (self._window, self._alert) if self._window and self._alert else None

    @property
    def backfill_ids(self) -> tuple[str, str] | None:
        """(window backfill id, verdict backfill id) inside ``backfill``."""
        return (self._window.backfill_id, self._alert.backfill_id) if self._window and self._alert else None

    def run(self, kind: str, partition_key: str | None = None, **kwargs) -> ExecuteInProcessResult:
        """A run of ``<monitor>_<kind>_job`` (window, alert, reference, retraining)."""
        tags = {**self.tags, **kwargs.pop("tags", {})}
        batch = {"window": self._window, "alert": self._alert}.get(kind)
        if batch is not None and partition_key is not None:
            return batch.run(partition_key, tags=tags, **kwargs)
        return self.launcher.run(self.job(kind), partition_key=partition_key, tags=tags, **kwargs)
