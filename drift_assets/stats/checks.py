"""The check registry: one record per check, and the evaluation function of each window check.

A check is one ``CheckRule``: its name (stored by Dagster: renaming it orphans history), severity,
the measure it reads (the unit of its value and threshold), which direction is worse, the asset it
belongs to, what a monitor needs for it to apply, and a description rendered with the monitor's own
thresholds. Window checks carry an evaluation function over the window's measured columns; checks
evaluated elsewhere (the trailing baseline, labelled performance) carry none.

Adding a check = one ``CheckRule`` in ``DEFAULT_CHECKS`` (or in a table of your own, see
``CheckTable.extended``) plus its evaluation function. The Dagster check specs, the results store,
the exporter and the notifier all read the table; nothing else lists checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Literal

import numpy as np

from drift_assets.stats.result import ColumnDrift
from drift_assets.stats.rules import (
    AUC_VS_CHAMPION,
    COLUMN_NOT_ALL_MISSING,
    DRIFTED_SHARE,
    ESTIMATED_AUC_VS_CHAMPION,
    FEATURE_NO_DRIFT,
    FEATURE_PSI_ERROR,
    FEATURE_PSI_WARN,
    MISSING_RATE,
    MISSING_RATE_INCREASE,
    NO_GRADUAL_DRIFT,
    NO_MULTIVARIATE_DRIFT,
    NO_SEGMENT_DRIFT,
    PREDICTION_NO_DRIFT,
    SCHEMA_MATCHES,
    SUDDEN_RATE_CHANGE,
    SUDDEN_SHIFT,
    TARGET_PREVALENCE,
    UNSEEN_SHARE,
    CheckOutcome,
    ColumnThresholds,
    DecisionRules,
    Severity,
)

if TYPE_CHECKING:  # a type only: compare without --prediction never loads the estimator (~5 ms)
    from drift_assets.stats.performance_estimation import PerformanceEstimate

Asset = Literal["drift_report", "model_performance"]
# What a monitor must have for a check to apply (see ``MonitorConfig.capabilities``).
# "probability_prediction": the prediction is a score in [0, 1] (``prediction_kind: probability``), so its
# performance can be estimated from the scores before labels arrive.
# "gradual_columns": a numerical top feature, whose standardised mean shift the CUSUM of
# ``no_gradual_drift`` follows across windows (monitoring.gradual).
Capability = Literal[
    "prediction",
    "labels",
    "probability_prediction",
    "sudden_columns",
    "sudden_rates",
    "multivariate",
    "segments",
    "gradual_columns",
]


@dataclass(frozen=True)
class WindowFacts:
    """What a window check looks at: the measured columns and the decision rules."""

    columns: Mapping[str, ColumnDrift]
    problems: Mapping[str, str]
    rules: DecisionRules
    top_features: set[str] | None

    @property
    def features(self) -> list[ColumnDrift]:
        return [c for c in self.columns.values() if c.role == "feature"]

    @property
    def rows(self) -> int:
        """The window's rows, as its measured columns count them (valid + missing)."""
        return max((c.current_valid + c.current_missing for c in self.columns.values()), default=0)


Evaluate = Callable[["CheckRule", WindowFacts], Iterable[CheckOutcome]]


@dataclass(frozen=True)
class CheckRule:
    name: str
    severity: Severity
    # The unit of value and threshold, stated as ``value_kind`` in every outcome's details and in the
    # Dagster check metadata: "psi", "effect", "share" (a share of rows), "p_value", ...
    measure: str
    worse: Literal["higher", "lower"]
    description: str  # a template over the DecisionRules / ColumnThresholds field names
    asset: Asset = "drift_report"
    requires: tuple[Capability, ...] = ()
    evaluate: Evaluate | None = field(default=None, compare=False)

    def describe(self, rules: DecisionRules) -> str:
        """The description with the monitor's own default thresholds filled in."""
        values = {f.name: getattr(rules.defaults, f.name) for f in fields(ColumnThresholds)}
        values |= {
            f.name: getattr(rules, f.name) for f in fields(DecisionRules) if f.name not in ("defaults", "per_column")
        }
        values["drifted_share_error_pct"] = f"{rules.drifted_share_error:.0%}"
        values["missing_rate_warn_pct"] = f"{rules.defaults.missing_rate_warn:.0%}"
        return self.description.format(**values)

    def outcome(
        self, column: str | None, passed: bool, value: float, threshold: float, **details: object
    ) -> CheckOutcome:
        return CheckOutcome(
            self.name,
            column,
            passed,
            self.severity,
            float(value),
            float(threshold),
            details={"value_kind": self.measure, **{k: v for k, v in details.items() if v is not None}},
        )

    def worst(self, outcomes: Iterable[CheckOutcome]) -> CheckOutcome:
        pick = min if self.worse == "lower" else max
        return pick(outcomes, key=lambda o: o.value)


