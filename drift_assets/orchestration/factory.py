"""The per-monitor factory: one ``Definitions`` per monitors.yaml entry, built from the small
per-asset builders, plus the definitions shared by all monitors (notifications, resources).

Adding a model is a monitors.yaml entry; nothing here changes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from dagster import Definitions, ExecutorDefinition, Field, multi_or_in_process_executor

from drift_assets.monitoring.config import MonitorConfig
from drift_assets.orchestration.environment import resources_for_environment
from drift_assets.orchestration.jobs import (
    alert_automation_sensor,
    alert_job,
    reference_job,
    retraining_job,
    window_job,
)
from drift_assets.orchestration.monitor_assets import build_monitor_assets
from drift_assets.orchestration.notifications import notification_sensors
from drift_assets.orchestration.retraining_assets import build_retraining_assets
from drift_assets.orchestration.run_watchdog import lost_run_watchdog_sensor
from drift_assets.orchestration.schedules import window_schedule
from drift_assets.orchestration.sensors import retraining_sensors
from drift_assets.retraining.attempt import retraining_supported
from drift_assets.storage.pandas_probe import defer_pandas_probe


def monitor_definitions(monitor: MonitorConfig) -> Definitions:
    """Assets, jobs, the window schedule and the retraining sensor of one monitor."""
    window = window_job(monitor)
    jobs = [window, alert_job(monitor), reference_job(monitor)]
    if retraining_supported(monitor):
        jobs.append(retraining_job(monitor))
    return Definitions(
        assets=[*build_monitor_assets(monitor), *build_retraining_assets(monitor)],
        jobs=jobs,
        schedules=[window_schedule(monitor, window)],
        sensors=[*retraining_sensors([monitor]), alert_automation_sensor(monitor)],
    )


def default_executor() -> ExecutorDefinition | None:
    """The executor of jobs that name none, Dagster's implicit asset job among them (``dagster asset
    materialize``, a selection materialised from the UI): Dagster's default executor with in-process
    as its default mode. Its steps are seconds of work, and starting a process per step (re-importing
    the project each time) cost more than the run. ``execution: {config: {multiprocess: {}}}`` in the
    run config still selects one process per step; ``DRIFT_ASSETS_EXECUTOR=multiprocess`` restores
    Dagster's own default for every job."""
    if os.environ.get("DRIFT_ASSETS_EXECUTOR") == "multiprocess":
        return None
    modes = multi_or_in_process_executor.config_schema.as_field().config_type  # in_process | multiprocess
    return multi_or_in_process_executor.configured(
        lambda config: config,
        name=multi_or_in_process_executor.name,
        config_schema=Field(modes, default_value={"in_process": {}}),
    )


def shared_definitions(monitors: Sequence[MonitorConfig], environment: str | None = None) -> Definitions:
    """What serves every monitor: the check-failure notifier, the lost-run watchdog, the resources and
    the default executor (in process)."""
    # A run process (``dagster asset materialize``, a run worker) whose steps never touch pandas
    # does not import it for pyarrow's probe (0.2-0.4 s): see storage/pandas_probe.py.
    defer_pandas_probe()
    resources = resources_for_environment(environment)
    configured = bool(resources["notifier"].webhook_url)
    return Definitions(
        sensors=[*notification_sensors(list(monitors), configured), lost_run_watchdog_sensor()],
        resources=resources,
        executor=default_executor(),
    )
