"""When the window job writes the Evidently report (``orchestration/report_asset.py``): the monitor's
``extra.html_report`` in runs that evaluate the window, always in a run of the report alone;
``on_new_failure`` decided from the previous window's stored record (hand-made records here; the
Dagster runs through a real incident are in test_report_incidents.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml
from dagster import AssetKey, Failure
from support import PROJECT_ROOT, write_monitors_file

from drift_assets.monitoring.config import ConfigError, load_monitors
from drift_assets.orchestration.report_asset import (
    WindowHistory,
    monitor_policy,
    previous_partition,
    resolve_when,
    wants_report,
)

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
    assert monitor_policy(fraud(tmp_path, "on_new_failure")) == "on_new_failure"
    monitor = fraud(tmp_path, True)
    monkeypatch.setenv("DRIFT_ASSETS_HTML_REPORTS", "0")
    assert monitor_policy(monitor) == "never"
    assert monitor_policy(fraud(tmp_path, "on_new_failure")) == "never"
    # A MonitorConfig built in code can still hold an unknown setting: the step fails with one line.
    with pytest.raises(Failure, match=r"monitor fraud: extra.html_report must be true, false, on_failure or on_new_"):
        monitor_policy(replace(monitor, extra={"html_report": "x"}))


@pytest.mark.parametrize("setting", ["x", "on_new_failures", 1, "true", None])
def test_an_unknown_setting_fails_the_definitions_load_in_one_line(tmp_path, setting):
    from drift_assets.definitions import build_definitions

    with pytest.raises(ConfigError) as excinfo:
        build_definitions(write_monitors_file(tmp_path / "monitors.yaml", html=setting))
    message = str(excinfo.value)
    assert message == (
        "monitors.yaml: monitors.fraud.extra.html_report: expected true, false, on_failure or on_new_failure, "
        f"got {setting!r}"
    )


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


# ------------------------------------------------------------------------------------- on_new_failure
SHIFT = {"name": "sudden_shift", "column": "output_length", "passed": False, "severity": "ERROR"}
RATE = {"name": "sudden_rate_change", "column": "refusal", "passed": False, "severity": "ERROR"}
PSI = {"name": "feature_psi_below_error_threshold", "column": "output_length", "passed": False, "severity": "ERROR"}
WARN = {"name": "feature_psi_below_warn_threshold", "column": "latency_ms", "passed": False, "severity": "WARN"}
OK = {"name": "sudden_shift", "column": "output_length", "passed": True, "severity": "ERROR"}


def llm_monitor(tmp_path):
    """The project's hourly llm monitor (first window 2026-10-05-00:00)."""
    config = yaml.safe_load((PROJECT_ROOT / "monitors.yaml").read_text())
    path = tmp_path / "monitors.yaml"
    path.write_text(yaml.safe_dump({"monitors": {"llm": config["monitors"]["llm"]}}, sort_keys=False))
    return load_monitors(path).get("llm")


def decide(monitor, hours: dict[str, list[dict]], key: str, mode: str = "on_new_failure"):
    """``wants_report`` for ``key`` with ``hours`` as the stored records (missing: never evaluated)."""
    records = {k: {"checks": checks} for k, checks in hours.items()}
    return wants_report(mode, records[key], WindowHistory(monitor, key, records.get))


def test_previous_partition_by_cadence(tmp_path):
    llm = llm_monitor(tmp_path)
    assert previous_partition(llm, "2026-10-17-00:00") == "2026-10-16-23:00"
    assert previous_partition(llm, "2026-10-05-00:00") is None  # the monitor's first hour
    weekly = fraud(tmp_path, "on_new_failure")
    assert previous_partition(weekly, "2026-08-17") == "2026-08-10"
    assert previous_partition(weekly, "2026-08-03") is None


