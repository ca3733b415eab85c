"""Smoke test: the real dagster-webserver serves the project's workspace, and its GraphQL API shows
the assets and the failed check on the drifted week."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from dagster import DagsterInstance
from servers import free_port, stop_process, wait_until
from support import project_dagster_home

from drift_assets.definitions import build_definitions

pytestmark = pytest.mark.slow  # servers, Dagster runs or long simulations

PROJECT_ROOT = Path(__file__).resolve().parent.parent
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
DRIFTED = "2026-08-17"
LABELS_PENDING = "2026-09-07"  # the last simulated week: no labels yet

ASSETS_QUERY = """
{ assetNodes { assetKey { path } groupName
    assetChecksOrError { ... on AssetChecks { checks { name } } } } }
"""
EXECUTIONS_QUERY = """
query ($key: AssetKeyInput!, $check: String!) {
  assetCheckExecutions(assetKey: $key, checkName: $check, limit: 20) {
    status partition evaluation { severity description }
  }
}
"""


def test_webserver_shows_assets_and_failed_check_on_drifted_week(project, monkeypatch, tmp_path):
    project_dagster_home(tmp_path, monkeypatch)
    defs = build_definitions()
    with DagsterInstance.get() as instance:
        assert (
            defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET).success
        )
        assert (
            defs.resolve_job_def("fraud_window_job")
            .execute_in_process(partition_key=DRIFTED, instance=instance, run_config=QUIET)
            .success
        )
        assert (
            defs.resolve_job_def("fraud_window_job")
            .execute_in_process(partition_key=LABELS_PENDING, instance=instance, run_config=QUIET)
            .success
        )

    port = free_port()
    webserver = os.path.join(os.path.dirname(sys.executable), "dagster-webserver")
    log = open(tmp_path / "webserver.log", "w")  # noqa: SIM115 - the webserver writes it until stopped
    proc = subprocess.Popen(
        [webserver, "-h", "127.0.0.1", "-p", str(port), "-w", str(PROJECT_ROOT / "workspace.yaml")],
        cwd=PROJECT_ROOT,
        env=os.environ.copy(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    try:

        def assets():
            try:
                r = requests.post(url, json={"query": ASSETS_QUERY}, timeout=5)
            except requests.ConnectionError:
                return None
            nodes = r.json().get("data", {}).get("assetNodes") if r.ok else None
            return nodes or None

        nodes = wait_until(assets, timeout=120, message="webserver to load the code location")
        by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        assert {
            "fraud/reference_data",
            "fraud/reference_profile",
            "fraud/production_window",
            "fraud/drift_report",
        } <= set(by_key)
        assert by_key["fraud/drift_report"]["groupName"] == "fraud"
        checks = {c["name"] for c in by_key["fraud/drift_report"]["assetChecksOrError"]["checks"]}
        assert "feature_psi_below_retrain_threshold" in checks

        r = requests.post(
            url,
            json={
                "query": EXECUTIONS_QUERY,
                "variables": {
                    "key": {"path": ["fraud", "drift_report"]},
                    "check": "feature_psi_below_retrain_threshold",
                },
            },
            timeout=30,
        )
        executions = r.json()["data"]["assetCheckExecutions"]
        drifted = [e for e in executions if e["partition"] == DRIFTED]
        assert drifted and drifted[0]["status"] == "FAILED"
        assert drifted[0]["evaluation"]["severity"] == "ERROR"
        assert "txn_count_1h" in drifted[0]["evaluation"]["description"]

        # A label-pending week: the AUC check is not evaluated (SKIPPED), never "passed".
        r = requests.post(
            url,
            json={
                "query": EXECUTIONS_QUERY,
                "variables": {"key": {"path": ["fraud", "model_performance"]}, "check": "auc_not_below_champion"},
            },
            timeout=30,
        )
        auc = {e["partition"]: e for e in r.json()["data"]["assetCheckExecutions"]}
        assert auc[LABELS_PENDING]["status"] == "SKIPPED", auc[LABELS_PENDING]
        assert auc[LABELS_PENDING]["evaluation"] is None
        assert auc[DRIFTED]["status"] in ("SUCCEEDED", "FAILED")  # labelled: evaluated
    finally:
        stop_process(proc)
        log.close()
        time.sleep(0.1)