class CheckTable:
    """The checks in display order, looked up by name."""

    def __init__(self, rules: Iterable[CheckRule]):
        self.rules = tuple(rules)
        self._by_name = {rule.name: rule for rule in self.rules}
        if len(self._by_name) != len(self.rules):
            raise ValueError("check names must be unique")

    def __iter__(self) -> Iterator[CheckRule]:
        return iter(self.rules)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> CheckRule:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"unknown check {name!r}; known: {sorted(self._by_name)}") from None

    @property
    def names(self) -> list[str]:
        return [rule.name for rule in self.rules]

    def for_asset(self, asset: Asset, capabilities: Iterable[str]) -> list[CheckRule]:
        have = set(capabilities)
        return [rule for rule in self.rules if rule.asset == asset and set(rule.requires) <= have]

    def extended(self, *rules: CheckRule) -> CheckTable:
        return CheckTable((*self.rules, *rules))

    def evaluate_window(self, facts: WindowFacts) -> list[CheckOutcome]:
        return [o for rule in self.rules if rule.evaluate is not None for o in rule.evaluate(rule, facts)]


# ------------------------------------------------------------------------------------------------
# Evaluation functions of the window checks (one per rule)
# ------------------------------------------------------------------------------------------------


def _top_feature_psi(
    rule: CheckRule, facts: WindowFacts, threshold_of: Callable[[ColumnThresholds], float]
) -> list[CheckOutcome]:
    out = []
    for col in facts.features:
        if col.psi is None or (facts.top_features is not None and col.name not in facts.top_features):
            continue
        configured = threshold_of(facts.rules.for_column(col.name))
        # PSI is biased upward on small samples (stats.psi.expected_noise): the threshold is the
        # configured one plus the PSI a stationary window of this size shows on average (+0.09 at
        # 100 rows and 10 bins, +0.009 at 1,000). A PSI above it that the test does not find
        # significant is not a failure either.
        threshold = configured + (col.psi_noise or 0.0)
        passed = col.psi <= threshold or not col.significant
        out.append(
            rule.outcome(
                col.name,
                passed,
                col.psi,
                threshold,
                psi_bins=col.psi_bins,
                configured_threshold=configured,
                psi_noise=col.psi_noise,
                significant=col.significant,
                top_bins=format_top_bins(col),
            )
        )
    return out


def format_top_bins(col: ColumnDrift) -> str | None:
    """The bins carrying the PSI, e.g. ``"x: 7.5% -> 0.0% (+0.496); b: 42.5% -> 45.0% (+0.001)"``."""
    if not col.psi_bins_detail:
        return None
    return "; ".join(
        f"{b['bin']}: {b['reference_share']:.1%} -> {b['current_share']:.1%} (+{b['contribution']:.3f})"
        for b in col.psi_bins_detail
    )


def evaluate_psi_warn(rule: CheckRule, facts: WindowFacts) -> list[CheckOutcome]:
    return _top_feature_psi(rule, facts, lambda t: t.psi_warn)


def evaluate_psi_error(rule: CheckRule, facts: WindowFacts) -> list[CheckOutcome]:
    return _top_feature_psi(rule, facts, lambda t: t.psi_error)


