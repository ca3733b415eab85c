"""Decision rules: the design document's monitoring matrix, configurable per monitor and column.

| what                     | rule (default)                                   | severity |
|--------------------------|--------------------------------------------------|----------|
| top feature PSI          | > 0.2 (and the shift is significant)             | WARN     |
| top feature PSI          | > 0.25 (and significant; the retraining trigger) | ERROR    |
| any feature drifted      | significant (Holm, family alpha 0.05; 0.01 below 1,000 rows) AND large | WARN |
| share of drifted features| >= 0.3                                           | ERROR    |
| prediction drift         | p < 0.05 AND large                               | ERROR    |
| missing rate (ceiling)   | > 0.05 (absolute; set 1.0 per column to disable) | WARN     |
| missing rate increase    | Fisher p < 0.001 AND >= +0.05 vs the reference   | WARN     |
| column entirely missing  | no non-missing value (feature or prediction)     | ERROR    |
| unseen categories        | share of values unseen in the reference > 0.01   | WARN     |
| target prevalence        | p < 0.001 AND some class share moved >= 0.05     | ERROR    |
| gradual drift (CUSUM)    | standardised mean shift accumulates > 5.5        | WARN     |
| AUC vs champion          | < -0.02                                          | ERROR    |

PSI has a small-sample bias (E[PSI] ~ (bins - 1) / n for identical distributions, 0.3 at n = 30), so
a PSI check fails only when the column's test is significant too; at >= 1,000 rows every PSI above
0.2 is, so this only matters for small windows (quiet hours of an hourly monitor).

"Large" is the minimum effect size that keeps a p-value alone from declaring drift at large n:
numerical, Wasserstein / reference std >= 0.15 or PSI >= 0.1; categorical, some category's share
moved by >= 0.05 or PSI >= 0.1.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Literal

from drift_assets.stats import kolmogorov_smirnov, multiple_testing, psi, wasserstein

Severity = Literal["WARN", "ERROR"]

DEFAULT_MISSING_RATE_WARN = 0.05
DEFAULT_MIN_PSI_EFFECT = 0.1
DEFAULT_MIN_CATEGORY_SHARE_CHANGE = 0.05
DEFAULT_DRIFTED_SHARE_ERROR = 0.3
DEFAULT_AUC_DROP_ERROR = 0.02
DEFAULT_MISSING_RATE_MIN_INCREASE = 0.05
DEFAULT_UNSEEN_SHARE_WARN = 0.01
DEFAULT_MIN_OUT_OF_RANGE_SHARE = 0.05
DEFAULT_MIN_PREVALENCE_CHANGE = 0.05
DEFAULT_RATE_ALPHA = 0.001


@dataclass(frozen=True)
class ColumnThresholds:
    """Thresholds that may differ per column."""

    psi_warn: float = psi.PSI_WARN_THRESHOLD
    psi_error: float = psi.PSI_ERROR_THRESHOLD
    missing_rate_warn: float = DEFAULT_MISSING_RATE_WARN
    min_wasserstein_normed: float = wasserstein.DEFAULT_MIN_EFFECT
    min_psi_effect: float = DEFAULT_MIN_PSI_EFFECT
    min_category_share_change: float = DEFAULT_MIN_CATEGORY_SHARE_CHANGE
    # The missing rate must rise by at least this much (absolute) over the reference's.
    missing_rate_min_increase: float = DEFAULT_MISSING_RATE_MIN_INCREASE
    unseen_share_warn: float = DEFAULT_UNSEEN_SHARE_WARN
    # The effect of a zero-variance reference column (no std to normalise Wasserstein by).
    min_out_of_range_share: float = DEFAULT_MIN_OUT_OF_RANGE_SHARE
    min_prevalence_change: float = DEFAULT_MIN_PREVALENCE_CHANGE


@dataclass(frozen=True)
class DecisionRules:
    defaults: ColumnThresholds = field(default_factory=ColumnThresholds)
    per_column: Mapping[str, ColumnThresholds] = field(default_factory=dict)
    feature_alpha: float = kolmogorov_smirnov.DEFAULT_ALPHA
    prediction_alpha: float = kolmogorov_smirnov.DEFAULT_ALPHA
    drifted_share_error: float = DEFAULT_DRIFTED_SHARE_ERROR
    auc_drop_error: float = DEFAULT_AUC_DROP_ERROR
    psi_epsilon: float = psi.DEFAULT_EPSILON
    # Single tests on rates (missing-rate increase, target prevalence): a false alarm in 1 of
    # 1,000 windows per column, and a minimum absolute change keeps large n from flagging noise.
    missing_rate_alpha: float = DEFAULT_RATE_ALPHA
    target_alpha: float = DEFAULT_RATE_ALPHA
    # Windows with fewer rows test features and the prediction at ``small_window_alpha`` (or the
    # configured alpha when stricter): there sampling noise alone exceeds the minimum effect, so
    # "significant AND large" alarms at the test's alpha (stats.compare.effective_alpha). 0 turns it off.
    small_window_rows: float = multiple_testing.SMALL_WINDOW_ROWS
    small_window_alpha: float = multiple_testing.SMALL_WINDOW_ALPHA

    def for_column(self, name: str) -> ColumnThresholds:
        return self.per_column.get(name, self.defaults)

    def alpha_for(self, alpha: float, rows: int) -> float:
        """``alpha``, or ``small_window_alpha`` when stricter and the window has fewer than
        ``small_window_rows`` rows (see stats.compare.effective_alpha for why)."""
        return min(alpha, self.small_window_alpha) if rows < self.small_window_rows else alpha

    @classmethod
    def from_mapping(
        cls, data: Mapping | None, where: str = "thresholds", *, columns: Collection[str] | None = None
    ) -> DecisionRules:
        """Build rules from config, e.g. ``{"psi_warn": 0.15, "columns": {"amount": {"psi_error": 0.4}}}``.

        Unknown keys, non-numeric values and values out of range (``RANGES``) fail with the
        offending path, so a typo in the monitors file never silently falls back to a default or
        disables a check. ``columns``: the monitored columns; an override for any other fails.
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
            if columns is not None and column not in columns:
                raise ValueError(
                    f"{where}.columns.{column}: not a monitored column (have: {', '.join(map(str, columns))})"
                )
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
        rules = cls(
            defaults=defaults,
            per_column=per_column,
            **{k: _number(v, f"{where}.{k}") for k, v in data.items() if k in rule_keys},
        )
        _check_thresholds(rules.defaults, where)
        for column, thresholds in rules.per_column.items():
            _check_thresholds(thresholds, f"{where}.columns.{column}")
        for name in sorted(rule_keys):
            _check_range(name, getattr(rules, name), f"{where}.{name}")
        return rules


