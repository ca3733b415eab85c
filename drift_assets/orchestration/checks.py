"""Asset checks = the decision matrix. The core returns one outcome per rule and column; here they
are folded into one partitioned Dagster check per rule, carrying its value, threshold and the
columns concerned in metadata (what the UI shows on the failing week)."""

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

from drift_assets.stats import CheckOutcome
from drift_assets.stats import rules as r

# Checks on drift_report, in display order. PREDICTION_NO_DRIFT only when a prediction is monitored.
DRIFT_REPORT_CHECKS = (
    r.FEATURE_PSI_WARN,
    r.FEATURE_PSI_ERROR,
    r.FEATURE_NO_DRIFT,
    r.DRIFTED_SHARE,
    r.PREDICTION_NO_DRIFT,
    r.MISSING_RATE,
    r.SCHEMA_MATCHES,
)
# Checks where a larger value is worse (all but the p-value based prediction check).
_LOWER_IS_WORSE = {r.PREDICTION_NO_DRIFT}

def drift_check_names(monitor) -> list[str]:
    """The checks a monitor's drift_report carries (the prediction and sudden-change checks only
    where the monitor has a prediction / a trailing baseline)."""
    names = [n for n in DRIFT_REPORT_CHECKS if n != r.PREDICTION_NO_DRIFT or monitor.prediction]
    sudden = monitor.sudden_change
    if sudden is not None:
        names += ([r.SUDDEN_SHIFT] if sudden.columns else []) + ([r.SUDDEN_RATE_CHANGE] if sudden.rates else [])
    return names


SEVERITY = {"WARN": AssetCheckSeverity.WARN, "ERROR": AssetCheckSeverity.ERROR}


def check_specs(asset_key: AssetKey, names: Sequence[str], partitions_def: PartitionsDefinition | None) -> list[AssetCheckSpec]:
    # Partitioned checks (one evaluation per window) are a preview feature in Dagster 1.13; we rely
    # on it knowingly (without it a check on a partitioned asset is not per window), so its
    # warning is silenced here rather than printed on every definitions load.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)
        return _specs(asset_key, names, partitions_def)


def _specs(asset_key: AssetKey, names: Sequence[str], partitions_def: PartitionsDefinition | None) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(
            name,
            asset=asset_key,
            description=f"[{r.CHECK_SEVERITIES[name]}] {r.CHECK_DESCRIPTIONS[name]}",
            partitions_def=partitions_def,
            metadata={"severity": r.CHECK_SEVERITIES[name]},
        )
        for name in names
    ]


def fold_outcomes(name: str, outcomes: Sequence[CheckOutcome], asset_key: AssetKey, *, skipped_reason: str | None = None) -> AssetCheckResult:
    """One check result from the per-column outcomes of one rule."""
    severity = r.CHECK_SEVERITIES[name]
    mine = [o for o in outcomes if o.name == name]
    if not mine:
        return AssetCheckResult(
            asset_key=asset_key, check_name=name, passed=True, severity=SEVERITY[severity],
            description=skipped_reason or "nothing to check in this window",
            metadata={"status": MetadataValue.text(skipped_reason or "not applicable")},
        )
    failing = [o for o in mine if not o.passed]
    pick = min if name in _LOWER_IS_WORSE else max
    worst = pick(failing or mine, key=lambda o: o.value)
    columns = [o.column for o in failing if o.column]
    per_column = {o.column or "(window)": round(o.value, 6) for o in mine}
    metadata: dict = {
        "value": MetadataValue.float(float(worst.value)),
        "threshold": MetadataValue.float(float(worst.threshold)),
        "severity": MetadataValue.text(severity),
        "failing_columns": MetadataValue.text(", ".join(columns) if columns else "(none)"),
        "values": MetadataValue.json(per_column),
    }
    if worst.column:
        metadata["worst_column"] = MetadataValue.text(worst.column)
    for key, value in worst.details.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metadata[f"worst_{key}"] = MetadataValue.float(float(value))
        elif isinstance(value, str):
            metadata[f"worst_{key}"] = MetadataValue.text(value)
        elif isinstance(value, list):
            metadata[key] = MetadataValue.text(", ".join(map(str, value)) or "(none)")
    if failing:
        description = f"FAILED on {', '.join(columns) if columns else 'the window'}: value {worst.value:.4g} vs threshold {worst.threshold:.4g}"
    else:
        description = f"passed: worst value {worst.value:.4g} vs threshold {worst.threshold:.4g}"
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=name,
        passed=not failing,
        severity=SEVERITY[severity],
        description=description,
        metadata=metadata,
    )
