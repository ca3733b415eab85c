"""Compare a window summary with the reference profile: measures per column, then checks.

``compare`` is the one function the CLI and the Dagster assets call. It never sees rows: only the
profile (reference counts) and the window's counts.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np

from drift_assets.stats import (
    chi_square,
    jensen_shannon,
    kolmogorov_smirnov,
    multiple_testing,
    psi,
    rates,
    wasserstein,
)
from drift_assets.stats import (
    rules as r,
)
from drift_assets.stats.checks import DEFAULT_CHECKS, CheckTable, WindowFacts
from drift_assets.stats.profile import ColumnProfile, NumericalBinning, ReferenceProfile
from drift_assets.stats.result import ColumnDrift, DriftResult
from drift_assets.stats.summary import CategoricalCounts, NumericalCounts, WindowSummary


class _CommonMeasures(TypedDict):
    """The ``ColumnDrift`` fields every kind of column fills the same way."""

    name: str
    kind: str
    role: str
    missing_rate: float
    reference_missing_rate: float
    current_valid: int
    current_missing: int
    missing_rate_pvalue: float | None


# The result lists this many of the largest per-bin PSI terms.
TOP_PSI_BINS = 3


def top_psi_bins(
    reference_counts: np.ndarray, current_counts: np.ndarray, labels: list[str], epsilon: float
) -> list[dict]:
    """The bins carrying most of the PSI, largest first, with both shares: "x: 7.5% -> 0.0%"."""
    terms = psi.psi_contributions(reference_counts, current_counts, epsilon)
    ref_share = reference_counts / reference_counts.sum()
    cur_share = current_counts / current_counts.sum()
    order = np.argsort(-terms, kind="stable")[:TOP_PSI_BINS]
    return [
        {
            "bin": labels[i],
            "reference_share": float(ref_share[i]),
            "current_share": float(cur_share[i]),
            "contribution": float(terms[i]),
        }
        for i in order
    ]


def _missing_increase_pvalue(
    current: NumericalCounts | CategoricalCounts, ref: NumericalCounts | CategoricalCounts
) -> float | None:
    if not current.rows or not ref.rows:
        return None
    return rates.increase_pvalue(current.missing, current.rows, ref.missing, ref.rows)


def measure_column(column: ColumnProfile, current: NumericalCounts | CategoricalCounts, epsilon: float) -> ColumnDrift:
    ref = column.reference
    spec = column.spec
    missing_rate = current.missing / current.rows if current.rows else 0.0
    ref_missing_rate = ref.missing / ref.rows if ref.rows else 0.0
    base = _CommonMeasures(
        name=spec.name,
        kind=spec.kind,
        role=spec.role,
        missing_rate=missing_rate,
        reference_missing_rate=ref_missing_rate,
        current_valid=current.valid,
        current_missing=current.missing,
        missing_rate_pvalue=_missing_increase_pvalue(current, ref),
    )
    if current.valid == 0:
        # Nothing to compare: every value is missing. The missing-rate check reports it; a
        # distribution measure here would be invented.
        return ColumnDrift(
            **base,
            psi=None,
            psi_bins=None,
            ks_statistic=None,
            ks_pvalue=None,
            chi2_pvalue=None,
            jensen_shannon=None,
            wasserstein_normed=None,
            unseen_share=None,
            out_of_range_share=None,
            max_category_share_change=None,
            problem=f"column {spec.name!r} has no non-missing values in this window (all {current.rows} missing)",
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
            reference_std=binning.reference_std,
            psi_bins_detail=top_psi_bins(ref_psi_counts, cur_psi_counts, binning.bin_labels(), epsilon),
            psi_noise=psi.expected_noise(binning.effective_bins, current.valid, ref.valid),
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
        unseen_count=current.unseen,
        psi_bins_detail=top_psi_bins(ref.counts, current.counts, [*column.binning.vocabulary, "(unseen)"], epsilon),
        psi_noise=psi.expected_noise(int(np.count_nonzero(ref.counts)), current.valid, ref.valid),
    )


def _large_effect(col: ColumnDrift, t: r.ColumnThresholds) -> bool:
    if col.psi is None:
        return False
    if col.psi >= t.min_psi_effect:
        return True
    if col.kind == "numerical":
        if col.wasserstein_normed is None:
            # A zero-variance reference: any value off its single value is out of range.
            return (col.out_of_range_share or 0.0) >= t.min_out_of_range_share
        return col.wasserstein_normed >= t.min_wasserstein_normed
    return (col.max_category_share_change or 0.0) >= t.min_category_share_change


def window_rows(columns: dict[str, ColumnDrift]) -> int:
    """The window's rows, as its measured columns count them (valid + missing)."""
    return max((c.current_valid + c.current_missing for c in columns.values()), default=0)


def effective_alpha(alpha: float, rows: int, rules: r.DecisionRules) -> float:
    """``alpha``, or ``small_window_alpha`` when that is stricter and the window is small.

    "Significant AND large" keeps false alarms far below alpha only where sampling noise is small
    next to the minimum effect. Below ``small_window_rows`` it is not: the normed Wasserstein of a
    stationary 100-row window is ~0.07 on average and its upper tail passes 0.15, so the effect gate
    passes what the test passes and a window's false-alarm rate is the test's family-wise alpha
    (measured: 3.5% / 5.0% / 3.6% of stationary 12-feature windows at 30 / 100 / 300 rows with
    alpha 0.05, 0 of 1,000 at 1,000 rows; docs/detection.md)."""
    return rules.alpha_for(alpha, rows)


def decide_drift(columns: dict[str, ColumnDrift], rules: r.DecisionRules) -> None:
    """Mark columns drifted: significant after multiple-testing control AND a large enough effect."""
    rows = window_rows(columns)
    feature_alpha = effective_alpha(rules.feature_alpha, rows, rules)
    features = [c for c in columns.values() if c.role == "feature" and c.test_pvalue is not None]
    adjusted = multiple_testing.holm_adjusted([c.test_pvalue for c in features])  # type: ignore[misc]
    for col, p_adj in zip(features, adjusted, strict=True):
        col.pvalue, col.adjusted_pvalue = col.test_pvalue, p_adj
        col.significant = p_adj < feature_alpha
    for col in columns.values():
        if col.role != "feature" and col.test_pvalue is not None:
            # Prediction and target are single tests: the seed's p < 0.05, no family adjustment.
            col.pvalue = col.adjusted_pvalue = col.test_pvalue
            col.significant = col.test_pvalue < effective_alpha(rules.prediction_alpha, rows, rules)
        col.large_effect = _large_effect(col, rules.for_column(col.name))
        col.drifted = col.significant and col.large_effect


def compare(
    profile: ReferenceProfile,
    window: WindowSummary,
    rules: r.DecisionRules | None = None,
    *,
    top_features: set[str] | None = None,
    table_name: str = "current window",
    check_table: CheckTable = DEFAULT_CHECKS,
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
    checks = check_table.evaluate_window(WindowFacts(columns, window.problems, rules, top_features))
    return DriftResult(profile.reference_rows, window.rows, columns, checks)