# (low, high, low_open, high_open) of every threshold: alphas are probabilities strictly inside
# (0, 1); PSI thresholds and the PSI epsilon are positive; rates and shares lie in [0, 1].
RANGES: dict[str, tuple[float, float | None, bool, bool]] = {
    "psi_warn": (0.0, None, True, False),
    "psi_error": (0.0, None, True, False),
    "missing_rate_warn": (0.0, 1.0, False, False),
    "min_wasserstein_normed": (0.0, None, False, False),
    "min_psi_effect": (0.0, None, False, False),
    "min_category_share_change": (0.0, 1.0, False, False),
    "feature_alpha": (0.0, 1.0, True, True),
    "prediction_alpha": (0.0, 1.0, True, True),
    "drifted_share_error": (0.0, 1.0, False, False),
    "auc_drop_error": (0.0, 1.0, False, False),
    "psi_epsilon": (0.0, 1.0, True, True),
    "missing_rate_min_increase": (0.0, 1.0, False, False),
    "unseen_share_warn": (0.0, 1.0, False, False),
    "min_out_of_range_share": (0.0, 1.0, False, False),
    "min_prevalence_change": (0.0, 1.0, False, False),
    "missing_rate_alpha": (0.0, 1.0, True, True),
    "target_alpha": (0.0, 1.0, True, True),
    "small_window_rows": (0.0, None, False, False),
    "small_window_alpha": (0.0, 1.0, True, True),
}


def _check_range(name: str, value: float, where: str) -> None:
    low, high, low_open, high_open = RANGES[name]
    bad = (value <= low if low_open else value < low) or (
        high is not None and (value >= high if high_open else value > high)
    )
    if bad:
        left = f"{'>' if low_open else '>='} {low:g}"
        right = "" if high is None else f" and {'<' if high_open else '<='} {high:g}"
        raise ValueError(f"{where}: must be {left}{right}, got {value:g}")


def _check_thresholds(thresholds: ColumnThresholds, where: str) -> None:
    for f in fields(ColumnThresholds):
        _check_range(f.name, getattr(thresholds, f.name), f"{where}.{f.name}")
    if thresholds.psi_warn > thresholds.psi_error:
        raise ValueError(
            f"{where}.psi_warn: the warning threshold ({thresholds.psi_warn:g}) is above the error"
            f" threshold psi_error ({thresholds.psi_error:g})"
        )


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        # value != value: NaN (YAML's .nan) would make every comparison False, silently.
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
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
# An absolute ceiling, whatever the reference's rate (its meaning is unchanged since the seed).
MISSING_RATE = "missing_rate_below_threshold"
# Relative to the reference: a significant rise of at least a minimum absolute change (issue 11).
MISSING_RATE_INCREASE = "missing_rate_not_increased"
COLUMN_NOT_ALL_MISSING = "columns_not_entirely_missing"
UNSEEN_SHARE = "unseen_share_below_threshold"
TARGET_PREVALENCE = "target_prevalence_unchanged"
SCHEMA_MATCHES = "columns_match_reference_schema"
AUC_VS_CHAMPION = "auc_not_below_champion"
# Before labels arrive: the band of the AUC estimated from calibrated scores (stats.performance_estimation).
ESTIMATED_AUC_VS_CHAMPION = "estimated_auc_not_below_champion"
# Joint drift (stats.multivariate, stats.domain_classifier) and drift within segments (stats.segments).
NO_MULTIVARIATE_DRIFT = "no_multivariate_drift"
NO_SEGMENT_DRIFT = "no_segment_drift"
# Against the trailing baseline (the previous N windows): sudden changes, not slow trends.
SUDDEN_SHIFT = "no_sudden_shift_vs_recent_windows"
SUDDEN_RATE_CHANGE = "no_sudden_rate_change_vs_recent_windows"
# Across windows: a CUSUM over the stored results of earlier windows (monitoring.gradual).
NO_GRADUAL_DRIFT = "no_gradual_drift"

__all__ = [
    "CheckOutcome",
    "ColumnThresholds",
    "DecisionRules",
]
