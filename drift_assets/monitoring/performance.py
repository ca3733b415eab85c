"""Model performance per window: estimated from the calibrated scores as soon as the window is
evaluated (``stats.performance_estimation``), realized once its labels have arrived (the seed's
"AUC vs champion"), and the two side by side with the estimate's error."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import OrderedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drift_assets.monitoring.config import LabelsConfig, MonitorConfig
from drift_assets.monitoring.evaluation import counts_path
from drift_assets.monitoring.sources import postgres_source
from drift_assets.monitoring.windows import Window
from drift_assets.stats import DriftInputError
from drift_assets.stats.errors import SchemaError
from drift_assets.stats.performance_estimation import (
    METRICS,
    PerformanceEstimate,
    PerformanceEstimator,
    ScoreCounts,
    count_window,
    estimate_performance,
    fit_performance_estimator,
)
from drift_assets.stats.summary import PERFORMANCE_NOT_COUNTED, WindowSummary
from drift_assets.stats.validation import as_numpy
from drift_assets.storage.root import Root
from drift_assets.storage.tables import TableSource

# A week is "labelled" once this share of its rows has a label; before that AUC would describe a
# biased subset (labels for fraud often arrive faster than for legitimate traffic).
MIN_LABEL_COVERAGE = 0.5


def model_versions_in(window: TableSource, column: str | None) -> str | None:
    """The model version(s) that scored the window, from the log's own column."""
    if not column:
        return None
    try:
        if column not in window.schema().names:
            return None
        values = set()
        for batch in window.batches([column]):
            values |= set(pc.unique(batch.column(column)).to_pylist())
        values.discard(None)
        return ",".join(sorted(values)) or None
    except DriftInputError:
        return None


def realized_performance(
    data_root: Root, monitor: MonitorConfig, window: Window, production_window: TableSource
) -> dict:
    """AUC and average precision of the window's scores on the labels that arrived so far, or
    ``status: labels_pending`` while fewer than ``MIN_LABEL_COVERAGE`` of its rows are labelled."""
    labels = monitor.labels
    # The model_performance asset exists only for monitors with a target and a prediction.
    assert labels is not None and monitor.prediction is not None
    id_col, pred = labels.id_column, monitor.prediction
    scored = production_window.read([id_col, pred])
    label_table = labels_since(data_root, labels.location, window.start, labels, scored.column(id_col))
    rows = scored.num_rows
    joined = _inner_join_labels(scored, label_table, id_col)
    y = as_numpy(joined.column(labels.column)).astype(np.int64) if joined.num_rows else np.array([], dtype=np.int64)
    s = as_numpy(joined.column(pred)) if joined.num_rows else np.array([])
    out = {
        "rows": rows,
        "labelled_rows": int(joined.num_rows),
        "label_coverage": joined.num_rows / rows if rows else 0.0,
        "positives": int(y.sum()) if len(y) else 0,
        "model_version": model_versions_in(production_window, monitor.model_version_column),
    }
    if out["label_coverage"] < MIN_LABEL_COVERAGE or len(np.unique(y)) < 2:
        return {**out, "status": "labels_pending", "auc": None}
    # Here, not at the top: a run process evaluating a recent window (labels pending) never imports
    # scikit-learn (0.5-1.9 s with the pandas it imports).
    from sklearn.metrics import average_precision_score, roc_auc_score

    auc = float(roc_auc_score(y, s))
    reference_labels, problem = reference_label_counts(data_root, monitor)
    return {
        **out,
        "reference_labels": reference_labels,
        "reference_labels_problem": problem,
        "status": "ok",
        "auc": auc,
        "average_precision": float(average_precision_score(y, s)),
        "positive_rate": float(y.mean()),
        "realized": {"roc_auc": auc, **threshold_metrics_of(y, s, monitor.decision_threshold)},
    }


def reference_label_counts(data_root: Root, monitor: MonitorConfig) -> tuple[dict | None, str | None]:
    """``{"rows", "positives"}`` of the 0/1 label in the reference the monitor compares with (the
    champion's, as ``reference_data`` reads it): the base of ``target_prevalence_unchanged``. Read once
    a window's labels are in, one column streamed. None and why when the reference cannot say."""
    from drift_assets.monitoring.registry import reference_location
    from drift_assets.monitoring.sources import reference_table

    assert monitor.labels is not None
    column = monitor.labels.column
    try:
        # Parquet, or the configured PostgreSQL table/query, as reference_data reads it.
        source = reference_table(monitor, data_root, reference_location(monitor, data_root))
        if column not in source.schema().names:
            return None, f"{source.display}: no label column {column!r} in the reference"
        rows = positives = 0
        for batch in source.batches([column]):
            values = batch.column(column).drop_null()
            rows += len(values)
            positives += int(pc.sum(pc.cast(values, pa.int64())).as_py() or 0)
    except (DriftInputError, OSError, ValueError) as exc:
        return None, str(exc)
    if rows == 0:
        return None, "the reference has no labelled rows"
    return {"rows": rows, "positives": positives}, None


