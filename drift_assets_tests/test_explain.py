"""The "what changed" text: PSI per-bin terms against the PSI module and a hand formula, shares in
the text against numpy on the raw rows, ranking, and the multivariate sentence."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest
from test_stats_detection import SPECS, VOCABULARIES, categorical, generate, new_category, replace_column

from drift_assets.simulate.synthetic import CATEGORIES
from drift_assets.stats import compare, fit_profile, summarize
from drift_assets.stats import multivariate as mv
from drift_assets.stats.explain import explain_window, ordinal, percent, psi_terms, ranked_column_changes
from drift_assets.stats.psi import population_stability_index


@pytest.fixture(scope="module")
def reference() -> pa.Table:
    return generate(np.random.default_rng(np.random.SeedSequence([19, 0])), 50_000)


@pytest.fixture(scope="module")
def profile(reference):
    return fit_profile(reference, SPECS)


def moved_above_p90(table: pa.Table, reference: pa.Table, rng, share: float = 0.25) -> pa.Table:
    values = table.column("amount_1").to_numpy().copy()
    p90 = np.quantile(reference.column("amount_1").to_numpy(), 0.9)
    moved = rng.random(len(values)) < share
    values[moved] = p90 * rng.uniform(1.0, 1.5, moved.sum())
    return replace_column(table, "amount_1", values)


def test_psi_terms_sum_to_the_psi_and_match_the_hand_formula():
    ref, cur = np.array([50, 30, 20, 0]), np.array([20, 30, 30, 20])
    r, c = np.clip(ref / 100, 1e-4, None), np.clip(cur / 100, 1e-4, None)
    np.testing.assert_allclose(psi_terms(ref, cur), (c - r) * np.log(c / r), rtol=1e-12)
    assert psi_terms(ref, cur).sum() == pytest.approx(population_stability_index(ref, cur), rel=1e-12)
    assert (psi_terms(ref, cur) >= 0).all()  # each term (c - r) ln(c / r) is non-negative


def test_words(profile):
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 90)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "90th",
    ]
    assert percent(0.31) == "31%" and percent(0.052) == "5.2%"


def test_numerical_change_names_the_tail_with_shares_measured_on_the_rows(profile, reference):
    rng = np.random.default_rng(1)
    window = moved_above_p90(generate(rng, 10_000), reference, rng)
    summary = summarize(profile, [window])
    result = compare(profile, summary)
    changes = ranked_column_changes(profile, summary, result)
    assert changes[0].column == "amount_1"
    text = changes[0].text
    p90 = np.quantile(reference.column("amount_1").to_numpy(), 0.9)
    above = np.mean(window.column("amount_1").to_numpy() >= p90)  # PSI bins are left-closed
    assert text.startswith(f"amount_1: {percent(above)} of rows above the reference's 90th percentile ({p90:.4g})")
    assert "expected 10%" in text
    mean = np.mean(window.column("amount_1").to_numpy())
    assert f"mean {mean:.4g}" in text
    # The described bin carries most of the PSI, and the PSI is compare's.
    assert changes[0].psi == pytest.approx(result.columns["amount_1"].psi, rel=1e-9)
    assert changes[0].bin_share_of_psi > 0.5


def test_categorical_changes_name_the_category_or_the_unseen_values(profile, reference):
    rng = np.random.default_rng(2)
    window = generate(rng, 10_000)
    shares = np.array(CATEGORIES["merchant_type"])  # first category +20 points, the rest scaled down
    shares = np.concatenate(([shares[0] + 0.2], shares[1:] * (0.8 - shares[0]) / shares[1:].sum()))
    window = replace_column(window, "merchant_type", categorical(rng, "merchant_type", 10_000, shares))
    window = new_category(window, rng, reference)
    summary = summarize(profile, [window])
    lines = {c.column: c.text for c in ranked_column_changes(profile, summary, compare(profile, summary))}
    values = window.column("merchant_type").combine_chunks().dictionary_decode().to_numpy(zero_copy_only=False)
    ref_values = reference.column("merchant_type").combine_chunks().dictionary_decode().to_numpy(zero_copy_only=False)
    top = VOCABULARIES["merchant_type"][0]
    assert lines["merchant_type"] == (
        f"merchant_type: {top!r} is {percent(np.mean(values == top))} of rows,"
        f" expected {percent(np.mean(ref_values == top))}"
    )
    country = window.column("country").combine_chunks().dictionary_decode().to_numpy(zero_copy_only=False)
    unseen = int(np.sum(country == "country_new"))
    share = percent(unseen / len(country))
    assert lines["country"] == f"country: {share} of rows have values unseen in the reference ('country_new' {unseen})"


def test_columns_are_ranked_and_unchanged_columns_left_out(profile, reference):
    rng = np.random.default_rng(3)
    window = moved_above_p90(generate(rng, 10_000), reference, rng, share=0.4)
    values = window.column("normal_2").to_numpy()
    window = replace_column(window, "normal_2", values + 0.5 * np.std(values))
    summary = summarize(profile, [window])
    result = compare(profile, summary)
    changes = ranked_column_changes(profile, summary, result)
    assert [c.column for c in changes] == ["amount_1", "normal_2"]
    assert changes[0].psi > changes[1].psi
    assert explain_window(profile, summary, result).lines == [c.text for c in changes]
    quiet = summarize(profile, [generate(rng, 10_000)])
    assert explain_window(profile, quiet, compare(profile, quiet)).lines == []


def test_missing_values_are_mentioned(profile, reference):
    rng = np.random.default_rng(4)
    window = generate(rng, 10_000)
    values = window.column("normal_6").to_numpy().copy()
    values[rng.random(len(values)) < 0.1] = np.nan
    window = replace_column(window, "normal_6", values)
    summary = summarize(profile, [window])
    text = {c.column: c.text for c in ranked_column_changes(profile, summary, compare(profile, summary))}["normal_6"]
    assert re.search(rf"; {re.escape(percent(np.mean(np.isnan(values))))} missing, expected 0\.0%$", text)


def test_multivariate_sentence_comes_first_and_names_the_features():
    from test_multivariate import PAIR, with_correlated_pair

    rng = np.random.default_rng(np.random.SeedSequence([20, 0]))
    reference = with_correlated_pair(generate(rng, 40_000), rng, 0.6)
    profile, model = fit_profile(reference, SPECS), mv.fit_reconstruction(reference, SPECS)
    window = with_correlated_pair(generate(rng, 5_000), rng, -0.6)
    summary = summarize(profile, [window])
    drift = mv.evaluate_reconstruction(model, mv.count_batch(model, window))
    explanation = explain_window(profile, summary, compare(profile, summary), reconstruction=drift)
    assert len(explanation.lines) == 1  # no univariate change to report
    line = explanation.lines[0]
    assert line.startswith("joint distribution changed")
    assert all(name in line for name in PAIR) and "correlation of normal_" in line
    assert explanation.text == f"- {line}"


def test_a_column_constant_in_the_reference_is_explained_not_crashed():
    """Every reference value tied: one point-mass bin (found through the retraining sensor's fraud weeks)."""
    from drift_assets.stats import ColumnSpec

    specs = [ColumnSpec("flat", "numerical"), ColumnSpec("other", "numerical")]
    rng = np.random.default_rng(5)
    reference = pa.table({"flat": np.zeros(2_000), "other": rng.normal(size=2_000)})
    window = pa.table({"flat": np.r_[np.zeros(1_000), np.ones(1_000)], "other": rng.normal(size=2_000)})
    profile = fit_profile(reference, specs)
    summary = summarize(profile, [window])
    from drift_assets.stats.explain import column_change

    assert profile.columns["flat"].binning.point_masses == (0.0,)
    change = column_change(profile.columns["flat"], summary.columns["flat"])
    assert change is not None and change.text.startswith("flat: ")
    assert "50% outside the reference range" in change.text
    explain_window(profile, summary, compare(profile, summary))  # and the whole window explains
