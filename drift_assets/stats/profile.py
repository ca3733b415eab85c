"""The reference profile: fitted once on the training reference, then reused for every window.

A profile holds, per column, the binning (numerical: PSI bin edges and a finer quantile sketch;
categorical: the reference vocabulary) and the reference's own counts in that binning. Windows are
summarised in the same binning (``summary.py``), so comparing a window never touches reference rows
again and week-to-week values are comparable (Evidently's PSI re-bins every window; this does not).

Bins are left-closed, ``[edge_i, edge_i+1)``, and the outer bins are open (-inf / +inf): a current
value beyond the reference range is counted, never dropped (the design document's ``pd.cut`` dropped
them, so the worst drift scored as none).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from drift_assets.stats.binning import (
    Binning,
    CategoricalBinning,
    NumericalBinning,
    fit_sorted_numerical_binning,
)
from drift_assets.stats.counts import ColumnCounts, counts_from_dict
from drift_assets.stats.errors import ProfileError, SchemaError, TooManyCategoriesError
from drift_assets.stats.streamed_fit import categorical_from_strings, counts_of_sorted, fit_streamed_numerical
from drift_assets.stats.threads import MIN_PARALLEL_VALUES, column_pool
from drift_assets.stats.validation import category_strings, missing_mask, numeric_values

PROFILE_FORMAT = "drift_assets.reference_profile"
# 2: point masses get their own PSI bin (issue 11). A version-1 profile is refused: refit it.
PROFILE_VERSION = 2

DEFAULT_PSI_BINS = 10
# KS and Wasserstein are computed on this many reference-quantile bins: fine enough that the
# binned KS statistic is within 1/resolution (+ the largest current bin mass) of the exact one.
DEFAULT_SKETCH_RESOLUTION = 1000
# A "categorical" column with more distinct values than this is almost certainly an identifier.
DEFAULT_MAX_CATEGORIES = 1000
# A reference read from files with more rows than this is fitted streamed (exact, in a few passes,
# memory flat in the rows: ``streamed_fit.py``); up to it, each column is sorted in memory (~16
# bytes a row for the column being fitted, the fastest exact fit).
DEFAULT_MAX_IN_MEMORY_ROWS = 2_000_000

Kind = Literal["numerical", "categorical"]
Role = Literal["feature", "prediction", "target"]
KINDS: tuple[str, ...] = ("numerical", "categorical")
ROLES: tuple[str, ...] = ("feature", "prediction", "target")


@dataclass(frozen=True)
class ColumnSpec:
    """What a column is: its kind decides the statistics, its role decides the checks."""

    name: str
    kind: Kind
    role: Role = "feature"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ProfileError(f"column {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.role not in ROLES:
            raise ProfileError(f"column {self.name!r}: role must be one of {ROLES}, got {self.role!r}")


@dataclass(frozen=True)
class ColumnProfile:
    spec: ColumnSpec
    binning: Binning
    # The reference's own counts in this binning.
    reference: ColumnCounts

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class ReferenceProfile:
    """Everything needed to evaluate windows against a reference, serialisable to JSON."""

    columns: dict[str, ColumnProfile]
    reference_rows: int
    psi_bins: int = DEFAULT_PSI_BINS
    sketch_resolution: int = DEFAULT_SKETCH_RESOLUTION
    metadata: dict = field(default_factory=dict)

    @property
    def specs(self) -> list[ColumnSpec]:
        return [c.spec for c in self.columns.values()]

    def column_names(self) -> list[str]:
        return list(self.columns)

    def to_dict(self) -> dict:
        return {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "reference_rows": self.reference_rows,
            "psi_bins": self.psi_bins,
            "sketch_resolution": self.sketch_resolution,
            "metadata": self.metadata,
            "columns": {
                name: {
                    "kind": col.spec.kind,
                    "role": col.spec.role,
                    "binning": col.binning.to_dict(),
                    "reference": col.reference.to_dict(),
                }
                for name, col in self.columns.items()
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    def fingerprint(self) -> str:
        """Content hash: two profiles with the same hash evaluate windows identically."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping) -> ReferenceProfile:
        if data.get("format") != PROFILE_FORMAT:
            raise ProfileError(f"not a reference profile (format={data.get('format')!r})")
        if data.get("version") != PROFILE_VERSION:
            raise ProfileError(
                f"reference profile version {data.get('version')!r} is not supported"
                f" (this build reads version {PROFILE_VERSION}); refit the profile"
            )
        columns: dict[str, ColumnProfile] = {}
        for name, col in data["columns"].items():
            spec = ColumnSpec(name=name, kind=col["kind"], role=col["role"])
            binning: Binning = (
                NumericalBinning.from_dict(col["binning"])
                if spec.kind == "numerical"
                else CategoricalBinning.from_dict(col["binning"])
            )
            columns[name] = ColumnProfile(spec, binning, counts_from_dict(col["reference"]))
        return cls(
            columns=columns,
            reference_rows=int(data["reference_rows"]),
            psi_bins=int(data["psi_bins"]),
            sketch_resolution=int(data["sketch_resolution"]),
            metadata=dict(data.get("metadata", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProfileError(f"reference profile is not valid JSON: {exc}") from exc
        return cls.from_dict(data)


class ColumnSource(Protocol):
    """Where a reference is fitted from without holding it whole: its schema, and one column at a
    time (``storage.tables.TableSource`` streams it from the files)."""

    def schema(self) -> pa.Schema: ...

    def column(self, name: str) -> pa.ChunkedArray: ...


@runtime_checkable
class StreamableSource(ColumnSource, Protocol):
    """A ``ColumnSource`` that also knows its row count (parquet footers; None when it cannot
    tell without reading) and yields a column batch by batch, for a fit in bounded memory."""

    def num_rows(self) -> int | None: ...

    def column_chunks(self, name: str) -> Iterable[pa.Array]: ...


def fit_profile(
    reference: pa.Table | ColumnSource,
    columns: Sequence[ColumnSpec],
    *,
    psi_bins: int = DEFAULT_PSI_BINS,
    sketch_resolution: int = DEFAULT_SKETCH_RESOLUTION,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    metadata: Mapping | None = None,
    table_name: str = "reference",
    max_in_memory_rows: int = DEFAULT_MAX_IN_MEMORY_ROWS,
    column_hook: Callable[[str, pa.ChunkedArray | pa.Array], None] | None = None,
) -> ReferenceProfile:
    """Fit bins and vocabularies on the reference, then count the reference in them.

    ``reference`` is a table, or a ``ColumnSource``: then one column is read at a time (exact, the
    same profile as from the table; memory is one column, not the whole reference). A
    ``StreamableSource`` with more than ``max_in_memory_rows`` rows is fitted streamed: the same
    edges, counts and vocabularies, memory flat in the rows (mean, spread and bin sums agree to
    rounding). ``column_hook(name, column)`` sees each column read whole (not a streamed fit's),
    so a caller can take what else it needs from the same read (``compare``: the multivariate
    model's rows)."""
    if psi_bins < 2:
        raise ProfileError(f"psi_bins must be at least 2, got {psi_bins}")
    if sketch_resolution % psi_bins:
        raise ProfileError(f"sketch_resolution ({sketch_resolution}) must be a multiple of psi_bins ({psi_bins})")
    if isinstance(reference, pa.Table):
        if reference.num_rows == 0:
            raise ProfileError(f"{table_name}: reference table has no rows")
        schema: pa.Schema = reference.schema
    else:
        schema = reference.schema()
    _require_columns(schema, [c.name for c in columns], table_name)
    rows: int | None = reference.num_rows if isinstance(reference, pa.Table) else None
    streamed = _streams(reference, max_in_memory_rows)

    def fit_one(spec: ColumnSpec) -> tuple[ColumnProfile, int]:
        try:
            if streamed is not None:
                return _fit_streamed_column(spec, streamed, psi_bins, sketch_resolution, max_categories, table_name)
            return _fit_column(
                spec, reference.column, psi_bins, sketch_resolution, max_categories, table_name, column_hook
            )
        except TooManyCategoriesError as exc:
            raise exc.in_table(table_name) from exc
        except (SchemaError, ProfileError) as exc:
            # The binning names the table "reference"; say which one.
            message = str(exc)
            if message.startswith("reference: "):
                message = f"{table_name}: {message.removeprefix('reference: ')}"
            raise ProfileError(message) from exc
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise ProfileError(f"{table_name}: column {spec.name!r} cannot be read: {exc}") from exc

    # Columns are fitted on the shared thread pool (sorting, decoding and counting release the
    # GIL); each column's arithmetic is unchanged, so the profile is the same as a serial fit's.
    known_rows = rows if rows is not None else reference.num_rows() if isinstance(reference, StreamableSource) else None
    small = known_rows is not None and known_rows * len(columns) < MIN_PARALLEL_VALUES
    with column_pool(1 if small else len(columns)) as pool:
        if pool is None:
            fitted = [fit_one(spec) for spec in columns]
        else:
            futures = [pool.submit(fit_one, spec) for spec in columns]
            fitted = [future.result() for future in futures]
    profiled: dict[str, ColumnProfile] = {}
    for spec, (column_profile, length) in zip(columns, fitted, strict=True):
        profiled[spec.name] = column_profile
        rows = length if rows is None else rows
    return ReferenceProfile(
        columns=profiled,
        reference_rows=int(rows or 0),
        psi_bins=psi_bins,
        sketch_resolution=sketch_resolution,
        metadata=dict(metadata or {}),
    )


def _streams(reference: pa.Table | ColumnSource, max_in_memory_rows: int) -> StreamableSource | None:
    """The reference, when it is to be fitted streamed (big enough, and able to stream a column)."""
    if isinstance(reference, pa.Table) or not isinstance(reference, StreamableSource):
        return None
    rows = reference.num_rows()
    return reference if rows is not None and rows > max_in_memory_rows else None


def _fit_column(
    spec: ColumnSpec,
    read: Callable[[str], pa.ChunkedArray],
    psi_bins: int,
    sketch_resolution: int,
    max_categories: int,
    table_name: str = "reference",
    column_hook: Callable[[str, pa.ChunkedArray | pa.Array], None] | None = None,
) -> tuple[ColumnProfile, int]:
    """Read one column, fit its binning, and read the reference's own counts off the sorted
    values (never re-binned). Returns the profile and the column's length. Only this frame holds
    the column, so it is freed before the next one is read."""
    column = read(spec.name)
    length = len(column)
    if column_hook is not None:
        column_hook(spec.name, column)
    if length == 0:
        raise ProfileError(f"{table_name}: reference table has no rows")
    if spec.kind == "numerical":
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        # One numpy copy of the column (cast batch by batch), then the arrow chunks can go.
        values = np.concatenate([numeric_values(c, spec.name, table_name) for c in chunks] or [np.empty(0)])
        del column, chunks
        missing = missing_mask(values)
        finite = values[~missing] if missing.any() else values  # a copy of its own: sorted in place
        n_missing = int(missing.sum())
        del values, missing
        if finite.size == 0:
            raise ProfileError(f"reference: column {spec.name!r} has no finite values to fit bins on")
        finite.sort()
        binning = fit_sorted_numerical_binning(finite, psi_bins=psi_bins, sketch_resolution=sketch_resolution)
        return ColumnProfile(spec, binning, counts_of_sorted(finite, n_missing, binning)), length
    strings = category_strings(column, spec.name, table_name)
    del column
    categorical, counts, _ = categorical_from_strings([strings], max_categories=max_categories, name=spec.name)
    return ColumnProfile(spec, categorical, counts), length


def _fit_streamed_column(
    spec: ColumnSpec,
    source: StreamableSource,
    psi_bins: int,
    sketch_resolution: int,
    max_categories: int,
    table_name: str,
) -> tuple[ColumnProfile, int]:
    """One column fitted in passes over its batches (``streamed_fit.py``)."""
    name = spec.name
    if spec.kind == "numerical":
        binning, counts, rows, _ = fit_streamed_numerical(
            lambda: (numeric_values(chunk, name, table_name) for chunk in source.column_chunks(name)),
            psi_bins=psi_bins,
            sketch_resolution=sketch_resolution,
            column=name,
        )
        profile = ColumnProfile(spec, binning, counts)
    else:
        strings = (category_strings(chunk, name, table_name) for chunk in source.column_chunks(name))
        vocabulary, counted, rows = categorical_from_strings(strings, max_categories=max_categories, name=name)
        profile = ColumnProfile(spec, vocabulary, counted)
    if rows == 0:
        raise ProfileError(f"{table_name}: reference table has no rows")
    return profile, rows


def _require_columns(schema: pa.Schema, names: Iterable[str], table: str) -> None:
    missing = [n for n in names if n not in schema.names]
    if missing:
        raise SchemaError(f"{table}: missing column(s) {', '.join(map(repr, missing))}")


def infer_column_specs(
    schema: pa.Schema,
    *,
    prediction: str | None = None,
    target: str | None = None,
    exclude: Iterable[str] = (),
) -> list[ColumnSpec]:
    """Kinds from arrow types: numbers are numerical, strings/dictionaries/bools categorical.

    Timestamps, binaries and nested types are skipped: they are not features to measure drift on.
    """
    skip = set(exclude)
    specs: list[ColumnSpec] = []
    for f in schema:
        if f.name in skip:
            continue
        t = f.type
        if pa.types.is_boolean(t) or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
            kind: Kind = "categorical"
        elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            kind = "numerical"
        else:
            continue
        role: Role = "prediction" if f.name == prediction else "target" if f.name == target else "feature"
        specs.append(ColumnSpec(f.name, kind, role))
    return specs
