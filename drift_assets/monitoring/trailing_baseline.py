"""Sudden change: a window against the trailing baseline of its recent predecessors.

A fixed reference answers "has the model's world moved?"; a slow trend eventually says yes, which is
worth a warning but not a page. The trailing baseline answers "did something just happen?": the
previous N windows (24 hours for an hourly monitor) are merged into one baseline in the same binning
as the reference profile, and the window is compared with it. Pure functions, no Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drift_assets.monitoring.config import SuddenChangeConfig
from drift_assets.stats import DecisionRules, ReferenceProfile, WindowSummary, compare
from drift_assets.stats import rules as r
from drift_assets.stats.binning import CategoricalBinning
from drift_assets.stats.checks import DEFAULT_CHECKS, CheckTable
from drift_assets.stats.profile import ColumnProfile
from drift_assets.stats.rates import rate_change
from drift_assets.stats.summary import CategoricalCounts


@dataclass
class SuddenChangeResult:
    outcomes: list[r.CheckOutcome] = field(default_factory=list)
    measures: dict[str, float] = field(default_factory=dict)
    skipped: str | None = None


def yes_count(profile: ReferenceProfile, column: str, counts: CategoricalCounts) -> int:
    binning = profile.columns[column].binning
    assert isinstance(binning, CategoricalBinning)  # categorical counts are counted in a vocabulary
    vocabulary = binning.vocabulary
    if "yes" in vocabulary:
        return int(counts.counts[vocabulary.index("yes")])
    return int(counts.unseen_values.get("yes", 0))


def baseline_profile(profile: ReferenceProfile, baseline: WindowSummary, columns: tuple[str, ...]) -> ReferenceProfile:
    """The reference profile's binning with the baseline's counts in place of the reference's."""
    return ReferenceProfile(
        columns={
            c: ColumnProfile(profile.columns[c].spec, profile.columns[c].binning, baseline.columns[c])
            for c in columns
            if c in baseline.columns
        },
        reference_rows=baseline.rows,
        psi_bins=profile.psi_bins,
        sketch_resolution=profile.sketch_resolution,
    )


def evaluate_sudden_change(
    profile: ReferenceProfile,
    current: WindowSummary,
    baseline: WindowSummary,
    config: SuddenChangeConfig,
    rules: DecisionRules,
    checks: CheckTable = DEFAULT_CHECKS,
) -> SuddenChangeResult:
    out = SuddenChangeResult()
    if baseline.rows < config.min_rows or current.rows < config.min_rows:
        out.skipped = (
            f"not judged: {current.rows} rows in the window, {baseline.rows} in the baseline "
            f"(minimum {config.min_rows})"
        )
        return out
    if config.columns:
        base = baseline_profile(profile, baseline, config.columns)
        window = WindowSummary(current.rows, {c: current.columns[c] for c in base.columns if c in current.columns})
        result = compare(base, window, rules, check_table=checks)
        for name, col in result.columns.items():
            if col.psi is None:
                continue
            out.measures[f"{name}_psi_recent"] = col.psi
            out.outcomes.append(
                r.CheckOutcome(
                    r.SUDDEN_SHIFT,
                    name,
                    passed=not (col.drifted and col.psi > config.psi),
                    severity=checks[r.SUDDEN_SHIFT].severity,
                    value=col.psi,
                    threshold=config.psi,
                    details={"p_value": col.pvalue, "baseline_rows": baseline.rows, "drifted_vs_baseline": col.drifted},
                )
            )
    for name in config.rates:
        cur, base_counts = current.columns.get(name), baseline.columns.get(name)
        if (
            not isinstance(cur, CategoricalCounts)
            or not isinstance(base_counts, CategoricalCounts)
            or not cur.valid
            or not base_counts.valid
        ):
            continue
        change = rate_change(
            yes_count(profile, name, cur), cur.valid, yes_count(profile, name, base_counts), base_counts.valid
        )
        out.measures[f"{name}_rate_baseline"] = change.baseline_rate
        # Only the configured direction is an incident: refusals falling back to normal after a
        # spike (a baseline still holding the spike) must not page.
        in_direction = config.rate_direction == "both" or (change.change > 0) == (config.rate_direction == "increase")
        out.outcomes.append(
            r.CheckOutcome(
                r.SUDDEN_RATE_CHANGE,
                name,
                passed=not (in_direction and change.is_incident(config.rate_alpha, config.min_rate_change)),
                severity=checks[r.SUDDEN_RATE_CHANGE].severity,
                value=abs(change.change),
                threshold=config.min_rate_change,
                details={
                    "p_value": change.pvalue,
                    "current_rate": change.current_rate,
                    "baseline_rate": change.baseline_rate,
                    "alpha": config.rate_alpha,
                    "direction": config.rate_direction,
                },
            )
        )
    return out
