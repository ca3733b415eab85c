"""Performance estimation (CBPE) before labels arrive: calibration, expected metrics, bands, merging.

Independent computations used as the truth: scikit-learn's IsotonicRegression, roc_auc_score and
confusion_matrix; hand-computed confusion counts; a brute-force pairwise expectation of the AUC; and
seeded simulations from a model whose true P(fraud | score) is known
(``drift_assets.simulate.calibrated_scores``: miscalibrated scores, covariate shift that leaves
P(fraud | score) unchanged).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import confusion_matrix, roc_auc_score

from drift_assets.simulate.calibrated_scores import FRAUD_1_PERCENT, FRAUD_2_PERCENT, random_covariate_shift
from drift_assets.stats.calibration import CalibrationMap, pool_adjacent_violators
from drift_assets.stats.checks import estimated_auc_check
from drift_assets.stats.errors import EmptyWindowError, ProfileError, SchemaError
from drift_assets.stats.performance_estimation import (
    ESTIMATED_AUC_VS_CHAMPION,
    MetricEstimate,
    PerformanceEstimate,
    PerformanceEstimator,
    PerformanceInputError,
    ScoreCounts,
    count_batch,
    count_scores,
    count_window,
    estimate_performance,
    fit_performance_estimator,
    realized_performance,
)
from drift_assets.stats.profile import ColumnSpec, fit_profile
from drift_assets.stats.rules import DecisionRules
from drift_assets.stats.summary import WindowSummary, summarize

NO_SHIFT = (np.zeros(3), np.ones(3))
# Tests that re-estimate hundreds of windows use fewer Monte Carlo draws than the default 2,000.
SIMULATION_DRAWS = 1000


def fraud_like(rng: np.random.Generator, rows: int, mean=None, scale=None, model=FRAUD_1_PERCENT):
    return model.sample(rng, rows, mean, scale)


def fit_on_reference(model=FRAUD_1_PERCENT, rows: int = 200_000, seed: int = 20260101) -> PerformanceEstimator:
    scores, target = fraud_like(np.random.default_rng(seed), rows, model=model)
    reference = pa.table({"fraud_score": scores, "is_fraud": target})
    return fit_performance_estimator(reference, score_column="fraud_score", target_column="is_fraud")


@pytest.fixture(scope="module")
def estimator() -> PerformanceEstimator:
    return fit_on_reference()


def identity_calibrated(estimator: PerformanceEstimator) -> PerformanceEstimator:
    """Same grid, calibration p = score: expected counts become hand-computable sums of scores."""
    return dataclasses.replace(estimator, calibration=CalibrationMap(np.array([0.0, 1.0]), np.array([0.0, 1.0])))


def brute_force_expected_auc(scores: np.ndarray, p: np.ndarray) -> float:
    """sum over ordered pairs i != j of p_i (1 - p_j) [s_i > s_j, 1/2 if tied] / sum of p_i (1 - p_j)."""
    weight = p[:, None] * (1.0 - p[None, :])
    np.fill_diagonal(weight, 0.0)
    above = (scores[:, None] > scores[None, :]) + 0.5 * (scores[:, None] == scores[None, :])
    return float((weight * above).sum() / weight.sum())


def sorted_expected_auc(scores: np.ndarray, p: np.ndarray) -> float:
    """Exact expected AUC for distinct scores in O(n log n): no binning at all."""
    p = p[np.argsort(scores)]
    negatives_below = np.cumsum(1.0 - p) - (1.0 - p)
    pairs = p.sum() * (1.0 - p).sum() - (p * (1.0 - p)).sum()
    return float((p * negatives_below).sum() / pairs)


# --------------------------------------------------------------------------- calibration


def test_pool_adjacent_violators_matches_sklearn_isotonic_regression():
    rng = np.random.default_rng(3)
    values = np.sort(rng.random(400)) + rng.normal(0, 0.3, 400)
    weights = rng.integers(1, 50, 400).astype(float)
    starts, block_weights, fitted = pool_adjacent_violators(values, weights)
    ours = np.repeat(fitted, np.diff(np.append(starts, len(values))))
    theirs = IsotonicRegression().fit(np.arange(400), values, sample_weight=weights).predict(np.arange(400))
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    assert block_weights.sum() == pytest.approx(weights.sum())
    assert np.all(np.diff(fitted) > 0)  # ties are pooled: strictly increasing blocks


def test_calibration_recovers_the_true_probability_and_improves_brier(estimator):
    quality = estimator.quality
    assert quality["brier_score_calibrated"] < quality["brier_score_raw"]
    # Where the reference has mass (score deciles 2..9) the map is close to the truth.
    scores = np.linspace(0.003, 0.05, 50)
    truth = FRAUD_1_PERCENT.true_probability(scores)
    np.testing.assert_allclose(estimator.calibration(scores), truth, rtol=0.25, atol=0.002)
    deciles = quality["reliability_by_decile"]
    assert [d["decile"] for d in deciles] == list(range(1, 11))
    assert sum(d["rows"] for d in deciles) == quality["reference_rows"]
    for decile in deciles:
        # In-sample isotonic: calibrated mean matches the observed rate within the decile's noise.
        noise = 3 * np.sqrt(max(decile["observed_rate"], 1e-4) / decile["rows"])
        assert abs(decile["mean_calibrated"] - decile["observed_rate"]) < noise + 1e-3
        # The raw score over-states fraud at the low end: calibration has something to correct.
    assert deciles[0]["mean_score"] > 2 * deciles[0]["observed_rate"]


def test_champion_auc_is_the_reference_roc_auc(estimator):
    scores, target = fraud_like(np.random.default_rng(20260101), 200_000)
    assert estimator.champion_auc == pytest.approx(roc_auc_score(target, scores), abs=1e-12)


# --------------------------------------------------------------------------- expected metrics


def test_expected_confusion_matrix_matches_hand_computed_counts(estimator):
    est = identity_calibrated(estimator)
    scores = np.array([0.1, 0.2, 0.6, 0.9, 0.5, 0.05])  # 0.5 sits on the threshold: predicted positive
    estimate = estimate_performance(est, count_scores(est, scores), draws=200)
    tp, fp = 0.6 + 0.9 + 0.5, 3 - (0.6 + 0.9 + 0.5)
    fn, tn = 0.1 + 0.2 + 0.05, 3 - (0.1 + 0.2 + 0.05)
    # Sums are kept in fixed point (2^-32 per row): equal to 1e-9, not to the last bit.
    assert estimate.confusion == pytest.approx({"tp": tp, "fp": fp, "fn": fn, "tn": tn}, abs=1e-9)
    m = {name: e.value for name, e in estimate.metrics.items()}
    assert m["precision"] == pytest.approx(tp / 3)
    assert m["recall"] == pytest.approx(tp / (tp + fn))
    assert m["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert m["accuracy"] == pytest.approx((tp + tn) / 6)
    assert estimate.expected_positives == pytest.approx(scores.sum())


def test_expected_confusion_with_fitted_calibration_matches_per_row_sums(estimator):
    scores, _ = fraud_like(np.random.default_rng(11), 5000)
    scores[:5] = [0.5, 0.51, 0.7, 0.93, 0.499]  # make sure some rows are predicted positive
    p = estimator.calibration(scores)
    estimate = estimate_performance(estimator, count_scores(estimator, scores), draws=200)
    above = scores >= 0.5
    expected = {"tp": p[above].sum(), "fp": (1 - p[above]).sum(), "fn": p[~above].sum(), "tn": (1 - p[~above]).sum()}
    assert estimate.confusion == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_expected_auc_equals_brute_force_pairwise_expectation_when_scores_are_on_the_grid(estimator):
    # Scores at bin midpoints, with ties: binning is exact, so the two agree up to the fixed-point
    # rounding of the sums (1e-10 per row).
    rng = np.random.default_rng(5)
    midpoints = (estimator.edges[:-1] + estimator.edges[1:]) / 2
    scores = rng.choice(midpoints[::7], size=400)
    estimate = estimate_performance(estimator, count_scores(estimator, scores), draws=200)
    p = estimator.calibration(scores)
    assert estimate.roc_auc.value == pytest.approx(brute_force_expected_auc(scores, p), abs=1e-9)


def test_expected_auc_on_continuous_scores_is_within_the_binning_error(estimator):
    scores, _ = fraud_like(np.random.default_rng(6), 600)
    p = estimator.calibration(scores)
    estimate = estimate_performance(estimator, count_scores(estimator, scores), draws=200)
    exact = brute_force_expected_auc(scores, p)
    assert sorted_expected_auc(scores, p) == pytest.approx(exact, abs=1e-12)
    assert abs(estimate.roc_auc.value - exact) < 1e-3


def test_binning_costs_less_than_1e_5_auc_on_a_million_rows(estimator):
    scores, target = fraud_like(np.random.default_rng(8), 1_000_000)
    counts = count_scores(estimator, scores, target.astype(float))
    estimate = estimate_performance(estimator, counts, draws=200)
    exact = sorted_expected_auc(scores, estimator.calibration(scores))
    binning_error = abs(estimate.roc_auc.value - exact)
    realized = realized_performance(estimator, counts)
    realized_binning_error = abs(realized.metrics["roc_auc"] - roc_auc_score(target, scores))
    print(f"binning error: expected AUC {binning_error:.2e}, realized AUC {realized_binning_error:.2e}")
    assert binning_error < 1e-5
    assert realized_binning_error < 1e-5


def test_expected_auc_is_the_mean_of_realized_auc_over_label_draws(estimator):
    rng = np.random.default_rng(9)
    scores, _ = fraud_like(rng, 20_000)
    p = estimator.calibration(scores)
    realized = [roc_auc_score(rng.random(p.size) < p, scores) for _ in range(300)]
    estimate = estimate_performance(estimator, count_scores(estimator, scores), calibration_uncertainty=False)
    standard_error = np.std(realized) / np.sqrt(len(realized))
    assert abs(estimate.roc_auc.value - np.mean(realized)) < 4 * standard_error
    # The label-noise band holds ~95% of the label draws (band from independent Monte Carlo draws).
    inside = np.mean([estimate.roc_auc.lower <= r <= estimate.roc_auc.upper for r in realized])
    assert 0.90 <= inside <= 0.99


def test_band_is_wide_when_few_frauds_are_expected(estimator):
    small = estimate_performance(estimator, count_scores(estimator, fraud_like(np.random.default_rng(1), 1000)[0]))
    large = estimate_performance(estimator, count_scores(estimator, fraud_like(np.random.default_rng(1), 100_000)[0]))
    width_small = small.roc_auc.upper - small.roc_auc.lower
    width_large = large.roc_auc.upper - large.roc_auc.lower
    assert small.expected_positives < 20
    assert width_small > 0.15  # ~13 expected frauds: the AUC is barely known
    assert width_small > 5 * width_large
    assert small.roc_auc.lower <= small.roc_auc.value <= small.roc_auc.upper


def test_realized_performance_matches_sklearn(estimator):
    rng = np.random.default_rng(12)
    scores, target = fraud_like(rng, 50_000)
    scores[:40] = rng.uniform(0.5, 1.0, 40)  # some predicted positives
    counts = count_scores(estimator, scores, target.astype(float))
    realized = realized_performance(estimator, counts)
    tn, fp, fn, tp = confusion_matrix(target, scores >= 0.5).ravel()
    assert realized.confusion == {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    assert realized.metrics["roc_auc"] == pytest.approx(roc_auc_score(target, scores), abs=2e-4)
    assert realized_performance(estimator, count_scores(estimator, scores)) is None


# --------------------------------------------------------------------------- merging and JSON


def test_daily_counts_add_up_to_the_week(estimator):
    scores, target = fraud_like(np.random.default_rng(13), 70_000)
    days = np.array_split(np.arange(scores.size), 7)
    week = count_scores(estimator, scores, target.astype(float))
    parts = [count_scores(estimator, scores[d], target[d].astype(float)) for d in days]
    merged = sum(parts[1:], parts[0])
    # Fixed-point sums: the merge is exact, not just close, so the seeded band is identical too.
    assert merged.to_dict() == week.to_dict()
    assert estimate_performance(estimator, merged).to_dict() == estimate_performance(estimator, week).to_dict()
    np.testing.assert_allclose(week.probability_sums.sum(), estimator.calibration(scores).sum(), rtol=1e-9)


def test_streamed_record_batches_equal_the_whole_table(estimator):
    scores, target = fraud_like(np.random.default_rng(14), 30_000)
    scores[::97] = np.nan  # missing scores are counted, not binned
    table = pa.table({"fraud_score": scores, "is_fraud": target, "other": np.arange(scores.size)})
    streamed = count_window(estimator, table.to_batches(max_chunksize=4096))
    whole = count_batch(estimator, table)
    np.testing.assert_array_equal(streamed.rows, whole.rows)
    np.testing.assert_array_equal(streamed.labelled_positives, whole.labelled_positives)
    np.testing.assert_array_equal(streamed.probability_sums_fixed, whole.probability_sums_fixed)
    assert streamed.missing_scores == whole.missing_scores == len(scores[::97])
    assert streamed.total_rows == scores.size - streamed.missing_scores


def test_counts_from_different_estimators_do_not_add(estimator):
    other = dataclasses.replace(estimator, threshold=0.3)
    with pytest.raises(ValueError, match="different performance estimators"):
        ScoreCounts.empty(estimator) + ScoreCounts.empty(other)
    with pytest.raises(ValueError, match="different performance estimator"):
        estimate_performance(other, count_scores(estimator, np.array([0.1, 0.2])))


def test_estimator_and_counts_round_trip_through_json(estimator):
    loaded = PerformanceEstimator.from_json(estimator.to_json())
    assert loaded.to_dict() == estimator.to_dict()
    assert loaded.fingerprint == estimator.fingerprint
    scores, target = fraud_like(np.random.default_rng(15), 10_000)
    counts = count_scores(estimator, scores, target.astype(float))
    counts_again = ScoreCounts.from_dict(json.loads(json.dumps(counts.to_dict())))
    # The loaded estimator rebuilds the same bootstrap maps from the stored histogram and seed.
    assert estimate_performance(loaded, counts_again).to_dict() == estimate_performance(estimator, counts).to_dict()
    data = estimator.to_dict()
    assert data["format_version"] == 1 and data["calibration"]["method"] == "centered_isotonic"
    with pytest.raises(ProfileError, match="format_version 99"):
        PerformanceEstimator.from_dict({**data, "format_version": 99})
    with pytest.raises(ProfileError, match="not a performance estimator"):
        PerformanceEstimator.from_dict({**data, "format": "drift_assets.reference_profile"})
    with pytest.raises(ProfileError, match="not valid JSON"):
        PerformanceEstimator.from_json("{")


def test_estimate_to_dict_has_the_compare_shape(estimator):
    estimate = estimate_performance(estimator, count_scores(estimator, fraud_like(np.random.default_rng(2), 5000)[0]))
    out = json.loads(json.dumps(estimate.to_dict(), allow_nan=False))
    for key in ("roc_auc", "lower", "upper", "precision", "recall", "f1", "accuracy", "threshold", "method"):
        assert key in out
    assert out["lower"] <= out["roc_auc"] <= out["upper"]
    assert set(out["bands"]) == {"roc_auc", "precision", "recall", "f1", "accuracy"}


# --------------------------------------------------------------------------- bad input


def _reference(**columns) -> pa.Table:
    rng = np.random.default_rng(0)
    scores, target = fraud_like(rng, 2000)
    base = {"fraud_score": scores, "is_fraud": target}
    base.update(columns)
    return pa.table({k: v for k, v in base.items() if v is not None})


@pytest.mark.parametrize(
    ("table", "error", "message"),
    [
        (_reference(is_fraud=None), SchemaError, r"reference: column 'is_fraud' \(target\) is missing"),
        (_reference(fraud_score=None), SchemaError, r"reference: column 'fraud_score' \(prediction\) is missing"),
        (_reference(is_fraud=np.arange(2000) % 3), PerformanceInputError, r"'is_fraud' \(target\) must be binary.*2"),
        (
            _reference(fraud_score=np.linspace(-0.5, 1.5, 2000)),
            PerformanceInputError,
            r"'fraud_score' \(prediction\) has 1000 value\(s\) outside \[0, 1\]",
        ),
        (_reference(fraud_score=np.full(2000, 0.3)), PerformanceInputError, r"'fraud_score' \(prediction\) is const"),
        (_reference(is_fraud=np.zeros(2000, dtype=np.int8)), PerformanceInputError, r"'is_fraud' \(target\) has only"),
        (_reference(fraud_score=np.array(["0.1"] * 2000)), SchemaError, r"'fraud_score' should be numerical"),
    ],
    ids=["no-target", "no-score", "non-binary", "outside-0-1", "constant", "one-class", "string-score"],
)
def test_bad_reference_fails_with_one_line_naming_the_column(table, error, message):
    with pytest.raises(error, match=message) as info:
        fit_performance_estimator(table, score_column="fraud_score", target_column="is_fraud")
    assert "\n" not in str(info.value)


def test_boolean_target_and_missing_labels_are_accepted():
    scores, target = fraud_like(np.random.default_rng(0), 5000)
    labels = pa.array([bool(t) if i % 10 else None for i, t in enumerate(target)])
    est = fit_performance_estimator(
        pa.table({"s": scores, "y": labels}), score_column="s", target_column="y", bootstrap_replicates=5
    )
    assert est.quality["reference_rows"] == 4500 and est.quality["reference_rows_skipped"] == 500


def test_bad_window_fails_clearly_and_drift_summary_still_runs(estimator):
    window = pa.table({"fraud_score": np.array([0.1, 1.7, 0.2, -0.1]), "is_fraud": np.array([0, 1, 0, 3])})
    with pytest.raises(PerformanceInputError, match=r"current window: column 'fraud_score' \(prediction\) has 2"):
        count_batch(estimator, window)
    with pytest.raises(SchemaError, match=r"current window: column 'fraud_score' \(prediction\) is missing"):
        count_batch(estimator, window.drop(["fraud_score"]))
    with pytest.raises(PerformanceInputError, match=r"'is_fraud' \(target\) must be binary"):
        count_batch(estimator, window.set_column(0, "fraud_score", pa.array([0.1, 0.7, 0.2, 0.1])))
    with pytest.raises(EmptyWindowError, match="no row has a score in 'fraud_score'"):
        estimate_performance(estimator, count_scores(estimator, np.array([np.nan])))
    # Drift is measured independently of the estimator: the same window still gets its counts.
    profile = fit_profile(_reference(), [ColumnSpec("fraud_score", "numerical", "prediction")])
    assert summarize(profile, [window]).columns["fraud_score"].valid == 4


def test_constant_window_score_is_estimated_as_no_ranking(estimator):
    estimate = estimate_performance(estimator, count_scores(estimator, np.full(5000, 0.02)), draws=200)
    assert estimate.roc_auc.value == pytest.approx(0.5)


# --------------------------------------------------------------------------- one pass with the drift counts


def _one_pass_setting(estimator, seed: int, rows: int = 28_000):
    """A window with features, the score and (optionally) the label, and a drift profile over it."""
    rng = np.random.default_rng(seed)
    scores, target = fraud_like(rng, rows)
    window = pa.table(
        {
            "amount": rng.lognormal(3.8, 0.7, rows),
            "channel": np.asarray(["pos", "web", "mobile"])[rng.integers(0, 3, rows)],
            "fraud_score": scores,
            "is_fraud": target,
        }
    )
    specs = [
        ColumnSpec("amount", "numerical", "feature"),
        ColumnSpec("channel", "categorical", "feature"),
        ColumnSpec("fraud_score", "numerical", "prediction"),
    ]
    return fit_profile(window.slice(0, 5000), specs), window


def test_one_pass_carries_the_same_score_counts_as_a_separate_pass(estimator):
    profile, window = _one_pass_setting(estimator, 31)
    batches = window.to_batches(max_chunksize=4096)
    one_pass = summarize(profile, batches, estimator=estimator)
    drift_only = summarize(profile, batches)
    separate = count_window(estimator, batches)
    # The drift counts are untouched by the estimator, and the score counts equal a pass of their own.
    assert one_pass.without_performance().to_dict() == drift_only.to_dict()
    assert one_pass.performance.to_dict() == separate.to_dict()
    assert one_pass.performance_problem is None and one_pass.performance.total_labelled == window.num_rows
    assert estimate_performance(estimator, one_pass.performance).to_dict() == (
        estimate_performance(estimator, separate).to_dict()
    )
    # A drift-only summary keeps its stored form (no performance keys): stored baselines still load.
    assert set(drift_only.to_dict()) == {"rows", "columns", "problems"}


def test_one_pass_daily_parts_add_up_to_the_week_and_round_trip_through_json(estimator):
    profile, window = _one_pass_setting(estimator, 32)
    days = [window.slice(start, 4000) for start in range(0, window.num_rows, 4000)]
    assert len(days) == 7
    week = summarize(profile, window.to_batches(max_chunksize=10_000), estimator=estimator)
    parts = [summarize(profile, [day], estimator=estimator) for day in days]
    merged = sum(parts[1:], parts[0])
    stored = [WindowSummary.from_dict(json.loads(json.dumps(part.to_dict()))) for part in parts]
    from_stored = sum(stored[1:], stored[0])
    # Score counts add exactly (fixed point), so the seeded estimate of the merged week is the week's.
    assert merged.performance.to_dict() == week.performance.to_dict() == from_stored.performance.to_dict()
    assert merged.rows == week.rows == window.num_rows
    assert estimate_performance(estimator, from_stored.performance).to_dict() == (
        estimate_performance(estimator, week.performance).to_dict()
    )
    # The drift counts add as before, next to them.
    assert merged.columns["channel"].counts.tolist() == week.columns["channel"].counts.tolist()
    for name in ("amount", "fraud_score"):
        assert merged.columns[name].sketch_counts.tolist() == week.columns[name].sketch_counts.tolist()


def test_bad_scores_in_one_pass_name_the_column_and_the_drift_counts_still_run(estimator):
    profile, window = _one_pass_setting(estimator, 33, rows=9000)
    bad = np.asarray(window.column("fraud_score")).copy()
    bad[5000:5003] = 1.5  # in the second batch only
    damaged = window.set_column(2, "fraud_score", pa.array(bad))
    summary = summarize(profile, damaged.to_batches(max_chunksize=4096), table_name="w.parquet", estimator=estimator)
    assert summary.performance is None
    assert summary.performance_problem.startswith("w.parquet: column 'fraud_score' (prediction) has 3 value(s)")
    assert "\n" not in summary.performance_problem
    drift_only = summarize(profile, damaged.to_batches(max_chunksize=4096), table_name="w.parquet")
    assert summary.to_dict() == {**drift_only.to_dict(), "performance_problem": summary.performance_problem}
    assert summary.problems == {}  # the score's drift is still measured
    not_binary = window.set_column(3, "is_fraud", pa.array(np.where(np.arange(9000) == 7, 2, 0)))
    assert (
        "'is_fraud' (target) must be binary"
        in summarize(profile, [not_binary], estimator=estimator).performance_problem
    )
    missing = summarize(profile, [window.drop(["fraud_score"])], estimator=estimator)
    assert missing.performance_problem == "current window: column 'fraud_score' (prediction) is missing; " + (
        "performance estimation needs it"
    )
    assert "fraud_score" in missing.problems and missing.columns["amount"].valid == 9000
    # A part counted without the estimator cannot hide in the week: a problem, not a crash.
    mixed = summarize(profile, [window], estimator=estimator) + summarize(profile, [window])
    assert mixed.performance is None and "missing for part of the window" in mixed.performance_problem
    assert mixed.rows == 18_000


# --------------------------------------------------------------------------- the check


def _estimate_with_auc(value: float, lower: float, upper: float) -> PerformanceEstimate:
    metrics = {name: MetricEstimate(0.5, 0.4, 0.6) for name in ("precision", "recall", "f1", "accuracy")}
    return PerformanceEstimate(
        rows=10_000,
        missing_scores=0,
        threshold=0.5,
        confidence=0.95,
        expected_positives=100.0,
        confusion={},
        metrics={"roc_auc": MetricEstimate(value, lower, upper), **metrics},
        method="test",
    )


def test_estimated_auc_check_fails_only_when_the_upper_bound_is_below_champion_minus_drop():
    champion = 0.86
    failing = estimated_auc_check(_estimate_with_auc(0.80, 0.77, 0.8399), champion, DecisionRules(auc_drop_error=0.02))
    passing = estimated_auc_check(_estimate_with_auc(0.80, 0.77, 0.8401), champion, DecisionRules(auc_drop_error=0.02))
    assert (failing.passed, passing.passed) == (False, True)
    assert failing.name == ESTIMATED_AUC_VS_CHAMPION and failing.severity == "ERROR"
    assert failing.value == 0.8399 and failing.threshold == pytest.approx(0.84)
    assert failing.to_dict()["champion_auc"] == champion
    not_estimable = estimated_auc_check(_estimate_with_auc(float("nan"), float("nan"), float("nan")), champion)
    assert not_estimable.passed and not_estimable.details["estimable"] is False


# --------------------------------------------------------------------------- seeded simulations


def simulate_windows(estimator, *, rows, windows, seed, model, shift=True, draws=SIMULATION_DRAWS) -> dict:
    """Estimate and realize AUC on ``windows`` fresh windows; each window gets its own covariate shift."""
    rng = np.random.default_rng(seed)
    out = {key: np.empty(windows) for key in ("estimated", "lower", "upper", "realized")}
    out["check_failed"] = np.zeros(windows, dtype=bool)
    for w in range(windows):
        mean, scale = random_covariate_shift(rng) if shift else (None, None)
        scores, target = fraud_like(rng, rows, mean, scale, model=model)
        estimate = estimate_performance(estimator, count_scores(estimator, scores), draws=draws, seed=w)
        auc = estimate.roc_auc
        out["estimated"][w], out["lower"][w], out["upper"][w] = auc.value, auc.lower, auc.upper
        out["realized"][w] = roc_auc_score(target, scores)
        out["check_failed"][w] = not estimated_auc_check(
            estimate, estimator.champion_auc, DecisionRules(auc_drop_error=0.02)
        ).passed
    out["error"] = out["estimated"] - out["realized"]
    out["covered"] = (out["lower"] <= out["realized"]) & (out["realized"] <= out["upper"])
    return out


def _report(label: str, result: dict) -> None:
    within = np.mean(np.abs(result["error"]) <= 0.03)
    print(
        f"{label}: windows {result['error'].size}, |est - realized| <= 0.03 in {within:.1%},"
        f" mean error {result['error'].mean():+.4f}, sd {result['error'].std():.4f},"
        f" band coverage {result['covered'].mean():.1%}, check failures {result['check_failed'].mean():.1%}"
    )


@pytest.fixture(scope="module")
def estimator_2_percent() -> PerformanceEstimator:
    return fit_on_reference(FRAUD_2_PERCENT, seed=20260102)


@pytest.mark.slow  # a seeded simulation of 200+ windows (~20 s)
def test_covariate_shift_at_10k_rows_estimate_is_close_and_band_is_honest(estimator_2_percent):
    result = simulate_windows(estimator_2_percent, rows=10_000, windows=250, seed=1, model=FRAUD_2_PERCENT)
    _report("2% fraud, 10k rows, covariate shift", result)
    assert np.mean(np.abs(result["error"]) <= 0.03) >= 0.90
    assert 0.85 <= result["covered"].mean() <= 0.97
    # The shift really moves the AUC: the estimate follows it, it is not a constant.
    assert np.std(result["realized"]) > 0.02
    assert np.corrcoef(result["estimated"], result["realized"])[0, 1] > 0.6


@pytest.mark.slow  # a seeded simulation of 200+ windows (~20 s)
def test_stationary_windows_rarely_fail_the_estimated_auc_check(estimator_2_percent):
    result = simulate_windows(estimator_2_percent, rows=10_000, windows=200, seed=2, model=FRAUD_2_PERCENT, shift=False)
    _report("2% fraud, 10k rows, stationary", result)
    assert result["check_failed"].mean() <= 0.01


def test_estimated_auc_check_fires_when_a_shift_halves_the_ranking_power(estimator_2_percent):
    # Features squeezed to 40% of their spread: the scores separate far less, AUC drops by ~0.1.
    rng = np.random.default_rng(4)
    scores, target = fraud_like(rng, 10_000, np.zeros(3), np.full(3, 0.4), model=FRAUD_2_PERCENT)
    estimate = estimate_performance(estimator_2_percent, count_scores(estimator_2_percent, scores))
    assert roc_auc_score(target, scores) < estimator_2_percent.champion_auc - 0.05
    assert not estimated_auc_check(
        estimate, estimator_2_percent.champion_auc, DecisionRules(auc_drop_error=0.02)
    ).passed


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rows", "windows", "coverage_range"),
    [(1_000, 400, (0.85, 0.99)), (10_000, 400, (0.85, 0.97)), (100_000, 100, (0.80, 0.99))],
)
@pytest.mark.parametrize("model", [FRAUD_1_PERCENT, FRAUD_2_PERCENT], ids=["1.3%", "2%"])
def test_band_coverage_by_window_size(rows, windows, coverage_range, model):
    estimator = fit_on_reference(model, seed=20260103)
    result = simulate_windows(estimator, rows=rows, windows=windows, seed=rows, model=model)
    _report(f"{model.intercept} intercept, {rows} rows, covariate shift", result)
    low, high = coverage_range
    assert low <= result["covered"].mean() <= high
    stationary = simulate_windows(estimator, rows=rows, windows=windows // 2, seed=rows + 1, model=model, shift=False)
    _report(f"{model.intercept} intercept, {rows} rows, stationary", stationary)
    assert stationary["check_failed"].mean() <= 0.01


def test_fast_binning_and_calibration_equal_binary_search_and_interpolation(estimator):
    rng = np.random.default_rng(21)
    scores = np.concatenate(
        (
            fraud_like(rng, 200_000)[0],
            rng.random(50_000),
            estimator.edges,  # every edge exactly: left-closed bins
            np.nextafter(estimator.edges, -1.0).clip(0.0, 1.0),
            estimator.calibration.knots_x,
            [0.0, 1.0, 0.5, np.nextafter(0.5, 0.0)],
        )
    )
    searched = np.minimum(np.searchsorted(estimator.edges, scores, side="right") - 1, estimator.n_bins - 1)
    index = estimator.bin_index(scores)
    np.testing.assert_array_equal(index, searched)
    assert index[scores == 0.5][0] == estimator.threshold_bin and index[scores == 1.0][0] == estimator.n_bins - 1
    np.testing.assert_allclose(estimator.calibrate(scores, index), estimator.calibration(scores), rtol=1e-9, atol=1e-15)
