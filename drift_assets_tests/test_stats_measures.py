"""The statistics core's measures, each checked against an independent computation.

PSI against the formula worked by hand, KS / chi-square / Jensen-Shannon / Wasserstein against
scipy on the raw values, missing / unseen / out-of-range shares against counts made here, and the
summary algebra (daily summaries add up to the weekly one, JSON round trips change nothing).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from drift_assets.stats import (
    ColumnSpec,
    DecisionRules,
    ReferenceProfile,
    WindowSummary,
    compare,
    fit_profile,
    summarize,
)
from drift_assets.stats.kolmogorov_smirnov import EXACT_MAX_N, ks_pvalue
from drift_assets.stats.multiple_testing import holm_adjusted
from drift_assets.stats.psi import population_stability_index
from drift_assets.stats.summary import CategoricalCounts, NumericalCounts

EPS = 1e-4  # the design document's clipping floor, DecisionRules().psi_epsilon


def one_column(values, kind: str = "numerical", name: str = "x") -> tuple[pa.Table, list[ColumnSpec]]:
    return pa.table({name: values}), [ColumnSpec(name, kind)]


def measure(reference, current, kind: str = "numerical", **fit_kwargs):
    ref_table, specs = one_column(reference, kind)
    profile = fit_profile(ref_table, specs, **fit_kwargs)
    summary = summarize(profile, [pa.table({"x": current})])
    return profile, summary, compare(profile, summary).columns["x"]


def seed_compute_psi(reference: pd.Series, current: pd.Series, bins: int = 10) -> float:
    """The design document's compute_psi, with pandas' removed numpy alias replaced by ``np.log``."""
    breakpoints = pd.qcut(reference, q=bins, duplicates="drop", retbins=True)[1]
    ref_counts = pd.cut(reference, bins=breakpoints).value_counts(normalize=True).sort_index()
    cur_counts = pd.cut(current, bins=breakpoints).value_counts(normalize=True).sort_index()
    ref_counts = ref_counts.clip(lower=1e-4)
    cur_counts = cur_counts.clip(lower=1e-4)
    return float(((cur_counts - ref_counts) * (cur_counts / ref_counts).apply(np.log)).sum())


# --------------------------------------------------------------------------- PSI


def test_psi_of_an_explicit_histogram_matches_the_hand_computation():
    ref = np.array([10, 20, 30, 40])
    cur = np.array([40, 30, 30, 0])
    # r = .1 .2 .3 .4 ; c = .4 .3 .3 0 -> the empty bin is clipped to 1e-4
    by_hand = (
        (0.4 - 0.1) * math.log(0.4 / 0.1)
        + (0.3 - 0.2) * math.log(0.3 / 0.2)
        + (0.3 - 0.3) * math.log(0.3 / 0.3)
        + (1e-4 - 0.4) * math.log(1e-4 / 0.4)
    )
    assert population_stability_index(ref, cur, epsilon=1e-4) == pytest.approx(by_hand, rel=1e-12)
    # The same sum worked out: 0.3 ln 4 + 0.1 ln 1.5 + 0 + 0.3999 ln 4000
    assert by_hand == pytest.approx(0.4158883083 + 0.0405465108 + 3.3167904511, abs=1e-9)
    # Symmetric in its arguments, zero for identical proportions whatever the totals.
    assert population_stability_index(cur, ref) == pytest.approx(by_hand, rel=1e-12)
    assert population_stability_index(ref, 3 * ref) == 0.0


def test_psi_through_the_pipeline_uses_reference_deciles_with_open_outer_bins():
    reference = np.arange(100, dtype=np.float64)  # deciles 9.9, 19.8, ..., 89.1 (linear interpolation)
    current = np.concatenate(
        [
            np.arange(10.0),
            np.arange(10.0),  # bin 0 (below 9.9): 20 values
            np.arange(20.0, 100.0),  # bins 2..9: 10 values each; bin 1 (9.9 to 19.8) empty
            np.full(10, 500.0),  # far above the reference max: still counted, in bin 9
        ]
    )
    profile, summary, col = measure(reference, current)
    binning = profile.columns["x"].binning
    np.testing.assert_allclose(binning.psi_edges, 9.9 * np.arange(1, 10), rtol=1e-12)
    assert col.psi_bins == binning.effective_bins == 10
    r = np.full(10, 0.1)
    c = np.array([20, 0, 10, 10, 10, 10, 10, 10, 10, 20]) / 110
    c = np.clip(c, EPS, None)
    by_hand = sum((ci - ri) * math.log(ci / ri) for ci, ri in zip(c, r, strict=True))
    assert col.psi == pytest.approx(by_hand, rel=1e-12)
    assert col.out_of_range_share == 10 / 110


def test_psi_of_the_design_documents_failure_cases_is_large():
    rng = np.random.default_rng(11)
    reference = rng.normal(0.0, 1.0, 20_000)
    current = rng.normal(0.0, 1.0, 5_000)
    # 30% of the values moved far above the reference maximum.
    moved = current.copy()
    moved[:1_500] = reference.max() + rng.uniform(5.0, 10.0, 1_500)
    _, _, col = measure(reference, moved)
    assert col.psi >= 0.4
    outside = np.count_nonzero((moved < reference.min()) | (moved > reference.max()))
    assert outside >= 1_500
    assert col.out_of_range_share == outside / len(moved)
    # The seed's pd.cut version drops those values and sees (almost) nothing.
    assert seed_compute_psi(pd.Series(reference), pd.Series(moved)) < 0.01

    # Everything shifted by +10 sd: all current mass in the open top bin (reference share 0.1).
    shifted = current + 10.0 * reference.std()
    _, _, col = measure(reference, shifted)
    by_hand = (1 - 0.1) * math.log(1 / 0.1) + 9 * (EPS - 0.1) * math.log(EPS / 0.1)
    assert col.psi == pytest.approx(by_hand, rel=1e-9)
    assert col.psi > 8
    assert col.ks_statistic == 1.0
    assert col.wasserstein_normed == pytest.approx(10.0, rel=0.02)


def test_zero_inflated_reference_keeps_its_zeros():
    rng = np.random.default_rng(5)
    n = 50_000
    reference = rng.lognormal(2.0, 1.0, n)
    reference[rng.permutation(n)[: int(0.4 * n)]] = 0.0  # exactly 40% zeros
    current = rng.lognormal(2.0, 1.0, 10_000)
    current[rng.random(10_000) < 0.4] = 0.0
    profile, _, col = measure(reference, current)
    binning = profile.columns["x"].binning
    ref_counts = profile.columns["x"].reference.psi_counts(binning)
    proportions = ref_counts / ref_counts.sum()
    assert ref_counts.sum() == n  # no reference value dropped (the seed's right-closed bins drop every zero)
    assert proportions.sum() == pytest.approx(1.0, abs=1e-12)
    assert proportions[0] >= 0.4
    assert binning.psi_edges[0] > 0.0
    assert ref_counts[0] == np.count_nonzero(reference < binning.psi_edges[0])
    # 40% zeros are a point mass (>= 5% of the reference): one bin of their own, then
    # psi_bins - 1 = 9 quantile bins over the positive values. Independently: numpy's quantiles.
    assert binning.point_masses == (0.0,)
    positives = np.sort(reference[reference > 0])
    np.testing.assert_allclose(binning.psi_edges[1:], np.quantile(positives, np.arange(1, 9) / 9), rtol=1e-12)
    assert binning.effective_bins == len(ref_counts) == 10
    assert col.psi_bins == binning.effective_bins
    assert ref_counts[0] == int(0.4 * n)  # the lowest bin is exactly the zeros
    np.testing.assert_allclose(ref_counts[1:] / positives.size, 1 / 9, atol=2e-4)
    assert col.psi < 0.01  # same distribution


@pytest.mark.parametrize("lam", [0.5, 2.0, 5.0])
def test_with_heavy_ties_each_common_value_has_its_own_psi_bin(lam):
    rng = np.random.default_rng(int(lam * 10))
    reference = rng.poisson(lam, 30_000).astype(np.float64)
    profile, _, col = measure(reference, rng.poisson(lam, 3_000).astype(np.float64))
    binning = profile.columns["x"].binning
    values, freq = np.unique(reference, return_counts=True)
    common = values[freq >= 0.05 * reference.size]
    assert binning.point_masses == tuple(common)
    # Each common value is alone in its bin (independently: the bin of v holds exactly the v's).
    bin_of = np.searchsorted(binning.psi_edges, reference, side="right")
    for v in common:
        assert set(reference[bin_of == bin_of[reference == v][0]]) == {v}
    # The count stays near the configured 10: one bin per common value plus the rare tail.
    assert len(common) <= binning.effective_bins == col.psi_bins <= 11
    # Every effective bin holds reference mass: the count is of distinct, non-empty bins.
    occupied = np.unique(bin_of)
    assert len(occupied) == binning.effective_bins
    ref_counts = profile.columns["x"].reference.psi_counts(binning)
    assert ref_counts.sum() == len(reference)


# --------------------------------------------------------------------------- KS


KS_CASES = [
    ("normal", 2_000, 2_000, 0.0),
    ("normal", 2_000, 2_000, 0.1),
    ("lognormal", 2_000, 5_000, 0.0),
    ("lognormal", 5_000, 200_000, 0.1),
    ("normal", 20_000, 50_000, 0.0),
    ("normal", 20_000, 50_000, 0.05),
    ("lognormal", 200_000, 200_000, 0.0),
    ("lognormal", 200_000, 200_000, 0.02),
]


def draw(rng, family: str, n: int, shift: float) -> np.ndarray:
    if family == "normal":
        return rng.normal(shift, 1.0 + shift, n)
    return rng.lognormal(3.0 + shift, 1.0, n)


@pytest.mark.parametrize(("family", "n_ref", "n_cur", "shift"), KS_CASES)
def test_ks_matches_scipy_within_the_sketch_resolution(family, n_ref, n_cur, shift):
    rng = np.random.default_rng(n_ref + n_cur + int(shift * 100))
    reference, current = draw(rng, family, n_ref, 0.0), draw(rng, family, n_cur, shift)
    profile, summary, col = measure(reference, current)
    exact = stats.ks_2samp(reference, current, method="asymp")
    counts = summary.columns["x"].sketch_counts
    tolerance = 1 / profile.sketch_resolution + counts.max() / counts.sum()
    # The sketch evaluates the CDF gap at the sketch edges only: a lower bound, within tolerance.
    assert col.ks_statistic <= exact.statistic + 1e-12
    assert exact.statistic - col.ks_statistic <= tolerance
    # Same p-value formula as scipy's asymptotic one...
    assert ks_pvalue(exact.statistic, n_ref, n_cur) == pytest.approx(exact.pvalue, rel=1e-9, abs=1e-300)
    # ...so our p-value lies between scipy's and the one at (D - tolerance).
    upper = stats.kstwo.sf(max(exact.statistic - tolerance, 0.0), round(n_ref * n_cur / (n_ref + n_cur)))
    assert exact.pvalue * (1 - 1e-9) <= col.ks_pvalue <= upper * (1 + 1e-9)
    if shift == 0.0:
        assert abs(col.ks_pvalue - exact.pvalue) < 0.05
    else:
        assert col.ks_pvalue < 0.05 and exact.pvalue < 0.05


@pytest.mark.slow  # scipy's exact kstwo costs ~1.2 us x n per value
@pytest.mark.parametrize("effective_n", [EXACT_MAX_N + 1, 250_000])
def test_asymptotic_ks_pvalue_is_within_1e_3_of_the_exact_one(effective_n):
    """Above EXACT_MAX_N the p-value is Kolmogorov's limit: checked against scipy's exact kstwo."""
    statistics = np.linspace(0.3, 6.0, 25) / np.sqrt(effective_n)
    # n_reference = n_current = 2 * effective_n gives that effective size.
    ours = np.array([ks_pvalue(d, 2 * effective_n, 2 * effective_n) for d in statistics])
    exact = stats.kstwo.sf(statistics, effective_n)
    assert np.max(np.abs(ours - exact)) < 1e-3
    # ...and the exact branch is used at and below the cut-over (kstwo's algorithm without
    # scipy.stats, its Smirnov sum vectorised: equal to 1e-9 relative).
    d = 1.5 / np.sqrt(EXACT_MAX_N)
    assert ks_pvalue(d, 2 * EXACT_MAX_N, 2 * EXACT_MAX_N) == pytest.approx(stats.kstwo.sf(d, EXACT_MAX_N), rel=1e-9)


@pytest.mark.parametrize("case", ["clipped_poisson", "uniform_integers", "out_of_range"])
def test_ks_is_exact_for_integer_data_with_ties(case):
    rng = np.random.default_rng(3)
    if case == "clipped_poisson":
        reference = np.minimum(rng.poisson(3.0, 50_000), 9).astype(np.float64)
        current = np.minimum(rng.poisson(3.3, 4_000), 9).astype(np.float64)
    elif case == "uniform_integers":
        reference = rng.integers(0, 40, 20_000).astype(np.float64)
        current = rng.integers(2, 42, 7_000).astype(np.float64)  # also beyond the reference range
    else:
        reference = rng.integers(10, 20, 10_000).astype(np.float64)
        current = rng.integers(0, 30, 10_000).astype(np.float64)
    profile, _, col = measure(reference, current)
    edges = profile.columns["x"].binning.sketch_edges
    in_range = current[(current >= reference.min()) & (current <= reference.max())]
    assert np.isin(np.unique(reference), edges).all() and np.isin(in_range, edges).all()  # the premise
    exact = stats.ks_2samp(reference, current, method="asymp")
    assert col.ks_statistic == pytest.approx(exact.statistic, abs=1e-12)
    assert col.ks_pvalue == pytest.approx(exact.pvalue, rel=1e-9, abs=1e-300)


# --------------------------------------------------------------------------- chi-square, JS


def test_chi_square_matches_scipy_contingency_including_the_unseen_bucket():
    rng = np.random.default_rng(21)
    vocab = np.array(["a", "b", "c", "d", "e"])
    reference = rng.choice(vocab, 20_000, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    current = rng.choice(
        np.array(["a", "b", "c", "d", "e", "new1", "new2"]), 3_000, p=[0.35, 0.3, 0.15, 0.1, 0.05, 0.03, 0.02]
    )
    profile, _, col = measure(reference.tolist(), current.tolist(), kind="categorical")
    vocabulary = list(profile.columns["x"].binning.vocabulary)
    assert sorted(vocabulary) == sorted(vocab.tolist())
    ref_row = [int(np.sum(reference == v)) for v in vocabulary] + [0]
    cur_row = [int(np.sum(current == v)) for v in vocabulary] + [int(np.sum(~np.isin(current, vocab)))]
    table = np.array([ref_row, cur_row])
    expected = stats.chi2_contingency(table, correction=False)
    assert col.chi2_pvalue == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert col.jensen_shannon == pytest.approx(jensenshannon(table[0], table[1], base=2), abs=1e-12)
    # Without unseen values the (empty) unseen bucket is left out, as scipy requires.
    same = rng.choice(vocab, 3_000, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    _, _, col = measure(reference.tolist(), same.tolist(), kind="categorical")
    table = np.array([ref_row[:-1], [int(np.sum(same == v)) for v in vocabulary]])
    assert col.chi2_pvalue == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9)


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_jensen_shannon_matches_scipy_on_independently_computed_bins(shift):
    rng = np.random.default_rng(8)
    reference = rng.lognormal(1.0, 0.7, 30_000)
    current = rng.lognormal(1.0 + shift, 0.7, 4_000)
    profile, _, col = measure(reference, current)
    edges = profile.columns["x"].binning.psi_edges
    outer = np.concatenate(([-np.inf], edges, [np.inf]))

    def hist(values):
        # Bins [e_i, e_i+1) with open outer bins, two ways.
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        np.testing.assert_array_equal(counts, np.histogram(values, bins=outer)[0])
        return counts

    p, q = hist(reference), hist(current)
    assert col.jensen_shannon == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
    assert (col.jensen_shannon > 0.1) == (shift > 0)


# --------------------------------------------------------------------------- Wasserstein


@pytest.mark.parametrize(
    ("family", "n_ref", "n_cur", "shift"),
    [
        ("normal", 2_000, 2_000, 0.0),
        ("normal", 20_000, 50_000, 0.1),
        ("lognormal", 2_000, 5_000, 0.0),
        ("lognormal", 5_000, 200_000, 0.1),
        ("lognormal", 100_000, 100_000, 0.3),
        ("normal", 50_000, 1_000, 0.5),
    ],
)
def test_wasserstein_normed_matches_scipy_for_continuous_data(family, n_ref, n_cur, shift):
    rng = np.random.default_rng(n_ref + n_cur)
    reference, current = draw(rng, family, n_ref, 0.0), draw(rng, family, n_cur, shift)
    _, _, col = measure(reference, current)
    expected = stats.wasserstein_distance(reference, current) / reference.std()
    assert col.wasserstein_normed == pytest.approx(expected, rel=0.02, abs=0.005)


@pytest.mark.parametrize("case", ["poisson", "uniform_integers", "out_of_range"])
def test_wasserstein_normed_is_exact_for_integer_data(case):
    rng = np.random.default_rng(17)
    if case == "poisson":
        reference = np.minimum(rng.poisson(2.0, 40_000), 8).astype(np.float64)
        current = np.minimum(rng.poisson(2.4, 6_000), 8).astype(np.float64)
    elif case == "uniform_integers":
        reference = rng.integers(0, 50, 40_000).astype(np.float64)
        current = rng.integers(0, 50, 3_000).astype(np.float64)
    else:  # values outside the reference range share a bin, but keep their mean: still exact
        reference = rng.integers(100, 200, 40_000).astype(np.float64)
        current = rng.integers(0, 400, 3_000).astype(np.float64)
    _, _, col = measure(reference, current)
    expected = stats.wasserstein_distance(reference, current) / reference.std()
    assert col.wasserstein_normed == pytest.approx(expected, rel=1e-9, abs=1e-12)


# --------------------------------------------------------------------------- missing, unseen, range


def test_nan_null_and_infinities_all_count_as_missing():
    reference = pa.array([0.0, 1.0, 2.0, None, np.nan, 3.0, 4.0, np.inf, 5.0, 6.0], type=pa.float64())
    current = pa.array([1.0, np.nan, None, np.inf, -np.inf, 2.0, 3.0, None], type=pa.float64())
    ints = pa.array([1, None, 3, 4, None], type=pa.int64())
    profile = fit_profile(
        pa.table({"x": reference, "n": pa.array([1, 2, 3, 4, 5, 6, 7, 8, 9, None], pa.int64())}),
        [ColumnSpec("x", "numerical"), ColumnSpec("n", "numerical")],
    )
    result = compare(
        profile,
        summarize(profile, [pa.table({"x": current[:5], "n": ints}), pa.table({"x": current[5:], "n": ints[:3]})]),
    )
    x = result.columns["x"]
    assert x.missing_rate == 5 / 8  # nan, null, inf, -inf, null
    assert x.reference_missing_rate == 3 / 10
    assert x.current_valid == 3
    n = result.columns["n"]
    assert n.missing_rate == 3 / 8
    assert n.reference_missing_rate == 1 / 10
    failing = {c.column for c in result.failed_checks() if c.name == "missing_rate_below_threshold"}
    assert failing == {"x", "n"}


def test_categorical_missing_and_unseen_shares_are_exact():
    reference = ["a"] * 50 + ["b"] * 30 + ["c"] * 19 + [None]
    current = ["a"] * 10 + ["b"] * 5 + ["z"] * 3 + ["y"] * 2 + [None] * 4
    _, summary, col = measure(reference, current, kind="categorical")
    assert col.missing_rate == 4 / 24
    assert col.reference_missing_rate == 1 / 100
    assert col.unseen_share == 5 / 20
    assert col.unseen_values == {"z": 3, "y": 2}
    counts = summary.columns["x"]
    assert isinstance(counts, CategoricalCounts)
    assert counts.counts.tolist() == [10, 5, 0, 5]  # a, b, c, unseen
    # Shares over non-missing values: a .5 -> .5, b .3 -> .25, c .19 -> 0, unseen 0 -> .25
    assert col.max_category_share_change == pytest.approx(0.25, abs=1e-15)


def test_out_of_range_share_is_exact():
    reference = np.arange(100, dtype=np.float64)  # range [0, 99]
    current = np.array([-1.0, 0.0, 50.0, 99.0, 99.5, 100.0, 1e9, np.nan, 98.9])
    _, summary, col = measure(reference, current)
    # -1, 99.5, 100, 1e9 are outside [0, 99]; the bounds themselves are inside; NaN is missing.
    assert col.out_of_range_share == 4 / 8
    counts = summary.columns["x"]
    assert (counts.below_range, counts.above_range, counts.missing) == (1, 3, 1)


# --------------------------------------------------------------------------- mergeability


def daily_table(rng, n: int) -> pa.Table:
    amount = rng.lognormal(3.0, 1.0, n)
    amount[rng.random(n) < 0.02] = np.nan
    score = rng.normal(0.0, 1.0, n)  # bins straddle zero
    count = rng.poisson(2.0, n)
    country = rng.choice(np.array(["fr", "de", "it", "es", "xx", "yy"]), n, p=[0.4, 0.3, 0.15, 0.1, 0.03, 0.02])
    country_arr = pa.array(
        [None if m else v for m, v in zip(rng.random(n) < 0.01, country.tolist(), strict=True)], pa.string()
    )
    return pa.table({"amount": amount, "score": score, "count": pa.array(count, pa.int64()), "country": country_arr})


MERGE_SPECS = [
    ColumnSpec("amount", "numerical"),
    ColumnSpec("score", "numerical"),
    ColumnSpec("count", "numerical"),
    ColumnSpec("country", "categorical"),
]


@pytest.fixture(scope="module")
def merge_setup():
    rng = np.random.default_rng(99)
    reference = daily_table(rng, 20_000)
    reference = reference.set_column(
        3, "country", pa.array(rng.choice(np.array(["fr", "de", "it", "es"]), 20_000).tolist(), pa.string())
    )
    profile = fit_profile(reference, MERGE_SPECS)
    days = [daily_table(rng, int(n)) for n in rng.integers(1_000, 6_000, 7)]
    return profile, days


def assert_summaries_equal(a: WindowSummary, b: WindowSummary, abs_sums: dict[str, np.ndarray] | None = None):
    assert a.rows == b.rows
    assert a.problems == b.problems
    assert set(a.columns) == set(b.columns)
    for name, ca in a.columns.items():
        cb = b.columns[name]
        assert type(ca) is type(cb)
        assert ca.missing == cb.missing
        if isinstance(ca, NumericalCounts):
            np.testing.assert_array_equal(ca.sketch_counts, cb.sketch_counts)
            # Float sums: equal up to rounding, 1e-12 of the sum of magnitudes in each bin.
            bound = 1e-12 * (abs_sums[name] if abs_sums else np.abs(cb.sketch_sums)) + 1e-300
            assert np.all(np.abs(ca.sketch_sums - cb.sketch_sums) <= bound)
        else:
            np.testing.assert_array_equal(ca.counts, cb.counts)
            assert ca.unseen_values == cb.unseen_values


def abs_bin_sums(profile, table: pa.Table) -> dict[str, np.ndarray]:
    out = {}
    for name, col in profile.columns.items():
        if col.spec.kind != "numerical":
            continue
        values = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        values = values[np.isfinite(values)]
        index = np.searchsorted(col.binning.sketch_edges, values, side="right")
        out[name] = np.bincount(index, weights=np.abs(values), minlength=col.binning.n_sketch_bins)
    return out


def test_daily_summaries_add_up_to_the_weekly_summary(merge_setup):
    profile, days = merge_setup
    week = pa.concat_tables(days)
    weekly = summarize(profile, [week])
    total = summarize(profile, [days[0]])
    for day in days[1:]:
        total = total + summarize(profile, [day])
    bounds = abs_bin_sums(profile, week)
    assert_summaries_equal(total, weekly, bounds)
    assert total.rows == week.num_rows == sum(d.num_rows for d in days)
    unseen = weekly.columns["country"].unseen_values
    assert set(unseen) == {"xx", "yy"}
    country = week.column("country").to_pylist()
    assert unseen == {"xx": country.count("xx"), "yy": country.count("yy")}
    # Addition is associative and commutative: summing in reverse order gives the same counts.
    reverse = summarize(profile, [days[-1]])
    for day in reversed(days[:-1]):
        reverse = summarize(profile, [day]) + reverse
    assert_summaries_equal(reverse, weekly, bounds)
    # And the comparison on the merged summary is the weekly comparison.
    a, b = compare(profile, total).to_dict(), compare(profile, weekly).to_dict()
    for name in a["columns"]:
        for key, value in a["columns"][name].items():
            if isinstance(value, float):
                assert value == pytest.approx(b["columns"][name][key], rel=1e-9, abs=1e-12)
            else:
                assert value == b["columns"][name][key]


def test_streaming_record_batches_of_different_sizes_gives_the_same_summary(merge_setup):
    profile, days = merge_setup
    week = pa.concat_tables(days)
    weekly = summarize(profile, [week])
    rng = np.random.default_rng(4)
    cuts = np.sort(rng.choice(np.arange(1, week.num_rows), 12, replace=False))
    bounds = np.concatenate(([0], cuts, [week.num_rows]))
    batches = []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        batches.extend(week.slice(int(start), int(stop - start)).to_batches())
    assert len({b.num_rows for b in batches}) > 5
    streamed = summarize(profile, iter(batches))
    assert_summaries_equal(streamed, weekly, abs_bin_sums(profile, week))
    small = summarize(profile, week.to_batches(max_chunksize=777))
    assert_summaries_equal(small, weekly, abs_bin_sums(profile, week))


def test_window_summary_dict_round_trip_is_lossless(merge_setup):
    profile, days = merge_setup
    summary = summarize(profile, [days[0]])
    restored = WindowSummary.from_dict(json.loads(json.dumps(summary.to_dict())))
    assert_summaries_equal(restored, summary)
    for name, counts in summary.columns.items():
        if isinstance(counts, NumericalCounts):
            np.testing.assert_array_equal(restored.columns[name].sketch_sums, counts.sketch_sums)
    assert compare(profile, restored).to_dict() == compare(profile, summary).to_dict()


def test_profile_json_round_trip_gives_identical_results(merge_setup):
    profile, days = merge_setup
    restored = ReferenceProfile.from_json(profile.to_json())
    assert restored.fingerprint() == profile.fingerprint()
    assert restored.to_json() == profile.to_json()
    for day in days[:3]:
        a = compare(profile, summarize(profile, [day])).to_dict()
        b = compare(restored, summarize(restored, [day])).to_dict()
        assert a == b


# --------------------------------------------------------------------------- Holm


def test_holm_adjustment_matches_a_hand_computed_example():
    # Sorted: .005 (x4), .01 (x3), .03 (x2), .04 (x1) -> .02, .03, .06, .04 -> running max .02 .03 .06 .06
    assert holm_adjusted([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    assert holm_adjusted([0.5, 0.6]) == [1.0, 1.0]  # 2 x .5 = 1, capped
    assert holm_adjusted([0.02, 0.02, 0.9]) == pytest.approx([0.06, 0.06, 0.9], abs=1e-15)
    assert holm_adjusted([]) == []


def holm_by_loop(pvalues: list[float]) -> list[float]:
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def test_compare_adjusts_feature_pvalues_with_holm_and_not_the_prediction():
    rng = np.random.default_rng(12)
    n = 5_000
    names = [f"f{i}" for i in range(6)]
    ref = {f: rng.normal(0, 1, n) for f in names} | {"pred": rng.random(n)}
    cur = {f: rng.normal(0.03 * i, 1, 2_000) for i, f in enumerate(names)} | {"pred": rng.random(2_000) ** 1.05}
    specs = [ColumnSpec(f, "numerical") for f in names] + [ColumnSpec("pred", "numerical", "prediction")]
    profile = fit_profile(pa.table(ref), specs)
    result = compare(profile, summarize(profile, [pa.table(cur)]), DecisionRules())
    raw = [result.columns[f].ks_pvalue for f in names]
    expected = holm_by_loop(raw)
    for f, p in zip(names, expected, strict=True):
        assert result.columns[f].adjusted_pvalue == pytest.approx(p, rel=1e-12)
    assert result.columns["pred"].adjusted_pvalue == result.columns["pred"].ks_pvalue
