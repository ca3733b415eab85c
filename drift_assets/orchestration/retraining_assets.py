"""``<monitor>/retrained_model``: one retraining attempt per materialisation, one partition per
triggering window. The attempt itself (DVC, gate, registry) is ``drift_assets.retraining.attempt``;
this module gives it the run's id, partition, trigger tags and logger, and turns its outcome into
Dagster output metadata (or a failed run).

After a promotion the monitor's reference assets (``reference_data``, ``reference_profile``,
``champion_model``) are re-materialised by the retraining sensor, which notices that the registry's
champion differs from the materialised ``champion_model`` and requests the monitor's reference job
(see ``drift_assets.orchestration.sensors``). This covers manual promotions and rollbacks
(``drift-assets models promote``) the same way. It cannot be done in this run: ``reference_data``
is upstream of this asset (lineage), so a same-run re-materialisation would be a cycle.
"""

# No `from __future__ import annotations`: Dagster reads the annotations of asset functions.

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from drift_assets.monitoring.config import MonitorConfig
from drift_assets.orchestration.keys import (
    TRIGGER_CHECK_TAG,
    TRIGGER_RUN_TAG,
    WORKER_TAG,
    MonitorKeys,
)
from drift_assets.orchestration.partitions import partitions_for
from drift_assets.orchestration.resources import DvcResource, StorageResource
from drift_assets.retraining.attempt import (
    AttemptOutcome,
    DvcSettings,
    RetrainingAttempt,
    RetrainingFailed,
    retraining_supported,
)
from drift_assets.retraining.process_guard import worker_identity


def build_retraining_assets(monitor: MonitorConfig) -> list[AssetsDefinition]:
    """``<monitor>/retrained_model`` (empty list when the monitor cannot be retrained)."""
    if not retraining_supported(monitor):
        return []
    keys = MonitorKeys(monitor.name)
    deps = [keys.reference_data, keys.drift_report]
    if monitor.prediction:
        deps.append(keys.model_performance)

    @asset(
        key=keys.retrained_model,
        partitions_def=partitions_for(monitor),
        group_name=monitor.name,
        deps=deps,
        io_manager_key="json_io_manager",
        description=(
            f"A challenger retrained with DVC (training/) on data up to the end of the window, evaluated against "
            f"the champion on the same holdout; promoted if its AUC is better by more than "
            f"{monitor.retraining.min_auc_gain:g}. Triggered by the retraining sensor when an ERROR check fails."
        ),
        kinds={"dvc", "scikitlearn"},
    )
    def retrained_model(context: AssetExecutionContext, storage: StorageResource, dvc: DvcResource) -> Output:
        # Who runs this: the retraining sensor fails the run if that process is gone.
        context.instance.add_run_tags(context.run.run_id, {WORKER_TAG: worker_identity()})
        tags = context.run.tags
        attempt = RetrainingAttempt(
            monitor,
            storage.storage(),
            DvcSettings(dvc.executable, dvc.template_dir, dvc.work_root, dvc.timeout_seconds),
            run_id=context.run.run_id,
            partition=context.partition_key,
            trigger={
                "partition": context.partition_key,
                "check": tags.get(TRIGGER_CHECK_TAG, "manual"),
                "run_id": tags.get(TRIGGER_RUN_TAG),
            },
            log=context.log,
        )
        try:
            outcome = attempt.run()
        except RetrainingFailed as exc:
            raise Failure(
                description=str(exc),
                metadata={
                    "results_store": MetadataValue.path(exc.results_store),
                    "champion": MetadataValue.text(exc.champion),
                },
            ) from exc
        return Output(outcome.record, metadata=_metadata(outcome, attempt))

    return [retrained_model]


def _metadata(outcome: AttemptOutcome, attempt: RetrainingAttempt) -> dict:
    metrics = outcome.metrics
    return {
        "version": outcome.version.name,
        "decision": outcome.decision.status,
        "challenger_auc": MetadataValue.float(float(metrics["challenger_auc"])),
        "champion_auc": MetadataValue.float(float(metrics["champion_auc"])),
        "auc_delta": MetadataValue.float(float(metrics["auc_delta"])),
        "holdout_rows": int(metrics.get("holdout_rows") or 0),
        "train_rows": int(metrics.get("train_rows") or 0),
        "reason": MetadataValue.text(outcome.decision.reason),
        "parent": attempt.parent.name,
        "trigger_check": attempt.trigger["check"],
        "dvc_lock_sha256": outcome.dvc.lock_sha256 or "",
        "dvc_seconds": MetadataValue.float(float(outcome.dvc.duration_s)),
        "model_file": MetadataValue.path(attempt.st.data.uri_of(outcome.version.model_file)),
        "results_store": MetadataValue.path(outcome.record_uri),
    }
