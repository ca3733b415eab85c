"""The few special functions the compare path needs, on numpy and ``math`` only.

``scipy.special`` costs ~70 ms to import (its array-API layer builds a namespace copy of numpy and
parses 94 docstrings), more than a tenth of a 100k-row comparison, for six functions:

- ``normal_sf`` / ``normal_isf``: the standard normal tail and its inverse (``scipy.special.ndtr(-z)``
  and ``-ndtri(p)``; ``math.erfc`` and ``statistics.NormalDist``, Wichura's AS241);
- ``log_gamma``: ``gammaln``, vectorised (``math.lgamma`` for scalars, short arrays and arguments
  below ``STIRLING_MIN``, Stirling's series above), and ``log_choose`` on it;
- ``chi2_sf``: ``chdtrc``, the regularised upper incomplete gamma function Q(df/2, x/2) (series
  below x = a + 1, Lentz's continued fraction above, as in Numerical Recipes);
- ``kolmogorov_sf``: ``kolmogorov``, Kolmogorov's limiting distribution (the theta-function sum
  below ``KOLMOGOROV_CUTOVER``, the alternating sum above, as in cephes);
- ``smirnov_sf``: ``smirnov``, the exact one-sided tail P(D+_n >= e) (Birnbaum-Tingey), summed
  in logs.

Each is tested against ``scipy.special`` over the ranges the checks use (``test_special.py``).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

# From here up, Stirling's series with 8 terms is exact to double precision (the first omitted
# term is ~1e-22 at 16); below, math.lgamma (callers pass few small arguments).
STIRLING_MIN = 16.0
# Up to this many values, a Python loop over math.lgamma beats the vectorised series' overhead.
SMALL_ARRAY = 32
# Below this, the theta-function form of Kolmogorov's distribution converges in 2-3 terms.
KOLMOGOROV_CUTOVER = 0.82
_MAX_TERMS = 10_000
_EPS = 1e-16
_TINY = 1e-300
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
# Stirling coefficients B_2j / (2j (2j - 1)), j = 8 .. 1, highest first (for np.polyval).
STIRLING_COEFFS = [
    -2.955065359477124183e-2,
    6.4102564102564102564e-3,
    -1.9175269175269175269e-3,
    8.4175084175084175084e-4,
    -5.952380952380952381e-4,
    7.9365079365079365079e-4,
    -2.7777777777777777778e-3,
    8.3333333333333333333e-2,
]
_STANDARD_NORMAL = NormalDist()


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z (``scipy.stats.norm.sf``)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def normal_isf(p: float) -> float:
    """The z with P(Z > z) = p (``scipy.stats.norm.isf``): +inf at p = 0, -inf at p = 1."""
    return -_normal_ppf(float(p))


def normal_quantiles(p: np.ndarray) -> np.ndarray:
    """``Phi^-1(p)`` of each entry (``scipy.special.ndtri``), for small arrays."""
    return np.array([_normal_ppf(float(v)) for v in np.ravel(p)]).reshape(np.shape(p))


def _normal_ppf(p: float) -> float:
    if 0.0 < p < 1.0:
        return _STANDARD_NORMAL.inv_cdf(p)
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return math.inf
    return math.nan  # outside [0, 1], or NaN: as ndtri


def log_gamma(x):
    """``log(Gamma(x))`` for x > 0, elementwise (``scipy.special.gammaln``); a float for a scalar.
    Scalars and small arrays (the missing-rate test calls this ~10 times a column) go through
    ``math.lgamma``; long arrays (Smirnov's and the hypergeometric sums) through Stirling's series."""
    if np.ndim(x) == 0:
        return math.lgamma(float(x))
    values = np.asarray(x, dtype=np.float64)
    if values.size <= SMALL_ARRAY:
        return np.array([math.lgamma(v) for v in values.ravel().tolist()]).reshape(values.shape)
    small = values < STIRLING_MIN
    if not small.any():
        return _stirling(values)
    out = np.empty_like(values)
    out[small] = [math.lgamma(v) for v in values[small].tolist()]
    out[~small] = _stirling(values[~small])
    return out


def _stirling(x: np.ndarray) -> np.ndarray:
    """(x - 1/2) log x - x + log(2 pi)/2 + sum_j B_2j / (2j (2j - 1) x^(2j - 1)), Horner in 1/x²."""
    inverse = 1.0 / x
    inverse_squared = inverse * inverse
    series = np.full_like(x, STIRLING_COEFFS[0])
    for coefficient in STIRLING_COEFFS[1:]:
        series *= inverse_squared
        series += coefficient
    series *= inverse
    out = x - 0.5
    out *= np.log(x)
    out -= x
    out += _HALF_LOG_2PI
    out += series
    return out


def log_choose(n, k):
    """``log(n! / (k! (n - k)!))``, elementwise, for 0 <= k <= n."""
    return log_gamma(n + 1.0) - log_gamma(k + 1.0) - log_gamma(n - k + 1.0)


def chi2_sf(df: float, x: float) -> float:
    """P(X > x) for X ~ chi-square with ``df`` degrees of freedom (``scipy.special.chdtrc``)."""
    if df <= 0 or math.isnan(x):
        return math.nan
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    return _upper_regularized_gamma(0.5 * df, 0.5 * x)


def _upper_regularized_gamma(a: float, x: float) -> float:
    log_prefactor = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        return 1.0 - _lower_series(a, x, log_prefactor)
    return _upper_continued_fraction(a, x, log_prefactor)


def _lower_series(a: float, x: float, log_prefactor: float) -> float:
    """P(a, x) = x^a e^-x / Gamma(a + 1) * sum_n x^n / ((a + 1) ... (a + n))."""
    term = total = 1.0 / a
    denominator = a
    for _ in range(_MAX_TERMS):
        denominator += 1.0
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return min(1.0, total * math.exp(log_prefactor))


def _upper_continued_fraction(a: float, x: float, log_prefactor: float) -> float:
    """Q(a, x) = x^a e^-x / Gamma(a) * 1 / (x + 1 - a - 1(1 - a) / (x + 3 - a - ...)), by Lentz."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    fraction = d
    for i in range(1, _MAX_TERMS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        step = d * c
        fraction *= step
        if abs(step - 1.0) < _EPS:
            break
    return min(1.0, math.exp(log_prefactor) * fraction)


def kolmogorov_sf(y: float) -> float:
    """P(K > y) for Kolmogorov's limiting distribution K = lim sqrt(n) D_n (``scipy.special.kolmogorov``)."""
    if math.isnan(y):
        return math.nan
    if y <= 0:
        return 1.0
    if y < KOLMOGOROV_CUTOVER:
        # CDF = sqrt(2 pi) / y * sum_k exp(-(2k - 1)^2 pi^2 / (8 y^2))
        w = math.pi**2 / (8 * y * y)
        total = 0.0
        for k in range(1, _MAX_TERMS):
            term = math.exp(-((2 * k - 1) ** 2) * w)
            total += term
            if term < _EPS * total:
                break
        return 1.0 - math.sqrt(2 * math.pi) / y * total
    # SF = 2 sum_k (-1)^(k-1) exp(-2 k^2 y^2)
    total, sign = 0.0, 1.0
    for k in range(1, _MAX_TERMS):
        term = math.exp(-2.0 * k * k * y * y)
        total += sign * term
        sign = -sign
        if term < _EPS * abs(total) or term == 0.0:
            break
    return min(1.0, max(0.0, 2.0 * total))


def smirnov_sf(n: int, e: float) -> float:
    """P(D+_n >= e) = e * sum_j C(n, j) (1 - e - j/n)^(n-j) (e + j/n)^(j-1), j <= n(1 - e): the
    exact one-sided Kolmogorov-Smirnov tail (``scipy.special.smirnov``), its terms summed in logs."""
    if math.isnan(e):
        return math.nan
    if e <= 0.0:
        return 1.0
    if e >= 1.0:
        return 0.0
    j = np.arange(int(np.floor(n * (1 - e))) + 1, dtype=np.float64)
    rest = 1 - e - j / n
    j, rest = j[rest > 0], rest[rest > 0]  # a term with rest == 0 is 0
    if j.size == 0:
        return 0.0
    log_terms = log_choose(n, j) + (n - j) * np.log(rest) + (j - 1) * np.log(e + j / n)
    top = log_terms.max()
    return float(min(1.0, np.exp(np.log(e) + top + np.log(np.exp(log_terms - top).sum()))))