def effect_of(col: ColumnDrift, t: ColumnThresholds) -> tuple[float, float, dict]:
    """The effect the drift decision looked at, for the check's value/threshold fields."""
    if col.kind == "numerical" and col.wasserstein_normed is not None:
        value, threshold, name = col.wasserstein_normed, t.min_wasserstein_normed, "wasserstein_normed"
    elif col.kind == "numerical" and col.out_of_range_share is not None:
        # Zero-variance reference: the share of values off its single value.
        value, threshold, name = col.out_of_range_share, t.min_out_of_range_share, "out_of_range_share"
    elif col.kind == "categorical":
        value, threshold, name = (
            col.max_category_share_change or 0.0,
            t.min_category_share_change,
            "max_category_share_change",
        )
    else:
        value, threshold, name = col.psi or 0.0, t.min_psi_effect, "psi"
    return (
        value,
        threshold,
        {
            "effect": name,
            "psi": col.psi,
            "min_psi_effect": t.min_psi_effect,
            "p_value": col.pvalue,
            "adjusted_p_value": col.adjusted_pvalue,
        },
    )


def evaluate_feature_drift(rule: CheckRule, facts: WindowFacts) -> list[CheckOutcome]:
    out = []
    for col in facts.features:
        if col.psi is None:
            continue
        value, threshold, details = effect_of(col, facts.rules.for_column(col.name))
        out.append(
            rule.outcome(
                col.name,
                not col.drifted,
                value,
                threshold,
                alpha=facts.rules.alpha_for(facts.rules.feature_alpha, facts.rows),
                **details,
            )
        )
    return out


def evaluate_drifted_share(rule: CheckRule, facts: WindowFacts) -> list[CheckOutcome]:
    measured = [c for c in facts.features if c.problem is None]
    drifted = [c.name for c in measured if c.drifted]
    share = len(drifted) / len(measured) if measured else 0.0
    limit = facts.rules.drifted_share_error
    return [rule.outcome(None, share < limit, share, limit, drifted_features=drifted)]


def evaluate_prediction_drift(rule: CheckRule, facts: WindowFacts) -> list[CheckOutcome]:
    out = []
    for col in facts.columns.values():
        if col.role == "prediction" and col.psi is None:
            # No prediction value at all (every row null/NaN): the model's output cannot be watched,
            # which is an ERROR of this check rather than a check that silently disappears.
            reason = col.problem or f"column {col.name!r} has no non-missing values in this window"
            out.append(rule.outcome(col.name, False, 0.0, facts.rules.prediction_alpha, reason=reason))
        elif col.role == "prediction":
            value, threshold, details = effect_of(col, facts.rules.for_column(col.name))
            pvalue = col.pvalue if col.pvalue is not None else 1.0
            out.append(
                rule.outcome(
                    col.name,
                    not col.drifted,
                    pvalue,
                    facts.rules.alpha_for(facts.rules.prediction_alpha, facts.rows),  # as decided
                    effect_value=value,
                    effect_threshold=threshold,
                    **details,
                )
            )
    return out


def evaluate_missing_rate(rule: CheckRule, facts: WindowFacts) -> list[CheckOutcome]:
    out = []
    for col in facts.columns.values():
        if col.role in ("feature", "prediction"):
            limit = facts.rules.for_column(col.name).missing_rate_warn
            out.append(
                rule.outcome(
                    col.name,
                    col.missing_rate <= limit,
                    col.missing_rate,
                    limit,
                    reference_missing_rate=col.reference_missing_rate,
                )
            )
    return out


def evaluate_missing_rate_increase(rule: CheckRule, facts: WindowFacts) -> list[CheckOutcome]:
    out = []
    for col in facts.columns.values():
        if col.role in ("feature", "prediction") and col.missing_rate_pvalue is not None:
            t = facts.rules.for_column(col.name)
            change = col.missing_rate - col.reference_missing_rate
            alpha = facts.rules.missing_rate_alpha
            failed = col.missing_rate_pvalue < alpha and change >= t.missing_rate_min_increase
            out.append(
                rule.outcome(
                    col.name,
                    not failed,
                    change,
                    t.missing_rate_min_increase,
                    missing_rate=col.missing_rate,
                    reference_missing_rate=col.reference_missing_rate,
                    p_value=col.missing_rate_pvalue,
                    alpha=alpha,
                )
            )
    return out


