"""Multivariate and segment checks through Dagster on the simulated fraud monitor: a week whose
joint distribution changed (a correlation flip with every marginal unchanged) fails
``no_multivariate_drift``, a week with a shift confined to one channel fails ``no_segment_drift``,
and the stationary week passes both."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dagster import instance_for_test
from support import write_monitors_file
from test_dagster_fraud import check_records, run_reference, run_week

from drift_assets.alerting.exporter import make_registry
from drift_assets.definitions import build_definitions
from drift_assets.monitoring.results_store import ResultsStore
from drift_assets.orchestration.notifications import _message

pytestmark = pytest.mark.slow  # Dagster runs

STATIONARY, CHANGED = "2026-08-03", "2026-08-10"  # both before the simulated drift (week 3)
UNIVARIATE = (
    "feature_psi_below_warn_threshold",
    "feature_psi_below_retrain_threshold",
    "share_of_drifted_features_below_threshold",
    "prediction_has_no_drift",
)


def rewrite_week(data: Path, week: str, change) -> None:
    start = dt.date.fromisoformat(week)
    for day in range(7):
        for path in sorted((data / "fraud" / "log" / f"date={start + dt.timedelta(days=day)}").glob("*.parquet")):
            table = pq.read_table(path)
            pq.write_table(change(table, np.random.default_rng(day)), path)


def flip_correlation(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """avg_txn_amount_7d re-paired with txn_amount in reversed rank order (Spearman 0.72 -> about
    -0.7): the same values in the same day, so every marginal is exactly the reference's."""
    amount = table.column("txn_amount").to_numpy()
    avg = np.sort(table.column("avg_txn_amount_7d").to_numpy())
    order = np.argsort(-np.argsort(np.argsort(amount)) + rng.normal(0, 0.15 * len(amount), len(amount)))
    flipped = np.empty_like(avg)
    flipped[order] = avg
    i = table.schema.get_field_index("avg_txn_amount_7d")
    return table.set_column(i, "avg_txn_amount_7d", pa.array(flipped))


def shift_in_web(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """merchant_risk_score + 1 reference sd in channel=web only (~23% of rows)."""
    score = table.column("merchant_risk_score").to_numpy(zero_copy_only=False).copy()
    web = pc.equal(table.column("channel"), "web").to_numpy(zero_copy_only=False)
    score[web] += 0.19  # the reference sd of merchant_risk_score (measured: 0.186)
    i = table.schema.get_field_index("merchant_risk_score")
    return table.set_column(i, "merchant_risk_score", pa.array(score))


@pytest.mark.parametrize("kind", ["correlation_flip", "segment_shift"])
def test_joint_change_fails_its_check_and_the_stationary_week_passes(project, kind):
    write_monitors_file(project / "monitors.yaml", segments=["channel"], min_segment_rows=300)
    rewrite_week(project / "data", CHANGED, flip_correlation if kind == "correlation_flip" else shift_in_web)
    defs = build_definitions()
    with instance_for_test() as instance:
        run_reference(defs, instance)
        assert run_week(defs, instance, STATIONARY).success
        assert run_week(defs, instance, CHANGED).success  # failing checks do not fail the run
        multivariate = check_records(instance, "no_multivariate_drift")
        segment = check_records(instance, "no_segment_drift")
        for records in (multivariate, segment):
            assert records[STATIONARY].evaluation.passed, records[STATIONARY].evaluation.metadata
        record = json.loads((project / "reports" / "fraud" / "drift" / f"{CHANGED}.json").read_text())
        if kind == "correlation_flip":
            failed = multivariate[CHANGED].evaluation
            assert not failed.passed and failed.severity.value == "ERROR"
            meta = {k: v.value for k, v in failed.metadata.items()}
            assert meta["value"] > meta["threshold"]
            # The re-paired column leads (its pairing with txn_amount, amount_to_avg_ratio and
            # customer_segment all broke).
            assert meta["explained_by"].split(", ")[0] == "avg_txn_amount_7d"
            for name in UNIVARIATE:  # every marginal is unchanged
                assert check_records(instance, name)[CHANGED].evaluation.passed, name
            section = record["multivariate"]
            assert section["drifted"] and section["reconstruction_error"] > section["threshold"]
        else:
            failed = segment[CHANGED].evaluation
            assert not failed.passed and failed.severity.value == "WARN"
            meta = {k: v.value for k, v in failed.metadata.items()}
            assert meta["worst_segment"] == "channel=web" and meta["worst_column"] == "merchant_risk_score"
            assert record["segments"]["segments"]["channel=web"]["rows"] >= 300
            assert record["segments"]["findings"][0]["segment"] == "channel=web"
        check = "no_multivariate_drift" if kind == "correlation_flip" else "no_segment_drift"
        names = {c["name"] for c in record["checks"] if not c["passed"]}
        assert check in names
        assert_explained(project, instance, record, check, failed, meta)


def assert_explained(project, instance, record, check, failed, meta) -> None:
    """The same "what changed" in the check metadata, the results store, the webhook message and
    the exporter's info metric (the alert annotation's source)."""
    if check == "no_multivariate_drift":
        expected = ["joint distribution changed", "avg_txn_amount_7d"]
    else:
        expected = ["in segment channel=web: merchant_risk_score", "expected"]
    text = meta["what_changed"]
    for fragment in expected:
        assert fragment in text, (fragment, text)
    assert "What changed: " + text in failed.description
    assert record["explanation"]["by_check"][check] == text
    assert any(fragment in record["explanation"]["text"] for fragment in expected)
    # The stationary week passed everything: no explanation stored for it.
    stationary = json.loads((project / "reports" / "fraud" / "drift" / f"{STATIONARY}.json").read_text())
    if stationary["summary"]["all_passed"]:
        assert stationary["explanation"] == {}
    execution = check_records(instance, check)[CHANGED]
    message = _message(execution, "http://127.0.0.1:3000")
    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and "text" in b]
    what = next(s for s in sections if s.startswith("*What changed*"))
    assert expected[0].split(":")[0] in what and expected[1] in what
    assert "What changed: " in message["text"]
    registry = make_registry(ResultsStore(str(project / "reports")))
    info = [
        s
        for m in registry.collect()
        if m.name == "ml_check_explanation_info"
        for s in m.samples
        if s.labels["check"] == check
    ]
    assert len(info) == 1 and info[0].value == 1.0
    assert info[0].labels["what_changed"] == " ".join(text.split())[:300]
    assert info[0].labels["severity"] == failed.severity.value
