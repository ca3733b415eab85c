"""Decision rules: the design document's monitoring matrix, configurable per monitor and column.

| what                     | rule (default)                                   | severity |
|--------------------------|--------------------------------------------------|----------|
| top feature PSI          | > 0.2 (and the shift is significant)             | WARN     |
| top feature PSI          | > 0.25 (and significant; the retraining trigger) | ERROR    |
| any feature drifted      | significant (Holm, family alpha 0.05) AND large  | WARN     |
| share of drifted features| >= 0.3                                           | ERROR    |
| prediction drift         | p < 0.05 AND large                               | ERROR    |
| missing rate             | > 0.05                                           | WARN     |
| AUC vs champion          | < -0.02                                          | ERROR    |

PSI has a small-sample bias (E[PSI] ~ (bins - 1) / n for identical distributions, 0.3 at n = 30), so
a PSI check fails only when the column's test is significant too; at >= 1,000 rows every PSI above
0.2 is, so this only matters for small windows (quiet hours of an hourly monitor).

"Large" is the minimum effect size that keeps a p-value alone from declaring drift at large n:
numerical, Wasserstein / reference std >= 0.15 or PSI >= 0.1; categorical, some category's share
moved by >= 0.05 or PSI >= 0.1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Literal

from drift_assets.stats import kolmogorov_smirnov, psi, wasserstein

Severity = Literal["WARN", "ERROR"]

DEFAULT_MISSING_RATE_WARN = 0.05
DEFAULT_MIN_PSI_EFFECT = 0.1
DEFAULT_MIN_CATEGORY_SHARE_CHANGE = 0.05
DEFAULT_DRIFTED_SHARE_ERROR = 0.3
DEFAULT_AUC_DROP_ERROR = 0.02


@dataclass(frozen=True)
class ColumnThresholds:
    """Thresholds that may differ per column."""

    psi_warn: float = psi.PSI_WARN_THRESHOLD
    psi_error: float = psi.PSI_ERROR_THRESHOLD
    missing_rate_warn: float = DEFAULT_MISSING_RATE_WARN
    min_wasserstein_normed: float = wasserstein.DEFAULT_MIN_EFFECT
    min_psi_effect: float = DEFAULT_MIN_PSI_EFFECT
    min_category_share_change: float = DEFAULT_MIN_CATEGORY_SHARE_CHANGE


@dataclass(frozen=True)
class DecisionRules:
    defaults: ColumnThresholds = field(default_factory=ColumnThresholds)
    per_column: Mapping[str, ColumnThresholds] = field(default_factory=dict)
    feature_alpha: float = kolmogorov_smirnov.DEFAULT_ALPHA
    prediction_alpha: float = kolmogorov_smirnov.DEFAULT_ALPHA
    drifted_share_error: float = DEFAULT_DRIFTED_SHARE_ERROR
    auc_drop_error: float = DEFAULT_AUC_DROP_ERROR
    psi_epsilon: float = psi.DEFAULT_EPSILON

    def for_column(self, name: str) -> ColumnThresholds:
        return self.per_column.get(name, self.defaults)

    @classmethod
    def from_mapping(cls, data: Mapping | None, where: str = "thresholds") -> DecisionRules:
        """Build rules from config, e.g. ``{"psi_warn": 0.15, "columns": {"amount": {"psi_error": 0.4}}}``.

        Unknown keys and non-numeric values fail with the offending path, so a typo in the
        monitors file never silently falls back to a default.
        """
        data = dict(data or {})
        column_keys = {f.name for f in fields(ColumnThresholds)}
        rule_keys = {f.name for f in fields(cls)} - {"defaults", "per_column"}
        per_column_raw = data.pop("columns", {}) or {}
        if not isinstance(per_column_raw, Mapping):
            raise ValueError(f"{where}.columns: expected a mapping of column name to thresholds")
        unknown = set(data) - column_keys - rule_keys
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(column_keys | rule_keys | {'columns'})}"
            )
        defaults = replace(
            ColumnThresholds(),
            **{k: _number(v, f"{where}.{k}") for k, v in data.items() if k in column_keys},
        )
        per_column: dict[str, ColumnThresholds] = {}
        for column, overrides in per_column_raw.items():
            if not isinstance(overrides, Mapping):
                raise ValueError(f"{where}.columns.{column}: expected a mapping of thresholds")
            bad = set(overrides) - column_keys
            if bad:
                raise ValueError(
                    f"{where}.columns.{column}: unknown key(s) {sorted(bad)}; allowed: {sorted(column_keys)}"
                )
            per_column[column] = replace(
                defaults,
                **{k: _number(v, f"{where}.columns.{column}.{k}") for k, v in overrides.items()},
            )
        return cls(
            defaults=defaults,
            per_column=per_column,
            **{k: _number(v, f"{where}.{k}") for k, v in data.items() if k in rule_keys},
        )


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        # value != value: NaN (YAML's .nan) would make every comparison False, silently.
        raise ValueError(f"{where}: expected a number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class CheckOutcome:
    """One rule applied to one column (or to the whole window when ``column`` is None)."""

    name: str
    column: str | None
    passed: bool
    severity: Severity
    value: float
    threshold: float
    description: str = ""
    details: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out: dict[str, object] = {
            "name": self.name,
            "column": self.column,
            "passed": self.passed,
            "severity": self.severity,
            "value": self.value,
            "threshold": self.threshold,
        }
        if self.description:
            out["description"] = self.description
        out.update(self.details)
        return out


# Check names read as assertions: a failure means the sentence is false for this window. Each is
# described, with its severity and evaluation, by one record in ``stats.checks.DEFAULT_CHECKS``.
FEATURE_PSI_WARN = "feature_psi_below_warn_threshold"
FEATURE_PSI_ERROR = "feature_psi_below_retrain_threshold"
FEATURE_NO_DRIFT = "features_have_no_significant_drift"
DRIFTED_SHARE = "share_of_drifted_features_below_threshold"
PREDICTION_NO_DRIFT = "prediction_has_no_drift"
MISSING_RATE = "missing_rate_below_threshold"
SCHEMA_MATCHES = "columns_match_reference_schema"
AUC_VS_CHAMPION = "auc_not_below_champion"
MULTIVARIATE_NO_DRIFT = "no_multivariate_drift"
SEGMENT_NO_DRIFT = "no_segment_drift"
# Against the trailing baseline (the previous N windows): sudden changes, not slow trends.
SUDDEN_SHIFT = "no_sudden_shift_vs_recent_windows"
SUDDEN_RATE_CHANGE = "no_sudden_rate_change_vs_recent_windows"

__all__ = [
    "CheckOutcome",
    "ColumnThresholds",
    "DecisionRules",
]
