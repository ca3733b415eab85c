"""Jensen-Shannon distance (base 2, so it lies in [0, 1]) between two histograms on the same bins."""

from __future__ import annotations

import numpy as np

# Evidently's default threshold for its JS-based drift test on large samples.
DEFAULT_THRESHOLD = 0.1


def jensen_shannon_distance(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    p = np.asarray(reference_counts, dtype=np.float64)
    q = np.asarray(current_counts, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2)))