def test_on_new_failure_writes_the_first_failing_hour_of_an_incident_only(tmp_path):
    llm = llm_monitor(tmp_path)
    hours = {
        "2026-10-17-08:00": [OK, WARN],
        "2026-10-17-09:00": [SHIFT, WARN],
        "2026-10-17-10:00": [SHIFT],
        "2026-10-17-11:00": [SHIFT, WARN],
        "2026-10-17-12:00": [OK],
        "2026-10-17-13:00": [SHIFT],
    }
    assert decide(llm, hours, "2026-10-17-08:00") == (False, "policy on_new_failure: no ERROR check failed")
    assert decide(llm, hours, "2026-10-17-09:00") == (
        True,
        "newly failing ERROR check(s): sudden_shift[output_length] (not failing in the previous window "
        "2026-10-17-08:00)",
    )
    for key in ("2026-10-17-10:00", "2026-10-17-11:00"):
        assert decide(llm, hours, key) == (
            False,
            "ERROR check(s) sudden_shift[output_length] already failing since 2026-10-17-09:00: report on demand "
            "(materialise evidently_report for this window)",
        )
    assert decide(llm, hours, "2026-10-17-13:00")[0]  # the incident ended at 12:00; a new one starts
    # on_failure, always, never: unchanged (the history is not read).
    assert [decide(llm, hours, k, "on_failure")[0] for k in hours] == [False, True, True, True, False, True]
    assert all(decide(llm, hours, k, "always") == (True, "always") for k in hours)
    assert all(decide(llm, hours, k, "never") == (False, "policy: never") for k in hours)
    assert wants_report("on_failure", {"checks": [SHIFT]}) == (
        True,
        "failed ERROR check(s): sudden_shift[output_length]",
    )


def test_on_new_failure_writes_after_an_hour_never_evaluated_and_for_the_first_hour(tmp_path):
    llm = llm_monitor(tmp_path)
    hours = {"2026-10-17-09:00": [SHIFT], "2026-10-17-11:00": [SHIFT], "2026-10-05-00:00": [RATE]}
    assert decide(llm, hours, "2026-10-17-11:00") == (
        True,
        "failed ERROR check(s): sudden_shift[output_length] (previous window 2026-10-17-10:00 never evaluated)",
    )
    assert decide(llm, hours, "2026-10-05-00:00") == (
        True,
        "failed ERROR check(s): sudden_rate_change[refusal] (the monitor's first window)",
    )


def test_on_new_failure_writes_when_another_error_check_starts_failing_during_an_incident(tmp_path):
    llm = llm_monitor(tmp_path)
    hours = {
        "2026-10-17-09:00": [SHIFT],
        "2026-10-17-10:00": [SHIFT, RATE],  # the refusal rate jumps while the length is still failing
        "2026-10-17-11:00": [RATE, SHIFT],
        "2026-10-17-12:00": [RATE],  # one of the two recovers: nothing new
        "2026-10-17-13:00": [RATE, PSI],  # the same column, another check: new
    }
    assert decide(llm, hours, "2026-10-17-10:00") == (
        True,
        "newly failing ERROR check(s): sudden_rate_change[refusal] (not failing in the previous window "
        "2026-10-17-09:00)",
    )
    assert not decide(llm, hours, "2026-10-17-11:00")[0]
    skipped = decide(llm, hours, "2026-10-17-12:00")
    assert skipped == (
        False,
        "ERROR check(s) sudden_rate_change[refusal] already failing since 2026-10-17-10:00: report on demand "
        "(materialise evidently_report for this window)",
    )
    assert decide(llm, hours, "2026-10-17-13:00")[1].startswith(
        "newly failing ERROR check(s): feature_psi_below_error_threshold[output_length] "
    )


def test_on_new_failure_looks_back_a_bounded_number_of_windows(tmp_path):
    import datetime as dt

    from drift_assets.orchestration.report_asset import INCIDENT_LOOKBACK

    llm = llm_monitor(tmp_path)
    start = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
    keys = [(start + dt.timedelta(hours=h)).strftime("%Y-%m-%d-%H:%M") for h in range(INCIDENT_LOOKBACK + 5)]
    hours = {k: [SHIFT] for k in keys}
    reads = []
    records = {k: {"checks": c} for k, c in hours.items()}

    def load(key):
        reads.append(key)
        return records.get(key)

    write, reason = wants_report("on_new_failure", records[keys[-1]], WindowHistory(llm, keys[-1], load))
    assert not write and f"already failing since before {keys[-2 - INCIDENT_LOOKBACK]}:" in reason
    assert len(reads) == INCIDENT_LOOKBACK + 1
    write, reason = wants_report("on_new_failure", records[keys[20]], WindowHistory(llm, keys[20], records.get))
    assert not write and f"since {keys[0]}:" in reason  # back to the monitor's first hour
