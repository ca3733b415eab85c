"""Slow drift across windows: a two-sided CUSUM (Page, 1954) on each window's standardised mean shift.

A trend of 1% a day moves no single hourly window far enough for PSI to cross 0.2 for weeks, but
every window leans the same way. Per window ``t`` and column, from the stored result alone (no
rescan of rows):

    z_t = (mean_t - reference_mean) / (reference_std / sqrt(valid_t))

which is ~N(0, 1) with no drift whatever the window's size (hourly windows go from 25 to 350 rows).
The upper and lower sums ``S+ = max(0, S+ + z - k)``, ``S- = max(0, S- - z - k)`` alarm when either
exceeds ``h``. ``k`` = 0.5 is tuned to a shift of 1 standard error per window; ``h`` is calibrated by
``calibrate_threshold`` to an expected run length under no drift (ARL0) of at least 200 windows.
After an alarm the sums restart from 0.

``z_t`` is only approximately normal for skewed columns at small n (a lognormal length at 25 rows),
so the calibration is checked on the real pipeline too (docs/detection.md, the test).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_ALLOWANCE = 0.5
TARGET_ARL0 = 200
# calibrate_threshold(0.5, 200) (2,000 simulated N(0, 1) runs of 3,000 windows) gives h = 4.2,
# ARL0 207. But z of a skewed column in small windows is heavier-tailed than N(0, 1): on the real
# pipeline (LLM output length, hourly windows of 25-350 rows, 16 x 500 stationary windows) h = 5.0
# alarmed every 320 windows, 5.5 every 471, 6.0 every 615, while the 1%/day trend was caught at the
# same windows for all three. 5.5 keeps a margin over the 200-window target.
DEFAULT_THRESHOLD = 5.5


@dataclass(frozen=True)
class Cusum:
    upper: np.ndarray  # S+ after each window
    lower: np.ndarray  # S- after each window
    threshold: float
    alarms: tuple[int, ...]  # window indices where S+ or S- crossed the threshold (then reset)

    @property
    def first_alarm(self) -> int | None:
        return self.alarms[0] if self.alarms else None

    @property
    def statistic(self) -> float:
        """The current max(S+, S-): the value a check reports against ``threshold``."""
        return float(max(self.upper[-1], self.lower[-1])) if self.upper.size else 0.0


def standardised_mean_shift(current_mean: float, reference_mean: float, reference_std: float, valid: int) -> float:
    if reference_std <= 0 or valid <= 0:
        return 0.0
    return (current_mean - reference_mean) / (reference_std / np.sqrt(valid))


def cusum(
    z: Sequence[float], *, allowance: float | Sequence[float] = DEFAULT_ALLOWANCE, threshold: float = DEFAULT_THRESHOLD
) -> Cusum:
    """``allowance``: one k for every window, or one per window (e.g. raised for large windows by a
    minimum shift, ``monitoring.gradual.MIN_SHIFT_SD``). ``upper``/``lower`` hold the sums before
    an alarm's reset, so at an alarm window they show the value that crossed."""
    upper = np.zeros(len(z))
    lower = np.zeros(len(z))
    ks = np.broadcast_to(np.asarray(allowance, dtype=float), (len(z),))
    alarms = []
    s_plus = s_minus = 0.0
    for t, value in enumerate(z):
        k = float(ks[t])
        s_plus = max(0.0, s_plus + value - k)
        s_minus = max(0.0, s_minus - value - k)
        upper[t], lower[t] = s_plus, s_minus
        if s_plus > threshold or s_minus > threshold:
            alarms.append(t)
            s_plus = s_minus = 0.0
    return Cusum(upper, lower, threshold, tuple(alarms))


def run_lengths(z: np.ndarray, allowance: float, threshold: float) -> np.ndarray:
    """Windows until the first alarm, for each row of ``z`` (runs x windows); censored at the width."""
    runs, width = z.shape
    s_plus = np.zeros(runs)
    s_minus = np.zeros(runs)
    length = np.full(runs, width)
    alive = np.ones(runs, dtype=bool)
    for t in range(width):
        s_plus = np.maximum(0.0, s_plus + z[:, t] - allowance)
        s_minus = np.maximum(0.0, s_minus - z[:, t] - allowance)
        hit = alive & ((s_plus > threshold) | (s_minus > threshold))
        length[hit] = t + 1
        alive &= ~hit
    return length


def calibrate_threshold(
    allowance: float = DEFAULT_ALLOWANCE,
    target_arl: float = TARGET_ARL0,
    *,
    runs: int = 2_000,
    width: int = 3_000,
    seed: int = 0,
) -> tuple[float, float]:
    """The smallest h on a 0.1 grid whose mean no-drift run length (N(0, 1) windows) is >= target.

    Bisection over the grid (the run length grows with h). Returns (h, its measured ARL0).
    """
    z = np.random.default_rng(seed).standard_normal((runs, width))
    grid = np.round(np.arange(1.0, 10.01, 0.1), 1)
    lo, hi = 0, len(grid) - 1
    arl_at: dict[int, float] = {}
    while lo < hi:
        mid = (lo + hi) // 2
        arl_at[mid] = float(run_lengths(z, allowance, float(grid[mid])).mean())
        if arl_at[mid] >= target_arl:
            hi = mid
        else:
            lo = mid + 1
    arl = arl_at.get(lo, float(run_lengths(z, allowance, float(grid[lo])).mean()))
    if arl < target_arl:
        raise ValueError("no threshold up to 10 reaches the target run length")
    return float(grid[lo]), arl
