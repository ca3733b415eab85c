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
