"""Assemble the Dagster definitions from the monitors file. Nothing else happens here."""

from __future__ import annotations

from dagster import Definitions

from drift_assets.orchestration.monitor_assets import build_monitor_assets
from drift_assets.orchestration.retraining_assets import build_retraining_assets, retraining_supported
from drift_assets.monitoring.config import load_monitors
from drift_assets.orchestration.jobs import reference_job, retraining_job, window_job
from drift_assets.orchestration.resources import resources_for_environment
from drift_assets.orchestration.schedules import window_schedule
from drift_assets.orchestration.sensors import build_sensors


def build_definitions(monitors_file=None, environment: str | None = None) -> Definitions:
    monitors = load_monitors(monitors_file)
    assets, jobs, schedules = [], [], []
    for monitor in monitors:
        assets += build_monitor_assets(monitor)
        assets += build_retraining_assets(monitor)
        job = window_job(monitor)
        jobs += [job, reference_job(monitor)]
        if retraining_supported(monitor):
            jobs.append(retraining_job(monitor))
        schedules.append(window_schedule(monitor, job))
    return Definitions(
        assets=assets,
        jobs=jobs,
        schedules=schedules,
        sensors=build_sensors(list(monitors)),
        resources=resources_for_environment(environment),
    )


defs = build_definitions()
