"""The fraud simulator's three performance stories, seen by the estimator (scores only) and by the
labels: a covariate shift that lowers AUC (the estimate sees it), one the model is robust to (drift
ERROR, estimate and realized AUC flat), and a concept shift (the estimate cannot see it; the realized
AUC does). Seeded; weeks 1-2 stationary, the story from week 3 (labels arrive at once here)."""

from __future__ import annotations

import datetime as dt
import glob

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from drift_assets.simulate.fraud import (
    CATEGORICAL,
    NUMERICAL,
    STORIES,
    TOP_FEATURES,
    simulate_fraud,
)
from drift_assets.stats import ColumnSpec, DecisionRules, compare, fit_profile, summarize
from drift_assets.stats.performance_estimation import count_scores, estimate_performance, fit_performance_estimator

pytestmark = pytest.mark.slow  # three seeded simulations (~20 s each)

ROWS = 20_000


def run_story(tmp_path_factory, story: str) -> dict:
    base = str(tmp_path_factory.mktemp(story) / "fraud")
    sim = simulate_fraud(
        base, rows_per_week=ROWS, weeks=4, drift_week=3, training_rows=20_000, reference_rows=20_000,
        label_delay_days=0, story=story,
    )  # fmt: skip
    reference = pq.read_table(f"{base}/reference/reference.parquet")
    estimator = fit_performance_estimator(reference, score_column="fraud_score", target_column="is_fraud")
    labels = pa.concat_tables([pq.read_table(f) for f in glob.glob(f"{base}/labels/*/*.parquet")])
    specs = [ColumnSpec(c, "numerical") for c in NUMERICAL] + [ColumnSpec(c, "categorical") for c in CATEGORICAL]
    profile = fit_profile(reference.select([s.name for s in specs]), specs)
    out: dict = {"estimated": [], "lower": [], "upper": [], "realized": [], "drift_error": [], "max_top_psi": []}
    for week in sim.week_starts:
        days = [(week + dt.timedelta(days=d)).isoformat() for d in range(7)]
        log = pa.concat_tables([pq.read_table(f"{base}/log/date={d}/part-0.parquet") for d in days])
        auc = estimate_performance(estimator, count_scores(estimator, log.column("fraud_score").to_numpy()), draws=500)
        joined = log.join(labels.select(["transaction_id", "is_fraud"]), "transaction_id", join_type="inner")
        out["estimated"].append(auc.roc_auc.value)
        out["lower"].append(auc.roc_auc.lower)
        out["upper"].append(auc.roc_auc.upper)
        out["realized"].append(roc_auc_score(joined.column("is_fraud"), joined.column("fraud_score")))
        result = compare(profile, summarize(profile, [log]), DecisionRules(), top_features=set(TOP_FEATURES))
        out["drift_error"].append(any(c.name == "feature_psi_below_retrain_threshold" for c in result.failed_checks()))
        out["max_top_psi"].append(max(result.columns[c].psi for c in TOP_FEATURES))
    return {k: np.array(v) for k, v in out.items()}


def change(values: np.ndarray) -> float:
    """Mean of the story's weeks (3-4) minus the mean of the stationary weeks (1-2)."""
    return float(values[2:].mean() - values[:2].mean())


@pytest.fixture(scope="module")
def stories(tmp_path_factory) -> dict[str, dict]:
    return {s: run_story(tmp_path_factory, s) for s in STORIES if s != "card_testing"}


def test_stationary_weeks_are_identical_across_stories(stories):
    first = stories["concept"]
    for story in stories.values():
        assert np.array_equal(story["estimated"][:2], first["estimated"][:2])
        assert not story["drift_error"][:2].any()


def test_covariate_shift_that_lowers_auc_is_seen_by_the_estimate(stories):
    s = stories["covariate_harmful"]
    assert change(s["realized"]) < -0.04  # the labels confirm the damage ...
    assert change(s["estimated"]) < -0.03  # ... which the scores alone showed first
    assert np.abs(s["estimated"][2:] - s["realized"][2:]).max() < 0.05
    assert s["drift_error"][2:].all()


def test_covariate_shift_the_model_is_robust_to_moves_neither_estimate_nor_realized(stories):
    s = stories["covariate_benign"]
    assert s["drift_error"][2:].all() and s["max_top_psi"][2:].min() > 0.25  # drift ERROR ...
    assert abs(change(s["estimated"])) < 0.02  # ... without performance impact
    assert abs(change(s["realized"])) < 0.04
    assert ((s["lower"][2:] <= s["realized"][2:]) & (s["realized"][2:] <= s["upper"][2:])).all()


def test_concept_shift_is_invisible_to_the_estimate_and_caught_by_the_realized_auc(stories):
    s = stories["concept"]
    assert abs(change(s["estimated"])) < 0.02  # the scores did not change
    assert not s["drift_error"][2:].any()  # nor did the features
    assert change(s["realized"]) < -0.15
    assert (s["realized"][2:] < s["lower"][2:]).all()  # outside the band: the estimate's stated limit


def test_unknown_story_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown drift story 'nope'"):
        simulate_fraud(str(tmp_path / "fraud"), weeks=1, rows_per_week=70, story="nope")
