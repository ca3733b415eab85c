"""Calibration of a probability score: isotonic regression (pool adjacent violators), centred.

Why isotonic: it assumes only that a higher score never means a lower fraud probability, so it fixes
any monotone miscalibration (an over-confident model, a model trained on re-sampled data whose scores
are shifted) without a parametric form such as Platt's logistic curve.

Why *centred* (Oron & Flournoy, "Centered isotonic regression", 2017): plain isotonic regression is a
step function; every score inside one step gets the same probability, so pairs inside a step look
tied and the expected AUC computed from it is biased low. Centred isotonic regression puts one knot
per pooled block at the block's mean score with the block's observed rate and interpolates linearly
between knots (flat beyond the outer knots). It is still monotone, keeps every block's mean rate, and
ranks scores inside a block.

The fit runs on a fine score histogram of the reference (counts and positives per bin), not on rows:
the pooling is the same up to the bin width (1/1000 of the score range or finer), it takes
milliseconds, and a Poisson bootstrap of the bin counts gives the calibration's own sampling error
(``bootstrap_calibrations``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


def pool_adjacent_violators(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted isotonic (non-decreasing) fit of ``values`` in the given order.

    Returns the blocks as ``(start index, weight, fitted value)`` arrays; block i covers positions
    ``start[i]`` to ``start[i + 1] - 1``. Classic stack algorithm, O(n): each position is pushed once
    and merged at most once.
    """
    starts: list[int] = []
    block_weights: list[float] = []
    block_means: list[float] = []
    for i, (value, weight) in enumerate(zip(values.tolist(), weights.tolist(), strict=True)):
        starts.append(i)
        block_weights.append(weight)
        block_means.append(value)
        # Merge while the newest block violates the order with its left neighbour.
        while len(block_means) > 1 and block_means[-2] >= block_means[-1]:
            w = block_weights[-2] + block_weights[-1]
            m = (block_means[-2] * block_weights[-2] + block_means[-1] * block_weights[-1]) / w
            starts.pop()
            block_weights.pop()
            block_means.pop()
            block_weights[-1] = w
            block_means[-1] = m
    return np.asarray(starts, dtype=np.int64), np.asarray(block_weights), np.asarray(block_means)


@dataclass(frozen=True)
class CalibrationMap:
    """Piecewise-linear monotone map from score to probability (knots strictly increasing in x)."""

    knots_x: np.ndarray
    knots_y: np.ndarray

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(scores, self.knots_x, self.knots_y)

    def to_dict(self) -> dict:
        return {"knots_x": self.knots_x.tolist(), "knots_y": self.knots_y.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping) -> CalibrationMap:
        return cls(np.asarray(data["knots_x"], dtype=np.float64), np.asarray(data["knots_y"], dtype=np.float64))


def fit_centered_isotonic(counts: np.ndarray, positives: np.ndarray, score_sums: np.ndarray) -> CalibrationMap:
    """Centred isotonic map from a score histogram: per bin, rows, positive rows and the sum of scores.

    Pooling ties (``>=`` in the merge test) gives strictly increasing block rates, so no two knots
    share a probability and the map is strictly increasing between its outer knots.
    """
    occupied = counts > 0
    n = counts[occupied].astype(np.float64)
    rates = positives[occupied] / n
    starts, weights, fitted = pool_adjacent_violators(rates, n)
    block_of_bin = np.repeat(np.arange(len(weights)), np.diff(np.append(starts, len(rates))))
    block_score_sum = np.bincount(block_of_bin, weights=score_sums[occupied], minlength=len(weights))
    knots_x = block_score_sum / weights
    return CalibrationMap(knots_x, np.clip(fitted, 0.0, 1.0))


def bootstrap_calibrations(
    counts: np.ndarray, positives: np.ndarray, score_sums: np.ndarray, *, replicates: int, seed: int
) -> list[CalibrationMap]:
    """Calibration maps refitted on Poisson-bootstrapped histograms (positives and negatives per bin
    each drawn from a Poisson with the observed count as mean: the row bootstrap in the limit)."""
    rng = np.random.default_rng(seed)
    negatives = counts - positives
    mean_scores = np.divide(score_sums, counts, out=np.zeros_like(score_sums), where=counts > 0)
    maps = []
    for _ in range(replicates):
        pos = rng.poisson(positives)
        neg = rng.poisson(negatives)
        total = pos + neg
        maps.append(fit_centered_isotonic(total, pos, mean_scores * total))
    return maps


def brier_score(probabilities: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean((probabilities - target) ** 2))


def reliability_by_decile(scores: np.ndarray, probabilities: np.ndarray, target: np.ndarray) -> list[dict]:
    """Per score decile of the reference: rows, mean raw score, mean calibrated probability, observed rate.

    Deciles are by rank (ties split by position), so every decile holds a tenth of the rows even when
    most scores are near zero, as in fraud.
    """
    order = np.argsort(scores, kind="stable")
    out = []
    for decile, rows in enumerate(np.array_split(order, 10), start=1):
        if rows.size == 0:
            continue
        out.append(
            {
                "decile": decile,
                "rows": int(rows.size),
                "score_min": float(scores[rows].min()),
                "score_max": float(scores[rows].max()),
                "mean_score": float(scores[rows].mean()),
                "mean_calibrated": float(probabilities[rows].mean()),
                "observed_rate": float(target[rows].mean()),
            }
        )
    return out


__all__ = [
    "CalibrationMap",
    "bootstrap_calibrations",
    "brier_score",
    "fit_centered_isotonic",
    "pool_adjacent_violators",
    "reliability_by_decile",
]
