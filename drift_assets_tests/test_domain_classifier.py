"""Domain-classifier multivariate drift: the analytic AUC null against a permutation simulation,
the streaming sample, the correlation flip (caught, both features named), stationary windows, and
bad input. Samples are kept small here; the 50,000 + 50,000 timing is in benchmarks/."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score
from test_multivariate import PAIR, with_correlated_pair
from test_stats_detection import SPECS, generate

from drift_assets.stats import ColumnSpec, SchemaError
from drift_assets.stats import domain_classifier as dc
from drift_assets.stats.explain import explain_domain_classifier


@pytest.fixture(scope="module")
def reference_sample() -> pa.Table:
    rng = np.random.default_rng(np.random.SeedSequence([16, 1]))
    return with_correlated_pair(generate(rng, 6_000), rng, 0.6)


def test_analytic_null_sd_matches_a_permutation_of_labels_within_folds():
    """Fixed scores, labels permuted within each fold (as stratified folds do): the sd of the mean
    fold AUC over 4,000 permutations is the analytic value."""
    rng = np.random.default_rng(0)
    sizes = [(300, 120), (310, 115), (290, 125)]
    scores = [rng.normal(size=n1 + n2).round(1) for n1, n2 in sizes]  # rounding adds ties
    ranks = [stats.rankdata(s) for s in scores]  # AUC = Mann-Whitney U / (n1 n2), from mid-ranks

    def auc(fold: int, labels: np.ndarray) -> float:
        n1, n2 = sizes[fold]
        return (ranks[fold][labels == 1].sum() - n2 * (n2 + 1) / 2) / (n1 * n2)

    first = rng.permutation(np.r_[np.zeros(sizes[0][0]), np.ones(sizes[0][1])])
    assert auc(0, first) == pytest.approx(roc_auc_score(first, scores[0]), abs=1e-12)
    means = []
    for _ in range(4_000):
        labels = [rng.permutation(np.r_[np.zeros(n1), np.ones(n2)]) for n1, n2 in sizes]
        means.append(np.mean([auc(f, labels[f]) for f in range(len(sizes))]))
    analytic = dc.auc_null_sd(sizes)
    assert np.mean(means) == pytest.approx(0.5, abs=4 * analytic / np.sqrt(4_000))
    # Ties make the true sd a little smaller: the analytic value is conservative, and close.
    assert 0.9 * analytic <= np.std(means) <= 1.05 * analytic


def test_seeded_sample_is_exact_uniform_and_streamed():
    table = pa.table({"i": np.arange(100_000), "x": np.arange(100_000) * 2.0})
    sample = dc.seeded_sample(table.to_batches(7_000), ["i", "x"], 5_000, seed=3)
    again = dc.seeded_sample(table.to_batches(13_000), ["i", "x"], 5_000, seed=3)
    assert sample.num_rows == 5_000 and len(set(sample.column("i").to_pylist())) == 5_000
    np.testing.assert_array_equal(sample.column("x").to_numpy(), 2.0 * sample.column("i").to_numpy())
    # Uniform: the mean index is (N - 1) / 2 within 4 standard errors.
    se = np.sqrt((100_000**2 / 12) / 5_000)
    assert abs(np.mean(sample.column("i").to_numpy()) - 49_999.5) < 4 * se
    assert again.num_rows == 5_000  # batch boundaries change which rows, not how many
    assert dc.seeded_sample([table.slice(0, 10)], ["i"], 5_000).num_rows == 10
    with pytest.raises(SchemaError, match="'nope'"):
        dc.seeded_sample([table], ["i", "nope"], 10)


def test_correlation_flip_is_caught_and_both_features_named(reference_sample):
    rng = np.random.default_rng(np.random.SeedSequence([17, 0]))
    window = with_correlated_pair(generate(rng, 5_000), rng, -0.6)
    result = dc.domain_classifier_drift([reference_sample], window.to_batches(1_000), SPECS, max_rows=5_000)
    assert result.reference_rows == result.window_rows == 5_000
    assert result.drifted and result.auc > 0.65 and result.p_value < 1e-10
    assert set(result.explained_by[:2]) == set(PAIR)
    # Every other column costs far less AUC when shuffled than either of the pair.
    others = [v for k, v in result.importances.items() if k not in PAIR]
    assert max(others) < 0.2 * min(result.importances[k] for k in PAIR)
    text = explain_domain_classifier(result)
    assert "normal_0" in text and "normal_1" in text
    check = dc.domain_classifier_check(result)
    assert check is not None and not check.passed and check.severity == "ERROR" and check.value == result.auc


def test_stationary_windows_are_not_flagged(reference_sample, record_property):
    aucs, fired = [], []
    for seed in range(8):
        rng = np.random.default_rng(np.random.SeedSequence([18, seed]))
        window = with_correlated_pair(generate(rng, 2_000), rng, 0.6)
        result = dc.evaluate_domain_classifier(reference_sample, window, SPECS, seed=seed)
        aucs.append(result.auc)
        if result.drifted:
            fired.append((seed, result.auc, result.p_value))
        assert result.importances == {}  # only computed when the check fires
    record_property("stationary_aucs", [round(a, 3) for a in aucs])
    assert not fired
    assert max(aucs) < dc.DEFAULT_MIN_AUC


def test_bad_input_is_skipped_with_a_reason(reference_sample):
    single = [ColumnSpec("amount_1", "numerical")]
    result = dc.evaluate_domain_classifier(reference_sample, reference_sample, single)
    assert result.skipped is not None and "at least 2 feature columns" in result.skipped
    assert dc.domain_classifier_check(result) is None
    tiny = dc.evaluate_domain_classifier(reference_sample, reference_sample.slice(0, 40), SPECS)
    assert tiny.skipped is not None and "40 window" in tiny.skipped and "at least 100" in tiny.skipped