def evaluate_not_all_missing(rule: CheckRule, facts: WindowFacts) -> list[CheckOutcome]:
    return [
        rule.outcome(col.name, col.current_valid > 0, col.missing_rate, 1.0, problem=col.problem)
        for col in facts.columns.values()
        if col.role in ("feature", "prediction")
    ]


def evaluate_unseen_share(rule: CheckRule, facts: WindowFacts) -> list[CheckOutcome]:
    out = []
    for col in facts.columns.values():
        if col.unseen_share is not None and col.role in ("feature", "prediction"):
            limit = facts.rules.for_column(col.name).unseen_share_warn
            listed = sorted(col.unseen_values, key=lambda v: (-col.unseen_values[v], v))[:5]
            out.append(
                rule.outcome(
                    col.name,
                    col.unseen_share <= limit,
                    col.unseen_share,
                    limit,
                    unseen_count=col.unseen_count,
                    unseen_values=", ".join(listed) or None,
                )
            )
    return out


def evaluate_target_prevalence(rule: CheckRule, facts: WindowFacts) -> list[CheckOutcome]:
    """Label drift: a class share moved (KS distance of a 0/1 label = the prevalence change)."""
    out = []
    for col in facts.columns.values():
        if col.role != "target" or col.psi is None:
            continue
        t = facts.rules.for_column(col.name)
        change = col.ks_statistic if col.kind == "numerical" else col.max_category_share_change
        pvalue = col.test_pvalue if col.test_pvalue is not None else 1.0
        failed = pvalue < facts.rules.target_alpha and (change or 0.0) >= t.min_prevalence_change
        out.append(
            rule.outcome(
                col.name,
                not failed,
                change or 0.0,
                t.min_prevalence_change,
                p_value=pvalue,
                alpha=facts.rules.target_alpha,
                current_mean=col.current_mean,
                reference_mean=col.reference_mean,
            )
        )
    return out


def evaluate_schema(rule: CheckRule, facts: WindowFacts) -> list[CheckOutcome]:
    return [rule.outcome(column, False, 1.0, 0.0, reason=reason) for column, reason in facts.problems.items()]


# ------------------------------------------------------------------------------------------------
# The table (display order). The design document's matrix, plus schema and trailing-baseline checks.
# ------------------------------------------------------------------------------------------------

