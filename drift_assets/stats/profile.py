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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drift_assets.stats.errors import ProfileError, SchemaError
from drift_assets.stats.validation import category_strings, missing_mask, numeric_values

PROFILE_FORMAT = "drift_assets.reference_profile"
PROFILE_VERSION = 1

DEFAULT_PSI_BINS = 10
# KS and Wasserstein are computed on this many reference-quantile bins: fine enough that the
# binned KS statistic is within 1/resolution (+ the largest current bin mass) of the exact one.
DEFAULT_SKETCH_RESOLUTION = 1000
# A "categorical" column with more distinct values than this is almost certainly an identifier.
DEFAULT_MAX_CATEGORIES = 1000

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


@dataclass(frozen=True)
class ColumnProfile:
    spec: ColumnSpec
    binning: Binning
    # The reference's own counts in this binning (a ``summary.ColumnCounts``).
    reference: "summary.ColumnCounts"  # noqa: F821 - summary imports this module

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
        from drift_assets.stats.summary import counts_from_dict

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


def fit_categorical_binning(
    column: pa.Array, *, max_categories: int, name: str
) -> CategoricalBinning:
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


def fit_profile(
    reference: pa.Table,
    columns: Sequence[ColumnSpec],
    *,
    psi_bins: int = DEFAULT_PSI_BINS,
    sketch_resolution: int = DEFAULT_SKETCH_RESOLUTION,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    metadata: Mapping | None = None,
) -> ReferenceProfile:
    """Fit bins and vocabularies on the reference table, then count the reference in them."""
    from drift_assets.stats.summary import summarize

    if psi_bins < 2:
        raise ProfileError(f"psi_bins must be at least 2, got {psi_bins}")
    if sketch_resolution % psi_bins:
        raise ProfileError(
            f"sketch_resolution ({sketch_resolution}) must be a multiple of psi_bins ({psi_bins})"
        )
    if reference.num_rows == 0:
        raise ProfileError("reference table has no rows")
    _require_columns(reference.schema, [c.name for c in columns], "reference")
    binnings: dict[str, Binning] = {}
    for spec in columns:
        column = reference.column(spec.name)
        if spec.kind == "numerical":
            binnings[spec.name] = fit_numerical_binning(
                numeric_values(column, spec.name, "reference"),
                psi_bins=psi_bins,
                sketch_resolution=sketch_resolution,
                column=spec.name,
            )
        else:
            binnings[spec.name] = fit_categorical_binning(
                column, max_categories=max_categories, name=spec.name
            )
    # Build a profile with empty reference counts, then count the reference with it.
    skeleton = ReferenceProfile(
        columns={s.name: ColumnProfile(s, binnings[s.name], None) for s in columns},  # type: ignore[arg-type]
        reference_rows=reference.num_rows,
        psi_bins=psi_bins,
        sketch_resolution=sketch_resolution,
    )
    counted = summarize(skeleton, [reference], table_name="reference")
    if counted.problems:
        raise ProfileError("; ".join(counted.problems.values()))
    return ReferenceProfile(
        columns={
            s.name: ColumnProfile(s, binnings[s.name], counted.columns[s.name]) for s in columns
        },
        reference_rows=reference.num_rows,
        psi_bins=psi_bins,
        sketch_resolution=sketch_resolution,
        metadata=dict(metadata or {}),
    )


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