def labels_since(
    data_root: Root, location: str, since: dt.datetime, labels: LabelsConfig, ids: pa.ChunkedArray
) -> pa.Table:
    """Labels that arrived on/after the window start (none can arrive before the transaction).
    A label file with no rows is a day without labels, not an error."""
    wanted = pa.chunked_array(ids).combine_chunks()
    parts = [] if labels.source is None else _labels_from_database(labels, since, wanted)
    for name in data_root.list_dir(location) if labels.source is None else []:
        if name.startswith("arrived=") and name[len("arrived=") :] >= since.date().isoformat():
            batches = list(data_root.table(f"{location}/{name}").batches([labels.id_column, labels.column]))
            if not any(b.num_rows for b in batches):
                continue  # 0 rows: no labels arrived that day
            table = pa.Table.from_batches([b for b in batches if b.num_rows])
            parts.append(table.filter(pc.is_in(table.column(labels.id_column), value_set=wanted)))
    if not parts:
        return pa.table({labels.id_column: pa.array([], wanted.type), labels.column: pa.array([], pa.int8())})
    # A transaction relabelled later (chargeback after review) counts as positive if ever positive.
    return _max_label_by_id(pa.concat_tables(parts), labels.id_column, labels.column)


# The label join and the max per id are written with index_in/numpy rather than pyarrow's
# Table.join/group_by: those load pyarrow's acero, whose import imports pandas (~0.3 s in a fresh
# run process). The rows are the same as acero's (their order may differ; every measure taken from
# them is order-free): test_realized_performance_without_acero.


def _max_label_by_id(table: pa.Table, id_column: str, label_column: str) -> pa.Table:
    """``table.group_by(id_column).aggregate([(label_column, "max")])``: one row per id (nulls
    skipped, null when an id has no label value), for integer and boolean labels."""
    values = table.column(label_column)
    if not (pa.types.is_integer(values.type) or pa.types.is_boolean(values.type)):
        agg = table.group_by(id_column).aggregate([(label_column, "max")])
        return pa.table({id_column: agg.column(id_column), label_column: agg.column(f"{label_column}_max")})
    ids = table.column(id_column).combine_chunks()
    unique = pc.unique(ids)
    # as_numpy, not to_numpy: pyarrow's converter imports pandas too
    group = as_numpy(pc.index_in(ids, value_set=unique)).astype(np.int64)
    valid = as_numpy(pc.is_valid(values))
    lowest = np.iinfo(np.int64).min
    best = np.full(len(unique), lowest, dtype=np.int64)
    as_int = as_numpy(pc.fill_null(pc.cast(values, pa.int64()), 0))
    np.maximum.at(best, group[valid], as_int[valid])
    label = pa.array(best, pa.int64(), mask=best == lowest).cast(values.type)
    return pa.table({id_column: unique, label_column: label})


def _inner_join_labels(scored: pa.Table, label_table: pa.Table, id_column: str) -> pa.Table:
    """``scored.join(label_table, keys=id_column, join_type="inner")`` for label ids that are unique
    (``labels_since``'s): the scored rows whose id has a label, with its label columns; a null id
    matches nothing."""
    label_ids = label_table.column(id_column).combine_chunks()
    position = pc.index_in(scored.column(id_column), value_set=label_ids, skip_nulls=True)
    matched = pc.is_valid(position)
    joined = scored.filter(matched)
    taken = label_table.take(pc.filter(position, matched))
    for name in label_table.column_names:
        if name != id_column:
            joined = joined.append_column(name, taken.column(name))
    return joined


def _labels_from_database(labels: LabelsConfig, since: dt.datetime, wanted: pa.Array) -> list[pa.Table]:
    """Labels of the window's ids that arrived on/after ``since`` (``arrived_column`` >= $1), read
    from the PostgreSQL table or query ``target.labels`` names, streamed and filtered batch by batch."""
    assert labels.source is not None
    source = postgres_source(labels.source, labels.arrived_column)
    if labels.arrived_column not in source.schema().names:
        raise SchemaError(
            f"{source.display}: labels column {labels.arrived_column!r} (target.arrived_column) is missing"
        )
    far = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
    parts = []
    for batch in source.batches([labels.id_column, labels.column], since, far):
        table = pa.Table.from_batches([batch])
        if labels.id_column not in table.column_names or labels.column not in table.column_names:
            missing = labels.column if labels.id_column in table.column_names else labels.id_column
            raise SchemaError(f"{source.display}: labels column {missing!r} is missing")
        ids = pc.cast(table.column(labels.id_column), wanted.type)
        table = table.set_column(0, labels.id_column, ids)
        parts.append(table.filter(pc.is_in(ids, value_set=wanted)))
    return parts


# ------------------------------------------------------------------------------------------------
# Estimated performance (before labels arrive) and its reconciliation with the realized one
# ------------------------------------------------------------------------------------------------


