"""Change of a rate (refusals, empty outputs) between a window and a baseline.

Fisher's exact test on the 2x2 table (two-sided): exact at the tens of rows a quiet hour has, where
the two-proportion z-test's normal approximation flags noise (4 refusals in 30 rows against a 2%
baseline gives z-test p ~ 1e-5 but exact p ~ 0.003). A change must also be at least
``min_change`` in absolute terms, so 1 refusal in 40 rows is never an incident.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drift_assets.stats.special import log_choose

DEFAULT_ALPHA = 0.001
DEFAULT_MIN_CHANGE = 0.05


@dataclass(frozen=True)
class RateChange:
    current_rate: float
    baseline_rate: float
    change: float
    pvalue: float

    def is_incident(self, alpha: float = DEFAULT_ALPHA, min_change: float = DEFAULT_MIN_CHANGE) -> bool:
        return self.pvalue < alpha and abs(self.change) >= min_change


def rate_change(current_hits: int, current_total: int, baseline_hits: int, baseline_total: int) -> RateChange:
    if current_total <= 0 or baseline_total <= 0:
        raise ValueError("rate_change needs rows on both sides")
    from scipy.stats import fisher_exact  # here: scipy.stats costs ~0.6 s to import

    table = [[current_hits, current_total - current_hits], [baseline_hits, baseline_total - baseline_hits]]
    _, pvalue = fisher_exact(table, alternative="two-sided")
    current, baseline = current_hits / current_total, baseline_hits / baseline_total
    return RateChange(current, baseline, current - baseline, float(pvalue))


def increase_pvalue(current_hits: int, current_total: int, reference_hits: int, reference_total: int) -> float:
    """One-sided Fisher exact p-value that the current rate is above the reference rate.

    Equal to ``scipy.stats.fisher_exact(table, alternative="greater")`` (to ~1e-9 relative, tested):
    the hypergeometric upper tail summed in logs (``special.log_choose``), so the compare path never
    imports ``scipy.stats``.
    """
    if current_total <= 0 or reference_total <= 0:
        raise ValueError("increase_pvalue needs rows on both sides")
    hits = current_hits + reference_hits
    return _hypergeometric_upper_tail(current_hits, current_total, hits, current_total + reference_total)


def _hypergeometric_upper_tail(hits: int, draws: int, successes: int, population: int) -> float:
    """P(X >= hits), X ~ hypergeometric(population, successes, draws)."""
    low = max(hits, 0, draws + successes - population)
    high = min(draws, successes)
    if low > high:
        return 0.0
    k = np.arange(low, high + 1, dtype=np.float64)
    log_terms = log_choose(successes, k) + log_choose(population - successes, draws - k)
    top = log_terms.max()
    log_tail = top + np.log(np.exp(log_terms - top).sum()) - log_choose(population, draws)
    return float(min(1.0, np.exp(log_tail)))
