"""Names Dagster stores: asset keys per monitor and the run tags the sensors and jobs set.

Renaming any of these orphans stored history (runs, check executions, sensor cursors); the
definitions snapshot test makes such a rename a deliberate change.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetKey

# Run tags. The retraining sensor sets them; the retraining job carries RETRAINING_TAG too, so
# manual runs count for the one-retraining-per-monitor guard (and dagster.yaml's tag limit).
RETRAINING_TAG = "drift_assets/retraining"
TRIGGER_CHECK_TAG = "drift_assets/trigger_check"
TRIGGER_PARTITION_TAG = "drift_assets/trigger_partition"
TRIGGER_RUN_TAG = "drift_assets/trigger_run"
REFERENCE_REFRESH_TAG = "drift_assets/reference_refresh"
# Runs the CLI launches (orchestration/launch.py): the monitor they evaluate and the command that ran them.
MONITOR_TAG = "drift_assets/monitor"
LAUNCHED_BY_TAG = "drift_assets/launched_by"
# Run hygiene (see orchestration/sensors.py): the retraining step records the process running it
# ("<host>:<pid>:<start time>"); the sensor marks a run whose worker is gone with WORKER_LOST_TAG
# (and fails it), and tags the run that re-requests its trigger with RETRY_OF_TAG = the lost run's id.
WORKER_TAG = "drift_assets/run_worker"
WORKER_LOST_TAG = "drift_assets/worker_lost"
RETRY_OF_TAG = "drift_assets/retry_of"

# Dagster's run monitoring (dagster.yaml) cancels a run tagged with a longer runtime than this.
MAX_RUNTIME_TAG = "dagster/max_runtime"
# Retraining runs: above DvcResource.timeout_seconds (1 h by default, after which dvc repro is
# killed and the run fails by itself), so run monitoring only ends runs that hang outside DVC.
RETRAINING_MAX_RUNTIME_SECONDS = 7200
# Retraining runs execute in the run worker process (one step: nothing to parallelise), so the
# worker recorded in WORKER_TAG is the process that runs dvc.
IN_PROCESS_RUN_CONFIG = {"execution": {"config": {"in_process": {}}}}


@dataclass(frozen=True)
class MonitorKeys:
    """``<monitor>/<asset>``: each monitor is its own asset group."""

    monitor: str

    def key(self, name: str) -> AssetKey:
        return AssetKey([self.monitor, name])

    @property
    def reference_data(self) -> AssetKey:
        return self.key("reference_data")

    @property
    def reference_profile(self) -> AssetKey:
        return self.key("reference_profile")

    @property
    def production_window(self) -> AssetKey:
        return self.key("production_window")

    @property
    def drift_report(self) -> AssetKey:
        return self.key("drift_report")

    @property
    def drift_alert(self) -> AssetKey:
        return self.key("drift_alert")

    @property
    def evidently_report(self) -> AssetKey:
        return self.key("evidently_report")

    @property
    def window_job(self) -> str:
        return f"{self.monitor}_window_job"

    @property
    def model_performance(self) -> AssetKey:
        return self.key("model_performance")

    @property
    def performance_estimator(self) -> AssetKey:
        return self.key("performance_estimator")

    @property
    def champion_model(self) -> AssetKey:
        return self.key("champion_model")

    @property
    def retrained_model(self) -> AssetKey:
        return self.key("retrained_model")
