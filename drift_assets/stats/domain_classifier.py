"""Multivariate drift by a domain classifier: can a model tell window rows from reference rows?

On a seeded sample of each table (default at most 50,000 rows each, drawn while streaming), a
gradient-boosted classifier (scikit-learn's ``HistGradientBoostingClassifier``: native missing
values and categorical splits) learns "reference or window" under stratified k-fold
cross-validation. The drift score is the mean held-out AUC over the folds: 0.5 when the two are
indistinguishable, towards 1 when they are not.

Significance from an analytic null. A held-out fold's scores come from a model that never saw the
fold, so under "no drift" the fold's labels are independent of its scores and its AUC is a
Mann-Whitney statistic with mean 1/2 and variance ``(n1 + n2 + 1) / (12 n1 n2)`` (ties only lower
it, so the test is conservative). Fold AUCs are uncorrelated under the null (each has conditional
mean 1/2 given the other folds), so the mean AUC has variance ``sum(var_f) / k^2``. A window drifts
when the one-sided p-value is below ``alpha`` (default 0.001) AND the AUC is at least ``min_auc``
(default 0.55): at 50,000 rows a 0.51 AUC is significant but not worth an alarm.

What explains the difference: permutation importance (drop in held-out AUC when one column is
shuffled) on a stratified subset of each held-out fold, averaged over folds, computed only when the
check fires (it is the slow part).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits

from drift_assets.stats.checks import DEFAULT_CHECKS
from drift_assets.stats.errors import SchemaError
from drift_assets.stats.multivariate import skip_reason
from drift_assets.stats.profile import ColumnSpec
from drift_assets.stats.rules import NO_MULTIVARIATE_DRIFT, CheckOutcome
from drift_assets.stats.special import normal_sf
from drift_assets.stats.validation import category_strings, numeric_values

CHECK_NAME = NO_MULTIVARIATE_DRIFT

DEFAULT_MAX_ROWS = 50_000
DEFAULT_FOLDS = 3
DEFAULT_ALPHA = 0.001
DEFAULT_MIN_AUC = 0.55
DEFAULT_MAX_ITER = 100
MIN_ROWS_PER_SIDE = 100
IMPORTANCE_ROWS_PER_FOLD = 4_000
IMPORTANCE_REPEATS = 2
# A column is named when shuffling it costs at least this much AUC (and is among the top 5).
MIN_IMPORTANCE = 0.005
MAX_NAMED = 5
# One OpenMP thread by default: on a shared 2-core machine HistGradientBoosting's two spinning
# OpenMP threads collapse when a neighbour takes a core (the same 3-fold fit took 2.5 s idle and
# 21-34 s under load; single-threaded 6-12 s under the same load). Monitoring jobs run side by side.
DEFAULT_THREADS = 1
# HistGradientBoosting's categorical splits accept codes 0..254; rarer values share the last code.
MAX_CATEGORY_CODES = 254


class StreamingSample:
    """Exactly ``min(max_rows, total)`` rows, uniformly at random, drawn while streaming.

    Bottom-k sampling: every row gets a seeded uniform key and the ``max_rows`` smallest keys are
    kept, so memory is one batch plus the sample whatever the window size. ``add`` one batch at a
    time (e.g. inside another streaming pass), then read ``table()``.
    """

    def __init__(self, columns: Sequence[str], max_rows: int, seed: int = 0) -> None:
        self.columns, self.max_rows = list(columns), max_rows
        self._rng = np.random.default_rng(seed)
        self._kept: pa.Table | None = None
        self._keys = np.empty(0)

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        missing = [c for c in self.columns if c not in batch.schema.names]
        if missing:
            raise SchemaError(f"domain classifier: column(s) {', '.join(map(repr, missing))} missing from the window")
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        table = table.select(self.columns)
        keys = self._rng.random(table.num_rows)
        merged = table if self._kept is None else pa.concat_tables([self._kept, table])
        all_keys = np.concatenate([self._keys, keys])
        if len(all_keys) > self.max_rows:
            order = np.argpartition(all_keys, self.max_rows - 1)[: self.max_rows]
            merged, all_keys = merged.take(pa.array(order)), all_keys[order]
        self._kept, self._keys = merged, all_keys

    def table(self) -> pa.Table:
        if self._kept is None:
            return pa.table({c: pa.array([], pa.float64()) for c in self.columns})
        return self._kept


def seeded_sample(
    batches: Iterable[pa.RecordBatch | pa.Table], columns: Sequence[str], max_rows: int, seed: int = 0
) -> pa.Table:
    """``StreamingSample`` over ``batches``: exactly ``min(max_rows, total)`` rows, seeded."""
    sample = StreamingSample(columns, max_rows, seed)
    for batch in batches:
        sample.add(batch)
    return sample.table()


def _category_codes(reference: pa.Array, window: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    counts = pc.value_counts(reference.drop_null())
    values, freqs = counts.field("values").to_pylist(), counts.field("counts").to_numpy()
    order = sorted(range(len(values)), key=lambda i: (-int(freqs[i]), values[i]))[:MAX_CATEGORY_CODES]
    vocabulary = pa.array([values[i] for i in order], type=pa.string())

    def codes(strings: pa.Array) -> np.ndarray:
        # Values not in the reference's vocabulary (unseen or rare) share one code; nulls are NaN.
        index = pc.index_in(strings, value_set=vocabulary).fill_null(len(vocabulary))
        out = index.to_numpy(zero_copy_only=False).astype(np.float64)
        out[pc.is_null(strings).to_numpy(zero_copy_only=False)] = np.nan
        return out

    return codes(reference), codes(window)


def classifier_matrix(
    reference: pa.Table, window: pa.Table, features: Sequence[ColumnSpec]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of both samples as a float matrix (NaN = missing), labels (1 = window), categorical mask."""
    columns, categorical = [], []
    for spec in features:
        if spec.kind == "numerical":
            ref_values = numeric_values(reference.column(spec.name), spec.name, "reference")
            win_values = numeric_values(window.column(spec.name), spec.name, "current window")
            pair = (
                np.where(np.isfinite(ref_values), ref_values, np.nan),
                np.where(np.isfinite(win_values), win_values, np.nan),
            )
        else:
            pair = _category_codes(
                category_strings(reference.column(spec.name), spec.name, "reference"),
                category_strings(window.column(spec.name), spec.name, "current window"),
            )
        columns.append(np.concatenate(pair))
        categorical.append(spec.kind == "categorical")
    labels = np.concatenate([np.zeros(reference.num_rows), np.ones(window.num_rows)])
    return np.column_stack(columns), labels, np.asarray(categorical)


