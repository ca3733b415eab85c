"""Estimated and realized performance in Prometheus: one metric name, ``kind`` telling them apart,
the estimate's band beside it; values scraped over HTTP equal the performance records, which are
made by the real estimator (``monitoring.performance.reconcile``) on seeded calibrated scores."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import requests
from servers import parse_metrics, running_exporter, sample, series_of

from drift_assets.monitoring.performance import reconcile
from drift_assets.monitoring.results_store import ResultsStore, parse_timestamp
from drift_assets.simulate.calibrated_scores import FRAUD_2_PERCENT
from drift_assets.stats.performance_estimation import (
    count_scores,
    estimate_performance,
    fit_performance_estimator,
    realized_performance,
)


def _doc(partition: str, estimate, realized: dict | None) -> dict:
    start = dt.datetime.fromisoformat(partition).replace(tzinfo=dt.UTC)
    perf = {
        "monitor": "fraud",
        "partition": partition,
        "window_start": start.isoformat(),
        "window_end": (start + dt.timedelta(days=7)).isoformat(),
        "evaluated_at": (start + dt.timedelta(days=8)).isoformat(),
        "model_version": "v0001",
        "status": "ok" if realized else "labels_pending",
        "auc": realized["roc_auc"] if realized else None,
        "champion_auc_reference": 0.86,
    }
    if realized:
        perf["realized"] = realized
    return reconcile(perf, estimate, None)


def test_estimated_and_realized_share_one_metric_name(tmp_path):
    rng = np.random.default_rng(5)
    scores, target = FRAUD_2_PERCENT.sample(rng, 50_000)
    estimator = fit_performance_estimator(
        pa.table({"s": scores, "y": target}), score_column="s", target_column="y", bootstrap_replicates=20
    )
    windows = {}
    for week, seed in (("2026-09-21", 6), ("2026-09-28", 7)):
        s, y = FRAUD_2_PERCENT.sample(np.random.default_rng(seed), 10_000)
        counts = count_scores(estimator, s, y.astype(float))
        windows[week] = (estimate_performance(estimator, counts, draws=500), realized_performance(estimator, counts))
    store = ResultsStore(str(tmp_path / "results"))
    labelled_week, pending_week = "2026-09-21", "2026-09-28"
    est_labelled, real_labelled = windows[labelled_week]
    store.write_json(
        store.performance_path("fraud", labelled_week),
        _doc(labelled_week, est_labelled, {"roc_auc": real_labelled.metrics["roc_auc"], **real_labelled.metrics}),
    )
    est_pending, _ = windows[pending_week]
    pending = _doc(pending_week, est_pending, None)  # labels not in yet: estimate only
    store.write_json(store.performance_path("fraud", pending_week), pending)

    with running_exporter(store) as server:
        m = parse_metrics(requests.get(server.url, timeout=10).text)

    # kind="estimated": the latest evaluated window (labels pending), with its band.
    auc = est_pending.roc_auc
    assert sample(m, "ml_model_performance", model="fraud", metric="roc_auc", kind="estimated") == auc.value
    assert sample(m, "ml_model_performance_lower", model="fraud", metric="roc_auc") == auc.lower
    assert sample(m, "ml_model_performance_upper", model="fraud", metric="roc_auc") == auc.upper
    recall = est_pending.metrics["recall"].value
    assert sample(m, "ml_model_performance", model="fraud", metric="recall", kind="estimated") == recall
    # kind="realized": the latest labelled window.
    realized = sample(m, "ml_model_performance", model="fraud", metric="roc_auc", kind="realized")
    assert realized == real_labelled.metrics["roc_auc"]
    ends = series_of(m, "ml_model_performance_window_end_timestamp_seconds")
    assert ends[frozenset({"model": "fraud", "kind": "estimated"}.items())] == (
        parse_timestamp(pending["window_end"]).timestamp()
    )
    assert ends[frozenset({"model": "fraud", "kind": "realized"}.items())] < (
        parse_timestamp(pending["window_end"]).timestamp()
    )
    assert sample(m, "ml_model_champion_auc", model="fraud") == 0.86
    kinds = {dict(labels)["kind"] for labels in series_of(m, "ml_model_performance")}
    assert kinds == {"estimated", "realized"}
    # The existing per-version AUC is unchanged (only the labelled window).
    assert sample(m, "ml_model_auc", model="fraud", model_version="v0001") == real_labelled.metrics["roc_auc"]
