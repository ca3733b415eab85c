"""Window summaries: counts in the reference binning, computed batch by batch and mergeable.

A window is never held in memory as rows: each arrow record batch is binned and added to the
running counts. Two summaries of disjoint row sets add up (``a + b``), so daily summaries sum to
the weekly one and a long window can be streamed. Counts add exactly; the float sums used for
means and the Wasserstein sketch add up to rounding (relative error ~1e-15).

Given a performance estimator, the same pass also counts the model's scores on the estimator's grid
(``performance``: a ``ScoreCounts``, whose sums are fixed point and add exactly), so a window is read
once for drift and for the estimated performance. Input the estimator cannot use (scores outside
[0, 1], a target that is not 0/1, the score column missing) is kept in ``performance_problem``, one
line naming the column; the drift counts are unaffected.

Columns of a batch are counted on a small thread pool (numpy and arrow release the GIL while they
bin), one column per task, each column's arithmetic unchanged: the summary is bit-identical to the
serial one whatever the number of threads (tested). ``DRIFT_ASSETS_THREADS`` sets the pool size
(default: the machine's CPUs, at most ``MAX_THREADS``; 1 = serial).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
from drift_assets.stats.threads import MAX_THREADS, MIN_PARALLEL_VALUES, THREADS_ENV, column_pool, thread_count
from drift_assets.stats.validation import category_strings, numeric_values

if TYPE_CHECKING:  # the estimator module is imported only by windows that count scores
    from drift_assets.stats.performance_estimation import PerformanceEstimator, ScoreCounts

# The reason kept when a part counted without the estimator is added to one counted with it.
PERFORMANCE_NOT_COUNTED = "score counts are missing for part of the window (counted without the performance estimator)"


@dataclass
class WindowSummary:
    """A window's counts per profiled column, plus the columns that could not be read.

    ``problems`` maps a column to a one-line reason (absent from the data, wrong type). The other
    columns are still counted: one renamed column must not hide drift in the rest.
    """

    rows: int
    columns: dict[str, ColumnCounts]
    problems: dict[str, str] = field(default_factory=dict)
    # The performance estimator's score counts (None: counted without one, or see the problem).
    performance: ScoreCounts | None = None
    performance_problem: str | None = None

    def __add__(self, other: WindowSummary) -> WindowSummary:
        if set(self.columns) | set(self.problems) != set(other.columns) | set(other.problems):
            raise ValueError("cannot add summaries of different profiles")
        problems = {**other.problems, **self.problems}  # the first reason seen is kept
        columns = {
            name: add_counts(self.columns[name], other.columns[name])
            for name in self.columns
            if name not in problems and name in other.columns
        }
        performance, problem = _add_performance(self, other)
        return WindowSummary(self.rows + other.rows, columns, problems, performance, problem)

    def to_dict(self) -> dict:
        out = {
            "rows": self.rows,
            "columns": {n: c.to_dict() for n, c in self.columns.items()},
            "problems": self.problems,
        }
        if self.performance is not None:  # drift-only summaries keep their form
            out["performance"] = self.performance.to_dict()
        if self.performance_problem is not None:
            out["performance_problem"] = self.performance_problem
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> WindowSummary:
        performance = None
        if data.get("performance") is not None:
            from drift_assets.stats.performance_estimation import ScoreCounts

            performance = ScoreCounts.from_dict(data["performance"])
        return cls(
            rows=int(data["rows"]),
            columns={n: counts_from_dict(c) for n, c in data["columns"].items()},
            problems=dict(data.get("problems", {})),
            performance=performance,
            performance_problem=data.get("performance_problem"),
        )

    def without_performance(self) -> WindowSummary:
        """The drift counts only (e.g. for a trailing baseline, which never estimates performance)."""
        return WindowSummary(self.rows, self.columns, self.problems)

    def require_rows(self, table_name: str = "current window") -> None:
        if self.rows == 0:
            raise EmptyWindowError(f"{table_name}: no rows; a window with no data has no drift value")


def _add_performance(a: WindowSummary, b: WindowSummary) -> tuple[ScoreCounts | None, str | None]:
    """Score counts of two parts: their sum; a problem in either part is the window's (first kept);
    a part counted without the estimator added to one counted with it is a problem, not an error,
    so the drift counts still add."""
    problem = a.performance_problem or b.performance_problem
    if problem is not None:
        return None, problem
    if a.performance is None and b.performance is None:
        return None, None
    if a.performance is None or b.performance is None:
        return None, PERFORMANCE_NOT_COUNTED
    return a.performance + b.performance, None


def empty_summary(profile: ReferenceProfile, estimator: PerformanceEstimator | None = None) -> WindowSummary:
    """No rows yet; with ``estimator``, empty score counts on its grid too."""
    performance = None
    if estimator is not None:
        from drift_assets.stats.performance_estimation import ScoreCounts

        performance = ScoreCounts.empty(estimator)
    columns = {
        name: (
            NumericalCounts.empty(col.binning)
            if isinstance(col.binning, NumericalBinning)
            else CategoricalCounts.empty(col.binning)
        )
        for name, col in profile.columns.items()
    }
    return WindowSummary(0, columns, {}, performance)


ColumnOutcome = tuple[ColumnCounts | None, str | None]


def _count_column(name: str, col, batch: pa.RecordBatch | pa.Table, table_name: str) -> ColumnOutcome:
    data = batch.column(name)
    try:
        if isinstance(col.binning, NumericalBinning):
            return count_numerical(numeric_values(data, name, table_name), col.binning), None
        return count_categorical(category_strings(data, name, table_name), col.binning), None
    except SchemaError as exc:
        return None, str(exc)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        return None, f"{table_name}: column {name!r} cannot be read: {exc}"


def summarize_batch(
    profile: ReferenceProfile,
    batch: pa.RecordBatch | pa.Table,
    table_name: str = "current window",
    estimator: PerformanceEstimator | None = None,
    *,
    pool: Executor | None = None,
) -> WindowSummary:
    """Counts for one batch (and, with ``estimator``, its score counts). Column problems are
    recorded, not raised, so other columns survive; so is input the estimator cannot use.

    With ``pool``, columns are counted concurrently; results are assembled in profile order, so the
    summary (and its dict form) is the same as without.
    """
    names = set(batch.schema.names)
    present = [(name, col) for name, col in profile.columns.items() if name in names]
    if pool is not None and batch.num_rows * len(present) >= MIN_PARALLEL_VALUES and len(present) > 1:
        futures = {name: pool.submit(_count_column, name, col, batch, table_name) for name, col in present}
        outcomes = {name: future.result() for name, future in futures.items()}
    else:
        outcomes = {name: _count_column(name, col, batch, table_name) for name, col in present}
    columns: dict[str, ColumnCounts] = {}
    problems: dict[str, str] = {}
    for name in profile.columns:
        if name not in names:
            problems[name] = f"{table_name}: column {name!r} is missing"
            continue
        counts, problem = outcomes[name]
        if counts is not None:
            columns[name] = counts
        else:
            problems[name] = str(problem)
    summary = WindowSummary(batch.num_rows, columns, problems)
    if estimator is not None:
        from drift_assets.stats.performance_estimation import count_batch

        try:
            summary.performance = count_batch(estimator, batch, table_name)
        except DriftInputError as exc:
            summary.performance_problem = str(exc)
    return summary


def summarize(
    profile: ReferenceProfile,
    batches: Iterable[pa.RecordBatch | pa.Table],
    table_name: str = "current window",
    estimator: PerformanceEstimator | None = None,
) -> WindowSummary:
    """Stream batches into one summary. Memory is one batch plus the counts, whatever the window.

    With ``estimator`` the same pass counts the scores for the performance estimate."""
    total = empty_summary(profile, estimator)
    with column_pool(len(profile.columns)) as pool:
        for batch in batches:
            # A problem in any batch marks the column for the whole window (counts would be partial);
            # once the scores have one, the rest of the window is not counted for the estimate.
            counting = estimator if total.performance_problem is None else None
            total = total + summarize_batch(profile, batch, table_name, counting, pool=pool)
    return total


__all__ = [
    "CategoricalCounts",
    "ColumnCounts",
    "DriftInputError",
    "MAX_THREADS",
    "MIN_PARALLEL_VALUES",
    "NumericalCounts",
    "THREADS_ENV",
    "WindowSummary",
    "count_categorical",
    "count_numerical",
    "counts_from_dict",
    "empty_summary",
    "summarize",
    "summarize_batch",
    "column_pool",
    "thread_count",
]
