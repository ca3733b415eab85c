"""A short, ranked "what changed" for a window: the text that goes with a failed check.

Per column, the PSI is split into its per-bin terms ``(c - r) ln(c / r)``; the bin carrying the
largest term is described in the reference's own terms ("31% of rows above the reference's 90th
percentile (512.3), expected 10%"). PSI bins are reference quantiles, so the percentiles are read
off the reference's counts (with ties, e.g. counts, the reference share below an edge is not
exactly 10k%; the text uses the actual share). Columns are ranked: those with a failed check first,
then by PSI. The multivariate checks add their own sentence naming the features that explain them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from drift_assets.stats.compare import DriftResult
from drift_assets.stats.profile import ColumnProfile, NumericalBinning, ReferenceProfile
from drift_assets.stats.psi import DEFAULT_EPSILON
from drift_assets.stats.summary import CategoricalCounts, NumericalCounts, WindowSummary

DEFAULT_TOP_COLUMNS = 3


def percent(share: float) -> str:
    return f"{100 * share:.1f}%" if share < 0.1 else f"{100 * share:.0f}%"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def number(x: float) -> str:
    return f"{x:.4g}"


def psi_terms(reference_counts: np.ndarray, current_counts: np.ndarray, epsilon: float = DEFAULT_EPSILON) -> np.ndarray:
    """Per-bin PSI terms (they sum to ``psi.population_stability_index`` of the same counts)."""
    r = np.clip(reference_counts / reference_counts.sum(), epsilon, None)
    c = np.clip(current_counts / current_counts.sum(), epsilon, None)
    return (c - r) * np.log(c / r)


@dataclass
class ColumnChange:
    """One column's largest change, in words, with the PSI share of the bin it describes."""

    column: str
    psi: float
    bin_share_of_psi: float
    text: str

    def to_dict(self) -> dict:
        return {"column": self.column, "psi": self.psi, "bin_share_of_psi": self.bin_share_of_psi, "text": self.text}


def _bin_phrase(bin_index: int, edges: np.ndarray, reference_below: np.ndarray) -> tuple[str, int]:
    """Words for PSI bin ``bin_index`` of a numerical column, and whether it is a tail (-1, 0, 1)."""
    last = len(edges)
    if last == 0:  # every reference value tied: one PSI bin, no edges to name
        return "in the reference's only bin", 0
    if bin_index == last:
        return f"above the reference's {ordinal(round(100 * reference_below[-1]))} percentile ({number(edges[-1])})", 1
    if bin_index == 0:
        return f"below the reference's {ordinal(round(100 * reference_below[0]))} percentile ({number(edges[0])})", -1
    low, high = reference_below[bin_index - 1], reference_below[bin_index]
    return (
        f"between the reference's {ordinal(round(100 * low))} and {ordinal(round(100 * high))} percentiles"
        f" ({number(edges[bin_index - 1])} to {number(edges[bin_index])})",
        0,
    )


def numerical_change(column: ColumnProfile, current: NumericalCounts, epsilon: float = DEFAULT_EPSILON) -> ColumnChange:
    binning = column.binning
    assert isinstance(binning, NumericalBinning) and isinstance(column.reference, NumericalCounts)
    ref_counts, cur_counts = column.reference.psi_counts(binning), current.psi_counts(binning)
    terms = psi_terms(ref_counts, cur_counts, epsilon)
    top = int(np.argmax(terms))
    reference_below = np.cumsum(ref_counts)[:-1] / ref_counts.sum()
    phrase, _ = _bin_phrase(top, binning.psi_edges, reference_below)
    share, expected = cur_counts[top] / cur_counts.sum(), ref_counts[top] / ref_counts.sum()
    text = f"{column.name}: {percent(share)} of rows {phrase}, expected {percent(expected)}"
    outside = (current.below_range + current.above_range) / current.valid
    if outside >= 0.01:
        low, high = number(binning.reference_min), number(binning.reference_max)
        text += f"; {percent(outside)} outside the reference range [{low}, {high}]"
    mean = float(current.sketch_sums.sum() / current.valid)
    text += f"; mean {number(mean)} (reference {number(binning.reference_mean)})"
    psi = float(terms.sum())
    return ColumnChange(column.name, psi, float(terms[top] / psi) if psi > 0 else 0.0, text)