def auc_null_sd(fold_sizes: Sequence[tuple[int, int]]) -> float:
    """Sd of the mean of per-fold Mann-Whitney AUCs under "no difference" (module docstring)."""
    variances = [(n1 + n2 + 1) / (12.0 * n1 * n2) for n1, n2 in fold_sizes]
    return float(np.sqrt(np.sum(variances)) / len(variances))


@dataclass
class DomainClassifierDrift:
    """The domain-classifier check for one window. ``skipped`` says why it did not run."""

    reference_rows: int
    window_rows: int
    auc: float | None = None
    fold_aucs: list[float] = field(default_factory=list)
    null_sd: float | None = None
    z_score: float | None = None
    p_value: float | None = None
    min_auc: float = DEFAULT_MIN_AUC
    drifted: bool = False
    importances: dict[str, float] = field(default_factory=dict)
    explained_by: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None

    def to_dict(self) -> dict:
        return {
            "reference_rows": self.reference_rows,
            "window_rows": self.window_rows,
            "domain_classifier_auc": self.auc,
            "fold_aucs": self.fold_aucs,
            "null_sd": self.null_sd,
            "z_score": self.z_score,
            "p_value": self.p_value,
            "min_auc": self.min_auc,
            "drifted": self.drifted,
            "importances": self.importances,
            "explained_by": self.explained_by,
            "seconds": round(self.seconds, 3),
            "skipped": self.skipped,
        }


def _classifier(categorical: np.ndarray, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=DEFAULT_MAX_ITER,
        categorical_features=categorical if categorical.any() else None,
        early_stopping=True,
        random_state=seed,
    )


