"""Binnings fitted on the reference: numerical PSI and sketch edges, categorical vocabularies.

Bins are left-closed, ``[edge_i, edge_i+1)``, and the outer bins are open (-inf / +inf): a current
value beyond the reference range is counted, never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drift_assets.stats.errors import ProfileError
from drift_assets.stats.validation import category_strings, missing_mask


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
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> NumericalBinning:
        return cls(
            psi_edges=np.asarray(data["psi_edges"], dtype=np.float64),
            sketch_edges=np.asarray(data["sketch_edges"], dtype=np.float64),
            requested_bins=int(data["requested_bins"]),
            reference_mean=float(data["reference_mean"]),
            reference_std=float(data["reference_std"]),
        )


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


def _quantiles_of_sorted(sorted_values: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Linear-interpolation quantiles (numpy's default method) of an already sorted array."""
    positions = probs * (len(sorted_values) - 1)
    lower = np.floor(positions).astype(np.int64)
    upper = np.minimum(lower + 1, len(sorted_values) - 1)
    fraction = positions - lower
    return sorted_values[lower] + fraction * (sorted_values[upper] - sorted_values[lower])


def fit_numerical_binning(
    values: np.ndarray, *, psi_bins: int, sketch_resolution: int, column: str
) -> NumericalBinning:
    finite = values[~missing_mask(values)]
    if finite.size == 0:
        raise ProfileError(f"reference: column {column!r} has no finite values to fit bins on")
    finite = np.sort(finite)
    probs = np.arange(sketch_resolution + 1) / sketch_resolution
    quantiles = _quantiles_of_sorted(finite, probs)
    minimum, maximum = float(finite[0]), float(finite[-1])
    # PSI edges are picked out of the sketch quantiles so that they are exactly sketch edges.
    step = sketch_resolution // psi_bins
    interior = quantiles[step:sketch_resolution:step]
    psi_edges = np.unique(interior[interior > minimum])
    sketch_edges = np.append(np.unique(quantiles), np.nextafter(maximum, np.inf))
    return NumericalBinning(
        psi_edges=psi_edges,
        sketch_edges=sketch_edges,
        requested_bins=psi_bins,
        reference_mean=float(finite.mean()),
        reference_std=float(finite.std()),
    )


def fit_categorical_binning(column: pa.Array, *, max_categories: int, name: str) -> CategoricalBinning:
    strings = category_strings(column, name, "reference")
    counts = pc.value_counts(strings.drop_null())
    values = counts.field("values").to_pylist()
    freqs = counts.field("counts").to_numpy()
    if len(values) == 0:
        raise ProfileError(f"reference: column {name!r} has no non-missing values")
    if len(values) > max_categories:
        raise ProfileError(
            f"reference: column {name!r} has {len(values)} distinct values (more than"
            f" max_categories={max_categories}); it looks like an identifier. Declare it"
            " numerical, drop it, or raise max_categories"
        )
    # Most frequent first; ties broken by value so the profile is deterministic.
    order = sorted(range(len(values)), key=lambda i: (-int(freqs[i]), values[i]))
    return CategoricalBinning(vocabulary=tuple(values[i] for i in order))