def categorical_change(
    column: ColumnProfile, current: CategoricalCounts, epsilon: float = DEFAULT_EPSILON
) -> ColumnChange:
    reference = column.reference
    assert isinstance(reference, CategoricalCounts)
    terms = psi_terms(reference.counts, current.counts, epsilon)
    top = int(np.argmax(terms))
    share = current.counts[top] / current.counts.sum()
    vocabulary = column.binning.vocabulary  # type: ignore[union-attr]
    if top == len(vocabulary):
        listed = ", ".join(f"{v!r} {n}" for v, n in list(current.unseen_values.items())[:3])
        text = f"{column.name}: {percent(share)} of rows have values unseen in the reference ({listed})"
    else:
        expected = reference.counts[top] / reference.counts.sum()
        text = f"{column.name}: {vocabulary[top]!r} is {percent(share)} of rows, expected {percent(expected)}"
    psi = float(terms.sum())
    return ColumnChange(column.name, psi, float(terms[top] / psi) if psi > 0 else 0.0, text)


def column_change(column: ColumnProfile, current, epsilon: float = DEFAULT_EPSILON) -> ColumnChange | None:
    if current.valid == 0:
        return None
    if isinstance(current, NumericalCounts):
        return numerical_change(column, current, epsilon)
    return categorical_change(column, current, epsilon)


def ranked_column_changes(
    profile: ReferenceProfile,
    window: WindowSummary,
    result: DriftResult,
    *,
    top: int = DEFAULT_TOP_COLUMNS,
    epsilon: float = DEFAULT_EPSILON,
) -> list[ColumnChange]:
    """The ``top`` columns whose checks failed, most changed first (PSI), each in one sentence."""
    failed = {c.column for c in result.failed_checks() if c.column is not None}
    changes: list[tuple[bool, ColumnChange]] = []
    for name, drift in result.columns.items():
        if name not in failed and not drift.drifted:
            continue
        change = column_change(profile.columns[name], window.columns[name], epsilon)
        if change is None:
            continue
        if drift.missing_rate > drift.reference_missing_rate and drift.missing_rate > 0.01:
            change.text += f"; {percent(drift.missing_rate)} missing, expected {percent(drift.reference_missing_rate)}"
        changes.append((drift.drifted, change))
    changes.sort(key=lambda pair: (not pair[0], -pair[1].psi))
    return [change for _, change in changes[:top]]


def explain_reconstruction(result) -> str | None:
    """One sentence for a fired reconstruction-error check (a ``multivariate.ReconstructionDrift``)."""
    if not result.drifted:
        return None
    named = ", ".join(f"{c} ({percent(result.excess_share[c])})" for c in result.explained_by)
    text = (
        f"joint distribution changed: reconstruction error {number(result.mean_error)}, expected"
        f" {number(result.expected_error)} (threshold {number(result.threshold)}); explained by {named}"
    )
    for change in result.correlation_changes[:1]:
        a, b = change.columns
        text += f"; correlation of {a} and {b} {change.reference:.2f} in the reference, {change.current:.2f} now"
    return text


def explain_domain_classifier(result) -> str | None:
    """One sentence for a fired domain-classifier check (a ``domain_classifier.DomainClassifierDrift``)."""
    if not result.drifted:
        return None
    named = ", ".join(f"{c} ({result.importances[c]:.3f})" for c in result.explained_by) or "no single column"
    return (
        f"a classifier tells window rows from reference rows apart (cross-validated AUC {result.auc:.3f},"
        f" p = {result.p_value:.2g}); AUC lost when shuffling: {named}"
    )


@dataclass
class Explanation:
    lines: list[str] = field(default_factory=list)
    columns: list[ColumnChange] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(f"- {line}" for line in self.lines)

    def to_dict(self) -> dict:
        return {"text": self.text, "lines": self.lines, "columns": [c.to_dict() for c in self.columns]}


def explain_window(
    profile: ReferenceProfile,
    window: WindowSummary,
    result: DriftResult,
    *,
    reconstruction=None,
    classifier=None,
    segment: str | None = None,
    top: int = DEFAULT_TOP_COLUMNS,
    epsilon: float = DEFAULT_EPSILON,
) -> Explanation:
    """Ranked "what changed": the multivariate sentences first (they name the features), then columns."""
    columns = ranked_column_changes(profile, window, result, top=top, epsilon=epsilon)
    lines = [
        s
        for s in (
            explain_reconstruction(reconstruction) if reconstruction else None,
            explain_domain_classifier(classifier) if classifier else None,
        )
        if s
    ]
    prefix = f"in segment {segment}: " if segment else ""
    lines += [prefix + c.text for c in columns]
    return Explanation(lines, columns)
