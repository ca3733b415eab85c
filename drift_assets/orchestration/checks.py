"""Asset checks = the decision matrix, read from the monitor's check table (``stats.checks``).

The core returns one outcome per rule and column; here they are folded into one partitioned
Dagster check per rule, carrying its value, threshold and the columns concerned in metadata (what
the UI shows on the failing window).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    PartitionsDefinition,
    PreviewWarning,
)

from drift_assets.monitoring.config import MonitorConfig
from drift_assets.stats import CheckOutcome
from drift_assets.stats.checks import CheckRule
from drift_assets.stats.rules import AUC_VS_CHAMPION, ESTIMATED_AUC_VS_CHAMPION

__all__ = [
    "AUC_VS_CHAMPION",
    "ESTIMATED_AUC_VS_CHAMPION",
    "SEVERITY",
    "check_specs",
    "drift_check_names",
    "fold_outcomes",
]

SEVERITY = {"WARN": AssetCheckSeverity.WARN, "ERROR": AssetCheckSeverity.ERROR}


def drift_check_names(monitor: MonitorConfig) -> list[str]:
    """The checks a monitor's drift_report carries (the prediction and sudden-change checks only
    where the monitor has a prediction / a trailing baseline)."""
    return [rule.name for rule in monitor.check_rules("drift_report")]


def check_specs(
    monitor: MonitorConfig, asset_key: AssetKey, names: Sequence[str], partitions_def: PartitionsDefinition | None
) -> list[AssetCheckSpec]:
    # Partitioned checks (one evaluation per window) are a preview feature in Dagster 1.13; we rely
    # on it knowingly (without it a check on a partitioned asset is not per window), so its
    # warning is silenced here rather than printed on every definitions load.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)
        return [_spec(monitor, monitor.checks[name], asset_key, partitions_def) for name in names]


def _spec(monitor: MonitorConfig, rule: CheckRule, asset_key: AssetKey, partitions_def) -> AssetCheckSpec:
    return AssetCheckSpec(
        rule.name,
        asset=asset_key,
        description=f"[{rule.severity}] {rule.describe(monitor.rules)}",
        partitions_def=partitions_def,
        metadata={"severity": rule.severity},
    )


def _skipped(rule: CheckRule, asset_key: AssetKey, reason: str | None) -> AssetCheckResult:
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=rule.name,
        passed=True,
        severity=SEVERITY[rule.severity],
        description=reason or "nothing to check in this window",
        metadata={"status": MetadataValue.text(reason or "not applicable")},
    )


def _detail_metadata(worst: CheckOutcome) -> dict:
    metadata: dict = {}
    for key, value in worst.details.items():
        if key == "value_kind":
            continue  # stated once, as "value_kind"
        if isinstance(value, int | float) and not isinstance(value, bool):
            metadata[f"worst_{key}"] = MetadataValue.float(float(value))
        elif isinstance(value, str):
            metadata[f"worst_{key}"] = MetadataValue.text(value)
        elif isinstance(value, list):
            metadata[key] = MetadataValue.text(", ".join(map(str, value)) or "(none)")
    return metadata


def fold_outcomes(
    rule: CheckRule,
    outcomes: Sequence[CheckOutcome],
    asset_key: AssetKey,
    *,
    skipped_reason: str | None = None,
    lineage: dict[str, str] | None = None,
    what_changed: str | None = None,
) -> AssetCheckResult:
    """One check result from the per-column outcomes of one rule. ``lineage`` (``served_by``: the
    model version(s) that scored the window; ``reference_version``: whose reference it was measured
    against) joins the metadata as text: the retraining sensor reads ``served_by``. A failed check
    carries ``what_changed`` (the ranked explanation) in its metadata and description."""
    result = _fold(rule, outcomes, asset_key, skipped_reason, what_changed)
    if not lineage:
        return result
    extra = {k: MetadataValue.text(v) for k, v in lineage.items() if v}
    return AssetCheckResult(
        asset_key=result.asset_key,
        check_name=result.check_name,
        passed=result.passed,
        severity=result.severity,
        description=result.description,
        metadata={**result.metadata, **extra},
    )


def _fold(
    rule: CheckRule,
    outcomes: Sequence[CheckOutcome],
    asset_key: AssetKey,
    skipped_reason: str | None,
    what_changed: str | None,
) -> AssetCheckResult:
    mine = [o for o in outcomes if o.name == rule.name]
    if not mine:
        return _skipped(rule, asset_key, skipped_reason)
    failing = [o for o in mine if not o.passed]
    worst = rule.worst(failing or mine)
    columns = [o.column for o in failing if o.column]
    metadata: dict = {
        "value": MetadataValue.float(float(worst.value)),
        "threshold": MetadataValue.float(float(worst.threshold)),
        # The unit value and threshold are both in: "psi", "effect", "share", "p_value", ...
        "value_kind": MetadataValue.text(rule.measure),
        "severity": MetadataValue.text(rule.severity),
        "failing_columns": MetadataValue.text(", ".join(columns) if columns else "(none)"),
        "values": MetadataValue.json({o.column or "(window)": round(o.value, 6) for o in mine}),
    }
    if worst.column:
        metadata["worst_column"] = MetadataValue.text(worst.column)
    metadata.update(_detail_metadata(worst))
    where = ", ".join(columns) if columns else "the window"
    if failing:
        description = f"FAILED on {where}: value {worst.value:.4g} vs threshold {worst.threshold:.4g}"
        if what_changed:
            metadata["what_changed"] = MetadataValue.text(what_changed)
            description += f". What changed: {what_changed}"
    else:
        description = f"passed: worst value {worst.value:.4g} vs threshold {worst.threshold:.4g}"
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=rule.name,
        passed=not failing,
        severity=SEVERITY[rule.severity],
        description=description,
        metadata=metadata,
    )
