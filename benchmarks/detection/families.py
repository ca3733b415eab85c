"""The stationary families and the shifts of the detection benchmark (seeded numpy generators).

A family draws one column; a shift draws a window of its base family and changes it by a
magnitude. Every generator takes a ``numpy.random.Generator`` and a row count, so a cell of the
benchmark is reproducible from its seed alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Array = np.ndarray
Draw = Callable[[np.random.Generator, int], Array]

CAT8_SHARES = np.array([0.30, 0.20, 0.15, 0.12, 0.09, 0.07, 0.05, 0.02])
CAT40_SHARES = (1.0 / np.arange(1, 41)) / np.sum(1.0 / np.arange(1, 41))  # Zipf, s = 1
CAT2_SHARES = np.array([0.7, 0.3])


def categories(prefix: str, shares: np.ndarray) -> np.ndarray:
    return np.array([f"{prefix}{k}" for k in range(len(shares))], dtype=object)


def draw_categories(g: np.random.Generator, n: int, prefix: str, shares: np.ndarray) -> Array:
    return categories(prefix, shares)[g.choice(len(shares), size=n, p=shares / shares.sum())]


def bimodal(g: np.random.Generator, n: int, left: float = 0.5) -> Array:
    side = g.random(n) < left
    return np.where(side, g.normal(-2.0, 1.0, n), g.normal(2.0, 1.0, n))


def zero_inflated(g: np.random.Generator, n: int, zeros: float = 0.4) -> Array:
    values = g.lognormal(2.0, 1.0, n)
    values[g.random(n) < zeros] = 0.0
    return values


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # "numerical" | "categorical"
    draw: Draw


FAMILIES = [
    Family("normal", "numerical", lambda g, n: g.normal(50.0, 10.0, n)),
    Family("student_t3", "numerical", lambda g, n: g.standard_t(3, n)),
    Family("lognormal", "numerical", lambda g, n: g.lognormal(3.0, 0.8, n)),
    Family("bimodal", "numerical", bimodal),
    Family("poisson3", "numerical", lambda g, n: g.poisson(3.0, n).astype(np.float64)),
    Family("zero_inflated", "numerical", zero_inflated),
    Family("uniform", "numerical", lambda g, n: g.uniform(0.0, 1.0, n)),
    Family("beta_0.5", "numerical", lambda g, n: g.beta(0.5, 0.5, n)),
    Family("constant", "numerical", lambda g, n: np.full(n, 2015.0)),
    Family("cat2", "categorical", lambda g, n: draw_categories(g, n, "b", CAT2_SHARES)),
    Family("cat8", "categorical", lambda g, n: draw_categories(g, n, "c", CAT8_SHARES)),
    Family("cat40", "categorical", lambda g, n: draw_categories(g, n, "z", CAT40_SHARES)),
]
FAMILY = {f.name: f for f in FAMILIES}


# --------------------------------------------------------------------------- shifts


def mean_shift(g, n, m):
    return g.normal(50.0 + m * 10.0, 10.0, n)


def scale_change(g, n, m):
    return g.normal(50.0, 10.0 * m, n)


def out_of_range(g, n, m, reference_max: float):
    values = g.lognormal(3.0, 0.8, n)
    moved = g.random(n) < m
    values[moved] = reference_max * g.uniform(1.01, 3.0, int(moved.sum()))
    return values


def mixture_weight(g, n, m):
    return bimodal(g, n, left=m)


def point_mass(g, n, m):
    return zero_inflated(g, n, zeros=m)


def category_share(g, n, m):
    shares = CAT8_SHARES.copy()
    shares[0] += m
    shares[1:] *= (1.0 - shares[0]) / CAT8_SHARES[1:].sum()
    return draw_categories(g, n, "c", shares)


def new_category(g, n, m):
    values = draw_categories(g, n, "c", CAT8_SHARES)
    values[g.random(n) < m] = "c_new"
    return values


# The Zipf categories whose share is nearest each magnitude vanish entirely.
def vanished_category(g, n, m):
    shares = CAT40_SHARES.copy()
    shares[int(np.argmin(np.abs(CAT40_SHARES - m)))] = 0.0
    return draw_categories(g, n, "z", shares)


def missing_rise(g, n, m):
    values = g.normal(50.0, 10.0, n)
    values[g.random(n) < m] = np.nan
    return values


@dataclass(frozen=True)
class Shift:
    name: str
    base: str  # the family it changes (its reference is that family's)
    magnitudes: tuple[float, float, float]
    unit: str
    draw: Callable


SHIFTS = [
    Shift("mean_shift", "normal", (0.1, 0.2, 0.5), "sd", mean_shift),
    Shift("scale_change", "normal", (1.1, 1.25, 1.5), "x sd", scale_change),
    Shift("out_of_range", "lognormal", (0.01, 0.05, 0.2), "share above max", out_of_range),
    Shift("mixture_weight", "bimodal", (0.45, 0.4, 0.3), "left weight (ref 0.5)", mixture_weight),
    Shift("point_mass", "zero_inflated", (0.35, 0.3, 0.2), "zero share (ref 0.4)", point_mass),
    Shift("category_share", "cat8", (0.02, 0.05, 0.1), "points on top category", category_share),
    Shift("new_category", "cat8", (0.005, 0.02, 0.05), "share of a new category", new_category),
    Shift("vanished_category", "cat40", (0.006, 0.02, 0.075), "share that vanishes", vanished_category),
    Shift("missing_rise", "normal", (0.02, 0.05, 0.1), "missing share (ref 0)", missing_rise),
]


def draw_shift(shift: Shift, g: np.random.Generator, n: int, magnitude: float, reference_max: float) -> Array:
    if shift.name == "out_of_range":
        return out_of_range(g, n, magnitude, reference_max)
    return shift.draw(g, n, magnitude)


def column_name(shift: Shift, magnitude: float) -> str:
    return f"{shift.name}@{magnitude:g}"
