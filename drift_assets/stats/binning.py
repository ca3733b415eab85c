"""Binnings fitted on the reference: numerical PSI and sketch edges, categorical vocabularies.

Bins are left-closed, ``[edge_i, edge_i+1)``, and the outer bins are open (-inf / +inf): a current
value beyond the reference range is counted, never dropped.

Point masses. A value holding at least ``POINT_MASS_SHARE`` (5 %) of the reference's non-missing
values (the zeros of a zero-inflated amount, the 2015 of a constant column, each common count of a
Poisson column) gets a PSI bin of its own, ``[v, nextafter(v))``; the other values are cut into
``psi_bins - (number of point masses)`` quantile bins of their own (at least one), and any bin left
empty in the reference is merged into its left neighbour. The effective bin count therefore stays
near the configured one, and a change in a point mass's share (95 % zeros falling to 50 %) moves
PSI instead of vanishing inside one merged decile. A zero-variance reference keeps three bins: below,
at and above its single value, so a window off that value has PSI ~9 and out-of-range share 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drift_assets.stats.errors import ProfileError, TooManyCategoriesError
from drift_assets.stats.validation import as_numpy, category_strings, missing_mask

# A value holding at least this share of the reference's non-missing values is a point mass.
POINT_MASS_SHARE = 0.05


@dataclass(frozen=True)
class NumericalBinning:
    """PSI edges and sketch edges for one numerical column.

    ``sketch_edges`` are the sorted distinct reference quantiles (from the minimum to the maximum)
    followed by ``nextafter(max)``, so sketch bin 0 holds values below the reference range, the last
    bin values above it, and the one before it the reference maximum itself. ``psi_edges`` are a
    subset of the sketch edges (interior deciles above the minimum), so PSI counts are sums of
    sketch counts and a window is binned once.
    """

    psi_edges: np.ndarray
    sketch_edges: np.ndarray
    requested_bins: int
    reference_mean: float
    reference_std: float
    point_masses: tuple[float, ...] = ()

    @property
    def effective_bins(self) -> int:
        """PSI bins actually used: fewer than requested when ties merge quantiles."""
        return len(self.psi_edges) + 1

    @property
    def n_sketch_bins(self) -> int:
        return len(self.sketch_edges) + 1

    @property
    def reference_min(self) -> float:
        return float(self.sketch_edges[0])

    @property
    def reference_max(self) -> float:
        return float(self.sketch_edges[-2])

    def sketch_to_psi(self) -> np.ndarray:
        """PSI bin index of each sketch bin (exact, because PSI edges are sketch edges)."""
        lower_bounds = np.concatenate(([-np.inf], self.sketch_edges))
        return np.searchsorted(self.psi_edges, lower_bounds, side="right")

    def to_dict(self) -> dict:
        return {
            "psi_edges": [float(x) for x in self.psi_edges],
            "sketch_edges": [float(x) for x in self.sketch_edges],
            "requested_bins": self.requested_bins,
            "reference_mean": self.reference_mean,
            "reference_std": self.reference_std,
            "point_masses": list(self.point_masses),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> NumericalBinning:
        return cls(
            psi_edges=np.asarray(data["psi_edges"], dtype=np.float64),
            sketch_edges=np.asarray(data["sketch_edges"], dtype=np.float64),
            requested_bins=int(data["requested_bins"]),
            reference_mean=float(data["reference_mean"]),
            reference_std=float(data["reference_std"]),
            point_masses=tuple(float(v) for v in data.get("point_masses", ())),
        )

    def bin_labels(self) -> list[str]:
        """One label per PSI bin, for operators: ``= 0`` for a point mass's bin, else ``[a, b)``."""
        lower = np.concatenate(([-np.inf], self.psi_edges))
        upper = np.concatenate((self.psi_edges, [np.inf]))
        closes = {float(np.nextafter(m, np.inf)): m for m in self.point_masses}
        labels = []
        for lo, hi in zip(lower, upper, strict=True):
            mass = closes.get(float(hi))
            if mass is None:
                labels.append(f"[{lo:.4g}, {hi:.4g})")
            else:  # the lowest point mass's bin also holds values below the reference minimum
                labels.append(f"= {mass:g}" if lo == mass else f"<= {mass:g}")
        return labels


@dataclass(frozen=True)
class CategoricalBinning:
    """The reference vocabulary, most frequent first; one extra bucket counts unseen values."""

    vocabulary: tuple[str, ...]

    @property
    def n_buckets(self) -> int:
        return len(self.vocabulary) + 1

    def to_dict(self) -> dict:
        return {"vocabulary": list(self.vocabulary)}

    @classmethod
    def from_dict(cls, data: Mapping) -> CategoricalBinning:
        return cls(vocabulary=tuple(str(v) for v in data["vocabulary"]))


