"""When the window job writes the Evidently report (``orchestration/report_asset.py``): the monitor's
``extra.html_report`` in runs that evaluate the window, always in a run of the report alone."""

from __future__ import annotations

import pytest
import yaml
from dagster import AssetKey, Failure
from support import write_monitors_file

from drift_assets.monitoring.config import load_monitors
from drift_assets.orchestration.report_asset import monitor_policy, resolve_when, wants_report

PASSED = {"checks": [{"name": "feature_psi_below_warn_threshold", "passed": False, "severity": "WARN"}]}
FAILED = {
    "checks": [{"name": "prediction_has_no_drift", "column": "fraud_score", "passed": False, "severity": "ERROR"}]
}


def fraud(tmp_path, html):
    return load_monitors(write_monitors_file(tmp_path / "monitors.yaml", html=html)).get("fraud")


def test_policy_from_monitors_yaml_and_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("DRIFT_ASSETS_HTML_REPORTS", raising=False)
    assert monitor_policy(fraud(tmp_path, True)) == "always"
    assert monitor_policy(fraud(tmp_path, False)) == "never"
    assert monitor_policy(fraud(tmp_path, "on_failure")) == "on_failure"
    monitor = fraud(tmp_path, True)
    monkeypatch.setenv("DRIFT_ASSETS_HTML_REPORTS", "0")
    assert monitor_policy(monitor) == "never"
    with pytest.raises(Failure, match=r"monitor fraud: extra.html_report must be true, false or on_failure, not 'x'"):
        monitor_policy(fraud(tmp_path, "x"))


def test_default_policy_is_on_failure(tmp_path, monkeypatch):
    monkeypatch.delenv("DRIFT_ASSETS_HTML_REPORTS", raising=False)
    path = write_monitors_file(tmp_path / "monitors.yaml")
    config = yaml.safe_load(path.read_text())
    del config["monitors"]["fraud"]["extra"]["html_report"]  # not configured at all
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert monitor_policy(load_monitors(path).get("fraud")) == "on_failure"


def test_auto_follows_the_policy_when_the_run_evaluates_the_window(tmp_path, monkeypatch):
    monkeypatch.delenv("DRIFT_ASSETS_HTML_REPORTS", raising=False)
    monitor = fraud(tmp_path, False)
    assert resolve_when("auto", monitor, "fraud_window_job", None) == "never"
    # The UI's "Materialize all" / an asset backfill: drift_report is in the run's selection.
    selection = {AssetKey(["fraud", "drift_report"]), AssetKey(["fraud", "evidently_report"])}
    assert resolve_when("auto", monitor, "__ASSET_JOB", selection) == "never"
    # The report alone: on demand, whatever the policy.
    assert resolve_when("auto", monitor, "__ASSET_JOB", {AssetKey(["fraud", "evidently_report"])}) == "always"
    assert resolve_when("on_failure", monitor, "__ASSET_JOB", None) == "on_failure"  # explicit config wins


def test_on_failure_writes_only_for_a_failed_error_check():
    assert wants_report("on_failure", PASSED) == (False, "policy on_failure: no ERROR check failed")
    assert wants_report("on_failure", FAILED) == (True, "failed ERROR check(s): prediction_has_no_drift[fraud_score]")
    assert wants_report("always", PASSED) == (True, "always")
    assert wants_report("never", FAILED) == (False, "policy: never")


def test_a_monitor_that_never_writes_reports_has_no_report_step_in_its_window_job(tmp_path, monkeypatch):
    from drift_assets.definitions import build_definitions

    monkeypatch.delenv("DRIFT_ASSETS_HTML_REPORTS", raising=False)
    report = AssetKey(["fraud", "evidently_report"])

    def window_assets(html):
        defs = build_definitions(write_monitors_file(tmp_path / f"monitors-{html}.yaml", html=html))
        return defs.resolve_job_def("fraud_window_job").asset_layer.selected_asset_keys, defs

    selected, _ = window_assets("on_failure")
    assert report in selected
    selected, defs = window_assets(False)
    assert report not in selected and AssetKey(["fraud", "drift_report"]) in selected
    assert report in defs.resolve_implicit_global_asset_job_def().asset_layer.selected_asset_keys  # the UI's
    monkeypatch.setenv("DRIFT_ASSETS_HTML_REPORTS", "0")
    assert report not in window_assets(True)[0]
