"""Counts of one column in its reference binning: the mergeable unit every window is made of."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drift_assets.stats.bin_index import bin_index
from drift_assets.stats.binning import CategoricalBinning, NumericalBinning
from drift_assets.stats.validation import as_numpy, missing_mask

# Unseen category values are listed (for the report) up to this many distinct values.
MAX_LISTED_UNSEEN = 50


@dataclass
class NumericalCounts:
    """Counts per sketch bin plus the per-bin value sums (bin means drive Wasserstein)."""

    sketch_counts: np.ndarray
    sketch_sums: np.ndarray
    missing: int = 0

    @classmethod
    def empty(cls, binning: NumericalBinning) -> NumericalCounts:
        n = binning.n_sketch_bins
        return cls(np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.float64), 0)

    @property
    def valid(self) -> int:
        return int(self.sketch_counts.sum())

    @property
    def rows(self) -> int:
        return self.valid + self.missing

    @property
    def below_range(self) -> int:
        return int(self.sketch_counts[0])

    @property
    def above_range(self) -> int:
        return int(self.sketch_counts[-1])

    def psi_counts(self, binning: NumericalBinning) -> np.ndarray:
        return np.bincount(
            binning.sketch_to_psi(), weights=self.sketch_counts, minlength=binning.effective_bins
        ).astype(np.int64)

    def __add__(self, other: NumericalCounts) -> NumericalCounts:
        if self.sketch_counts.shape != other.sketch_counts.shape:
            raise ValueError("cannot add counts fitted with different binnings")
        return NumericalCounts(
            self.sketch_counts + other.sketch_counts,
            self.sketch_sums + other.sketch_sums,
            self.missing + other.missing,
        )

    def to_dict(self) -> dict:
        return {
            "kind": "numerical",
            "sketch_counts": self.sketch_counts.tolist(),
            "sketch_sums": self.sketch_sums.tolist(),
            "missing": self.missing,
        }


@dataclass
class CategoricalCounts:
    """Counts per vocabulary entry; the last bucket holds values unseen in the reference."""

    counts: np.ndarray
    missing: int = 0
    unseen_values: dict[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls, binning: CategoricalBinning) -> CategoricalCounts:
        return cls(np.zeros(binning.n_buckets, dtype=np.int64), 0, {})

    @property
    def valid(self) -> int:
        return int(self.counts.sum())

    @property
    def rows(self) -> int:
        return self.valid + self.missing

    @property
    def unseen(self) -> int:
        return int(self.counts[-1])

    def __add__(self, other: CategoricalCounts) -> CategoricalCounts:
        if self.counts.shape != other.counts.shape:
            raise ValueError("cannot add counts fitted with different vocabularies")
        merged = dict(self.unseen_values)
        for value, n in other.unseen_values.items():
            merged[value] = merged.get(value, 0) + n
        return CategoricalCounts(self.counts + other.counts, self.missing + other.missing, _top(merged))

    def to_dict(self) -> dict:
        return {
            "kind": "categorical",
            "counts": self.counts.tolist(),
            "missing": self.missing,
            "unseen_values": self.unseen_values,
        }


ColumnCounts = NumericalCounts | CategoricalCounts


def add_counts(a: ColumnCounts, b: ColumnCounts) -> ColumnCounts:
    """``a + b`` for counts of one column; both must be of the same kind."""
    if isinstance(a, NumericalCounts) and isinstance(b, NumericalCounts):
        return a + b
    if isinstance(a, CategoricalCounts) and isinstance(b, CategoricalCounts):
        return a + b
    raise ValueError(f"cannot add {type(a).__name__} and {type(b).__name__}")


def counts_from_dict(data: Mapping) -> ColumnCounts:
    if data["kind"] == "numerical":
        return NumericalCounts(
            np.asarray(data["sketch_counts"], dtype=np.int64),
            np.asarray(data["sketch_sums"], dtype=np.float64),
            int(data["missing"]),
        )
    return CategoricalCounts(
        np.asarray(data["counts"], dtype=np.int64),
        int(data["missing"]),
        {str(k): int(v) for k, v in data.get("unseen_values", {}).items()},
    )


def _top(values: dict[str, int]) -> dict[str, int]:
    if len(values) <= MAX_LISTED_UNSEEN:
        return values
    ranked = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_LISTED_UNSEEN]
    return dict(ranked)


def count_numerical(values: np.ndarray, binning: NumericalBinning) -> NumericalCounts:
    missing = missing_mask(values)
    finite = values[~missing] if missing.any() else values
    index = bin_index(binning.sketch_edges, finite)  # == np.searchsorted(..., side="right"), faster
    n = binning.n_sketch_bins
    return NumericalCounts(
        np.bincount(index, minlength=n).astype(np.int64),
        np.bincount(index, weights=finite, minlength=n),
        int(missing.sum()),
    )


def count_categorical(strings: pa.Array, binning: CategoricalBinning) -> CategoricalCounts:
    value_set = pa.array(binning.vocabulary, type=pa.string())
    index = pc.index_in(strings, value_set=value_set)
    is_missing = pc.is_null(strings)
    missing = int(pc.sum(is_missing).as_py() or 0)
    # index_in gives null both for missing values and for values not in the vocabulary.
    unseen_mask = pc.and_(pc.is_null(index), pc.invert(is_missing))
    counts = np.bincount(as_numpy(index.drop_null()), minlength=binning.n_buckets).astype(np.int64)
    unseen_values: dict[str, int] = {}
    n_unseen = int(pc.sum(unseen_mask).as_py() or 0)
    if n_unseen:
        counts[-1] = n_unseen
        vc = pc.value_counts(strings.filter(unseen_mask))
        unseen_values = _top(dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True)))
    return CategoricalCounts(counts, missing, unseen_values)
