"""Multivariate drift by PCA reconstruction error: changes in the joint distribution that every
one-column check misses (a correlation that flips while both marginals stay put).

Fit (once, on the reference):

- *Encoding.* Numerical columns are standardised through their reference quantiles: each value is
  mapped to its normal score ``Phi^-1(F_ref(x))`` (piecewise linear between 201 reference quantiles,
  tied quantiles share their mid-rank score), then scaled to reference mean 0 and sd 1. Plain
  ``(x - mean) / sd`` was the first choice, but on the suite's lognormal amounts it makes the per-row
  error so heavy-tailed (a few rows carry most of it) that the normal approximation of the window's
  mean error below is wrong at 1,000 rows; normal scores are bounded (|z| <= 2.8) and keep every
  rank correlation. Categorical columns are one-hot over their ``max_categories`` most frequent
  reference values plus one "other" bucket (rarer and unseen values), each block scaled so that it
  carries total reference variance 1, like one numerical column.
- *Missing values* are encoded at the reference mean of the feature (the PCA centre), so a missing
  value adds no reconstruction error: the missing-rate check owns missingness.
- *PCA.* The reference is split in two seeded halves. On the first, the encoded covariance is
  eigen-decomposed and the leading components explaining ``variance_share`` (default 90%) of the
  variance are kept, but never all of them (with two features and rho = 0.6 the first component
  explains 80%, keeping both would make the error identically 0). A row's reconstruction error is its
  squared distance to the kept subspace, i.e. its squared projection on the discarded components.
- *Threshold from the reference itself.* The second half (never seen by the PCA, so its errors are
  out-of-sample like a window's) gives the mean, sd and skewness of the per-row error. A window of
  ``n`` evaluated rows drifts when its mean error exceeds
  ``mu + q * sd * sqrt(1/n + 1/m)`` (``m`` calibration rows; the ``1/m`` term is the uncertainty of
  ``mu`` itself, which dominates for large windows), where ``q`` is the one-sided normal quantile at
  ``alpha`` (default 0.001) with a Cornish-Fisher skewness correction, AND by at least
  ``min_relative_increase`` (default 5%) of ``mu``, so a negligible change in a huge window is not
  an alarm (the same "significant and large" rule as the univariate checks).

Evaluation (per window) is streamed: each batch adds its encoded sums (``sum x``, ``sum x x^T`` of
the centred encoding) to mergeable ``ReconstructionCounts``; the window's mean error, the per-column
share of the excess error and correlation changes all follow from those sums. Encoding costs more
per row than binning, so large windows are evaluated on a seeded Bernoulli sample of rows
(``sample_rate_for``: at most ~50,000 rows); the statistic's power at 50,000 rows is already limited
by the reference half's own uncertainty.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits

from drift_assets.stats.bin_index import bin_index
from drift_assets.stats.checks import DEFAULT_CHECKS
from drift_assets.stats.errors import ProfileError, SchemaError
from drift_assets.stats.profile import ColumnSpec
from drift_assets.stats.rules import NO_MULTIVARIATE_DRIFT, CheckOutcome
from drift_assets.stats.special import normal_isf, normal_quantiles, normal_sf
from drift_assets.stats.validation import as_numpy, category_strings, missing_mask, numeric_values

MODEL_FORMAT = "drift_assets.reconstruction_model"
MODEL_VERSION = 1
CHECK_NAME = NO_MULTIVARIATE_DRIFT

DEFAULT_VARIANCE_SHARE = 0.90
DEFAULT_ALPHA = 0.001
DEFAULT_MIN_RELATIVE_INCREASE = 0.05
DEFAULT_MAX_CATEGORIES = 20
# Rarer categories join "other": a whitened indicator of share p is worth ~1/sqrt(p), and a few
# rows of a 0.1% category would otherwise dominate a window's mean error.
DEFAULT_MIN_CATEGORY_SHARE = 0.01
DEFAULT_MAX_EVALUATED_ROWS = 50_000
# Rows encoded at a time (``encode_table``): a numerical column's temporaries are ~5 MB a block.
ENCODE_BLOCK_ROWS = 131_072
# Each reference half is capped at this many rows: the eigen-decomposition and the calibration
# moments are settled long before, and fitting stays ~1 s whatever the reference size.
DEFAULT_MAX_HALF_ROWS = 100_000
MIN_HALF_ROWS = 200
SCORE_QUANTILES = 200
# The excess error is attributed to the fewest columns that explain this share of it.
EXPLAINED_SHARE = 0.8
MAX_EXPLAINING_COLUMNS = 5


def skip_reason(specs: Sequence[ColumnSpec]) -> str | None:
    """Why the multivariate check cannot run on these columns, or None when it can."""
    features = [s.name for s in specs if s.role == "feature"]
    if len(features) < 2:
        named = f" ({', '.join(map(repr, features))})" if features else ""
        return (
            f"multivariate drift needs at least 2 feature columns; this monitor has {len(features)}{named}:"
            " the check is skipped"
        )
    return None


@dataclass(frozen=True)
class NumericalEncoding:
    """Reference quantiles (knots) and the standardised normal score at each knot."""

    name: str
    knots: np.ndarray
    scores: np.ndarray

    @property
    def width(self) -> int:
        return 1

    def to_dict(self) -> dict:
        return {"kind": "numerical", "knots": self.knots.tolist(), "scores": self.scores.tolist()}


@dataclass(frozen=True)
class CategoricalEncoding:
    """Whitened one-hot: row ``c`` of ``table`` encodes vocabulary entry ``c``; the last row encodes
    "other" (values rarer than ``min_category_share`` in the reference, and unseen values)."""

    name: str
    vocabulary: tuple[str, ...]
    table: np.ndarray

    @property
    def width(self) -> int:
        return int(self.table.shape[1])

    def to_dict(self) -> dict:
        return {"kind": "categorical", "vocabulary": list(self.vocabulary), "table": self.table.tolist()}


Encoding = NumericalEncoding | CategoricalEncoding


def encoding_from_dict(name: str, data: Mapping) -> Encoding:
    if data["kind"] == "numerical":
        return NumericalEncoding(name, np.asarray(data["knots"], float), np.asarray(data["scores"], float))
    vocabulary = tuple(str(v) for v in data["vocabulary"])
    return CategoricalEncoding(name, vocabulary, np.asarray(data["table"], float).reshape(len(vocabulary) + 1, -1))


def fit_numerical_encoding(values: np.ndarray, name: str) -> NumericalEncoding:
    missing = missing_mask(values)
    finite = np.sort(values[~missing] if missing.any() else values)
    if finite.size == 0:
        raise ProfileError(f"reference: column {name!r} has no finite values to fit the multivariate model on")
    positions = np.arange(SCORE_QUANTILES + 1)
    quantiles = np.quantile(finite, positions / SCORE_QUANTILES)
    # Tied quantiles (counts, zero-inflated amounts) become one knot at their mid-rank score.
    knots, inverse = np.unique(quantiles, return_inverse=True)
    mid_rank = np.bincount(inverse, weights=(positions + 0.5) / (SCORE_QUANTILES + 1)) / np.bincount(inverse)
    raw = normal_quantiles(mid_rank)
    encoded = np.interp(finite, knots, raw)  # sorted: numpy's guess makes this fast
    sd = float(encoded.std())
    # A constant column carries no joint information: it encodes to 0 everywhere.
    scores = (raw - encoded.mean()) / sd if sd > 0 else np.zeros_like(raw)
    return NumericalEncoding(name, knots, scores)


def fit_categorical_encoding(
    column: pa.ChunkedArray | pa.Array, name: str, max_categories: int, min_category_share: float
) -> CategoricalEncoding:
    strings = category_strings(column, name, "reference")
    counts = pc.value_counts(strings.drop_null())
    values, freqs = counts.field("values").to_pylist(), as_numpy(counts.field("counts"))
    if len(values) == 0:
        raise ProfileError(f"reference: column {name!r} has no non-missing values to fit the multivariate model on")
    order = sorted(range(len(values)), key=lambda i: (-int(freqs[i]), values[i]))
    kept = [i for i in order[:max_categories] if freqs[i] >= min_category_share * freqs.sum()]
    shares = np.append(freqs[kept], freqs.sum() - freqs[kept].sum()) / freqs.sum()
    # Whiten the centred indicators: each of the block's k - 1 directions gets reference variance 1,
    # so a column's own spread is white and the principal components reflect only dependence
    # between columns (unwhitened, a block's small directions are the ones PCA discards).
    eigenvalues, vectors = np.linalg.eigh(np.diag(shares) - np.outer(shares, shares))
    keep = eigenvalues > 1e-9
    centred = np.eye(len(shares)) - shares[None, :]
    table = centred @ vectors[:, keep] / np.sqrt(eigenvalues[keep])
    return CategoricalEncoding(name, tuple(values[i] for i in kept), table)


def interp(values: np.ndarray, knots: np.ndarray, scores: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.interp(values, knots, scores)`` exactly (knots sorted and distinct, as fitted), with the
    knot found by ``bin_index`` instead of a binary search per value (~150 ns a value here, ~4x
    this). The arithmetic is numpy's own: ``slope * (x - x_j) + y_j`` with the same slopes, the knot
    value itself on a knot, NaN for NaN (tested against ``np.interp``). Outside the knots the slope
    is a signed zero, so the end value comes out of the same three steps, its sign included.
    ``out``: a float64 array of ``values``' shape to write into (returned)."""
    values = np.asarray(values, dtype=np.float64)
    if len(knots) < 2 or values.size == 0:
        if out is None:
            return np.interp(values, knots, scores)
        out[...] = np.interp(values, knots, scores)
        return out
    slope, base_x, base_y = _segments(knots, scores)
    k = bin_index(knots, values)  # segment k: knots[k - 1] <= x < knots[k]; 0 below, len at/above the end
    at_x, at_y = base_x[k], base_y[k]
    with np.errstate(over="ignore", invalid="ignore"):  # as np.interp: inf/NaN results are handled below
        out = np.subtract(values, at_x, out=out)
        out *= slope[k]
        out += at_y
    np.copyto(out, at_y, where=at_x == values)  # on a knot: its value (numpy's guard for inf slopes)
    odd = np.isnan(out)  # NaN input, or a non-finite interpolation: numpy decides
    if odd.any():
        where = np.flatnonzero(odd)
        out[where] = np.interp(values[where], knots, scores)
    return out