Binning = NumericalBinning | CategoricalBinning


class OrderStatistics(Protocol):
    """The finite reference values of one column, seen through what fitting edges needs: values at
    sorted ranks, heavy values and counts below edges. ``SortedValues`` answers from a sorted array;
    ``stats.streamed_fit`` answers in a few streaming passes without holding the column, so both
    give the same edges from the same arithmetic."""

    @property
    def size(self) -> int: ...

    def values_at(self, ranks: np.ndarray) -> np.ndarray:
        """Values at 0-based ranks of the sorted finite values."""
        ...

    def heavy_values(self, share: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """Distinct values holding at least ``share`` of the finite values: (values ascending, their
        frequencies, how many values are below each), and whether the column has one distinct value."""
        ...

    def count_below(self, edges: np.ndarray) -> np.ndarray:
        """How many finite values are strictly below each (ascending) edge."""
        ...


@dataclass(frozen=True)
class SortedValues:
    """Order statistics of an in-memory sorted array of finite values."""

    sorted_values: np.ndarray

    @property
    def size(self) -> int:
        return int(self.sorted_values.size)

    def values_at(self, ranks: np.ndarray) -> np.ndarray:
        return self.sorted_values[ranks]

    def heavy_values(self, share: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        # A value holding >= share of the n values fills >= ceil(share * n) consecutive ranks, so
        # one of these probes lands on it: no n-sized temporary (np.unique would make several).
        size = self.sorted_values.size
        probes = np.unique(self.sorted_values[:: max(1, math.ceil(share * size))])
        below = self.count_below(probes)
        frequency = np.searchsorted(self.sorted_values, probes, side="right") - below
        heavy = frequency >= share * size
        single = bool(self.sorted_values[0] == self.sorted_values[-1])
        return probes[heavy], frequency[heavy], below[heavy], single

    def count_below(self, edges: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.sorted_values, edges, side="left")


@dataclass(frozen=True)
class NumericalEdges:
    """What a numerical binning is made of, before the reference's mean and spread are known."""

    psi_edges: np.ndarray
    sketch_edges: np.ndarray
    point_masses: np.ndarray


def quantile_positions(size: int, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower and upper ranks and the interpolation fraction of numpy's default (linear) quantiles."""
    positions = probs * (size - 1)
    lower = np.floor(positions).astype(np.int64)
    upper = np.minimum(lower + 1, size - 1)
    return lower, upper, positions - lower


def _quantiles(
    stats: OrderStatistics,
    probs: np.ndarray,
    subset: tuple[int, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> np.ndarray:
    """Linear-interpolation quantiles (numpy's default method). ``subset``: quantiles of a subset
    of the values (those that are not point masses), given as its size and a map from its ranks
    to ranks of the whole column."""
    size, rank_of = subset if subset is not None else (stats.size, None)
    lower, upper, fraction = quantile_positions(size, probs)
    if rank_of is not None:
        lower, upper = rank_of(lower), rank_of(upper)
    wanted = np.unique(np.concatenate((lower, upper)))
    values = stats.values_at(wanted)
    low, high = values[np.searchsorted(wanted, lower)], values[np.searchsorted(wanted, upper)]
    return low + fraction * (high - low)


def _quantiles_of_sorted(sorted_values: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Linear-interpolation quantiles (numpy's default method) of an already sorted array."""
    return _quantiles(SortedValues(sorted_values), probs)


def fit_numerical_binning(
    values: np.ndarray,
    *,
    psi_bins: int,
    sketch_resolution: int,
    column: str,
    point_mass_share: float = POINT_MASS_SHARE,
) -> NumericalBinning:
    finite = values[~missing_mask(values)]
    if finite.size == 0:
        raise ProfileError(f"reference: column {column!r} has no finite values to fit bins on")
    return fit_sorted_numerical_binning(
        np.sort(finite),
        psi_bins=psi_bins,
        sketch_resolution=sketch_resolution,
        point_mass_share=point_mass_share,
    )


def fit_sorted_numerical_binning(
    sorted_finite: np.ndarray, *, psi_bins: int, sketch_resolution: int, point_mass_share: float = POINT_MASS_SHARE
) -> NumericalBinning:
    """``fit_numerical_binning`` of values already sorted, finite and non-empty."""
    edges = fit_numerical_edges(
        SortedValues(sorted_finite),
        psi_bins=psi_bins,
        sketch_resolution=sketch_resolution,
        point_mass_share=point_mass_share,
    )
    return binning_from_edges(edges, psi_bins, float(sorted_finite.mean()), float(sorted_finite.std()))


def binning_from_edges(edges: NumericalEdges, psi_bins: int, mean: float, std: float) -> NumericalBinning:
    return NumericalBinning(
        psi_edges=edges.psi_edges,
        sketch_edges=edges.sketch_edges,
        requested_bins=psi_bins,
        reference_mean=mean,
        reference_std=std,
        point_masses=tuple(float(v) for v in edges.point_masses),
    )


def fit_numerical_edges(
    stats: OrderStatistics, *, psi_bins: int, sketch_resolution: int, point_mass_share: float = POINT_MASS_SHARE
) -> NumericalEdges:
    """PSI and sketch edges from the column's order statistics (see the module docstring)."""
    probs = np.arange(sketch_resolution + 1) / sketch_resolution
    quantiles = _quantiles(stats, probs)
    extremes = stats.values_at(np.array([0, stats.size - 1], dtype=np.int64))
    maximum = float(extremes[1])
    masses, frequency, below, single_value = stats.heavy_values(point_mass_share)
    if masses.size == 0:
        # PSI edges are picked out of the sketch quantiles so that they are exactly sketch edges.
        step = sketch_resolution // psi_bins
        interior = quantiles[step:sketch_resolution:step]
        psi_edges = np.unique(interior[interior > float(extremes[0])])
        sketch_edges = np.append(np.unique(quantiles), np.nextafter(maximum, np.inf))
    else:
        psi_edges = _point_mass_edges(stats, masses, frequency, below, psi_bins, single_value=single_value)
        # Every PSI edge is a sketch edge, so a window is still binned once (PSI counts are sums).
        sketch_edges = np.unique(np.concatenate((quantiles, psi_edges, [np.nextafter(maximum, np.inf)])))
    return NumericalEdges(psi_edges, sketch_edges, masses)


def _point_mass_edges(
    stats: OrderStatistics,
    masses: np.ndarray,
    frequency: np.ndarray,
    below: np.ndarray,
    psi_bins: int,
    *,
    single_value: bool,
) -> np.ndarray:
    """Edges isolating each point mass, plus quantile edges over the values that are not one."""
    parts = [masses, np.nextafter(masses, np.inf)]
    rest_size = stats.size - int(frequency.sum())
    rest_bins = max(1, psi_bins - masses.size)
    if rest_size and rest_bins > 1:

        def rank_of(rest_ranks: np.ndarray) -> np.ndarray:
            """Rank in the whole column of the value at a rank among the values that are not masses."""
            full = rest_ranks.astype(np.int64)
            for start, count in zip(below, frequency, strict=True):  # ascending masses
                full = np.where(full >= start, full + count, full)
            return full

        parts.append(_quantiles(stats, np.arange(1, rest_bins) / rest_bins, (rest_size, rank_of)))
    candidates = np.unique(np.concatenate(parts))
    if single_value:
        return candidates  # below / at / above the reference's one value
    return _drop_empty_bins(stats.count_below(candidates), stats.size, candidates)


def _drop_empty_bins(left_of: np.ndarray, size: int, edges: np.ndarray) -> np.ndarray:
    """Keep an edge only if the reference has values both in the bin it closes and at or above it
    (``left_of``: how many values are below each edge)."""
    kept: list[float] = []
    last = 0
    for edge, below in zip(edges, left_of, strict=True):
        if below > last and below < size:
            kept.append(float(edge))
            last = int(below)
    return np.asarray(kept, dtype=np.float64)


def fit_categorical_binning(column: pa.Array, *, max_categories: int, name: str) -> CategoricalBinning:
    strings = category_strings(column, name, "reference")
    counts = pc.value_counts(strings.drop_null())
    return categorical_binning_from_counts(
        counts.field("values").to_pylist(), as_numpy(counts.field("counts")), max_categories, name
    )


def categorical_binning_from_counts(
    values: list[str], freqs: np.ndarray, max_categories: int, name: str
) -> CategoricalBinning:
    """The vocabulary from the reference's value counts (``values[i]`` seen ``freqs[i]`` times)."""
    if len(values) == 0:
        raise ProfileError(f"reference: column {name!r} has no non-missing values")
    if len(values) > max_categories:
        raise TooManyCategoriesError("reference", name, str(len(values)), max_categories)
    # Most frequent first; ties broken by value so the profile is deterministic.
    order = sorted(range(len(values)), key=lambda i: (-int(freqs[i]), values[i]))
    return CategoricalBinning(vocabulary=tuple(values[i] for i in order))
