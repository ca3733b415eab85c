"""Compare a window summary with the reference profile: measures per column, then checks.

``compare`` is the one function the CLI and the Dagster assets call. It never sees rows: only the
profile (reference counts) and the window's counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from drift_assets.stats import (
    chi_square,
    jensen_shannon,
    kolmogorov_smirnov,
    multiple_testing,
    psi,
    wasserstein,
)
from drift_assets.stats import (
    rules as r,
)
from drift_assets.stats.profile import ColumnProfile, NumericalBinning, ReferenceProfile
from drift_assets.stats.summary import CategoricalCounts, NumericalCounts, WindowSummary


@dataclass
class ColumnDrift:
    """Every measure for one column in one window. ``None`` where a measure does not apply."""

    name: str
    kind: str
    role: str
    psi: float | None
    psi_bins: int | None
    ks_statistic: float | None
    ks_pvalue: float | None
    chi2_pvalue: float | None
    jensen_shannon: float | None
    wasserstein_normed: float | None
    missing_rate: float
    reference_missing_rate: float
    unseen_share: float | None
    out_of_range_share: float | None
    max_category_share_change: float | None
    current_valid: int
    current_mean: float | None = None
    reference_mean: float | None = None
    unseen_values: dict[str, int] = field(default_factory=dict)
    # Filled by the decision step:
    pvalue: float | None = None
    adjusted_pvalue: float | None = None
    significant: bool = False
    large_effect: bool = False
    drifted: bool = False
    problem: str | None = None

    @property
    def test_pvalue(self) -> float | None:
        return self.ks_pvalue if self.kind == "numerical" else self.chi2_pvalue

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DriftResult:
    reference_rows: int
    current_rows: int
    columns: dict[str, ColumnDrift]
    checks: list[r.CheckOutcome]

    @property
    def features(self) -> list[ColumnDrift]:
        return [c for c in self.columns.values() if c.role == "feature"]

    @property
    def prediction(self) -> ColumnDrift | None:
        return next((c for c in self.columns.values() if c.role == "prediction"), None)

    @property
    def drifted_features(self) -> list[str]:
        return [c.name for c in self.features if c.drifted]

    @property
    def share_drifted(self) -> float:
        measured = [c for c in self.features if c.problem is None]
        return len([c for c in measured if c.drifted]) / len(measured) if measured else 0.0

    def failed_checks(self, severity: str | None = None) -> list[r.CheckOutcome]:
        return [c for c in self.checks if not c.passed and (severity is None or c.severity == severity)]

    @property
    def all_passed(self) -> bool:
        return not self.failed_checks()

    def summary(self) -> dict:
        feature_psis = [c.psi for c in self.features if c.psi is not None]
        pred = self.prediction
        return {
            "drifted_columns": len(self.drifted_features),
            "drifted_features": self.drifted_features,
            "share_drifted": self.share_drifted,
            "all_passed": self.all_passed,
            "drift_detected": bool(self.failed_checks("ERROR")),
            "failed_checks": sorted({c.name for c in self.failed_checks()}),
            "max_feature_psi": max(feature_psis) if feature_psis else None,
            "prediction_psi": pred.psi if pred else None,
            "prediction_ks_pvalue": pred.ks_pvalue if pred else None,
        }

    def to_dict(self) -> dict:
        keys = (
            "kind role psi psi_bins ks_statistic ks_pvalue chi2_pvalue jensen_shannon"
            " wasserstein_normed missing_rate reference_missing_rate unseen_share"
            " out_of_range_share max_category_share_change adjusted_pvalue drifted problem"
        ).split()
        columns = {}
        for name, col in self.columns.items():
            data = col.to_dict()
            entry = {k: data[k] for k in keys}
            if col.unseen_values:
                entry["unseen_values"] = col.unseen_values
            columns[name] = entry
        return {
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "columns": columns,
            "checks": [c.to_dict() for c in self.checks],
            "summary": self.summary(),
        }


def measure_column(
    column: ColumnProfile, current: NumericalCounts | CategoricalCounts, epsilon: float
) -> ColumnDrift:
    ref = column.reference
    spec = column.spec
    missing_rate = current.missing / current.rows if current.rows else 0.0
    ref_missing_rate = ref.missing / ref.rows if ref.rows else 0.0
    base = dict(
        name=spec.name,
        kind=spec.kind,
        role=spec.role,
        missing_rate=missing_rate,
        reference_missing_rate=ref_missing_rate,
        current_valid=current.valid,
    )
    if current.valid == 0:
        # Nothing to compare: every value is missing. The missing-rate check reports it; a
        # distribution measure here would be invented.
        return ColumnDrift(
            **base, psi=None, psi_bins=None, ks_statistic=None, ks_pvalue=None, chi2_pvalue=None,
            jensen_shannon=None, wasserstein_normed=None, unseen_share=None,
            out_of_range_share=None, max_category_share_change=None,
            problem=f"column {spec.name!r} has no non-missing values in this window",
        )
    if isinstance(column.binning, NumericalBinning):
        assert isinstance(ref, NumericalCounts) and isinstance(current, NumericalCounts)
        binning = column.binning
        ref_psi_counts, cur_psi_counts = ref.psi_counts(binning), current.psi_counts(binning)
        ks_stat = kolmogorov_smirnov.ks_statistic_from_counts(ref.sketch_counts, current.sketch_counts)
        w1 = wasserstein.wasserstein_from_sketch(
            ref.sketch_counts, ref.sketch_sums, current.sketch_counts, current.sketch_sums
        )
        return ColumnDrift(
            **base,
            psi=psi.population_stability_index(ref_psi_counts, cur_psi_counts, epsilon),
            psi_bins=binning.effective_bins,
            ks_statistic=ks_stat,
            ks_pvalue=kolmogorov_smirnov.ks_pvalue(ks_stat, ref.valid, current.valid),
            chi2_pvalue=None,
            jensen_shannon=jensen_shannon.jensen_shannon_distance(ref_psi_counts, cur_psi_counts),
            wasserstein_normed=wasserstein.normalised(w1, binning.reference_std),
            unseen_share=None,
            out_of_range_share=(current.below_range + current.above_range) / current.valid,
            max_category_share_change=None,
            current_mean=float(current.sketch_sums.sum() / current.valid),
            reference_mean=binning.reference_mean,
        )
    assert isinstance(ref, CategoricalCounts) and isinstance(current, CategoricalCounts)
    ref_p = ref.counts / ref.valid
    cur_p = current.counts / current.valid
    return ColumnDrift(
        **base,
        psi=psi.population_stability_index(ref.counts, current.counts, epsilon),
        psi_bins=len(ref.counts),
        ks_statistic=None,
        ks_pvalue=None,
        chi2_pvalue=chi_square.chi2_homogeneity_pvalue(ref.counts, current.counts),
        jensen_shannon=jensen_shannon.jensen_shannon_distance(ref.counts, current.counts),
        wasserstein_normed=None,
        unseen_share=current.unseen / current.valid,
        out_of_range_share=None,
        max_category_share_change=float(np.max(np.abs(cur_p - ref_p))),
        unseen_values=dict(current.unseen_values),
    )


def _large_effect(col: ColumnDrift, t: r.ColumnThresholds) -> bool:
    if col.psi is None:
        return False
    if col.psi >= t.min_psi_effect:
        return True
    if col.kind == "numerical":
        return col.wasserstein_normed is not None and col.wasserstein_normed >= t.min_wasserstein_normed
    return (col.max_category_share_change or 0.0) >= t.min_category_share_change


def decide_drift(columns: dict[str, ColumnDrift], rules: r.DecisionRules) -> None:
    """Mark columns drifted: significant after multiple-testing control AND a large enough effect."""
    features = [c for c in columns.values() if c.role == "feature" and c.test_pvalue is not None]
    adjusted = multiple_testing.holm_adjusted([c.test_pvalue for c in features])  # type: ignore[misc]
    for col, p_adj in zip(features, adjusted, strict=True):
        col.pvalue, col.adjusted_pvalue = col.test_pvalue, p_adj
        col.significant = p_adj < rules.feature_alpha
    for col in columns.values():
        if col.role != "feature" and col.test_pvalue is not None:
            # Prediction and target are single tests: the seed's p < 0.05, no family adjustment.
            col.pvalue = col.adjusted_pvalue = col.test_pvalue
            col.significant = col.test_pvalue < rules.prediction_alpha
        col.large_effect = _large_effect(col, rules.for_column(col.name))
        col.drifted = col.significant and col.large_effect


def _effect_details(col: ColumnDrift, t: r.ColumnThresholds) -> tuple[float, float, dict]:
    """The effect the drift decision looked at, for the check's value/threshold fields."""
    if col.kind == "numerical" and col.wasserstein_normed is not None:
        value, threshold, name = col.wasserstein_normed, t.min_wasserstein_normed, "wasserstein_normed"
    elif col.kind == "categorical":
        value, threshold, name = col.max_category_share_change or 0.0, t.min_category_share_change, "max_category_share_change"
    else:
        value, threshold, name = col.psi or 0.0, t.min_psi_effect, "psi"
    return value, threshold, {
        "effect": name, "psi": col.psi, "min_psi_effect": t.min_psi_effect,
        "p_value": col.pvalue, "adjusted_p_value": col.adjusted_pvalue,
    }


