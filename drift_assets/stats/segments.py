"""Segment-wise drift: the per-column measures within each value of a segment column
(``channel=web``), so a change confined to 5-10% of traffic is not averaged away.

Built on the existing summary and comparison, unchanged: each batch is split by segment value and
each part summarised with the monitor's own profile (``summarize_batch``), so per-segment counts are
in the global reference binning and add up like any ``WindowSummary``. The reference is split the
same way once (``fit_segment_profiles``), and each window segment is compared with the same
segment of the reference (segments differ by nature; comparing one with the global reference would
flag the segment, not a change).

Decision: every (segment, feature) pair's KS / chi-square p-value goes into ONE Holm family, with
the family alpha of the univariate rules (0.05), and a pair drifts when it is significant after
that correction AND its effect is large by the same per-column rule as the univariate check. A
segment is evaluated only when it has at least ``min_segment_rows`` (default 500) rows in both the
window and the reference; otherwise it is reported as skipped with the reason, never as passing.

Label cardinality: at most ``max_segments`` (default 20) values per segment column are kept, the
most frequent in the reference; rows of other values count under ``<column>=<other>`` in the
rows-by-segment tally but are not evaluated. So a monitor with ``s`` segment columns exports at
most ``20 s`` segment label values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import pyarrow as pa
import pyarrow.compute as pc

from drift_assets.stats import multiple_testing
from drift_assets.stats import rules as r
from drift_assets.stats.checks import DEFAULT_CHECKS
from drift_assets.stats.compare import ColumnDrift, compare
from drift_assets.stats.errors import SchemaError
from drift_assets.stats.profile import ColumnProfile, ReferenceProfile
from drift_assets.stats.result import column_entry
from drift_assets.stats.summary import WindowSummary, summarize_batch
from drift_assets.stats.validation import category_strings

CHECK_NAME = r.NO_SEGMENT_DRIFT
DEFAULT_MIN_SEGMENT_ROWS = 500
DEFAULT_MAX_SEGMENTS = 20
OTHER = "<other>"


def segment_key(column: str, value: str) -> str:
    return f"{column}={value}"


@dataclass
class SegmentedSummary:
    """Window summaries per segment key, mergeable like ``WindowSummary``."""

    segments: dict[str, WindowSummary] = field(default_factory=dict)
    other_rows: dict[str, int] = field(default_factory=dict)  # per segment column: rows of unkept values
    problems: dict[str, str] = field(default_factory=dict)

    def __add__(self, other: SegmentedSummary) -> SegmentedSummary:
        segments = dict(self.segments)
        for key, summary in other.segments.items():
            segments[key] = segments[key] + summary if key in segments else summary
        tally = dict(self.other_rows)
        for column, rows in other.other_rows.items():
            tally[column] = tally.get(column, 0) + rows
        return SegmentedSummary(segments, tally, {**other.problems, **self.problems})

    def to_dict(self) -> dict:
        return {
            "segments": {k: s.to_dict() for k, s in self.segments.items()},
            "other_rows": self.other_rows,
            "problems": self.problems,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> SegmentedSummary:
        return cls(
            {k: WindowSummary.from_dict(s) for k, s in data["segments"].items()},
            {k: int(v) for k, v in data.get("other_rows", {}).items()},
            dict(data.get("problems", {})),
        )


def segment_values(reference: pa.Table, column: str, max_segments: int = DEFAULT_MAX_SEGMENTS) -> list[str]:
    """The segment values kept for ``column``: its most frequent reference values."""
    if column not in reference.schema.names:
        raise SchemaError(f"reference: segment column {column!r} is missing")
    counts = pc.value_counts(category_strings(reference.column(column), column, "reference").drop_null())
    values, freqs = counts.field("values").to_pylist(), counts.field("counts").to_pylist()
    ranked = sorted(zip(values, freqs, strict=True), key=lambda vf: (-vf[1], vf[0]))
    return [v for v, _ in ranked[:max_segments]]


def summarize_segments_batch(
    profile: ReferenceProfile,
    batch: pa.RecordBatch | pa.Table,
    values_by_column: Mapping[str, Sequence[str]],
    table_name: str = "current window",
) -> SegmentedSummary:
    """One batch split by each segment column's kept values, each part summarised with ``profile``."""
    out = SegmentedSummary()
    for column, values in values_by_column.items():
        if column not in batch.schema.names:
            out.problems[column] = f"{table_name}: segment column {column!r} is missing"
            continue
        try:
            strings = category_strings(batch.column(column), column, table_name)
        except SchemaError as exc:
            out.problems[column] = str(exc)
            continue
        kept = 0
        for value in values:
            part = batch.filter(pc.fill_null(pc.equal(strings, pa.scalar(value, pa.string())), False))
            if part.num_rows:
                out.segments[segment_key(column, value)] = summarize_batch(profile, part, table_name)
                kept += part.num_rows
        out.other_rows[column] = batch.num_rows - kept
    return out


