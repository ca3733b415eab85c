"""Model performance before the labels arrive: confidence-based performance estimation (CBPE).

Method
------
Fit once, on the labelled reference: a calibration map from the model's score to P(y = 1 | score)
(centred isotonic regression, ``calibration.py``). In a window, every row's calibrated probability
``p_i`` is its expected label, so with the threshold ``t`` (predicted positive when score >= t):

- expected TP = sum of p_i over rows with score >= t, FP = rows above t - TP, FN = sum of p_i below t,
  TN = rows below t - FN; precision, recall, F1 and accuracy are taken from these expected counts;
- expected ROC AUC = E[concordant pairs] / E[positives x negatives], where a (positive, negative) pair
  of rows i, j occurs with probability p_i (1 - p_j) (labels independent given scores) and is
  concordant when s_i > s_j (half when tied), the Mann-Whitney form of the AUC.

These are ratios of expectations, not expectations of ratios: the difference is O(1 / positives)
and is inside the band (checked against Monte Carlo in the tests).

Mergeable counts
----------------
A window contributes counts on a fixed grid of score bins (``ScoreCounts``): rows, sum of scores,
sum of p and sum of p^2 per bin, plus labelled rows and positives per bin once labels exist. They are
computed batch by batch and add up exactly (``a + b``, fixed-point sums): days add to the week and a
streamed window never sits in memory. The grid is the union of ``uniform_bins`` equal-width bins over
[0, 1], ``quantile_bins`` reference-quantile bins (resolution where the scores are, e.g. near zero
for fraud) and the threshold, so the confusion matrix is exact. Binning costs only the AUC's
within-bin order: pairs inside one bin count as ties, which moves the expected AUC by about half the
within-bin slope of p. Measured on 1M rows against the exact per-row expectation: 2.5e-7 on
fraud-like scores and 1.8e-6 on scores concentrated near 1e-4 (equal-width bins alone: 1.1e-5 and
3.2e-2; ``benchmarks/bench_performance_estimation.py``). The counts are made in the drift pass
itself (``summarize(profile, batches, estimator=...)``, ``WindowSummary.performance``: the
drift_report asset, ``compare`` and the Dask row-group tasks), so a window is read once; on a 1M-row,
16-column window that pass costs 0-4% more than drift alone (``benchmarks/performance_estimation.md``).

Band
----
The band is a Monte Carlo prediction interval of the metric that the labels will show, given the
window's scores: labels are drawn as Binomial(rows, mean p) per group of bins whose mean p agree
within 2% (the sum of Bernoulli(p_i) with the same mean and a variance larger by sum (p_i - mean p)^2,
negligible at that resolution), and each draw also uses one of ``bootstrap_replicates`` calibration
maps refitted on a Poisson bootstrap of the reference, so the band holds both the window's label
noise and the reference's calibration error. The band is the central ``confidence`` interval of the
drawn metrics (seeded: the same counts give the same band). It is honest at low prevalence because it
is not a normal approximation: with 10 expected frauds the drawn AUCs are as skewed and discrete as
the realized ones, and a draw with no positive (AUC undefined) is counted in ``undefined_share``
rather than hidden. Measured coverage of the 95% AUC band under covariate shift (1.3-2% fraud,
200k-row references; ``benchmarks/performance_estimation.md``): 94-95% at 1k rows, 94-96% at 10k,
83-97% at 100k. At 100k rows the reference's own calibration error (sd ~0.003 AUC between
references) is as large as the label noise, so coverage depends on how lucky the reference was; the
bootstrap term is what keeps it from collapsing (label noise alone under-covers more).

Assumptions (what the estimate cannot see)
------------------------------------------
- P(y | score) is the reference's: true under covariate shift for a model whose score ranks by the
  true risk, false under concept shift (P(y | x) changes). A concept shift moves the realized metric
  with no trace in the scores: only the realized AUC, when labels arrive, catches it.
- Labels are independent given the scores (no fraud rings labelled together).
- The reference is representative of the scores' range: beyond the outer calibration knots the map is
  flat, so scores above anything seen in the reference get the top block's rate.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drift_assets.stats.binned_metrics import (
    binned_auc,
    confusion_from_labels,
    expected_auc,
    expected_confusion,
    simulate_metrics,
    threshold_metrics,
)
from drift_assets.stats.calibration import (
    CalibrationMap,
    bootstrap_calibrations,
    brier_score,
    fit_centered_isotonic,
    reliability_by_decile,
)
from drift_assets.stats.errors import DriftInputError, EmptyWindowError, ProfileError, SchemaError
from drift_assets.stats.rules import ESTIMATED_AUC_VS_CHAMPION
from drift_assets.stats.validation import numeric_values

ESTIMATOR_FORMAT = "drift_assets.performance_estimator"
ESTIMATOR_FORMAT_VERSION = 1

DEFAULT_THRESHOLD = 0.5
DEFAULT_UNIFORM_BINS = 1000
DEFAULT_QUANTILE_BINS = 1000
DEFAULT_BOOTSTRAP_REPLICATES = 100
DEFAULT_DRAWS = 2000
DEFAULT_CONFIDENCE = 0.95
# Cells of the score lookup table (bin_index): 2^20 int32 + bool entries, 5 MB per estimator, built
# on first use. With the default grid ~1% of fraud-like rows fall in a cell an edge cuts (2^16 cells:
# 19%), so counting 1M scores takes ~7 ms instead of ~170 ms of binary search.
LOOKUP_CELLS = 2**20
# Draws are simulated this many at a time: memory stays ~draws_chunk x bins x 8 bytes per array.
DRAWS_CHUNK = 250
# Monte Carlo labels are drawn per group of bins whose mean p agree within 2% (relative, with a
# floor of 1e-4 so the many near-zero bins pool): the band's cost no longer grows with the grid.
SIMULATION_P_RESOLUTION = 0.02
SIMULATION_P_FLOOR = 1e-4
METRICS: tuple[str, ...] = ("roc_auc", "precision", "recall", "f1", "accuracy")


class PerformanceInputError(DriftInputError):
    """Input that performance estimation cannot use (the drift checks do not depend on it)."""


# --------------------------------------------------------------------------- validation


def probability_scores(column: pa.Array | pa.ChunkedArray, name: str, table: str) -> np.ndarray:
    """Float scores with NaN for missing; anything outside [0, 1] is not a probability and fails."""
    values = numeric_values(column, name, table)
    finite = values[np.isfinite(values)]
    outside = (finite < 0.0) | (finite > 1.0)
    if outside.any():
        raise PerformanceInputError(
            f"{table}: column {name!r} (prediction) has {int(outside.sum())} value(s) outside [0, 1]"
            f" (min {finite.min():.6g}, max {finite.max():.6g}); performance estimation needs a probability"
        )
    if np.isinf(values).any():
        raise PerformanceInputError(f"{table}: column {name!r} (prediction) has infinite values; not a probability")
    return values


def binary_target(column: pa.Array | pa.ChunkedArray, name: str, table: str) -> np.ndarray:
    """0/1 floats with NaN for missing labels. Booleans, integers and floats that are all 0/1 pass."""
    if pa.types.is_boolean(column.type):
        column = pc.cast(column, pa.float64())
    values = numeric_values(column, name, table)
    labelled = values[~np.isnan(values)]
    bad = np.unique(labelled[(labelled != 0.0) & (labelled != 1.0)])
    if bad.size:
        shown = ", ".join(f"{v:g}" for v in bad[:5])
        raise PerformanceInputError(
            f"{table}: column {name!r} (target) must be binary 0/1, found other value(s): {shown}"
        )
    return values


def _require_column(table: pa.Table | pa.RecordBatch, name: str, role: str, where: str) -> None:
    if name not in table.schema.names:
        raise SchemaError(f"{where}: column {name!r} ({role}) is missing; performance estimation needs it")


# --------------------------------------------------------------------------- fitted estimator


@dataclass(frozen=True)
class PerformanceEstimator:
    """Calibration, score grid and reference figures: everything a window's estimate needs, as JSON.

    ``edges`` are the score bin edges: bin i is ``[edges[i], edges[i + 1])``, the last bin also holds
    1.0. The reference histogram (rows, positives, score sum per bin) is kept so the bootstrap
    calibration maps can be rebuilt from the JSON with the stored seed.
    """

    score_column: str
    target_column: str
    threshold: float
    edges: np.ndarray
    calibration: CalibrationMap
    reference_counts: np.ndarray
    reference_positives: np.ndarray
    reference_score_sums: np.ndarray
    quality: dict
    bootstrap_replicates: int = DEFAULT_BOOTSTRAP_REPLICATES
    seed: int = 0
    metadata: dict = field(default_factory=dict)

    @property
    def n_bins(self) -> int:
        return len(self.edges) - 1

    @property
    def threshold_bin(self) -> int:
        """First bin predicted positive (the threshold is an edge, so this split is exact)."""
        return int(np.searchsorted(self.edges, self.threshold))

    @property
    def champion_auc(self) -> float:
        """Realized ROC AUC on the reference: what an estimate is compared with."""
        return float(self.quality["reference_roc_auc"])

    @cached_property
    def bootstrap_maps(self) -> list[CalibrationMap]:
        return bootstrap_calibrations(
            self.reference_counts,
            self.reference_positives,
            self.reference_score_sums,
            replicates=self.bootstrap_replicates,
            seed=self.seed,
        )

    @cached_property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def bin_index(self, scores: np.ndarray) -> np.ndarray:
        """Bin of each score in [0, 1]. A 2^20-cell lookup table answers most rows in O(1); rows in a
        cell that an edge cuts fall back to a binary search (the result is the same either way)."""
        first_bin, cut = self._cell_lookup
        cell = np.minimum((scores * LOOKUP_CELLS).astype(np.int64), LOOKUP_CELLS - 1)
        index = first_bin[cell].astype(np.int64)
        in_cut_cell = cut[cell]
        if in_cut_cell.any():
            index[in_cut_cell] = self._searched_bin(scores[in_cut_cell])
        return index

    def _searched_bin(self, scores: np.ndarray) -> np.ndarray:
        return np.minimum(np.searchsorted(self.edges, scores, side="right") - 1, self.n_bins - 1)

    @cached_property
    def _cell_lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """Per cell [c/G, (c+1)/G): the bin of its left end, and whether an edge lies inside it."""
        left = np.arange(LOOKUP_CELLS) / LOOKUP_CELLS  # exact: G is a power of two
        right = np.arange(1, LOOKUP_CELLS + 1) / LOOKUP_CELLS
        first = np.searchsorted(self.edges, left, side="right")
        cut = np.searchsorted(self.edges, right, side="left") > first
        return np.minimum(first - 1, self.n_bins - 1).astype(np.int32), cut

    def calibrate(self, scores: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Calibrated probability of scores already binned: the map is linear inside a bin without a
        knot (one multiply-add); rows in the few bins holding a knot are interpolated exactly."""
        intercept, slope, holds_knot = self._linear_pieces
        probabilities = intercept[index] + slope[index] * scores
        at_knot = holds_knot[index]
        if at_knot.any():
            probabilities[at_knot] = self.calibration(scores[at_knot])
        return np.clip(probabilities, 0.0, 1.0)

    @cached_property
    def _linear_pieces(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        left, right = self.edges[:-1], self.edges[1:]
        at_left, at_right = self.calibration(left), self.calibration(right)
        slope = (at_right - at_left) / (right - left)
        holds_knot = np.zeros(self.n_bins, dtype=bool)
        holds_knot[self._searched_bin(self.calibration.knots_x)] = True
        return at_left - slope * left, slope, holds_knot

    def to_dict(self) -> dict:
        return {
            "format": ESTIMATOR_FORMAT,
            "format_version": ESTIMATOR_FORMAT_VERSION,
            "score_column": self.score_column,
            "target_column": self.target_column,
            "threshold": self.threshold,
            "edges": self.edges.tolist(),
            "calibration": {"method": "centered_isotonic", **self.calibration.to_dict()},
            "reference_histogram": {
                "counts": self.reference_counts.tolist(),
                "positives": self.reference_positives.tolist(),
                "score_sums": self.reference_score_sums.tolist(),
            },
            "quality": self.quality,
            "bootstrap_replicates": self.bootstrap_replicates,
            "seed": self.seed,
            "metadata": self.metadata,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping) -> PerformanceEstimator:
        if data.get("format") != ESTIMATOR_FORMAT:
            raise ProfileError(f"not a performance estimator (format={data.get('format')!r})")
        if data.get("format_version") != ESTIMATOR_FORMAT_VERSION:
            raise ProfileError(
                f"performance estimator format_version {data.get('format_version')!r} is not supported"
                f" (this build reads {ESTIMATOR_FORMAT_VERSION}); refit it on the reference"
            )
        histogram = data["reference_histogram"]
        return cls(
            score_column=str(data["score_column"]),
            target_column=str(data["target_column"]),
            threshold=float(data["threshold"]),
            edges=np.asarray(data["edges"], dtype=np.float64),
            calibration=CalibrationMap.from_dict(data["calibration"]),
            reference_counts=np.asarray(histogram["counts"], dtype=np.int64),
            reference_positives=np.asarray(histogram["positives"], dtype=np.int64),
            reference_score_sums=np.asarray(histogram["score_sums"], dtype=np.float64),
            quality=dict(data["quality"]),
            bootstrap_replicates=int(data["bootstrap_replicates"]),
            seed=int(data["seed"]),
            metadata=dict(data.get("metadata", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> PerformanceEstimator:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ProfileError(f"performance estimator is not valid JSON: {exc}") from exc


def score_edges(scores: np.ndarray, threshold: float, *, uniform_bins: int, quantile_bins: int) -> np.ndarray:
    """Union of an equal-width grid over [0, 1], the reference's score quantiles and the threshold."""
    uniform = np.linspace(0.0, 1.0, uniform_bins + 1)
    quantiles = np.quantile(scores, np.linspace(0.0, 1.0, quantile_bins + 1)) if quantile_bins else []
    edges = np.unique(np.concatenate((uniform, quantiles, [threshold])))
    # Edges closer than float noise would make empty sliver bins; keep them apart by 1e-12.
    return edges[np.concatenate(([True], np.diff(edges) > 1e-12))]


def roc_auc_exact(scores: np.ndarray, target: np.ndarray) -> float:
    """Mann-Whitney ROC AUC with ties counted half (equal to sklearn's roc_auc_score)."""
    positives = target == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    from scipy.stats import rankdata  # here, not at import: scipy.stats costs ~0.6 s to import

    ranks = rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _reference_arrays(reference: pa.Table, score_column: str, target_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Labelled, scored reference rows; refuses a reference that cannot calibrate anything."""
    where = "reference"
    _require_column(reference, score_column, "prediction", where)
    _require_column(reference, target_column, "target", where)
    scores = probability_scores(reference.column(score_column), score_column, where)
    target = binary_target(reference.column(target_column), target_column, where)
    keep = ~np.isnan(scores) & ~np.isnan(target)
    scores, target = scores[keep], target[keep]
    if scores.size == 0:
        raise PerformanceInputError(f"{where}: no row has both {score_column!r} and {target_column!r}")
    if scores.min() == scores.max():
        raise PerformanceInputError(
            f"{where}: column {score_column!r} (prediction) is constant ({scores[0]:g});"
            " a constant score cannot be calibrated or ranked"
        )
    positives = int(target.sum())
    if positives == 0 or positives == target.size:
        raise PerformanceInputError(
            f"{where}: column {target_column!r} (target) has only one class ({positives} positive(s)"
            f" in {target.size} rows); calibration needs both"
        )
    return scores, target


def fit_performance_estimator(
    reference: pa.Table,
    *,
    score_column: str,
    target_column: str,
    threshold: float = DEFAULT_THRESHOLD,
    uniform_bins: int = DEFAULT_UNIFORM_BINS,
    quantile_bins: int = DEFAULT_QUANTILE_BINS,
    bootstrap_replicates: int = DEFAULT_BOOTSTRAP_REPLICATES,
    seed: int = 0,
    metadata: Mapping | None = None,
) -> PerformanceEstimator:
    """Fit the calibration on a labelled reference (rows missing the score or the label are skipped)."""
    if not 0.0 < threshold < 1.0:
        raise ProfileError(f"threshold must be strictly between 0 and 1, got {threshold}")
    if uniform_bins < 1 or quantile_bins < 0:
        raise ProfileError("uniform_bins must be >= 1 and quantile_bins >= 0")
    scores, target = _reference_arrays(reference, score_column, target_column)
    edges = score_edges(scores, threshold, uniform_bins=uniform_bins, quantile_bins=quantile_bins)
    n_bins = len(edges) - 1
    index = np.minimum(np.searchsorted(edges, scores, side="right") - 1, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins).astype(np.int64)
    positives = np.bincount(index, weights=target, minlength=n_bins).round().astype(np.int64)
    score_sums = np.bincount(index, weights=scores, minlength=n_bins)
    calibration = fit_centered_isotonic(counts, positives, score_sums)
    calibrated = calibration(scores)
    quality = {
        "reference_rows": int(scores.size),
        "reference_rows_skipped": int(reference.num_rows - scores.size),
        "reference_positives": int(target.sum()),
        "reference_prevalence": float(target.mean()),
        "reference_roc_auc": roc_auc_exact(scores, target),
        "brier_score_raw": brier_score(scores, target),
        "brier_score_calibrated": brier_score(calibrated, target),
        "calibration_knots": len(calibration.knots_x),
        "reliability_by_decile": reliability_by_decile(scores, calibrated, target),
    }
    return PerformanceEstimator(
        score_column=score_column,
        target_column=target_column,
        threshold=float(threshold),
        edges=edges,
        calibration=calibration,
        reference_counts=counts,
        reference_positives=positives,
        reference_score_sums=score_sums,
        quality=quality,
        bootstrap_replicates=bootstrap_replicates,
        seed=seed,
        metadata=dict(metadata or {}),
    )


# --------------------------------------------------------------------------- mergeable window counts


# Per-row sums are kept in fixed point (units of 2^-32, int64): integer addition is associative, so
# daily parts add to exactly the week's counts and the seeded band is identical either way (with
# float sums, a 1e-16 difference in a bin's p can change numpy's binomial rejection sampling and
# with it every later draw). The rounding is at most 1.2e-10 per row.
FIXED_POINT_SCALE = 2**32
# float64 holds integers exactly up to 2^53: bincount 2^20 rows of at most 2^32 units at a time.
FIXED_POINT_CHUNK = 2**20
SUM_FIELDS: tuple[str, ...] = ("score_sums_fixed", "probability_sums_fixed", "probability_square_sums_fixed")
COUNT_FIELDS: tuple[str, ...] = ("rows", "labelled_rows", "labelled_positives")


@dataclass
class ScoreCounts:
    """A window's contribution per score bin; adding two gives the counts of their union exactly."""

    rows: np.ndarray
    score_sums_fixed: np.ndarray
    probability_sums_fixed: np.ndarray
    probability_square_sums_fixed: np.ndarray
    labelled_rows: np.ndarray
    labelled_positives: np.ndarray
    missing_scores: int = 0
    estimator_fingerprint: str = ""

    @classmethod
    def empty(cls, estimator: PerformanceEstimator) -> ScoreCounts:
        arrays = {name: np.zeros(estimator.n_bins, dtype=np.int64) for name in COUNT_FIELDS + SUM_FIELDS}
        return cls(**arrays, missing_scores=0, estimator_fingerprint=estimator.fingerprint)

    @property
    def score_sums(self) -> np.ndarray:
        return self.score_sums_fixed / FIXED_POINT_SCALE

    @property
    def probability_sums(self) -> np.ndarray:
        return self.probability_sums_fixed / FIXED_POINT_SCALE

    @property
    def probability_square_sums(self) -> np.ndarray:
        return self.probability_square_sums_fixed / FIXED_POINT_SCALE

    @property
    def total_rows(self) -> int:
        return int(self.rows.sum())

    @property
    def total_labelled(self) -> int:
        return int(self.labelled_rows.sum())

    def __add__(self, other: ScoreCounts) -> ScoreCounts:
        if self.rows.shape != other.rows.shape or self.estimator_fingerprint != other.estimator_fingerprint:
            raise ValueError("cannot add score counts made with different performance estimators")
        arrays = {name: getattr(self, name) + getattr(other, name) for name in COUNT_FIELDS + SUM_FIELDS}
        return ScoreCounts(
            **arrays,
            missing_scores=self.missing_scores + other.missing_scores,
            estimator_fingerprint=self.estimator_fingerprint,
        )

    def to_dict(self) -> dict:
        out: dict = {name: getattr(self, name).tolist() for name in COUNT_FIELDS + SUM_FIELDS}
        out.update(missing_scores=self.missing_scores, estimator_fingerprint=self.estimator_fingerprint)
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> ScoreCounts:
        return cls(
            **{name: np.asarray(data[name], dtype=np.int64) for name in COUNT_FIELDS + SUM_FIELDS},
            missing_scores=int(data["missing_scores"]),
            estimator_fingerprint=str(data["estimator_fingerprint"]),
        )


def _fixed_point_bincount(index: np.ndarray, values: np.ndarray, n_bins: int) -> np.ndarray:
    """Exact per-bin sums of ``round(values * 2^32)`` as int64 (values in [0, 1])."""
    units = np.rint(values * FIXED_POINT_SCALE)
    total = np.zeros(n_bins, dtype=np.int64)
    for start in range(0, index.size, FIXED_POINT_CHUNK):
        stop = start + FIXED_POINT_CHUNK
        total += np.bincount(index[start:stop], weights=units[start:stop], minlength=n_bins).astype(np.int64)
    return total


def count_scores(estimator: PerformanceEstimator, scores: np.ndarray, target: np.ndarray | None = None) -> ScoreCounts:
    """Counts for already validated arrays (scores in [0, 1] or NaN; target 0/1 or NaN, optional)."""
    scored = ~np.isnan(scores)
    values = scores[scored]
    index = estimator.bin_index(values)
    probabilities = estimator.calibrate(values, index)
    n = estimator.n_bins
    labelled_rows = np.zeros(n, dtype=np.int64)
    labelled_positives = np.zeros(n, dtype=np.int64)
    if target is not None:
        labels = target[scored]
        has_label = ~np.isnan(labels)
        labelled_rows = np.bincount(index[has_label], minlength=n).astype(np.int64)
        labelled_positives = np.bincount(index[has_label & (labels == 1.0)], minlength=n).astype(np.int64)
    return ScoreCounts(
        rows=np.bincount(index, minlength=n).astype(np.int64),
        score_sums_fixed=_fixed_point_bincount(index, values, n),
        probability_sums_fixed=_fixed_point_bincount(index, probabilities, n),
        probability_square_sums_fixed=_fixed_point_bincount(index, probabilities * probabilities, n),
        labelled_rows=labelled_rows,
        labelled_positives=labelled_positives,
        missing_scores=int((~scored).sum()),
        estimator_fingerprint=estimator.fingerprint,
    )


def count_batch(
    estimator: PerformanceEstimator, batch: pa.RecordBatch | pa.Table, table_name: str = "current window"
) -> ScoreCounts:
    """Counts for one arrow batch; the target column is used when the batch has it (labels arrived)."""
    _require_column(batch, estimator.score_column, "prediction", table_name)
    scores = probability_scores(batch.column(estimator.score_column), estimator.score_column, table_name)
    target = None
    if estimator.target_column in batch.schema.names:
        target = binary_target(batch.column(estimator.target_column), estimator.target_column, table_name)
    return count_scores(estimator, scores, target)


def count_window(
    estimator: PerformanceEstimator,
    batches: Iterable[pa.RecordBatch | pa.Table],
    table_name: str = "current window",
) -> ScoreCounts:
    """Stream batches into one ``ScoreCounts``: memory is one batch plus the counts."""
    total = ScoreCounts.empty(estimator)
    for batch in batches:
        total = total + count_batch(estimator, batch, table_name)
    return total


# --------------------------------------------------------------------------- estimate and band


@dataclass(frozen=True)
class MetricEstimate:
    """A metric's point estimate and band; NaN where undefined (e.g. precision with no predicted positive)."""

    value: float
    lower: float
    upper: float
    # Share of Monte Carlo draws in which the metric was undefined (e.g. no positive at all for AUC).
    undefined_share: float = 0.0

    def to_dict(self) -> dict:
        return {
            "value": _finite_or_none(self.value),
            "lower": _finite_or_none(self.lower),
            "upper": _finite_or_none(self.upper),
            "undefined_share": self.undefined_share,
        }


@dataclass(frozen=True)
class PerformanceEstimate:
    rows: int
    missing_scores: int
    threshold: float
    confidence: float
    expected_positives: float
    confusion: dict[str, float]
    metrics: dict[str, MetricEstimate]
    method: str

    @property
    def roc_auc(self) -> MetricEstimate:
        return self.metrics["roc_auc"]

    def to_dict(self) -> dict:
        """Flat form of the issue's ``compare`` JSON (AUC with its band first), plus every band."""
        auc = self.roc_auc
        out: dict = {"roc_auc": _finite_or_none(auc.value), "lower": _finite_or_none(auc.lower)}
        out["upper"] = _finite_or_none(auc.upper)
        out.update({name: _finite_or_none(self.metrics[name].value) for name in METRICS[1:]})
        out.update(
            {
                "threshold": self.threshold,
                "confidence": self.confidence,
                "rows": self.rows,
                "missing_scores": self.missing_scores,
                "expected_positives": self.expected_positives,
                "expected_prevalence": self.expected_positives / self.rows,
                "confusion": self.confusion,
                "bands": {name: m.to_dict() for name, m in self.metrics.items()},
                "method": self.method,
            }
        )
        return out


def _arrays(values: Mapping[str, float]) -> dict[str, np.ndarray]:
    return {name: np.asarray(value, dtype=np.float64) for name, value in values.items()}


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _bootstrap_shifts(estimator: PerformanceEstimator, mean_scores: np.ndarray) -> np.ndarray:
    """Per bootstrap map and bin: how far that map's probability is from the fitted map's."""
    fitted = estimator.calibration(mean_scores)
    return np.stack([m(mean_scores) - fitted for m in estimator.bootstrap_maps])


def _simulation_groups(mean_p: np.ndarray, threshold_bin: int) -> np.ndarray:
    """Start index of each Monte Carlo group: consecutive bins whose p agree to SIMULATION_P_RESOLUTION.

    Mean p rises with the bin (the calibration is monotone), so equal levels are contiguous; a group
    never straddles the threshold, so the simulated confusion matrix is unaffected.
    """
    level = np.floor(np.log(mean_p + SIMULATION_P_FLOOR) / np.log1p(SIMULATION_P_RESOLUTION))
    side = np.arange(mean_p.size) >= threshold_bin
    changes = (np.diff(level) != 0) | (np.diff(side) != 0)
    return np.flatnonzero(np.concatenate(([True], changes)))


def _simulated_metrics(
    estimator: PerformanceEstimator, counts: ScoreCounts, draws: int, seed: int, calibration_uncertainty: bool
) -> dict[str, np.ndarray]:
    """Metric values of ``draws`` simulated labellings of the window.

    Labels are drawn per group of bins with (nearly) the same p, not per bin: 200-400 groups instead
    of up to 2,000 occupied bins. Rows inside a group then look tied, which moves every simulated AUC
    by the same tiny amount (the grouped minus the fine expected AUC, ~1e-5); it is added back.
    """
    occupied = counts.rows > 0
    rows, sums = counts.rows[occupied], counts.probability_sums[occupied]
    threshold_bin = int(occupied[: estimator.threshold_bin].sum())
    starts = _simulation_groups(sums / rows, threshold_bin)
    group_rows, group_sums = np.add.reduceat(rows, starts), np.add.reduceat(sums, starts)
    group_squares = np.add.reduceat(counts.probability_square_sums[occupied], starts)
    auc_offset = expected_auc(rows, sums, counts.probability_square_sums[occupied]) - expected_auc(
        group_rows, group_sums, group_squares
    )
    mean_p = group_sums / group_rows
    group_threshold = int((starts < threshold_bin).sum())
    shifts = None
    if calibration_uncertainty and estimator.bootstrap_replicates > 0:
        bin_shifts = _bootstrap_shifts(estimator, counts.score_sums[occupied] / rows)
        shifts = np.add.reduceat(bin_shifts * rows, starts, axis=1) / group_rows
    rng = np.random.default_rng(seed)
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in METRICS}
    for start in range(0, draws, DRAWS_CHUNK):
        size = min(DRAWS_CHUNK, draws - start)
        p = np.broadcast_to(mean_p, (size, mean_p.size))
        if shifts is not None:
            # Draw d uses bootstrap map d mod B: calibration error and label noise in one band.
            p = np.clip(p + shifts[np.arange(start, start + size) % len(shifts)], 0.0, 1.0)
        for name, values in simulate_metrics(group_rows, p, group_threshold, rng).items():
            chunks[name].append(values)
    simulated = {name: np.concatenate(values) for name, values in chunks.items()}
    simulated["roc_auc"] = simulated["roc_auc"] + auc_offset
    return simulated


def _band(value: float, draws: np.ndarray, confidence: float) -> MetricEstimate:
    defined = draws[~np.isnan(draws)]
    undefined_share = 1.0 - defined.size / draws.size
    if defined.size == 0:
        return MetricEstimate(value, math.nan, math.nan, undefined_share)
    lower, upper = np.quantile(defined, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return MetricEstimate(value, float(lower), float(upper), undefined_share)


def estimate_performance(
    estimator: PerformanceEstimator,
    counts: ScoreCounts,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    calibration_uncertainty: bool = True,
) -> PerformanceEstimate:
    """Expected metrics of a window from its score counts, each with a ``confidence`` band.

    Seeded: the same counts give the same band. ``calibration_uncertainty=False`` leaves out the
    reference's calibration error (label noise only), which under-covers on large windows.
    """
    if counts.estimator_fingerprint != estimator.fingerprint:
        raise ValueError("these score counts were made with a different performance estimator")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    if counts.total_rows == 0:
        raise EmptyWindowError(f"current window: no row has a score in {estimator.score_column!r}; nothing to estimate")
    confusion = expected_confusion(counts.rows, counts.probability_sums, estimator.threshold_bin)
    point = {"roc_auc": expected_auc(counts.rows, counts.probability_sums, counts.probability_square_sums)}
    point.update({name: float(v) for name, v in threshold_metrics(**_arrays(confusion)).items()})
    simulated = _simulated_metrics(estimator, counts, draws, seed, calibration_uncertainty)
    noise = "label noise and reference calibration error" if calibration_uncertainty else "label noise"
    return PerformanceEstimate(
        rows=counts.total_rows,
        missing_scores=counts.missing_scores,
        threshold=estimator.threshold,
        confidence=confidence,
        expected_positives=float(counts.probability_sums.sum()),
        confusion=confusion,
        metrics={name: _band(point[name], simulated[name], confidence) for name in METRICS},
        method=(
            f"CBPE: centred isotonic calibration, expected counts on {estimator.n_bins} score bins;"
            f" band: {draws} Monte Carlo labellings ({noise})"
        ),
    )


@dataclass(frozen=True)
class RealizedPerformance:
    """Metrics of the labelled rows of a window, on the same grid (AUC ties within a bin)."""

    labelled_rows: int
    positives: int
    confusion: dict[str, int]
    metrics: dict[str, float]

    def to_dict(self) -> dict:
        return {
            **{name: _finite_or_none(v) for name, v in self.metrics.items()},
            "labelled_rows": self.labelled_rows,
            "positives": self.positives,
            "confusion": self.confusion,
        }


def realized_performance(estimator: PerformanceEstimator, counts: ScoreCounts) -> RealizedPerformance | None:
    """Realized metrics once labels arrived (None when no row of the window is labelled yet)."""
    if counts.total_labelled == 0:
        return None
    positives = counts.labelled_positives
    negatives = counts.labelled_rows - positives
    confusion = {k: int(v) for k, v in confusion_from_labels(positives, negatives, estimator.threshold_bin).items()}
    metrics = {"roc_auc": float(binned_auc(positives, negatives))}
    metrics.update({name: float(v) for name, v in threshold_metrics(**_arrays(confusion)).items()})
    return RealizedPerformance(counts.total_labelled, int(positives.sum()), confusion, metrics)


__all__ = [
    "DEFAULT_THRESHOLD",
    "ESTIMATED_AUC_VS_CHAMPION",
    "METRICS",
    "MetricEstimate",
    "PerformanceEstimate",
    "PerformanceEstimator",
    "PerformanceInputError",
    "ScoreCounts",
    "binary_target",
    "count_batch",
    "count_scores",
    "count_window",
    "estimate_performance",
    "fit_performance_estimator",
    "probability_scores",
    "realized_performance",
    "RealizedPerformance",
    "roc_auc_exact",
    "score_edges",
]
