"""End to end: a drifted week materialised through Dagster reaches a real Prometheus through the
exporter, and the served metrics match what Dagster recorded."""

from __future__ import annotations

import json

import pytest
import requests
from dagster import instance_for_test
from servers import running_exporter, scrape, start_prometheus, wait_until

from drift_assets.definitions import build_definitions
from drift_assets.monitoring.results_store import ResultsStore

pytestmark = pytest.mark.slow  # servers, Dagster runs or long simulations

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
DRIFTED = "2026-08-17"


def test_drifted_week_reaches_prometheus(project, tmp_path):
    defs = build_definitions()
    store = ResultsStore(str(project / "reports"))
    with running_exporter(store) as exporter:
        port = exporter.server_address[1]
        status, samples = scrape(exporter.url)
        assert status == 200  # nothing evaluated yet: a valid, empty answer
        assert not any(name == "ml_feature_psi" for name, _ in samples)

        with instance_for_test() as instance:
            assert (
                defs.resolve_job_def("fraud_reference_job")
                .execute_in_process(instance=instance, run_config=QUIET)
                .success
            )
            assert (
                defs.resolve_job_def("fraud_window_job")
                .execute_in_process(partition_key=DRIFTED, instance=instance, run_config=QUIET)
                .success
            )
        record = json.loads((project / "reports" / "fraud" / "drift" / f"{DRIFTED}.json").read_text())
        expected = record["columns"]["txn_count_1h"]["psi"]
        assert expected > 0.25

        config = f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: drift_assets
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
"""
        with start_prometheus(config, tmp_path=tmp_path) as prometheus:

            def psi_in_prometheus():
                r = requests.get(
                    f"{prometheus.url}/api/v1/query",
                    params={"query": 'ml_feature_psi{model="fraud",feature_name="txn_count_1h"}'},
                    timeout=5,
                )
                result = r.json()["data"]["result"]
                return float(result[0]["value"][1]) if result else None

            value = wait_until(psi_in_prometheus, timeout=30, message="ml_feature_psi in Prometheus")
            assert value == pytest.approx(expected, rel=1e-9)
            drift = requests.get(
                f"{prometheus.url}/api/v1/query", params={"query": 'ml_drift_detected{model="fraud"}'}, timeout=5
            ).json()
            assert float(drift["data"]["result"][0]["value"][1]) == 1.0


def test_each_materialisation_pushes_to_a_real_pushgateway(project, tmp_path, monkeypatch):
    from servers import start_pushgateway

    defs = build_definitions()
    with start_pushgateway(tmp_path) as gateway:
        monkeypatch.setenv("DRIFT_ASSETS_PUSHGATEWAY", gateway.url)
        with instance_for_test() as instance:
            assert (
                defs.resolve_job_def("fraud_reference_job")
                .execute_in_process(instance=instance, run_config=QUIET)
                .success
            )
            assert (
                defs.resolve_job_def("fraud_window_job")
                .execute_in_process(partition_key=DRIFTED, instance=instance, run_config=QUIET)
                .success
            )
        status, samples = scrape(f"{gateway.url}/metrics")
        assert status == 200
        pushed = [
            v
            for (name, labels), v in samples.items()
            if name == "ml_feature_psi" and ("feature_name", "txn_count_1h") in labels
        ]
        record = json.loads((project / "reports" / "fraud" / "drift" / f"{DRIFTED}.json").read_text())
        assert pushed and pushed[0] == pytest.approx(record["columns"]["txn_count_1h"]["psi"], rel=1e-9)
    # The gateway is gone: the next window still materialises (the push failure is only logged).
    monkeypatch.setenv("DRIFT_ASSETS_PUSHGATEWAY", "127.0.0.1:9")
    with instance_for_test() as instance:
        assert (
            defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET).success
        )
        assert (
            defs.resolve_job_def("fraud_window_job")
            .execute_in_process(partition_key="2026-08-03", instance=instance, run_config=QUIET)
            .success
        )
