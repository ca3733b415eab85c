""" "What changed", with every failed check: a short ranked text for the check metadata, the results
store, the webhook message and (through the exporter's info metric) the Prometheus alerts.

Lines come from ``stats.explain``: the multivariate sentence when that check fired, the segment
(value and feature) when a segment carries the change, then the columns that moved most (the PSI
bin that carries the largest share of the column's PSI, "txn_amount: 31% of rows above the
reference's 90th percentile, expected 10%"). Each failed check gets the lines that concern it,
at most ``MAX_LINES``.
"""

from __future__ import annotations

from drift_assets.monitoring.joint import JointResult
from drift_assets.stats import DriftResult, ReferenceProfile, WindowSummary
from drift_assets.stats import rules as r
from drift_assets.stats.explain import (
    ColumnChange,
    column_change,
    explain_domain_classifier,
    explain_reconstruction,
    ranked_column_changes,
)

MAX_LINES = 3
MAX_SEGMENT_LINES = 2
# Between the lines of one check's text (a line may itself contain "; "). One line of text, so it
# fits a Dagster description, a Prometheus label value and a chat message alike.
LINE_SEPARATOR = " | "


def _segment_lines(joint: JointResult) -> list[str]:
    if joint.segments is None or joint.segmented is None or joint.segment_profiles is None:
        return []
    lines = []
    for finding in joint.segments.findings[:MAX_SEGMENT_LINES]:
        reference = joint.segment_profiles.profiles[finding.segment].columns[finding.column]
        counts = joint.segmented.segments[finding.segment].columns[finding.column]
        change = column_change(reference, counts)
        if change is not None:
            lines.append(f"in segment {finding.segment}: {change.text}")
    return lines


def _multivariate_lines(joint: JointResult) -> list[str]:
    lines = []
    if joint.reconstruction is not None:
        lines.append(explain_reconstruction(joint.reconstruction))
    if joint.classifier is not None and joint.classifier.skipped is None:
        lines.append(explain_domain_classifier(joint.classifier))
    return [line for line in lines if line]


def _for_check(outcomes: list[r.CheckOutcome], columns: list[ColumnChange]) -> list[str]:
    """Column lines of the check's failing columns first, then the other moved columns."""
    failing = {o.column for o in outcomes if o.column}
    first = [c.text for c in columns if c.column in failing]
    return first + [c.text for c in columns if c.column not in failing]


def explain_evaluation(
    profile: ReferenceProfile, summary: WindowSummary, result: DriftResult, outcomes: list[r.CheckOutcome], joint
) -> dict:
    """``{"text", "lines", "columns", "by_check": {check: text}}``; empty when every check passed."""
    failed = [o for o in outcomes if not o.passed]
    if not failed:
        return {}
    columns = ranked_column_changes(profile, summary, result, top=MAX_LINES)
    multivariate, segments = _multivariate_lines(joint), _segment_lines(joint)
    by_check: dict[str, str] = {}
    for name in dict.fromkeys(o.name for o in failed):
        mine = [o for o in failed if o.name == name]
        if name == r.NO_MULTIVARIATE_DRIFT:
            lines = multivariate + [c.text for c in columns]
        elif name == r.NO_SEGMENT_DRIFT:
            lines = segments
        else:
            lines = _for_check(mine, columns)
        if lines:
            by_check[name] = LINE_SEPARATOR.join(lines[:MAX_LINES])
    window_lines = (multivariate + segments + [c.text for c in columns])[: MAX_LINES + 2]
    return {
        "text": "\n".join(f"- {line}" for line in window_lines),
        "lines": window_lines,
        "columns": [c.to_dict() for c in columns],
        "by_check": by_check,
    }
