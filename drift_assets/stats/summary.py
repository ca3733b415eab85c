"""Window summaries: counts in the reference binning, computed batch by batch and mergeable.

A window is never held in memory as rows: each arrow record batch is binned and added to the
running counts. Two summaries of disjoint row sets add up (``a + b``), so daily summaries sum to
the weekly one and a long window can be streamed. Counts add exactly; the float sums used for
means and the Wasserstein sketch add up to rounding (relative error ~1e-15).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drift_assets.stats.errors import DriftInputError, EmptyWindowError, SchemaError
from drift_assets.stats.profile import (
    CategoricalBinning,
    NumericalBinning,
    ReferenceProfile,
)
from drift_assets.stats.validation import category_strings, missing_mask, numeric_values

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


@dataclass
class WindowSummary:
    """A window's counts per profiled column, plus the columns that could not be read.

    ``problems`` maps a column to a one-line reason (absent from the data, wrong type). The other
    columns are still counted: one renamed column must not hide drift in the rest.
    """

    rows: int
    columns: dict[str, ColumnCounts]
    problems: dict[str, str] = field(default_factory=dict)

    def __add__(self, other: WindowSummary) -> WindowSummary:
        if set(self.columns) | set(self.problems) != set(other.columns) | set(other.problems):
            raise ValueError("cannot add summaries of different profiles")
        problems = {**other.problems, **self.problems}  # the first reason seen is kept
        columns = {
            name: self.columns[name] + other.columns[name]
            for name in self.columns
            if name not in problems and name in other.columns
        }
        return WindowSummary(self.rows + other.rows, columns, problems)

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "columns": {n: c.to_dict() for n, c in self.columns.items()},
            "problems": self.problems,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> WindowSummary:
        return cls(
            rows=int(data["rows"]),
            columns={n: counts_from_dict(c) for n, c in data["columns"].items()},
            problems=dict(data.get("problems", {})),
        )

    def require_rows(self, table_name: str = "current window") -> None:
        if self.rows == 0:
            raise EmptyWindowError(f"{table_name}: no rows; a window with no data has no drift value")


def count_numerical(values: np.ndarray, binning: NumericalBinning) -> NumericalCounts:
    missing = missing_mask(values)
    finite = values[~missing] if missing.any() else values
    index = np.searchsorted(binning.sketch_edges, finite, side="right")
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
    counts = np.bincount(
        index.drop_null().to_numpy(zero_copy_only=False), minlength=binning.n_buckets
    ).astype(np.int64)
    unseen_values: dict[str, int] = {}
    n_unseen = int(pc.sum(unseen_mask).as_py() or 0)
    if n_unseen:
        counts[-1] = n_unseen
        vc = pc.value_counts(strings.filter(unseen_mask))
        unseen_values = _top(
            dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True))
        )
    return CategoricalCounts(counts, missing, unseen_values)


def empty_summary(profile: ReferenceProfile) -> WindowSummary:
    columns = {
        name: (
            NumericalCounts.empty(col.binning)
            if isinstance(col.binning, NumericalBinning)
            else CategoricalCounts.empty(col.binning)
        )
        for name, col in profile.columns.items()
    }
    return WindowSummary(0, columns, {})


def summarize_batch(
    profile: ReferenceProfile, batch: pa.RecordBatch | pa.Table, table_name: str = "current window"
) -> WindowSummary:
    """Counts for one batch. Column problems are recorded, not raised, so other columns survive."""
    columns: dict[str, ColumnCounts] = {}
    problems: dict[str, str] = {}
    names = set(batch.schema.names)
    for name, col in profile.columns.items():
        if name not in names:
            problems[name] = f"{table_name}: column {name!r} is missing"
            continue
        data = batch.column(name)
        try:
            if isinstance(col.binning, NumericalBinning):
                columns[name] = count_numerical(numeric_values(data, name, table_name), col.binning)
            else:
                columns[name] = count_categorical(category_strings(data, name, table_name), col.binning)
        except SchemaError as exc:
            problems[name] = str(exc)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            problems[name] = f"{table_name}: column {name!r} cannot be read: {exc}"
    return WindowSummary(batch.num_rows, columns, problems)


def summarize(
    profile: ReferenceProfile,
    batches: Iterable[pa.RecordBatch | pa.Table],
    table_name: str = "current window",
) -> WindowSummary:
    """Stream batches into one summary. Memory is one batch plus the counts, whatever the window."""
    total = empty_summary(profile)
    for batch in batches:
        # A problem in any batch marks the column for the whole window (counts would be partial).
        total = total + summarize_batch(profile, batch, table_name)
    return total


__all__ = [
    "CategoricalCounts",
    "ColumnCounts",
    "DriftInputError",
    "NumericalCounts",
    "WindowSummary",
    "count_categorical",
    "count_numerical",
    "counts_from_dict",
    "empty_summary",
    "summarize",
    "summarize_batch",
]