DEFAULT_CHECKS = CheckTable(
    [
        CheckRule(
            FEATURE_PSI_WARN,
            "WARN",
            "psi",
            "higher",
            "PSI of every top feature is at most the warn threshold ({psi_warn:g}): moderate shift, investigate",
            evaluate=evaluate_psi_warn,
        ),
        CheckRule(
            FEATURE_PSI_ERROR,
            "ERROR",
            "psi",
            "higher",
            "PSI of every top feature is at most the retrain threshold ({psi_error:g}): severe shift triggers "
            "retraining",
            evaluate=evaluate_psi_error,
        ),
        CheckRule(
            FEATURE_NO_DRIFT,
            "WARN",
            "effect",
            "higher",
            "No feature shifted both significantly (Holm-adjusted, alpha {feature_alpha:g}) and by more than the"
            " minimum effect size",
            evaluate=evaluate_feature_drift,
        ),
        CheckRule(
            DRIFTED_SHARE,
            "ERROR",
            "share",
            "higher",
            "Fewer than {drifted_share_error_pct} of the features drifted",
            evaluate=evaluate_drifted_share,
        ),
        CheckRule(
            PREDICTION_NO_DRIFT,
            "ERROR",
            "p_value",
            "lower",
            "The prediction distribution did not shift (KS/chi-square p >= {prediction_alpha:g} or effect below"
            " minimum)",
            requires=("prediction",),
            evaluate=evaluate_prediction_drift,
        ),
        CheckRule(
            MISSING_RATE,
            "WARN",
            "missing_rate",
            "higher",
            "Missing rate of every monitored column is at most {missing_rate_warn_pct}, whatever the reference's"
            " (an absolute ceiling; set missing_rate_warn to 1 for a column that is often missing)",
            evaluate=evaluate_missing_rate,
        ),
        CheckRule(
            MISSING_RATE_INCREASE,
            "WARN",
            "share",
            "higher",
            "No monitored column's missing rate rose over the reference's by {missing_rate_min_increase:g} or more"
            " (absolute) with one-sided Fisher p < {missing_rate_alpha:g}",
            evaluate=evaluate_missing_rate_increase,
        ),
        CheckRule(
            COLUMN_NOT_ALL_MISSING,
            "ERROR",
            "share",
            "higher",
            "Every feature and the prediction has non-missing values in the window (100% missing = a broken"
            " upstream pipeline)",
            evaluate=evaluate_not_all_missing,
        ),
        CheckRule(
            UNSEEN_SHARE,
            "WARN",
            "share",
            "higher",
            "At most {unseen_share_warn:g} of a categorical column's values are categories unseen in the reference",
            evaluate=evaluate_unseen_share,
        ),
        CheckRule(
            SCHEMA_MATCHES,
            "ERROR",
            "problem",
            "higher",
            "Every profiled column is present with the reference's type",
            evaluate=evaluate_schema,
        ),
        # Against the trailing baseline (the previous N windows), evaluated by monitoring.trailing_baseline.
        CheckRule(
            SUDDEN_SHIFT,
            "ERROR",
            "psi",
            "higher",
            "No monitored distribution (e.g. output length) jumped against the trailing baseline of recent windows",
            requires=("sudden_columns",),
        ),
        CheckRule(
            SUDDEN_RATE_CHANGE,
            "ERROR",
            "rate_change",
            "higher",
            "No monitored rate (e.g. refusals) changed against the trailing baseline (Fisher exact p and a minimum"
            " absolute change)",
            requires=("sudden_rates",),
        ),
        # Across windows: a CUSUM of each numerical top feature's standardised mean shift, read from the
        # stored results of earlier windows (monitoring.gradual). WARN: a trend to investigate before
        # any single window moves far enough for the per-window checks.
        CheckRule(
            NO_GRADUAL_DRIFT,
            "WARN",
            "cusum",
            "higher",
            "No top feature's mean drifts slowly away from the reference across windows (two-sided CUSUM of the"
            " standardised mean shift, allowance 0.5, threshold calibrated to >= 200 windows between false alarms)",
            requires=("gradual_columns",),
        ),
        # Joint distribution and segments, evaluated by monitoring.evaluation in the same streaming pass
        # (stats.multivariate, stats.domain_classifier, stats.segments). ERROR: a changed joint
        # distribution is a change of the model's input as real as a marginal one.
        CheckRule(
            NO_MULTIVARIATE_DRIFT,
            "ERROR",
            "reconstruction_error",
            "higher",
            "The joint distribution of the features did not change: mean PCA reconstruction error within the"
            " reference's own range (and, when enabled, a domain classifier cannot tell window from reference)",
            requires=("multivariate",),
        ),
        # WARN, like features_have_no_significant_drift: a change confined to one segment is a
        # minority of traffic and one of up to 20 x segment columns x features tests; it names the
        # segment for an operator to investigate but neither pages nor triggers retraining by itself
        # (add it to retraining.on_checks or raise it in a CheckTable of your own to change that).
        CheckRule(
            NO_SEGMENT_DRIFT,
            "WARN",
            "drifted_pairs",
            "higher",
            "No feature drifted within a segment (Holm across segments and features, alpha {feature_alpha:g},"
            " and a large effect)",
            requires=("segments",),
        ),
        # On labelled production rows, evaluated by ``auc_check`` once labels arrive.
        CheckRule(
            AUC_VS_CHAMPION,
            "ERROR",
            "auc_delta",
            "lower",
            "AUC on labelled production rows is no more than {auc_drop_error:g} below the champion's reference AUC",
            asset="model_performance",
            requires=("prediction", "labels"),
        ),
        # From the window's scores alone (every window, labels or not), evaluated by ``estimated_auc_check``.
        CheckRule(
            ESTIMATED_AUC_VS_CHAMPION,
            "ERROR",
            "auc",
            "lower",
            "The upper bound of the AUC estimated from calibrated scores (before labels arrive) is no more than"
            " {auc_drop_error:g} below the champion's reference AUC",
            asset="model_performance",
            requires=("prediction", "labels", "probability_prediction"),
        ),
        CheckRule(
            TARGET_PREVALENCE,
            "ERROR",
            "share",
            "higher",
            "When labels are in the window: no class share of the target moved by {min_prevalence_change:g} or"
            " more with p < {target_alpha:g} (label drift)",
            # In a monitor, on the labelled rows once they cover the window (``target_prevalence_check``,
            # where model_performance joins the labels: skipped while labels are pending). ``compare
            # --target`` evaluates it on a window that carries its target column.
            asset="model_performance",
            requires=("labels",),
            evaluate=evaluate_target_prevalence,
        ),
    ]
)


