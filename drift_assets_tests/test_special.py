"""``drift_assets.stats.special`` against ``scipy.special`` / ``scipy.stats``, over the ranges the
checks use and past them (tails, large degrees of freedom, large n)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special as sp
from scipy import stats

from drift_assets.stats import special


def _relative_error(ours: float, theirs: float) -> float:
    return abs(ours - theirs) / abs(theirs) if theirs != 0 else abs(ours)


def test_log_gamma_equals_gammaln_on_arrays_and_scalars():
    x = np.concatenate(
        (
            np.linspace(0.01, 40, 4_001),  # both sides of STIRLING_MIN
            np.arange(1, 200_001, dtype=np.float64),  # the integers the exact tails sum over
            np.geomspace(16, 1e12, 300),
        )
    )
    ours, theirs = special.log_gamma(x), sp.gammaln(x)
    assert ours.shape == x.shape
    np.testing.assert_allclose(ours, theirs, rtol=2e-15, atol=2e-15)
    short = x[:: len(x) // special.SMALL_ARRAY][: special.SMALL_ARRAY].reshape(4, -1)  # the math.lgamma path
    np.testing.assert_allclose(special.log_gamma(short), sp.gammaln(short), rtol=2e-15, atol=2e-15)
    assert special.log_gamma(short).shape == short.shape
    for value in (0.5, 1.0, 2.0, 15.999, 16.0, 16.001, 1e6):
        result = special.log_gamma(value)
        assert isinstance(result, float)
        assert result == pytest.approx(float(sp.gammaln(value)), rel=2e-15, abs=2e-15)


@pytest.mark.parametrize("df", [1, 2, 3, 5, 10, 19, 50, 100, 500, 1_000, 5_000])
def test_chi2_sf_equals_chdtrc(df):
    for x in np.geomspace(1e-3, 20 * df + 200, 400):
        expected = float(sp.chdtrc(df, x))
        assert expected == pytest.approx(float(stats.chi2.sf(x, df)), rel=1e-12, abs=1e-300)
        # 1e-11 relative down to 1e-300: far past any alpha a check uses
        assert special.chi2_sf(df, float(x)) == pytest.approx(expected, rel=1e-11, abs=1e-300), x
    assert special.chi2_sf(df, 0.0) == 1.0 and special.chi2_sf(df, math.inf) == 0.0
    assert math.isnan(special.chi2_sf(df, math.nan))


def test_kolmogorov_sf_equals_scipy_on_both_sides_of_the_cutover():
    for y in np.concatenate((np.linspace(0.01, 8, 4_000), [special.KOLMOGOROV_CUTOVER])):
        expected = float(sp.kolmogorov(y))
        assert special.kolmogorov_sf(float(y)) == pytest.approx(expected, rel=1e-13, abs=1e-15), y
    assert special.kolmogorov_sf(0.0) == 1.0 and special.kolmogorov_sf(-1.0) == 1.0
    assert special.kolmogorov_sf(40.0) == 0.0


@pytest.mark.parametrize("n", [141, 200, 500, 1_000, 2_000, 2_001, 5_000, 50_000])
def test_smirnov_sf_equals_scipy_smirnov(n):
    # from sqrt(2.2 / n), where ks_sf starts calling it, to the far tail
    for e in np.linspace(math.sqrt(2.2 / n), 0.999, 60):
        expected = float(sp.smirnov(n, e))
        assert special.smirnov_sf(n, float(e)) == pytest.approx(expected, rel=1e-9, abs=1e-300), e
    assert special.smirnov_sf(n, 0.0) == 1.0 and special.smirnov_sf(n, 1.0) == 0.0


def test_normal_tails_equal_scipy_stats_norm():
    for z in np.linspace(-10, 38, 4_801):
        assert special.normal_sf(float(z)) == pytest.approx(float(stats.norm.sf(z)), rel=1e-12, abs=1e-300), z
    for p in (0.5, 0.05, 0.01, 1e-3, 1e-6, 1e-12, 0.9):
        assert special.normal_isf(p) == pytest.approx(float(stats.norm.isf(p)), rel=1e-14, abs=1e-15)
    p = np.linspace(1e-6, 1 - 1e-6, 20_001).reshape(3, -1)[:, :6_000]
    quantiles = special.normal_quantiles(p)
    assert quantiles.shape == p.shape
    np.testing.assert_allclose(quantiles, sp.ndtri(p), rtol=1e-14, atol=4e-15)


def test_normal_quantiles_at_and_beyond_the_ends_are_ndtri_s():
    edges = np.array([0.0, 1.0, -0.5, 1.5, np.nan, 0.5])
    np.testing.assert_array_equal(special.normal_quantiles(edges), sp.ndtri(edges))
    assert special.normal_isf(0.0) == math.inf and special.normal_isf(1.0) == -math.inf


def test_log_choose_equals_the_log_of_scipys_binomial_coefficient():
    n = np.array([5, 40, 1_000, 50_000, 50_000])
    k = np.array([2, 0, 999, 1, 25_000])
    expected = sp.gammaln(n + 1) - sp.gammaln(k + 1) - sp.gammaln(n - k + 1)
    np.testing.assert_allclose(special.log_choose(n, k), expected, rtol=1e-14, atol=1e-12)
    assert special.log_choose(10, 3) == pytest.approx(math.log(120), rel=1e-15)
