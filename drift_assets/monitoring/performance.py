"""Model performance on a window once its labels have arrived (the seed's "AUC vs champion")."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drift_assets.monitoring.config import LabelsConfig, MonitorConfig
from drift_assets.monitoring.windows import Window
from drift_assets.stats import DriftInputError
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
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = monitor.labels
    # The model_performance asset exists only for monitors with a target and a prediction.
    assert labels is not None and monitor.prediction is not None
    id_col, pred = labels.id_column, monitor.prediction
    scored = production_window.read([id_col, pred])
    label_table = labels_since(data_root, labels.location, window.start, labels, scored.column(id_col))
    rows = scored.num_rows
    joined = scored.join(label_table, keys=id_col, join_type="inner")
    y = (
        joined.column(labels.column).to_numpy(zero_copy_only=False).astype(np.int64)
        if joined.num_rows
        else np.array([], dtype=np.int64)
    )
    s = joined.column(pred).to_numpy(zero_copy_only=False) if joined.num_rows else np.array([])
    out = {
        "rows": rows,
        "labelled_rows": int(joined.num_rows),
        "label_coverage": joined.num_rows / rows if rows else 0.0,
        "positives": int(y.sum()) if len(y) else 0,
        "model_version": model_versions_in(production_window, monitor.model_version_column),
    }
    if out["label_coverage"] < MIN_LABEL_COVERAGE or len(np.unique(y)) < 2:
        return {**out, "status": "labels_pending", "auc": None}
    return {
        **out,
        "status": "ok",
        "auc": float(roc_auc_score(y, s)),
        "average_precision": float(average_precision_score(y, s)),
        "positive_rate": float(y.mean()),
    }


def labels_since(
    data_root: Root, location: str, since: dt.datetime, labels: LabelsConfig, ids: pa.ChunkedArray
) -> pa.Table:
    """Labels that arrived on/after the window start (none can arrive before the transaction).
    A label file with no rows is a day without labels, not an error."""
    wanted = pa.chunked_array(ids).combine_chunks()
    parts = []
    for name in data_root.list_dir(location):
        if name.startswith("arrived=") and name[len("arrived=") :] >= since.date().isoformat():
            batches = list(data_root.table(f"{location}/{name}").batches([labels.id_column, labels.column]))
            if not any(b.num_rows for b in batches):
                continue  # 0 rows: no labels arrived that day
            table = pa.Table.from_batches([b for b in batches if b.num_rows])
            parts.append(table.filter(pc.is_in(table.column(labels.id_column), value_set=wanted)))
    if not parts:
        return pa.table({labels.id_column: pa.array([], wanted.type), labels.column: pa.array([], pa.int8())})
    # A transaction relabelled later (chargeback after review) counts as positive if ever positive.
    agg = pa.concat_tables(parts).group_by(labels.id_column).aggregate([(labels.column, "max")])
    return pa.table({labels.id_column: agg.column(labels.id_column), labels.column: agg.column(f"{labels.column}_max")})