def auc_check(
    current_auc: float, champion_auc: float, rules: DecisionRules, table: CheckTable = DEFAULT_CHECKS
) -> CheckOutcome:
    """The seed's 'AUC vs champion < -0.02 -> immediate retraining' rule."""
    rule = table[AUC_VS_CHAMPION]
    delta = current_auc - champion_auc
    return CheckOutcome(
        rule.name,
        None,
        passed=delta >= -rules.auc_drop_error,
        severity=rule.severity,
        value=delta,
        threshold=-rules.auc_drop_error,
        description=rule.describe(rules),
        details={"current_auc": current_auc, "champion_auc": champion_auc},
    )


def target_prevalence_check(
    column: str,
    positives: int,
    labelled: int,
    reference_positives: int,
    reference_rows: int,
    rules: DecisionRules | None = None,
    table: CheckTable = DEFAULT_CHECKS,
) -> CheckOutcome:
    """Label drift on a window's labelled rows against the reference's labels (0/1 target): the
    prevalence moved by ``min_prevalence_change`` or more with a chi-square homogeneity p below
    ``target_alpha`` (the test ``compare`` runs on a categorical target)."""
    from drift_assets.stats.chi_square import chi2_homogeneity_pvalue

    rules = rules or DecisionRules()
    rule = table[TARGET_PREVALENCE]
    t = rules.for_column(column)
    current = positives / labelled if labelled else 0.0
    reference = reference_positives / reference_rows if reference_rows else 0.0
    pvalue = chi2_homogeneity_pvalue(
        np.array([reference_rows - reference_positives, reference_positives]),
        np.array([labelled - positives, positives]),
    )
    change = abs(current - reference)
    failed = pvalue < rules.target_alpha and change >= t.min_prevalence_change
    return rule.outcome(
        column,
        not failed,
        change,
        t.min_prevalence_change,
        p_value=pvalue,
        alpha=rules.target_alpha,
        current_mean=current,
        reference_mean=reference,
        labelled_rows=labelled,
    )


def estimated_auc_check(
    estimate: PerformanceEstimate,
    champion_auc: float,
    rules: DecisionRules | None = None,
    table: CheckTable = DEFAULT_CHECKS,
) -> CheckOutcome:
    """ERROR when even the band's upper bound is more than ``auc_drop_error`` below the champion.

    Using the upper bound makes the check fail only when the drop is beyond the window's noise; an
    AUC that cannot be estimated (no expected positive) passes, with ``estimable: False``.
    """
    rules = rules or DecisionRules()
    rule = table[ESTIMATED_AUC_VS_CHAMPION]
    auc = estimate.roc_auc
    threshold = champion_auc - rules.auc_drop_error
    estimable = math.isfinite(auc.upper)
    return CheckOutcome(
        rule.name,
        None,
        passed=(auc.upper >= threshold) if estimable else True,
        severity=rule.severity,
        value=auc.upper,
        threshold=threshold,
        description=rule.describe(rules),
        details={
            "estimated_auc": auc.value,
            "lower": auc.lower,
            "upper": auc.upper,
            "champion_auc": champion_auc,
            "auc_drop_error": rules.auc_drop_error,
            "rows": estimate.rows,
            "estimable": estimable,
        },
    )


__all__ = [
    "DEFAULT_CHECKS",
    "CheckRule",
    "CheckTable",
    "WindowFacts",
    "auc_check",
    "estimated_auc_check",
    "target_prevalence_check",
]
