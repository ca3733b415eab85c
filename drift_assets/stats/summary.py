"""Window summaries: counts in the reference binning, computed batch by batch and mergeable.

A window is never held in memory as rows: each arrow record batch is binned and added to the
running counts. Two summaries of disjoint row sets add up (``a + b``), so daily summaries sum to
the weekly one and a long window can be streamed. Counts add exactly; the float sums used for
means and the Wasserstein sketch add up to rounding (relative error ~1e-15).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pyarrow as pa

from drift_assets.stats.binning import NumericalBinning
from drift_assets.stats.counts import (
    CategoricalCounts,
    ColumnCounts,
    NumericalCounts,
    add_counts,
    count_categorical,
    count_numerical,
    counts_from_dict,
)
from drift_assets.stats.errors import DriftInputError, EmptyWindowError, SchemaError
from drift_assets.stats.profile import ReferenceProfile
from drift_assets.stats.validation import category_strings, numeric_values


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
            name: add_counts(self.columns[name], other.columns[name])
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