def fit_estimator_record(monitor: MonitorConfig, reference: pa.Table) -> dict:
    """The performance estimator's JSON form, fitted on the labelled reference; ``{"error": ...}``
    (one line naming the column) when the reference cannot calibrate, so the drift checks still run."""
    assert monitor.labels is not None and monitor.prediction is not None
    try:
        estimator = fit_performance_estimator(
            reference,
            score_column=monitor.prediction,
            target_column=monitor.labels.column,
            threshold=monitor.decision_threshold,
            metadata={"monitor": monitor.name},
        )
    except DriftInputError as exc:
        return {"error": str(exc)}
    return estimator.to_dict()


# Estimators built in this process, by the sha256 of their record: every window of a monitor reads
# the same record, and what an estimator derives from it once (its fingerprint, the 2^20-cell bin
# lookup, the 100 bootstrap calibration maps: ~0.3 s a window) is then reused, not rebuilt per run.
_ESTIMATORS: OrderedDict[str, PerformanceEstimator] = OrderedDict()
_ESTIMATORS_KEPT = 4


def _estimator(record: dict) -> PerformanceEstimator:
    key = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
    if key in _ESTIMATORS:
        _ESTIMATORS.move_to_end(key)
        return _ESTIMATORS[key]
    estimator = _ESTIMATORS[key] = PerformanceEstimator.from_dict(record)
    while len(_ESTIMATORS) > _ESTIMATORS_KEPT:
        _ESTIMATORS.popitem(last=False)
    return estimator


def estimator_of(estimator_record: dict | None) -> PerformanceEstimator | None:
    """The fitted estimator from its asset's JSON; None when there is none or it could not be fitted.
    The same record gives the same (immutable) estimator object within a process."""
    if estimator_record is None or "error" in estimator_record:
        return None
    return _estimator(estimator_record)


def stored_summary(counts_store: Root, monitor: MonitorConfig, key: str) -> WindowSummary | None:
    """The window's counts as its drift pass stored them (``evaluation.store_counts``), if any."""
    path = counts_path(monitor, key)
    if not counts_store.exists(path):
        return None
    return WindowSummary.from_dict(counts_store.read_json(path)["summary"])


def estimate_window(
    monitor: MonitorConfig,
    estimator_record: dict,
    production_window: TableSource,
    summary: WindowSummary | None = None,
) -> tuple[PerformanceEstimate | None, str | None]:
    """The window's estimated metrics with their bands, or why not.

    From the score counts of the drift pass (``summary``, counted with this estimator) when they are
    there: the window is not read again. Otherwise (a window counted before the estimator was
    refitted, or by an older version) its scores are streamed here."""
    if "error" in estimator_record:
        return None, f"no performance estimator: {estimator_record['error']}"
    estimator = _estimator(estimator_record)
    try:
        counts = _counts_of_the_pass(estimator, summary)
        if isinstance(counts, str):
            return None, counts
        if counts is None:
            batches = production_window.batches([estimator.score_column])
            counts = count_window(estimator, batches, production_window.display)
        return estimate_performance(estimator, counts), None
    except DriftInputError as exc:
        return None, str(exc)


def _counts_of_the_pass(estimator: PerformanceEstimator, summary: WindowSummary | None) -> ScoreCounts | str | None:
    """The drift pass's score counts, its one-line problem (bad scores: named there), or None (not
    counted with this estimator: read the window)."""
    if summary is None:
        return None
    if summary.performance is not None and summary.performance.estimator_fingerprint == estimator.fingerprint:
        return summary.performance
    if summary.performance_problem is not None and summary.performance_problem != PERFORMANCE_NOT_COUNTED:
        return summary.performance_problem
    return None


def threshold_metrics_of(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float | None]:
    """Realized precision, recall, F1 and accuracy at the decision threshold (score >= threshold)."""
    predicted = scores >= threshold
    tp = float(np.sum(predicted & (y == 1)))
    fp = float(np.sum(predicted & (y == 0)))
    fn = float(np.sum(~predicted & (y == 1)))
    tn = float(np.sum(~predicted & (y == 0)))

    def ratio(a: float, b: float) -> float | None:
        return a / b if b > 0 else None

    return {
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "accuracy": ratio(tp + tn, tp + fp + fn + tn),
    }


def reconcile(perf: dict, estimate: PerformanceEstimate | None, problem: str | None) -> dict:
    """The performance record: the estimate with its band for every window; once labels cover the
    window, realized and estimated side by side with the estimate's error (estimated - realized)."""
    realized = perf.get("realized")
    out = {**perf, "realized": realized, "estimated": estimate.to_dict() if estimate else None}
    out["estimate_problem"] = problem
    if estimate is None or perf.get("status") != "ok" or not realized:
        return {**out, "estimate_error": None}
    errors: dict[str, float | bool | None] = {}
    for name in METRICS:
        value, actual = estimate.metrics[name].value, realized.get(name)
        errors[name] = value - actual if actual is not None and np.isfinite(value) else None
    auc = estimate.roc_auc
    errors["roc_auc_within_band"] = bool(auc.lower <= realized["roc_auc"] <= auc.upper)
    return {**out, "estimate_error": errors}