def _segments(knots: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slope, start knot and start value of each of the len(knots) + 1 segments ``bin_index``
    numbers. Below the first knot the slope is +0.0 (x - knots[0] < 0 makes the step -0.0) and at or
    above the last it is -0.0 (x - knots[-1] >= 0 makes it -0.0 too): y + -0.0 is y, -0.0 included."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        inner = (scores[1:] - scores[:-1]) / (knots[1:] - knots[:-1])
    slope = np.concatenate(([0.0], inner, [-0.0]))
    base_x = np.concatenate(([knots[0]], knots))
    base_y = np.concatenate(([scores[0]], scores))
    return slope, base_x, base_y


def _encode_numerical(enc: NumericalEncoding, column, centre: float, table: str, out: np.ndarray) -> None:
    values = numeric_values(column, enc.name, table)
    interp(values, enc.knots, enc.scores, out=out)
    missing = missing_mask(values)
    if missing.any():
        out[missing] = centre


def _encode_categorical(enc: CategoricalEncoding, column, centre: np.ndarray, table: str, out: np.ndarray) -> None:
    strings = category_strings(column, enc.name, table)
    index = pc.index_in(strings, value_set=pa.array(enc.vocabulary, type=pa.string()))
    codes = as_numpy(index.fill_null(len(enc.vocabulary)))
    # Gathered as (width, rows), the Fortran matrix's own layout: contiguous writes (~3x the C order's).
    out.T[...] = enc.table.T.take(codes, axis=1)
    missing = as_numpy(pc.is_null(strings))
    if missing.any():
        out[missing] = centre


def encode_table(
    encodings: Sequence[Encoding], centre: np.ndarray, batch: pa.RecordBatch | pa.Table, table: str
) -> np.ndarray:
    """The encoded rows of ``batch`` (rows x encoded width, in Fortran order: each encoded column
    is one contiguous run, written where it is computed, with no transposing copy; the sums and
    products downstream read it as they would a C-ordered matrix). Raises SchemaError naming the
    column."""
    names = set(batch.schema.names)
    for enc in encodings:
        if enc.name not in names:
            raise SchemaError(f"{table}: column {enc.name!r} is missing")
    out = np.empty((batch.num_rows, sum(e.width for e in encodings)), order="F")
    # Every value is encoded on its own, so blocks of rows give the same matrix as the whole batch
    # at once, with one block's temporaries (not the whole batch's) alive at a time.
    for start in range(0, batch.num_rows, ENCODE_BLOCK_ROWS):
        block = batch.slice(start, ENCODE_BLOCK_ROWS)
        rows, offset = slice(start, start + block.num_rows), 0
        for enc in encodings:
            column, part = block.column(enc.name), centre[offset : offset + enc.width]
            if isinstance(enc, NumericalEncoding):
                _encode_numerical(enc, column, float(part[0]), table, out[rows, offset])
            else:
                _encode_categorical(enc, column, part, table, out[rows, offset : offset + enc.width])
            offset += enc.width
    return out


@dataclass(frozen=True)
class Calibration:
    """Per-row reconstruction error on the held-out reference half: the window's yardstick."""

    rows: int
    mean: float
    sd: float
    third_moment: float  # central, for the skewness correction
    residual_moment: np.ndarray  # E[P^T P] of the projections on the discarded components

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "mean": self.mean,
            "sd": self.sd,
            "third_moment": self.third_moment,
            "residual_moment": self.residual_moment.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Calibration:
        return cls(
            int(data["rows"]),
            float(data["mean"]),
            float(data["sd"]),
            float(data["third_moment"]),
            np.atleast_2d(np.asarray(data["residual_moment"], float)),
        )


@dataclass(frozen=True)
class ReconstructionModel:
    """Encodings, PCA and calibration fitted on the reference; serialisable to versioned JSON."""

    encodings: tuple[Encoding, ...]
    centre: np.ndarray
    covariance: np.ndarray  # of the centred encoding, on the fitting half (reference correlations)
    discarded: np.ndarray  # encoded width x discarded components, orthonormal columns
    kept_components: int
    variance_share: float
    calibration: Calibration
    metadata: dict = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [e.name for e in self.encodings]

    def column_slices(self) -> dict[str, slice]:
        out, offset = {}, 0
        for enc in self.encodings:
            out[enc.name] = slice(offset, offset + enc.width)
            offset += enc.width
        return out

    def to_dict(self) -> dict:
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "columns": {e.name: e.to_dict() for e in self.encodings},
            "centre": self.centre.tolist(),
            "covariance": self.covariance.tolist(),
            "discarded": self.discarded.tolist(),
            "kept_components": self.kept_components,
            "variance_share": self.variance_share,
            "calibration": self.calibration.to_dict(),
            "metadata": self.metadata,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping) -> ReconstructionModel:
        if data.get("format") != MODEL_FORMAT:
            raise ProfileError(f"not a reconstruction model (format={data.get('format')!r})")
        if data.get("version") != MODEL_VERSION:
            raise ProfileError(
                f"reconstruction model version {data.get('version')!r} is not supported"
                f" (this build reads version {MODEL_VERSION}); refit the model"
            )
        width = len(data["centre"])
        return cls(
            encodings=tuple(encoding_from_dict(n, e) for n, e in data["columns"].items()),
            centre=np.asarray(data["centre"], float),
            covariance=np.asarray(data["covariance"], float).reshape(width, width),
            discarded=np.asarray(data["discarded"], float).reshape(width, -1),
            kept_components=int(data["kept_components"]),
            variance_share=float(data["variance_share"]),
            calibration=Calibration.from_dict(data["calibration"]),
            metadata=dict(data.get("metadata", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> ReconstructionModel:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ProfileError(f"reconstruction model is not valid JSON: {exc}") from exc


@functools.lru_cache(maxsize=4)
def reference_halves(rows: int, max_half_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The two seeded halves' row numbers, sorted (read-only: cached, as ``compare`` asks twice and
    the permutation of 1M rows costs ~40 ms)."""
    order = np.random.default_rng(seed).permutation(rows)
    half = min(rows // 2, max_half_rows)
    halves = np.sort(order[:half]), np.sort(order[half : 2 * half])
    for rows_of_half in halves:
        rows_of_half.setflags(write=False)
    return halves


def _discarded_components(covariance: np.ndarray, variance_share: float) -> tuple[np.ndarray, int]:
    eigenvalues, vectors = np.linalg.eigh(covariance)
    eigenvalues, vectors = eigenvalues[::-1].clip(min=0.0), vectors[:, ::-1]
    total = eigenvalues.sum()
    rank = int(np.sum(eigenvalues > 1e-9 * max(total, 1e-300)))
    if rank < 2:
        raise ProfileError(
            "reference: the encoded features have fewer than 2 independent directions"
            " (constant columns?): multivariate drift cannot be measured"
        )
    kept = int(np.searchsorted(np.cumsum(eigenvalues) / total, variance_share - 1e-12) + 1)
    kept = min(kept, rank - 1)  # always discard at least one direction the reference varies in
    return vectors[:, kept:], kept


def _calibrate(encoded: np.ndarray, centre: np.ndarray, discarded: np.ndarray) -> Calibration:
    """The held-out half's error moments; ``encoded`` is consumed (centred in place)."""
    encoded -= centre
    projections = encoded @ discarded
    errors = np.einsum("ij,ij->i", projections, projections)
    mean = float(errors.mean())
    return Calibration(
        rows=len(errors),
        mean=mean,
        sd=float(errors.std(ddof=1)),
        third_moment=float(np.mean((errors - mean) ** 3)),
        residual_moment=projections.T @ projections / len(errors),
    )


def fit_reconstruction(
    reference: pa.Table,
    specs: Sequence[ColumnSpec],
    *,
    variance_share: float = DEFAULT_VARIANCE_SHARE,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    min_category_share: float = DEFAULT_MIN_CATEGORY_SHARE,
    max_half_rows: int = DEFAULT_MAX_HALF_ROWS,
    seed: int = 0,
    metadata: Mapping | None = None,
) -> ReconstructionModel:
    """Fit encodings and PCA on one seeded half of the reference, calibrate on the other half.

    Only ``role == "feature"`` columns take part. Raises ProfileError with ``skip_reason`` for a
    monitor with fewer than two features.
    """
    features = _fit_inputs(reference.schema.names, reference.num_rows, specs, variance_share)
    fit_rows, calibration_rows = reference_halves(reference.num_rows, max_half_rows, seed)
    selected = reference.select([s.name for s in features])
    return _fit_on_halves(
        selected.take(pa.array(fit_rows)),
        selected.take(pa.array(calibration_rows)),
        features,
        variance_share=variance_share,
        max_categories=max_categories,
        min_category_share=min_category_share,
        metadata=metadata,
    )


def fit_sample_rows(rows: int, max_half_rows: int = DEFAULT_MAX_HALF_ROWS, seed: int = 0) -> np.ndarray:
    """The sorted reference row numbers ``fit_reconstruction`` reads (both halves): a caller that
    streams the reference once can take just these rows and call ``fit_reconstruction_from_sample``."""
    fit_rows, calibration_rows = reference_halves(rows, max_half_rows, seed)
    return np.sort(np.concatenate([fit_rows, calibration_rows]))


def fit_reconstruction_from_sample(
    sample: pa.Table,
    rows: int,
    specs: Sequence[ColumnSpec],
    *,
    variance_share: float = DEFAULT_VARIANCE_SHARE,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    min_category_share: float = DEFAULT_MIN_CATEGORY_SHARE,
    max_half_rows: int = DEFAULT_MAX_HALF_ROWS,
    seed: int = 0,
    metadata: Mapping | None = None,
) -> ReconstructionModel:
    """``fit_reconstruction`` of a ``rows``-row reference, from its ``fit_sample_rows`` only
    (``sample``, in that order): the same rows in the same order, so the same model, bit for bit."""
    features = _fit_inputs(sample.schema.names, rows, specs, variance_share)
    fit_rows, calibration_rows = reference_halves(rows, max_half_rows, seed)
    wanted = np.sort(np.concatenate([fit_rows, calibration_rows]))
    if sample.num_rows != len(wanted):
        raise ValueError(f"sample has {sample.num_rows} rows, expected the {len(wanted)} fit_sample_rows")
    return _fit_on_halves(
        sample.take(pa.array(np.searchsorted(wanted, fit_rows))),
        sample.take(pa.array(np.searchsorted(wanted, calibration_rows))),
        features,
        variance_share=variance_share,
        max_categories=max_categories,
        min_category_share=min_category_share,
        metadata=metadata,
    )


def take_rows(batches: Iterable[pa.RecordBatch], rows: np.ndarray) -> pa.Table | None:
    """The rows numbered ``rows`` (sorted) of a stream of batches, one batch in memory at a time
    (None for an empty stream)."""
    taken, offset, schema = [], 0, None
    for batch in batches:
        schema = batch.schema
        lo, hi = np.searchsorted(rows, [offset, offset + batch.num_rows])
        if hi > lo:
            taken.append(batch.take(pa.array(rows[lo:hi] - offset)))
        offset += batch.num_rows
    if schema is None:
        return None
    return pa.Table.from_batches(taken, schema=schema)


def _fit_inputs(
    columns: Sequence[str], rows: int, specs: Sequence[ColumnSpec], variance_share: float
) -> list[ColumnSpec]:
    reason = skip_reason(specs)
    if reason:
        raise ProfileError(reason)
    if not 0.0 < variance_share < 1.0:
        raise ProfileError(f"variance_share must be in (0, 1), got {variance_share}")
    features = [s for s in specs if s.role == "feature"]
    missing = [s.name for s in features if s.name not in columns]
    if missing:
        raise SchemaError(f"reference: missing column(s) {', '.join(map(repr, missing))}")
    if rows < 2 * MIN_HALF_ROWS:
        raise ProfileError(f"reference: {rows} rows; the multivariate model needs at least {2 * MIN_HALF_ROWS}")
    return features


def covariance_in_place(encoded: np.ndarray) -> np.ndarray:
    """``np.cov(encoded, rowvar=False, bias=True)`` computed in ``encoded``'s own memory (centred in
    place: the caller's matrix is consumed) instead of numpy's copy of it: numpy's operations in
    numpy's order on the same memory layout, so the same matrix bit for bit (test)."""
    x = encoded.T
    x -= x.mean(axis=1)[:, None]
    covariance = np.dot(x, x.T)
    covariance *= np.true_divide(1, x.shape[1])
    return covariance.squeeze()


@dataclass(frozen=True)
class EncodedColumn:
    """One feature's share of the fit: its encoding, fitted on the fitting half, and both halves
    encoded with it (missing values at 0 in the fitting half, at its mean, the PCA centre, in the
    held-out half). Columns are independent until the covariance, so ``compare`` encodes each one
    as the profile fit reads it, on the profile's threads."""

    encoding: Encoding
    centre: np.ndarray  # (width,): the fitting half's mean encoding
    fitting: np.ndarray  # fitting rows x width
    held_out: np.ndarray  # held-out rows x width


def encode_reference_column(
    spec: ColumnSpec,
    fitting: pa.Array | pa.ChunkedArray,
    held_out: pa.Array | pa.ChunkedArray,
    *,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    min_category_share: float = DEFAULT_MIN_CATEGORY_SHARE,
) -> EncodedColumn:
    """``spec``'s column of the two reference halves (``reference_halves``' rows, in their order),
    encoded. Raises ProfileError / SchemaError naming the column."""
    if spec.kind == "numerical":
        encoding: Encoding = fit_numerical_encoding(numeric_values(fitting, spec.name, "reference"), spec.name)
    else:
        encoding = fit_categorical_encoding(fitting, spec.name, max_categories, min_category_share)
    encoded_fitting = _encode_column(encoding, fitting, np.zeros(encoding.width), "reference")
    centre = encoded_fitting.mean(axis=0)
    return EncodedColumn(encoding, centre, encoded_fitting, _encode_column(encoding, held_out, centre, "reference"))


def _encode_column(encoding: Encoding, column, centre: np.ndarray, table: str) -> np.ndarray:
    out = np.empty((len(column), encoding.width), order="F")
    if isinstance(encoding, NumericalEncoding):
        _encode_numerical(encoding, column, float(centre[0]), table, out[:, 0])
    else:
        _encode_categorical(encoding, column, centre, table, out)
    return out


def _fit_on_halves(
    fitting: pa.Table,
    held_out: pa.Table,
    features: Sequence[ColumnSpec],
    *,
    variance_share: float,
    max_categories: int,
    min_category_share: float,
    metadata: Mapping | None,
) -> ReconstructionModel:
    columns = [
        encode_reference_column(
            s,
            fitting.column(s.name),
            held_out.column(s.name),
            max_categories=max_categories,
            min_category_share=min_category_share,
        )
        for s in features
    ]
    return _fit_on_encoded_columns(columns, variance_share=variance_share, metadata=metadata)


def fit_reconstruction_from_encoded_columns(
    columns: Mapping[str, EncodedColumn],
    rows: int,
    specs: Sequence[ColumnSpec],
    *,
    variance_share: float = DEFAULT_VARIANCE_SHARE,
    metadata: Mapping | None = None,
) -> ReconstructionModel:
    """``fit_reconstruction`` of a ``rows``-row reference from its feature columns already encoded
    (``encode_reference_column`` of each, by name; the default encoding options): the same model,
    bit for bit."""
    features = _fit_inputs(list(columns), rows, specs, variance_share)
    return _fit_on_encoded_columns(
        [columns[s.name] for s in features], variance_share=variance_share, metadata=metadata
    )


def _fit_on_encoded_columns(
    columns: Sequence[EncodedColumn], *, variance_share: float, metadata: Mapping | None
) -> ReconstructionModel:
    encodings = tuple(c.encoding for c in columns)
    centre = np.concatenate([c.centre for c in columns])
    # One BLAS thread (as in count_batch): a multi-threaded BLAS on a busy 2-core box oversubscribes.
    with threadpool_limits(1, user_api="blas"):
        # Side by side in Fortran order (as encode_table's matrices): the columns' transposes stacked.
        fitting = np.concatenate([c.fitting.T for c in columns]).T
        covariance = np.atleast_2d(covariance_in_place(fitting))  # one encoded column: 1x1, not 0-d
        del fitting
        discarded, kept = _discarded_components(covariance, variance_share)
        calibration = _calibrate(np.concatenate([c.held_out.T for c in columns]).T, centre, discarded)
    return ReconstructionModel(
        encodings, centre, covariance, discarded, kept, variance_share, calibration, dict(metadata or {})
    )


# --------------------------------------------------------------------------- window counts


@dataclass
class ReconstructionCounts:
    """Mergeable sums of one window's evaluated rows (centred encoding): add two, get the union."""

    rows_seen: int
    rows: int
    sum_x: np.ndarray
    sum_xx: np.ndarray
    problems: dict[str, str] = field(default_factory=dict)

    @classmethod
    def empty(cls, model: ReconstructionModel) -> ReconstructionCounts:
        width = len(model.centre)
        return cls(0, 0, np.zeros(width), np.zeros((width, width)), {})

    def __add__(self, other: ReconstructionCounts) -> ReconstructionCounts:
        if self.sum_x.shape != other.sum_x.shape:
            raise ValueError("cannot add reconstruction counts of different models")
        return ReconstructionCounts(
            self.rows_seen + other.rows_seen,
            self.rows + other.rows,
            self.sum_x + other.sum_x,
            self.sum_xx + other.sum_xx,
            {**other.problems, **self.problems},
        )

    def to_dict(self) -> dict:
        return {
            "rows_seen": self.rows_seen,
            "rows": self.rows,
            "sum_x": self.sum_x.tolist(),
            "sum_xx": self.sum_xx.tolist(),
            "problems": self.problems,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ReconstructionCounts:
        width = len(data["sum_x"])
        return cls(
            int(data["rows_seen"]),
            int(data["rows"]),
            np.asarray(data["sum_x"], float),
            np.asarray(data["sum_xx"], float).reshape(width, width),
            dict(data.get("problems", {})),
        )


def sample_rate_for(window_rows: int | None, max_rows: int = DEFAULT_MAX_EVALUATED_ROWS) -> float:
    """Share of a window's rows to evaluate so that about ``max_rows`` are (1.0 if size unknown)."""
    if window_rows is None or window_rows <= max_rows:
        return 1.0
    return max_rows / window_rows


def sample_batch(
    batch: pa.RecordBatch | pa.Table, columns: Sequence[str], sample_rate: float, rng: np.random.Generator
) -> pa.RecordBatch | pa.Table:
    """The rows of ``batch`` that ``count_batch`` evaluates: with ``sample_rate`` < 1, a seeded
    Bernoulli sample of the model's ``columns`` (one ``rng.random`` draw a row); else the batch.
    Needs no model: ``compare`` samples the window while the model is still being fitted."""
    if sample_rate >= 1.0:
        return batch
    keep = rng.random(batch.num_rows) < sample_rate
    present = set(batch.schema.names)
    # Only the model's columns are sampled (a missing one is still named by encode_table).
    return batch.select([c for c in columns if c in present]).take(np.flatnonzero(keep))


def count_batch(
    model: ReconstructionModel,
    batch: pa.RecordBatch | pa.Table,
    *,
    sample_rate: float = 1.0,
    rng: np.random.Generator | None = None,
    table_name: str = "current window",
    rows_seen: int | None = None,
) -> ReconstructionCounts:
    """Sums for one batch (a seeded Bernoulli sample of its rows when ``sample_rate`` < 1).
    ``rows_seen``: the window rows ``batch`` was sampled from, when it is ``sample_batch``'s output."""
    counts = ReconstructionCounts.empty(model)
    counts.rows_seen = batch.num_rows if rows_seen is None else rows_seen
    if sample_rate < 1.0:
        rng = rng if rng is not None else np.random.default_rng(0)
        batch = sample_batch(batch, model.columns, sample_rate, rng)
    try:
        with threadpool_limits(1, user_api="blas"):
            counts.sum_xx = _gram_of_encoding(model, batch, table_name, counts)
    except SchemaError as exc:
        counts.problems[_column_of(exc, model)] = str(exc)
        return counts
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        counts.problems["?"] = f"{table_name}: a multivariate column cannot be read: {exc}"
        return counts
    return counts


def _gram_of_encoding(
    model: ReconstructionModel, batch: pa.RecordBatch | pa.Table, table_name: str, counts: ReconstructionCounts
) -> np.ndarray:
    # One BLAS thread: the matrix is small, and a multi-threaded BLAS on a busy 2-core machine
    # oversubscribes (measured 0.1 s -> 1 s for the same product under load).
    encoded = encode_table(model.encodings, model.centre, batch, table_name)
    encoded -= model.centre  # in place: no second matrix
    counts.rows = len(encoded)
    counts.sum_x = encoded.sum(axis=0)
    return encoded.T @ encoded


def _column_of(exc: Exception, model: ReconstructionModel) -> str:
    return next((name for name in model.columns if repr(name) in str(exc)), "?")


def reconstruction_counts(
    model: ReconstructionModel,
    batches: Iterable[pa.RecordBatch | pa.Table],
    *,
    sample_rate: float = 1.0,
    seed: int = 0,
    table_name: str = "current window",
) -> ReconstructionCounts:
    """Stream batches into one window's counts; memory is one batch plus a width x width matrix."""
    if not 0.0 < sample_rate <= 1.0:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
    rng = np.random.default_rng(seed)
    total = ReconstructionCounts.empty(model)
    for batch in batches:
        total = total + count_batch(model, batch, sample_rate=sample_rate, rng=rng, table_name=table_name)
    return total


# --------------------------------------------------------------------------- evaluation


@dataclass
class CorrelationChange:
    """Pearson correlation of two numerical columns' normal scores, reference vs window."""

    columns: tuple[str, str]
    reference: float
    current: float

    def to_dict(self) -> dict:
        return {"columns": list(self.columns), "reference": self.reference, "current": self.current}


@dataclass
class ReconstructionDrift:
    """The reconstruction-error check for one window. ``skipped`` says why it did not run."""

    rows_seen: int
    rows_evaluated: int
    mean_error: float | None = None
    expected_error: float | None = None
    threshold: float | None = None
    z_score: float | None = None
    p_value: float | None = None
    relative_increase: float | None = None
    drifted: bool = False
    explained_by: list[str] = field(default_factory=list)
    excess_share: dict[str, float] = field(default_factory=dict)
    correlation_changes: list[CorrelationChange] = field(default_factory=list)
    skipped: str | None = None

    def to_dict(self) -> dict:
        return {
            "rows_seen": self.rows_seen,
            "rows_evaluated": self.rows_evaluated,
            "reconstruction_error": self.mean_error,
            "expected_error": self.expected_error,
            "threshold": self.threshold,
            "z_score": self.z_score,
            "p_value": self.p_value,
            "relative_increase": self.relative_increase,
            "drifted": self.drifted,
            "explained_by": self.explained_by,
            "excess_share": self.excess_share,
            "correlation_changes": [c.to_dict() for c in self.correlation_changes],
            "skipped": self.skipped,
        }


def error_threshold(calibration: Calibration, rows: int, alpha: float, min_relative_increase: float) -> float:
    """Mean error above which a window of ``rows`` evaluated rows is drift (see module docstring)."""
    m = calibration.rows
    se = calibration.sd * np.sqrt(1.0 / rows + 1.0 / m)
    # Skewness of (window mean - calibration mean): third cumulants scale as 1/n^2 and -1/m^2.
    skew = calibration.third_moment * (1.0 / rows**2 - 1.0 / m**2) / se**3 if se > 0 else 0.0
    z = normal_isf(alpha)
    quantile = z + (z * z - 1.0) * skew / 6.0
    return max(calibration.mean + quantile * se, calibration.mean * (1.0 + min_relative_increase))


def _residual_by_column(model: ReconstructionModel, moment: np.ndarray) -> dict[str, float]:
    """Mean squared residual per column from the second moment of the discarded projections."""
    per_feature = np.einsum("ij,jk,ik->i", model.discarded, moment, model.discarded)
    return {name: float(per_feature[s].sum()) for name, s in model.column_slices().items()}


def _explaining_columns(excess: dict[str, float]) -> tuple[list[str], dict[str, float]]:
    positive = {k: v for k, v in excess.items() if v > 0}
    total = sum(positive.values())
    if total <= 0:
        return [], {}
    ranked = sorted(positive, key=lambda k: -positive[k])
    shares = {k: positive[k] / total for k in ranked}
    chosen, covered = [], 0.0
    for name in ranked[:MAX_EXPLAINING_COLUMNS]:
        chosen.append(name)
        covered += shares[name]
        if covered >= EXPLAINED_SHARE:
            break
    return chosen, {k: round(v, 4) for k, v in shares.items() if k in chosen}


def _correlation(covariance: np.ndarray, i: int, j: int) -> float:
    denominator = np.sqrt(covariance[i, i] * covariance[j, j])
    return float(covariance[i, j] / denominator) if denominator > 0 else 0.0


def _correlation_changes(
    model: ReconstructionModel, counts: ReconstructionCounts, columns: list[str]
) -> list[CorrelationChange]:
    slices = model.column_slices()
    numerical = {e.name for e in model.encodings if isinstance(e, NumericalEncoding)}
    names = [c for c in columns if c in numerical]
    mean = counts.sum_x / counts.rows
    window_cov = counts.sum_xx / counts.rows - np.outer(mean, mean)
    changes = []
    for a_index, a in enumerate(names):
        for b in names[a_index + 1 :]:
            i, j = slices[a].start, slices[b].start
            changes.append(
                CorrelationChange((a, b), _correlation(model.covariance, i, j), _correlation(window_cov, i, j))
            )
    return sorted(changes, key=lambda c: -abs(c.current - c.reference))


def evaluate_reconstruction(
    model: ReconstructionModel,
    counts: ReconstructionCounts,
    *,
    alpha: float = DEFAULT_ALPHA,
    min_relative_increase: float = DEFAULT_MIN_RELATIVE_INCREASE,
) -> ReconstructionDrift:
    """The window's mean reconstruction error against the reference threshold, with its explanation."""
    result = ReconstructionDrift(counts.rows_seen, counts.rows)
    if counts.problems:
        result.skipped = "multivariate check skipped: " + "; ".join(counts.problems.values())
        return result
    if counts.rows == 0:
        result.skipped = "multivariate check skipped: no rows evaluated in this window"
        return result
    moment = model.discarded.T @ (counts.sum_xx / counts.rows) @ model.discarded
    cal = model.calibration
    result.mean_error = float(np.trace(moment))
    result.expected_error = cal.mean
    result.threshold = error_threshold(cal, counts.rows, alpha, min_relative_increase)
    se = cal.sd * np.sqrt(1.0 / counts.rows + 1.0 / cal.rows)
    result.z_score = float((result.mean_error - cal.mean) / se) if se > 0 else 0.0
    result.p_value = normal_sf(result.z_score)
    result.relative_increase = result.mean_error / cal.mean - 1.0 if cal.mean > 0 else None
    result.drifted = result.mean_error > result.threshold
    window_residual = _residual_by_column(model, moment)
    reference_residual = _residual_by_column(model, cal.residual_moment)
    excess = {name: window_residual[name] - reference_residual[name] for name in window_residual}
    result.explained_by, result.excess_share = _explaining_columns(excess)
    if result.drifted:
        result.correlation_changes = _correlation_changes(model, counts, result.explained_by)[:3]
    return result


def reconstruction_check(result: ReconstructionDrift) -> CheckOutcome | None:
    """The ``no_multivariate_drift`` check (ERROR), or None when the check was skipped."""
    if result.skipped is not None or result.mean_error is None or result.threshold is None:
        return None
    outcome = DEFAULT_CHECKS[CHECK_NAME].outcome(
        None,
        not result.drifted,
        result.mean_error,
        result.threshold,
        method="reconstruction_error",
        expected_error=result.expected_error,
        z_score=result.z_score,
        p_value=result.p_value,
        rows_evaluated=result.rows_evaluated,
        explained_by=result.explained_by,
    )
    return replace(
        outcome,
        description="The window's mean PCA reconstruction error is within the reference's own chunk-error range",
    )