def evaluate_checks(
    columns: dict[str, ColumnDrift],
    problems: dict[str, str],
    rules: r.DecisionRules,
    top_features: set[str] | None,
) -> list[r.CheckOutcome]:
    checks: list[r.CheckOutcome] = []

    def add(name: str, column: str | None, passed: bool, value: float, threshold: float, **details: object) -> None:
        checks.append(r.CheckOutcome(
            name, column, passed, r.CHECK_SEVERITIES[name], float(value), float(threshold),
            details={k: v for k, v in details.items() if v is not None},
        ))

    features = [c for c in columns.values() if c.role == "feature"]
    for col in features:
        t = rules.for_column(col.name)
        if (top_features is None or col.name in top_features) and col.psi is not None:
            # A PSI above threshold that sampling noise explains (small windows) is not a failure.
            noise = not col.significant
            add(r.FEATURE_PSI_WARN, col.name, col.psi <= t.psi_warn or noise, col.psi, t.psi_warn,
                psi_bins=col.psi_bins, significant=col.significant)
            add(r.FEATURE_PSI_ERROR, col.name, col.psi <= t.psi_error or noise, col.psi, t.psi_error,
                psi_bins=col.psi_bins, significant=col.significant)
        if col.psi is not None:
            value, threshold, details = _effect_details(col, t)
            add(r.FEATURE_NO_DRIFT, col.name, not col.drifted, value, threshold, alpha=rules.feature_alpha, **details)
    measured = [c for c in features if c.problem is None]
    drifted = [c.name for c in measured if c.drifted]
    share = len(drifted) / len(measured) if measured else 0.0
    add(r.DRIFTED_SHARE, None, share < rules.drifted_share_error, share, rules.drifted_share_error,
        drifted_features=drifted)
    for col in columns.values():
        if col.role == "prediction" and col.psi is not None:
            value, threshold, details = _effect_details(col, rules.for_column(col.name))
            add(r.PREDICTION_NO_DRIFT, col.name, not col.drifted, col.pvalue if col.pvalue is not None else 1.0,
                rules.prediction_alpha, effect_value=value, effect_threshold=threshold, **details)
    for col in columns.values():
        if col.role in ("feature", "prediction"):
            t = rules.for_column(col.name)
            add(r.MISSING_RATE, col.name, col.missing_rate <= t.missing_rate_warn, col.missing_rate,
                t.missing_rate_warn, reference_missing_rate=col.reference_missing_rate)
    for column, reason in problems.items():
        add(r.SCHEMA_MATCHES, column, False, 1.0, 0.0, reason=reason)
    return checks


def compare(
    profile: ReferenceProfile,
    window: WindowSummary,
    rules: r.DecisionRules | None = None,
    *,
    top_features: set[str] | None = None,
    table_name: str = "current window",
) -> DriftResult:
    """Measure every profiled column of ``window`` and apply the decision rules.

    Raises ``EmptyWindowError`` for a window with no rows. Columns listed in ``window.problems``
    (absent, wrong type) are reported by the schema check and left out of the measures.
    """
    rules = rules or r.DecisionRules()
    window.require_rows(table_name)
    columns = {
        name: measure_column(col, window.columns[name], rules.psi_epsilon)
        for name, col in profile.columns.items()
        if name in window.columns
    }
    decide_drift(columns, rules)
    checks = evaluate_checks(columns, window.problems, rules, top_features)
    return DriftResult(profile.reference_rows, window.rows, columns, checks)