def summarize_segments(
    profile: ReferenceProfile,
    batches: Iterable[pa.RecordBatch | pa.Table],
    values_by_column: Mapping[str, Sequence[str]],
    table_name: str = "current window",
) -> SegmentedSummary:
    total = SegmentedSummary()
    for batch in batches:
        total = total + summarize_segments_batch(profile, batch, values_by_column, table_name)
    return total


@dataclass(frozen=True)
class SegmentProfiles:
    """The reference split by segment: per key, a profile with the global binning and the segment's counts."""

    values_by_column: dict[str, list[str]]
    profiles: dict[str, ReferenceProfile]


def fit_segment_profiles(
    profile: ReferenceProfile,
    reference: pa.Table,
    segment_columns: Sequence[str],
    *,
    max_segments: int = DEFAULT_MAX_SEGMENTS,
) -> SegmentProfiles:
    values = {c: segment_values(reference, c, max_segments) for c in segment_columns}
    split = summarize_segments(profile, reference.to_batches(), values, table_name="reference")
    profiles = {}
    for key, summary in split.segments.items():
        columns = {
            name: ColumnProfile(col.spec, col.binning, summary.columns[name])
            for name, col in profile.columns.items()
            if name in summary.columns
        }
        profiles[key] = ReferenceProfile(columns, summary.rows, profile.psi_bins, profile.sketch_resolution)
    return SegmentProfiles(values, profiles)


@dataclass
class SegmentFinding:
    segment: str
    column: str
    adjusted_pvalue: float
    drift: ColumnDrift

    def to_dict(self) -> dict:
        return {
            "segment": self.segment,
            "column": self.column,
            "adjusted_p_value": self.adjusted_pvalue,
            "psi": self.drift.psi,
            "wasserstein_normed": self.drift.wasserstein_normed,
            "max_category_share_change": self.drift.max_category_share_change,
        }


@dataclass
class SegmentDrift:
    """Per evaluated segment, its rows and column measures; drifted (segment, column) pairs; skips."""

    rows: dict[str, int] = field(default_factory=dict)
    columns: dict[str, dict[str, ColumnDrift]] = field(default_factory=dict)
    findings: list[SegmentFinding] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return bool(self.findings)

    def to_dict(self) -> dict:
        return {
            "segments": {
                k: {"rows": self.rows[k], "columns": {c: column_entry(d) for c, d in cols.items()}}
                for k, cols in self.columns.items()
            },
            "findings": [f.to_dict() for f in self.findings],
            "skipped": self.skipped,
        }


def _skip_reason(key: str, window_rows: int, profiles: SegmentProfiles, min_rows: int) -> str | None:
    reference = profiles.profiles.get(key)
    if reference is None:
        return f"segment {key}: not in the reference"
    if window_rows < min_rows:
        return f"segment {key}: {window_rows} rows in the window, fewer than min_segment_rows={min_rows}"
    if reference.reference_rows < min_rows:
        return f"segment {key}: {reference.reference_rows} reference rows, fewer than min_segment_rows={min_rows}"
    return None


def evaluate_segments(
    profiles: SegmentProfiles,
    window: SegmentedSummary,
    rules: r.DecisionRules | None = None,
    *,
    min_segment_rows: int = DEFAULT_MIN_SEGMENT_ROWS,
) -> SegmentDrift:
    """Compare each large-enough segment with its reference segment; Holm over all (segment, feature)."""
    rules = rules or r.DecisionRules()
    out = SegmentDrift(skipped=dict(window.problems))
    tests: list[tuple[str, ColumnDrift]] = []
    for key, summary in sorted(window.segments.items()):
        reason = _skip_reason(key, summary.rows, profiles, min_segment_rows)
        if reason:
            out.skipped[key] = reason
            continue
        column = key.split("=", 1)[0]
        result = compare(profiles.profiles[key], summary, rules)
        measured = {n: c for n, c in result.columns.items() if n != column and c.role == "feature"}
        out.rows[key], out.columns[key] = summary.rows, measured
        tests += [(key, c) for c in measured.values() if c.test_pvalue is not None]
    adjusted = multiple_testing.holm_adjusted([c.test_pvalue for _, c in tests])  # type: ignore[misc]
    for (key, col), p_adj in zip(tests, adjusted, strict=True):
        if p_adj < rules.feature_alpha and col.large_effect:
            out.findings.append(SegmentFinding(key, col.name, p_adj, col))
    out.findings.sort(key=lambda f: f.adjusted_pvalue)
    return out


def segment_check(result: SegmentDrift) -> r.CheckOutcome | None:
    """``no_segment_drift``: fails naming the segment and feature; None when no segment was evaluated."""
    if not result.columns:
        return None
    first = result.findings[0] if result.findings else None
    outcome = DEFAULT_CHECKS[CHECK_NAME].outcome(
        first.column if first else None,
        first is None,
        float(len(result.findings)),
        0.0,
        segment=first.segment if first else None,
        findings=[f.to_dict() for f in result.findings[:10]],
        segments_evaluated=len(result.columns),
        segments_skipped=result.skipped,
    )
    return replace(
        outcome,
        description="No feature drifted within a segment (Holm across segments and features, and a large effect)",
    )
