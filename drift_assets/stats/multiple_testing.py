"""Family-wise error control for "any feature drifted": testing 25 columns at p < 0.05 each raises
a false alarm in most stationary windows, so feature p-values are Holm-adjusted first."""

from __future__ import annotations

import numpy as np


def holm_adjusted(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (monotone, capped at 1), in the input order."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted.tolist()


# Windows smaller than this test at ``SMALL_WINDOW_ALPHA`` (or the configured alpha, if stricter):
# there the minimum effect no longer screens out sampling noise (stats.compare.effective_alpha).
SMALL_WINDOW_ROWS = 1_000
SMALL_WINDOW_ALPHA = 0.01
