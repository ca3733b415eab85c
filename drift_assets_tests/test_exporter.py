"""The results store and the Prometheus exporter: values scraped over HTTP equal the JSON."""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pyarrow.fs as pafs
import pytest
import requests
from servers import (
    REPO_ROOT,
    fraud_drift_doc,
    free_port,
    parse_metrics,
    performance_doc,
    retraining_doc,
    running_exporter,
    sample,
    scrape,
    series_of,
    start_pushgateway,
    wait_until,
    write_drifted_store,
)

from drift_assets.alerting.exporter import push_once
from drift_assets.monitoring.results_store import (
    CorruptResultError,
    ResultsStore,
    ResultsStoreError,
    dumps,
    parse_timestamp,
)


@pytest.fixture
def store(tmp_path):
    return ResultsStore(str(tmp_path / "results"))


def ts(text: str) -> float:
    return parse_timestamp(text).timestamp()


# --------------------------------------------------------------------------- values
def test_scraped_values_equal_the_json(store):
    write_drifted_store(store)
    doc = store.latest_drift("fraud")
    with running_exporter(store) as server:
        response = requests.get(server.url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    m = parse_metrics(response.text)

    assert sample(m, "ml_feature_psi", model="fraud", feature_name="txn_count_1h") == 0.31
    for name, col in doc["columns"].items():
        psi = sample(m, "ml_feature_psi", model="fraud", feature_name=name)
        missing = sample(m, "ml_column_missing_ratio", model="fraud", column=name, role=col["role"])
        # The deprecated alias carries the same value under the old name and label.
        assert sample(m, "ml_feature_missing_rate", model="fraud", feature_name=name) == missing, name
        drifted = sample(m, "ml_feature_drifted", model="fraud", feature_name=name)
        if col["role"] == "feature":
            assert psi == col["psi"], name
            assert drifted == float(col["drifted"]), name
            assert missing == col["missing_rate"], name
        elif col["role"] == "prediction":  # its own metrics; missing rate still watched
            assert psi is None and drifted is None
            assert missing == col["missing_rate"]
        else:  # the target (labels arrive late: always "missing") is not exported
            assert psi is None and missing is None and drifted is None
    assert sample(m, "ml_feature_drifted", model="fraud", feature_name="txn_count_1h") == 1.0
    assert sample(m, "ml_feature_drifted", model="fraud", feature_name="amount") == 0.0

    assert sample(m, "ml_drift_detected", model="fraud") == 1.0
    assert sample(m, "ml_prediction_drift_psi", model="fraud") == doc["summary"]["prediction_psi"] == 0.27
    assert sample(m, "ml_prediction_drift_ks_pvalue", model="fraud") == doc["summary"]["prediction_ks_pvalue"]
    assert sample(m, "ml_drifted_features_ratio", model="fraud") == doc["summary"]["share_drifted"] == 0.25
    assert sample(m, "ml_share_drifted_features", model="fraud") == 0.25  # deprecated alias
    assert sample(m, "ml_window_rows", model="fraud") == doc["current_rows"] == 48_211
    assert sample(m, "ml_window_end_timestamp_seconds", model="fraud") == ts(doc["window_end"])
    assert sample(m, "ml_last_evaluation_timestamp_seconds", model="fraud") == ts(doc["evaluated_at"])
    assert sample(m, "ml_monitor_window_seconds", model="fraud") == 7 * 86400
    assert sample(m, "ml_monitor_window_seconds", model="llm") == 3600

    # Checks aggregated over columns: failed if any column failed.
    check = lambda name, sev: sample(m, "ml_check_failed", model="fraud", check=name, severity=sev)  # noqa: E731
    assert check("feature_psi_below_retrain_threshold", "ERROR") == 1.0
    assert check("feature_psi_below_warn_threshold", "WARN") == 1.0
    assert check("prediction_has_no_drift", "ERROR") == 1.0
    assert check("missing_rate_below_threshold", "WARN") == 1.0  # account_age_days 7%
    assert check("share_of_drifted_features_below_threshold", "ERROR") == 0.0  # 25% < 30%

    # AUC: the latest "ok" window per version (v0001's labels_pending window is ignored).
    assert sample(m, "ml_model_auc", model="fraud", model_version="v0001") == 0.874
    assert sample(m, "ml_model_auc", model="fraud", model_version="v0002") == 0.915
    assert len(series_of(m, "ml_model_auc")) == 2

    # Retraining counters: every attempt, and the promoted ones.
    assert sample(m, "ml_retraining_runs_total", model="fraud") == 3
    assert sample(m, "ml_model_promotions_total", model="fraud") == 1
    assert sample(m, "ml_retraining_runs_total", model="llm") == 0
    assert sample(m, "ml_model_promotions_total", model="llm") == 0

    assert sample(m, "ml_results_store_up") == 1.0
    assert sample(m, "ml_results_store_read_errors_total") == 0.0
    assert sample(m, "ml_results_store_monitors") == 2.0
    # A dedicated registry: no process/platform/GC metrics from the default one.
    assert all(name.startswith("ml_") for name, _ in m)


def test_extras_are_exported_under_documented_families_with_units(store):
    write_drifted_store(store)
    with running_exporter(store) as server:
        status, m = scrape(server.url)
    assert status == 200
    # Yes/no derived columns: a 0-1 ratio with the column as a label (key <column>_rate).
    assert sample(m, "ml_derived_ratio", model="llm", column="refusal") == 0.09
    assert sample(m, "ml_derived_ratio", model="llm", column="empty_response") == 0.004
    assert sample(m, "ml_derived_ratio_baseline", model="llm", column="refusal") == 0.02
    assert sample(m, "ml_derived_psi", model="llm", column="output_length") == 0.34
    assert sample(m, "ml_column_psi_vs_recent", model="llm", column="output_length") == 0.12
    # The unit of a mean comes from extra.units (the derived function): it is in the name.
    assert sample(m, "ml_derived_mean_tokens", model="llm", column="output_length") == 48.5
    assert sample(m, "ml_derived_mean_chars", model="llm", column="output_chars") == 231.0
    assert not series_of(m, "ml_derived_mean")
    # Any other numeric key keeps its name as a label under one family.
    assert sample(m, "ml_monitor_extra", model="llm", key="mean_output_tokens") == 212.5
    # Non-numeric entries (text, booleans, the units map) are not metrics; fraud has no extra block.
    assert not series_of(m, "ml_llm_judge_model") and not series_of(m, "ml_llm_flagged")
    assert not series_of(m, "ml_llm_units")
    assert all(dict(labels)["model"] == "llm" for (name, labels) in m if name.startswith(("ml_derived", "ml_llm_")))
    # Deprecated aliases (one release): same values under the old per-key names.
    assert sample(m, "ml_llm_refusal_rate", model="llm") == 0.09
    assert sample(m, "ml_llm_output_length_psi", model="llm") == 0.34
    assert sample(m, "ml_llm_output_length_mean", model="llm") == 48.5
    assert sample(m, "ml_llm_mean_output_tokens", model="llm") == 212.5


def test_help_text_documents_new_names_and_marks_aliases_deprecated(store):
    from prometheus_client.parser import text_string_to_metric_families

    write_drifted_store(store)
    with running_exporter(store) as server:
        text = requests.get(server.url, timeout=10).text
    helps = {f.name: f.documentation for f in text_string_to_metric_families(text)}
    assert helps["ml_feature_missing_rate"].startswith("deprecated: use ml_column_missing_ratio")
    assert helps["ml_share_drifted_features"].startswith("deprecated: use ml_drifted_features_ratio")
    assert helps["ml_llm_refusal_rate"].startswith('deprecated: use ml_derived_ratio{column="refusal"}')
    assert helps["ml_llm_output_length_mean"].startswith(
        'deprecated: use ml_derived_mean_tokens{column="output_length"}'
    )
    assert helps["ml_llm_mean_output_tokens"].startswith('deprecated: use ml_monitor_extra{key="mean_output_tokens"}')
    for name in ("ml_column_missing_ratio", "ml_derived_ratio", "ml_derived_mean_tokens", "ml_monitor_extra"):
        assert "deprecated" not in helps[name] and len(helps[name]) > 40, name
    assert "tokens" in helps["ml_derived_mean_tokens"] and "characters" in helps["ml_derived_mean_chars"]
    # Every 0-1 share exported under a non-deprecated name ends in _ratio (Prometheus convention).
    for name, doc in helps.items():
        if "Share (0-1)" in doc:
            assert name.endswith(("_ratio", "_ratio_baseline")), name
    # The prediction is labelled as such, not as a feature.
    m = parse_metrics(text)
    roles = {dict(labels)["column"]: dict(labels)["role"] for (name, labels) in m if name == "ml_column_missing_ratio"}
    assert roles["fraud_score"] == "prediction" and roles["amount"] == "feature"


def test_llm_window_metrics(store):
    write_drifted_store(store)
    with running_exporter(store) as server:
        status, m = scrape(server.url)
    assert status == 200
    # The hourly window: its own drift flag, no prediction metrics (no prediction column).
    assert sample(m, "ml_drift_detected", model="llm") == 1.0
    assert sample(m, "ml_feature_psi", model="llm", feature_name="output_length") == 0.34
    assert sample(m, "ml_prediction_drift_psi", model="llm") is None
    assert sample(m, "ml_window_rows", model="llm") == 812


def test_latest_window_switches_without_restart(store):
    week1_eval = datetime(2026, 10, 5, 6, 0, tzinfo=UTC)
    store.write_json(
        store.drift_path("fraud", "2026-09-28"), fraud_drift_doc("2026-09-28", evaluated_at=week1_eval, txn_psi=0.31)
    )
    with running_exporter(store) as server:
        _, m = scrape(server.url)
        assert sample(m, "ml_feature_psi", model="fraud", feature_name="txn_count_1h") == 0.31
        assert sample(m, "ml_drift_detected", model="fraud") == 1.0

        # Week 2 evaluated: the next scrape shows it, same server.
        week2_eval = datetime(2026, 10, 12, 6, 0, tzinfo=UTC)
        week2 = fraud_drift_doc(
            "2026-10-05",
            evaluated_at=week2_eval,
            txn_psi=0.04,
            prediction_psi=0.02,
            prediction_p=0.6,
            account_age_missing=0.01,
        )
        store.write_json(store.drift_path("fraud", "2026-10-05"), week2)
        _, m = scrape(server.url)
        assert sample(m, "ml_feature_psi", model="fraud", feature_name="txn_count_1h") == 0.04
        assert sample(m, "ml_drift_detected", model="fraud") == 0.0
        assert sample(m, "ml_window_end_timestamp_seconds", model="fraud") == ts(week2["window_end"])
        assert sample(m, "ml_last_evaluation_timestamp_seconds", model="fraud") == week2_eval.timestamp()

        # Week 1 re-evaluated later: a later evaluated_at does not make an older window latest,
        # but it is the monitor's last evaluation.
        re_eval = datetime(2026, 10, 13, 9, 0, tzinfo=UTC)
        store.write_json(
            store.drift_path("fraud", "2026-09-28"), fraud_drift_doc("2026-09-28", evaluated_at=re_eval, txn_psi=0.5)
        )
        _, m = scrape(server.url)
        assert sample(m, "ml_feature_psi", model="fraud", feature_name="txn_count_1h") == 0.04
        assert sample(m, "ml_last_evaluation_timestamp_seconds", model="fraud") == re_eval.timestamp()

        # Week 2 rewritten (re-evaluated): the rewrite's values, immediately.
        store.write_json(
            store.drift_path("fraud", "2026-10-05"),
            fraud_drift_doc("2026-10-05", evaluated_at=re_eval + timedelta(hours=1), txn_psi=0.22),
        )
        _, m = scrape(server.url)
        assert sample(m, "ml_feature_psi", model="fraud", feature_name="txn_count_1h") == 0.22


def test_equal_window_end_is_decided_by_evaluated_at(store):
    early = fraud_drift_doc("2026-09-28", evaluated_at=datetime(2026, 10, 5, 6, tzinfo=UTC), txn_psi=0.3)
    late = fraud_drift_doc("2026-09-28", evaluated_at=datetime(2026, 10, 6, 6, tzinfo=UTC), txn_psi=0.1)
    # Same window under two keys (e.g. a partition key format change): the later evaluation wins.
    store.write_json(store.drift_path("fraud", "2026-09-28"), late)
    store.write_json(store.drift_path("fraud", "2026-09-28T00"), early)
    assert store.latest_drift("fraud")["columns"]["txn_count_1h"]["psi"] == 0.1
    assert store.last_evaluated_at("fraud") == datetime(2026, 10, 6, 6, tzinfo=UTC)


# --------------------------------------------------------------------------- empty / broken
def test_empty_store_answers_200_without_drift_series(tmp_path, caplog):
    """A missing or empty root is not health: up 0 with the reason (a mistyped root would otherwise
    export nothing and fire nothing); a store with a monitor but no window yet is up."""
    missing_root = ResultsStore(str(tmp_path / "not-created-yet"))
    empty_root = ResultsStore(str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    only_perf = ResultsStore(str(tmp_path / "perf-only"))
    only_perf.write_json(
        only_perf.performance_path("fraud", "2026-09-28"),
        performance_doc("fraud", "2026-09-28", "v0001", None, status="labels_pending"),
    )
    cases = [(missing_root, 0.0, "missing"), (empty_root, 0.0, "empty"), (only_perf, 1.0, None)]
    for store, up, reason in cases:
        with (
            caplog.at_level(logging.WARNING, logger="drift_assets.alerting.exporter"),
            running_exporter(store) as server,
        ):
            status, m = scrape(server.url)
        assert status == 200, store
        assert not series_of(m, "ml_feature_psi"), store
        assert not series_of(m, "ml_drift_detected"), store
        assert not series_of(m, "ml_model_auc"), store  # labels pending: no AUC yet
        assert sample(m, "ml_results_store_up") == up, store
        problems = [dict(labels)["reason"] for labels in series_of(m, "ml_results_store_problem")]
        assert problems == ([reason] if reason else []), store
        assert sample(m, "ml_results_store_read_errors_total") == 0.0  # nothing failed to read
        if reason:
            assert any(store.uri in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    assert sample(m, "ml_retraining_runs_total", model="fraud") == 0
    assert sample(m, "ml_results_store_errors", model="fraud") == 0.0


def test_corrupt_json_gives_up_0_keeps_the_readable_rest(store, caplog):
    write_drifted_store(store)
    bad = os.path.join(store.root, "fraud", "drift", "2026-09-21.json")  # older than the latest window
    with open(bad, "w") as fh:
        fh.write('{"monitor": "fraud", "partition": ')  # truncated
    with caplog.at_level(logging.WARNING, logger="drift_assets.alerting.exporter"), running_exporter(store) as server:
        status, m = scrape(server.url)
        assert status == 200
        assert sample(m, "ml_results_store_up") == 0.0
        assert sample(m, "ml_results_store_read_errors_total") == 1.0
        assert sample(m, "ml_results_store_errors", model="fraud") == 1.0
        assert sample(m, "ml_results_store_errors", model="llm") == 0.0
        assert [dict(lab)["reason"] for lab in series_of(m, "ml_results_store_problem")] == ["corrupt_files"]
        # The rest is still exported: firing alerts do not resolve because of one bad file.
        assert sample(m, "ml_feature_psi", model="fraud", feature_name="txn_count_1h") == 0.31
        assert sample(m, "ml_llm_refusal_rate", model="llm") == 0.09

        status, m = scrape(server.url)
        assert status == 200 and sample(m, "ml_results_store_read_errors_total") == 2.0
        assert server.collector.last_errors and "2026-09-21.json" in server.collector.last_errors[0]

        os.remove(bad)  # repaired: up again, the counter keeps its count
        status, m = scrape(server.url)
        assert sample(m, "ml_results_store_up") == 1.0
        assert sample(m, "ml_results_store_read_errors_total") == 2.0
    assert any("2026-09-21.json" in r.getMessage() for r in caplog.records)


def test_a_corrupt_newest_window_is_reported_not_replaced_by_the_previous_one(store, caplog):
    write_drifted_store(store)  # fraud's latest readable window: 2026-09-28
    bad = os.path.join(store.root, "fraud", "drift", "2026-10-05.json")
    with open(bad, "w") as fh:
        fh.write('{"monitor": "fraud", "partition": ')  # truncated
    with caplog.at_level(logging.WARNING, logger="drift_assets.alerting.exporter"), running_exporter(store) as server:
        status, m = scrape(server.url)
    assert status == 200
    assert sample(m, "ml_results_store_up") == 0.0
    assert sample(m, "ml_results_store_errors", model="fraud") == 1.0
    reasons = sorted(dict(lab)["reason"] for lab in series_of(m, "ml_results_store_problem"))
    assert reasons == ["corrupt_files", "corrupt_latest"]
    # 2026-09-28 is not served as fraud's latest window...
    for name in ("ml_feature_psi", "ml_drift_detected", "ml_window_end_timestamp_seconds", "ml_window_rows"):
        assert not [lab for lab in series_of(m, name) if dict(lab).get("model") == "fraud"], name
    # ...while fraud's AUC and retraining counters and the other monitor are still exported.
    assert sample(m, "ml_model_auc", model="fraud", model_version="v0002") == 0.915
    assert sample(m, "ml_retraining_runs_total", model="fraud") == 3
    assert sample(m, "ml_llm_refusal_rate", model="llm") == 0.09
    assert any("2026-10-05.json" in r.getMessage() and "withheld" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "content",
    [
        b"[1, 2, 3]",
        b"\xff\xfe not utf-8",
        b'{"monitor": "fraud", "window_end": "yesterday", "window_start": "x", "evaluated_at": "x"}',
        b"{}",
    ],
    ids=["not-an-object", "not-utf8", "bad-timestamp", "missing-keys"],
)
def test_store_errors_name_the_file(store, content):
    store.write_json(store.drift_path("fraud", "2026-09-28"), fraud_drift_doc("2026-09-28"))
    path = os.path.join(store.root, "fraud", "drift", "2026-10-05.json")
    with open(path, "wb") as fh:
        fh.write(content)
    with pytest.raises(CorruptResultError) as info:
        store.latest_drift("fraud")
    assert info.value.path == path and path in str(info.value)
    skipped = []
    assert store.latest_drift("fraud", on_error=skipped.append)["partition"] == "2026-09-28"
    assert len(skipped) == 1 and path in str(skipped[0])


def test_unreadable_root_gives_up_0_and_200(tmp_path):
    not_a_dir = tmp_path / "results"
    not_a_dir.write_text("a file where the store's root should be")
    drift_is_a_file = ResultsStore(str(tmp_path / "other"))
    drift_is_a_file.write_json(
        drift_is_a_file.retraining_path("fraud", "v0002"), retraining_doc("fraud", 2, "promoted")
    )
    (tmp_path / "other" / "fraud" / "drift").write_text("not a directory")
    for store in (ResultsStore(str(not_a_dir)), drift_is_a_file):
        with pytest.raises(ResultsStoreError):
            store.latest_drift("fraud") if store is drift_is_a_file else store.monitors()
        with running_exporter(store) as server:
            status, m = scrape(server.url)
        assert status == 200
        assert sample(m, "ml_results_store_up") == 0.0
        assert sample(m, "ml_results_store_read_errors_total") == 1.0
        assert not series_of(m, "ml_feature_psi")


class _BrokenFileSystem(pafs.FileSystemHandler):
    """A filesystem whose every call fails, like an S3 endpoint that is down."""

    def _fail(self, *args, **kwargs):
        raise OSError("connection refused (simulated)")

    get_type_name = lambda self: "broken"  # noqa: E731
    equals = lambda self, other: self is other  # noqa: E731
    normalize_path = lambda self, path: path  # noqa: E731
    get_file_info = get_file_info_selector = create_dir = delete_dir = delete_dir_contents = _fail
    delete_root_dir_contents = delete_file = move = copy_file = _fail
    open_input_stream = open_input_file = open_output_stream = open_append_stream = _fail


def test_failing_filesystem_gives_up_0_and_200():
    store = ResultsStore("bucket/results", filesystem=pafs.PyFileSystem(_BrokenFileSystem()))
    with running_exporter(store) as server:
        status, m = scrape(server.url)
    assert status == 200
    assert sample(m, "ml_results_store_up") == 0.0
    assert "connection refused" in server.collector.last_errors[0]


# --------------------------------------------------------------------------- writer
def test_writer_is_atomic_strict_and_validates_names(store):
    path = store.drift_path("fraud", "2026-10-13-14:00")
    assert path == "fraud/drift/2026-10-13-14:00.json"
    assert store.performance_path("fraud", "2026-09-28") == "fraud/performance/2026-09-28.json"
    assert store.retraining_path("fraud", "v0002") == "fraud/retraining/v0002.json"
    for bad in ("", "..", "a/b", ".hidden"):
        with pytest.raises(ValueError):
            store.drift_path("fraud", bad)
        with pytest.raises(ValueError):
            store.retraining_path(bad, "v1")
    with pytest.raises(ValueError):
        store.write_json("../escape.json", {})

    other = store.retraining_path("fraud", "v0002")
    uri = store.write_json(other, {"psi": float("nan"), "inf": float("inf"), "when": datetime(2026, 1, 1, tzinfo=UTC)})
    assert uri.endswith("fraud/retraining/v0002.json")
    assert store.read_json(other) == {"psi": None, "inf": None, "when": "2026-01-01T00:00:00+00:00"}

    doc = fraud_drift_doc("2026-10-13")
    store.write_json(path, doc)
    store.write_json(path, doc)  # rewritten (re-evaluated window): replaced in place
    # Only the final file is left (the temp file was renamed over it); temp names are never read.
    directory = os.path.join(store.root, "fraud", "drift")
    assert os.listdir(directory) == ["2026-10-13-14:00.json"]
    with open(os.path.join(directory, ".tmp-123-2026-10-14-00:00.json"), "w") as fh:
        fh.write("{half")
    assert store.drift_records("fraud") == [doc] == [store.read_json(path)]
    assert "NaN" not in dumps({"x": math.nan})


def test_store_reader_api(store):
    write_drifted_store(store)
    assert store.monitors() == ["fraud", "llm"]
    assert store.latest_drift("fraud")["partition"] == "2026-09-28"
    assert store.latest_drift("churn") is None
    by_version = store.latest_performance_by_version("fraud")
    assert {v: d["auc"] for v, d in by_version.items()} == {"v0001": 0.874, "v0002": 0.915}
    assert [r["name"] for r in store.retraining_records("fraud")] == ["v0002", "v0003", "v0004"]
    assert store.last_evaluated_at("fraud") == parse_timestamp(store.latest_drift("fraud")["evaluated_at"])
    assert store.last_evaluated_at("churn") is None


def test_s3_store_through_moto(tmp_path):
    """The same store on S3 (moto's server on loopback): single-put writes, listing, exporter."""
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        ).create_bucket(Bucket="monitoring")
        fs = pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{port}",
            scheme="http",
            access_key="test",
            secret_key="test",
            region="us-east-1",
        )
        store = ResultsStore("s3://monitoring/results", filesystem=fs)
        assert store.monitors() == []
        write_drifted_store(store)
        assert store.monitors() == ["fraud", "llm"]
        with running_exporter(store) as exporter:
            status, m = scrape(exporter.url)
        assert status == 200 and sample(m, "ml_results_store_up") == 1.0
        assert sample(m, "ml_feature_psi", model="fraud", feature_name="txn_count_1h") == 0.31
        assert sample(m, "ml_model_promotions_total", model="fraud") == 1
    finally:
        server.stop()


# --------------------------------------------------------------------------- pushgateway
def test_push_once_to_a_real_pushgateway(store, tmp_path):
    write_drifted_store(store)
    with start_pushgateway(tmp_path) as gateway:
        push_once(store, gateway.url, job="drift_assets")
        text = wait_until(
            lambda: (r := gateway.get("/metrics")).ok and "ml_feature_psi" in r.text and r.text,
            timeout=10,
            message="pushed metrics",
        )
    m = parse_metrics(text)
    assert (
        sample(m, "ml_feature_psi", model="fraud", feature_name="txn_count_1h", job="drift_assets", instance="") == 0.31
    )
    assert sample(m, "ml_results_store_up", job="drift_assets", instance="") == 1.0


# --------------------------------------------------------------------------- blocking server (CLI)
SERVE_FOREVER = (
    "import sys; from drift_assets.alerting.exporter import serve_metrics_forever; "
    "sys.exit(serve_metrics_forever(sys.argv[1], port=int(sys.argv[2])))"
)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_serve_metrics_forever_serves_until_stopped(store, stop_signal):
    write_drifted_store(store)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_FOREVER, store.root, str(port)],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        status, m = wait_until(lambda: scrape(url), timeout=30, message="blocking exporter up")
        assert status == 200 and sample(m, "ml_feature_psi", model="fraud", feature_name="txn_count_1h") == 0.31
        process.send_signal(stop_signal)
        _, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        assert f"127.0.0.1:{port}/metrics" in err.decode()
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
