"""Chi-square test of homogeneity for categorical columns (2 x k contingency, no correction).

Two-sample, because the reference is a sample too: a goodness-of-fit test against reference
proportions would treat them as exact and over-reject. Buckets empty on both sides are dropped
(they carry no information and would make expected counts zero).
"""

from __future__ import annotations

import numpy as np
from scipy.special import chdtrc  # chi2.sf without importing scipy.stats

DEFAULT_ALPHA = 0.05


def chi2_homogeneity_pvalue(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    table = np.vstack([reference_counts, current_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return float(chdtrc(table.shape[1] - 1, statistic))
