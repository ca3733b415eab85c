"""Jobs built from asset selections (AssetSelection objects, not strings)."""

from __future__ import annotations

import os

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    define_asset_job,
    in_process_executor,
    multiprocess_executor,
)

from drift_assets.monitoring.config import MonitorConfig
from drift_assets.orchestration.keys import (
    IN_PROCESS_RUN_CONFIG,
    MAX_RUNTIME_TAG,
    RETRAINING_MAX_RUNTIME_SECONDS,
    RETRAINING_TAG,
    MonitorKeys,
)
from drift_assets.orchestration.partitions import partitions_for
from drift_assets.orchestration.report_asset import configured_policy


def window_executor():
    """A window's steps are seconds of work: starting a process per step (the multiprocess default)
    costs more than the step. ``DRIFT_ASSETS_EXECUTOR=multiprocess`` restores Dagster's default."""
    return multiprocess_executor if os.environ.get("DRIFT_ASSETS_EXECUTOR") == "multiprocess" else in_process_executor


def window_job(monitor: MonitorConfig):
    """Everything per window: production_window -> drift_report (+ checks) and model_performance, and
    evidently_report, which materialises only when the monitor's policy asks for the HTML (an
    optional output: a skipped report costs its step's events, ~30 ms, not Evidently's seconds).
    A monitor whose policy is ``never`` when the definitions load (``html_report: false``, or
    DRIFT_ASSETS_HTML_REPORTS=0) has no report step in its window job at all; its report can
    still be materialised on its own from the UI."""
    keys = MonitorKeys(monitor.name)
    selection = AssetSelection.assets(keys.production_window, keys.drift_report)
    if configured_policy(monitor) != "never":
        selection = selection | AssetSelection.assets(keys.evidently_report)
    if monitor.labels and monitor.model_registry and monitor.prediction:
        selection = selection | AssetSelection.assets(keys.model_performance)
    return define_asset_job(
        keys.window_job,
        selection=selection,
        partitions_def=partitions_for(monitor),
        executor_def=window_executor(),
        description=f"Evaluate one {monitor.cadence} window of monitor '{monitor.name}'.",
    )


def alert_job(monitor: MonitorConfig):
    """The window's verdict (drift_alert): fails on a window whose drift report failed an ERROR check."""
    return define_asset_job(
        f"{monitor.name}_alert_job",
        selection=AssetSelection.assets(MonitorKeys(monitor.name).drift_alert),
        partitions_def=partitions_for(monitor),
        description=f"Mark a {monitor.cadence} window of monitor '{monitor.name}' failed when its drift report "
        "failed an ERROR check.",
    )


def alert_automation_sensor(monitor: MonitorConfig) -> AutomationConditionSensorDefinition:
    """Under the daemon (``make dev``), materialise drift_alert for each window whose drift report was
    just updated (its ``eager`` condition); running by default, unlike Dagster's own default sensor."""
    return AutomationConditionSensorDefinition(
        f"{monitor.name}_drift_alert_sensor",
        target=AssetSelection.assets(MonitorKeys(monitor.name).drift_alert),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description=f"Evaluate drift_alert of monitor '{monitor.name}' after each drift report.",
    )


def reference_job(monitor: MonitorConfig):
    keys = MonitorKeys(monitor.name)
    selection = AssetSelection.assets(keys.reference_data, keys.reference_profile)
    if monitor.model_registry:
        selection = selection | AssetSelection.assets(keys.champion_model)
    if monitor.estimates_performance:
        selection = selection | AssetSelection.assets(keys.performance_estimator)
    return define_asset_job(
        f"{monitor.name}_reference_job",
        selection=selection,
        description=f"(Re)build the reference data, profile and champion record of monitor '{monitor.name}'.",
    )


def retraining_job(monitor: MonitorConfig):
    """Retrain for one window (the sensor requests it for the failing window). The job tag makes
    manual runs count for the one-retraining-per-monitor guard and dagster.yaml's tag limit; the
    max runtime lets run monitoring end a hung run; the step runs in the run worker process."""
    return define_asset_job(
        f"{monitor.name}_retraining_job",
        selection=AssetSelection.assets(MonitorKeys(monitor.name).retrained_model),
        partitions_def=partitions_for(monitor),
        tags={RETRAINING_TAG: monitor.name, MAX_RUNTIME_TAG: str(RETRAINING_MAX_RUNTIME_SECONDS)},
        config=IN_PROCESS_RUN_CONFIG,
        description=f"Retrain the model of monitor '{monitor.name}' with DVC for one window and gate the "
        "challenger against the champion.",
    )
