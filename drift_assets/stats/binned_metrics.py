"""Classification metrics from per-bin counts on a score grid (the pure arithmetic behind CBPE).

Two kinds of input, same formulas:

- *expected* counts: per bin, rows and the sums of calibrated probabilities p and p^2 (a window
  before its labels arrive);
- *observed* counts: per bin, positives and negatives (labels, real or simulated).

Bins are ordered by score; bins at or above ``threshold_bin`` are predicted positive. Inside a bin
scores count as tied (half a concordant pair), which is what binning costs the AUC.
Every function accepts a leading axis (e.g. Monte Carlo draws x bins) where it makes sense.
Undefined values (no predicted positive for precision, one class only for AUC) are NaN.
"""

from __future__ import annotations

import numpy as np


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator, denominator = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def threshold_metrics(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and accuracy from confusion counts (expected or observed)."""
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * np.asarray(tp), 2 * np.asarray(tp) + fp + fn),
        "accuracy": _ratio(np.asarray(tp) + tn, np.asarray(tp) + fp + fn + tn),
    }


def confusion_from_labels(positives: np.ndarray, negatives: np.ndarray, threshold_bin: int) -> dict[str, np.ndarray]:
    """TP, FP, FN, TN when bins >= threshold_bin are predicted positive."""
    return {
        "tp": positives[..., threshold_bin:].sum(axis=-1),
        "fp": negatives[..., threshold_bin:].sum(axis=-1),
        "fn": positives[..., :threshold_bin].sum(axis=-1),
        "tn": negatives[..., :threshold_bin].sum(axis=-1),
    }


def binned_auc(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC of labelled rows on the grid: positive above negative is 1, same bin is 1/2."""
    positives = np.asarray(positives, dtype=np.float64)
    negatives = np.asarray(negatives, dtype=np.float64)
    negatives_below = np.cumsum(negatives, axis=-1) - negatives
    concordant = (positives * (negatives_below + 0.5 * negatives)).sum(axis=-1)
    return _ratio(concordant, positives.sum(axis=-1) * negatives.sum(axis=-1))


def expected_auc(rows: np.ndarray, probability_sums: np.ndarray, probability_square_sums: np.ndarray) -> float:
    """E[concordant pairs] / E[positives x negatives] with labels ~ independent Bernoulli(p_i).

    Pair (i, j) is (positive, negative) with probability p_i (1 - p_j). Across bins b > c the sum is
    S_b (n_c - S_c); inside bin b it is S_b (n_b - 1) - (S_b^2 - Q_b) (i != j), counted half.
    """
    n = rows.astype(np.float64)
    s, q = probability_sums, probability_square_sums
    expected_negatives = n - s
    negatives_below = np.cumsum(expected_negatives) - expected_negatives
    within = s * (n - 1.0) - (s * s - q)
    concordant = float((s * negatives_below).sum() + 0.5 * within.sum())
    total_s, total_n = float(s.sum()), float(n.sum())
    pairs = total_s * (total_n - 1.0) - (total_s * total_s - float(q.sum()))
    return concordant / pairs if pairs > 0 else float("nan")


def expected_confusion(rows: np.ndarray, probability_sums: np.ndarray, threshold_bin: int) -> dict[str, float]:
    """Expected TP, FP, FN, TN: the sums of p above and below the threshold."""
    tp = float(probability_sums[threshold_bin:].sum())
    fn = float(probability_sums[:threshold_bin].sum())
    return {
        "tp": tp,
        "fp": float(rows[threshold_bin:].sum()) - tp,
        "fn": fn,
        "tn": float(rows[:threshold_bin].sum()) - fn,
    }


def simulate_metrics(
    rows: np.ndarray, probabilities: np.ndarray, threshold_bin: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Metrics of labels drawn per bin as Binomial(rows, p); ``probabilities`` is draws x bins."""
    positives = rng.binomial(rows, probabilities)
    negatives = rows - positives
    confusion = confusion_from_labels(positives, negatives, threshold_bin)
    return {"roc_auc": binned_auc(positives, negatives), **threshold_metrics(**confusion)}


__all__ = [
    "binned_auc",
    "confusion_from_labels",
    "expected_auc",
    "expected_confusion",
    "simulate_metrics",
    "threshold_metrics",
]