def _stratified_subset(labels: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``rows`` indices with both classes in their original proportion."""
    if len(labels) <= rows:
        return np.arange(len(labels))
    picked = [
        rng.choice(np.flatnonzero(labels == c), int(round(rows * np.mean(labels == c))), replace=False) for c in (0, 1)
    ]
    return np.sort(np.concatenate(picked))


@dataclass
class _Fold:
    model: object
    test: np.ndarray
    auc: float
    sizes: tuple[int, int]


def _cross_validate(X: np.ndarray, y: np.ndarray, categorical: np.ndarray, folds: int, seed: int) -> list[_Fold]:
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    out = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        model = _classifier(categorical, seed).fit(X[train], y[train])
        auc = float(roc_auc_score(y[test], model.predict_proba(X[test])[:, 1]))
        out.append(_Fold(model, test, auc, (int(np.sum(y[test] == 0)), int(np.sum(y[test] == 1)))))
    return out


def _held_out_importance(folds: list[_Fold], X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Mean drop in held-out AUC when one column is shuffled, over a stratified subset of each fold."""
    from sklearn.inspection import permutation_importance

    rng = np.random.default_rng(seed)
    per_fold = []
    for fold in folds:
        subset = fold.test[_stratified_subset(y[fold.test], IMPORTANCE_ROWS_PER_FOLD, rng)]
        result = permutation_importance(
            fold.model, X[subset], y[subset], scoring="roc_auc", n_repeats=IMPORTANCE_REPEATS, random_state=seed
        )
        per_fold.append(result.importances_mean)
    return np.mean(per_fold, axis=0)


def evaluate_domain_classifier(
    reference_sample: pa.Table,
    window_sample: pa.Table,
    specs: Sequence[ColumnSpec],
    *,
    folds: int = DEFAULT_FOLDS,
    alpha: float = DEFAULT_ALPHA,
    min_auc: float = DEFAULT_MIN_AUC,
    seed: int = 0,
    threads: int | None = DEFAULT_THREADS,
) -> DomainClassifierDrift:
    """Cross-validated AUC of reference-vs-window on the two samples, its p-value and explanation.

    ``threads`` caps the classifier's OpenMP threads (None: all cores). See ``DEFAULT_THREADS``.
    """
    started = time.perf_counter()
    result = DomainClassifierDrift(reference_sample.num_rows, window_sample.num_rows, min_auc=min_auc)
    reason = skip_reason(specs)
    if reason is None and min(reference_sample.num_rows, window_sample.num_rows) < MIN_ROWS_PER_SIDE:
        reason = (
            f"domain classifier skipped: {window_sample.num_rows} window and {reference_sample.num_rows}"
            f" reference rows; it needs at least {MIN_ROWS_PER_SIDE} of each"
        )
    if reason:
        result.skipped = reason
        return result
    features = [s for s in specs if s.role == "feature"]
    X, y, categorical = classifier_matrix(reference_sample, window_sample, features)
    with threadpool_limits(threads, user_api="openmp"):
        _fit_and_explain(result, X, y, categorical, features, folds=folds, seed=seed, alpha=alpha)
    result.seconds = time.perf_counter() - started
    return result


def _fit_and_explain(result, X, y, categorical, features, *, folds: int, seed: int, alpha: float) -> None:
    fitted = _cross_validate(X, y, categorical, folds, seed)
    result.fold_aucs = [f.auc for f in fitted]
    result.auc = float(np.mean(result.fold_aucs))
    result.null_sd = auc_null_sd([f.sizes for f in fitted])
    result.z_score = (result.auc - 0.5) / result.null_sd
    result.p_value = normal_sf(result.z_score)
    result.drifted = result.p_value < alpha and result.auc >= result.min_auc
    if result.drifted:
        mean_importance = _held_out_importance(fitted, X, y, seed)
        result.importances = {s.name: round(float(v), 4) for s, v in zip(features, mean_importance, strict=True)}
        ranked = sorted(result.importances, key=lambda k: -result.importances[k])
        result.explained_by = [k for k in ranked[:MAX_NAMED] if result.importances[k] >= MIN_IMPORTANCE]


def domain_classifier_drift(
    reference_batches: Iterable[pa.RecordBatch | pa.Table],
    window_batches: Iterable[pa.RecordBatch | pa.Table],
    specs: Sequence[ColumnSpec],
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    **options,
) -> DomainClassifierDrift:
    """Sample both tables while streaming (seeded), then ``evaluate_domain_classifier``."""
    names = [s.name for s in specs if s.role == "feature"]
    reference_sample = seeded_sample(reference_batches, names, max_rows, seed)
    window_sample = seeded_sample(window_batches, names, max_rows, seed + 1)
    return evaluate_domain_classifier(reference_sample, window_sample, specs, seed=seed, **options)


def domain_classifier_check(result: DomainClassifierDrift) -> CheckOutcome | None:
    """The ``no_multivariate_drift`` check from the classifier (ERROR), or None when skipped."""
    if result.skipped is not None or result.auc is None:
        return None
    outcome = DEFAULT_CHECKS[CHECK_NAME].outcome(
        None,
        not result.drifted,
        result.auc,
        result.min_auc,
        method="domain_classifier",
        p_value=result.p_value,
        z_score=result.z_score,
        explained_by=result.explained_by,
        importances=result.importances,
    )
    return replace(
        outcome, description="A classifier cannot tell window rows from reference rows (cross-validated AUC)"
    )
