"""The committed Prometheus/Alertmanager configuration, checked with promtool and amtool."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml
from servers import (
    ALERT_RULES,
    ALERT_RULES_TEST,
    ALERTMANAGER_CONFIG,
    DEPLOY,
    PROMETHEUS_CONFIG,
    RULES_DIR,
    binary,
    run,
)

pytestmark = pytest.mark.slow  # servers, Dagster runs or long simulations

EXPECTED_ALERTS = {
    "FeatureDriftHigh": "warning",
    "DriftRetrainingTrigger": "critical",
    "PredictionDrift": "critical",
    "FeatureMissingRateHigh": "warning",
    "MonitorStale": "warning",
    "ResultsStoreDown": "warning",
    "LlmRefusalRateHigh": "warning",
    "LlmOutputLengthDrift": "warning",
}


def _rules() -> list[dict]:
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    assert [g["name"] for g in groups] == ["ml_drift_alerts"]
    return groups[0]["rules"]


def _alert(name: str) -> dict:
    return next(r for r in _rules() if r.get("alert") == name)


# --------------------------------------------------------------------------- promtool
def test_promtool_check_config():
    result = run([binary("promtool"), "check", "config", str(PROMETHEUS_CONFIG)])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "is valid prometheus config file syntax" in output
    assert "SUCCESS: 1 rule files found" in output  # drift_alerts.yml, not the unit-test file


def test_promtool_check_rules():
    result = run([binary("promtool"), "check", "rules", str(ALERT_RULES)])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"SUCCESS: {len(_rules())} rules found" in output


def test_promtool_unit_tests_pass():
    result = run([binary("promtool"), "test", "rules", ALERT_RULES_TEST.name], cwd=RULES_DIR)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS" in output and "FAILED" not in output


@pytest.mark.parametrize(
    ("alert", "old", "new"),
    [
        ("FeatureDriftHigh", "for: 1h", "for: 30m"),
        ("DriftRetrainingTrigger", "for: 2h", "for: 1h"),
        ("FeatureDriftHigh", "ml_feature_psi > 0.2", "ml_feature_psi > 0.4"),
        ("EstimatedAucBelowChampion", "- 0.02)", "- 0.06)"),
        ("EstimatedAucBelowChampion", "for: 1h", "for: 2h"),
    ],
    ids=["feature-drift-for", "retraining-for", "feature-drift-threshold", "estimated-auc-drop", "estimated-auc-for"],
)
def test_unit_tests_catch_a_changed_rule(tmp_path, alert, old, new):
    """The unit tests really pin `for:` and thresholds: a mutated copy of the rules fails them."""
    text = ALERT_RULES.read_text()
    start = text.index(f"- alert: {alert}")
    end = text.find("- alert:", start + 1)
    end = len(text) if end < 0 else end
    block = text[start:end]
    assert old in block
    (tmp_path / "drift_alerts.yml").write_text(text[:start] + block.replace(old, new, 1) + text[end:])
    shutil.copy(ALERT_RULES_TEST, tmp_path / ALERT_RULES_TEST.name)
    result = run([binary("promtool"), "test", "rules", ALERT_RULES_TEST.name], cwd=tmp_path)
    assert result.returncode != 0
    assert alert in result.stdout + result.stderr


# --------------------------------------------------------------------------- rule content
def test_design_doc_alerts_are_exact():
    drift = _alert("FeatureDriftHigh")
    assert drift["expr"].strip() == "ml_feature_psi > 0.2"
    assert drift["for"] == "1h"
    assert drift["labels"]["severity"] == "warning"
    assert drift["annotations"]["summary"] == "Feature drift detected: {{ $labels.feature_name }}"
    assert '{{ $value | printf "%.3f" }}' in drift["annotations"]["description"]

    trigger = _alert("DriftRetrainingTrigger")
    assert trigger["expr"].strip() == "ml_drift_detected == 1"
    assert trigger["for"] == "2h"
    assert trigger["labels"]["severity"] == "critical"

    assert _alert("FeatureMissingRateHigh")["expr"].strip() == "ml_column_missing_ratio > 0.05"
    assert _alert("FeatureMissingRateHigh")["labels"]["team"] == "data-engineering"
    stale = _alert("MonitorStale")["expr"]
    assert "ml_last_evaluation_timestamp_seconds" in stale and "ml_monitor_window_seconds" in stale
    assert 'ml_derived_ratio{column="refusal"}' in _alert("LlmRefusalRateHigh")["expr"]
    assert 'ml_derived_psi{column="output_length"}' in _alert("LlmOutputLengthDrift")["expr"]
    assert "ml_results_store_up" in _alert("ResultsStoreDown")["expr"]


def test_every_alert_has_severity_model_and_value():
    rules = _rules()
    names = {r["alert"] for r in rules}
    assert set(EXPECTED_ALERTS) <= names
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        if name in EXPECTED_ALERTS:
            assert rule["labels"]["severity"] == EXPECTED_ALERTS[name], name
        annotations = rule["annotations"]
        assert {"summary", "description", "model", "value"} <= set(annotations), name
        # Per-model alerts name the model; store/exporter-wide ones say they concern all models.
        assert "$labels.model" in annotations["model"] or annotations["model"] == "all models", name
        if "feature_name" in rule["expr"] or name == "FeatureDriftHigh":
            assert "$labels.feature_name" in annotations["feature"], name
        if name == "FeatureMissingRateHigh":  # features and the prediction: label column, with its role
            assert "$labels.column" in annotations["feature"] and "$labels.role" in annotations["description"]


def test_every_alert_is_unit_tested_firing_and_not_firing():
    tests = yaml.safe_load(ALERT_RULES_TEST.read_text())
    assert tests["rule_files"] == [ALERT_RULES.name]
    firing, silent = set(), set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {r["alert"] for r in _rules()}
    assert names <= firing, f"never shown firing: {names - firing}"
    assert names <= silent, f"never shown not firing: {names - silent}"


def test_prometheus_config_targets():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert "127.0.0.1:8000" in targets
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]
    assert config["rule_files"] == ["rules/*_alerts.yml"]


# --------------------------------------------------------------------------- alertmanager
def _amtool_copy(tmp_path):
    """A copy of alertmanager.yml whose secret files exist (dummy values) under tmp_path."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "slack_api_url").write_text("http://127.0.0.1:9/services/T000/B000/XXXX")
    (secrets / "pagerduty_routing_key").write_text("dummy-routing-key")
    text = ALERTMANAGER_CONFIG.read_text().replace("/etc/alertmanager/secrets/", f"{secrets}/")
    config = tmp_path / "alertmanager.yml"
    config.write_text(text)
    return config


def test_amtool_check_config(tmp_path):
    config = _amtool_copy(tmp_path)
    result = run([binary("amtool"), "check-config", str(config)])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS" in output and "1 inhibit rules" in output and "2 receivers" in output
    # The committed file itself is valid too (the secret files are only read when sending).
    assert run([binary("amtool"), "check-config", str(ALERTMANAGER_CONFIG)]).returncode == 0


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=FeatureDriftHigh", "severity=warning", "model=fraud"], "slack-ml"),
        (["alertname=FeatureMissingRateHigh", "severity=warning", "team=data-engineering", "model=fraud"], "slack-ml"),
        (["alertname=DriftRetrainingTrigger", "severity=critical", "model=fraud"], "pagerduty-ml"),
        (["alertname=PredictionDrift", "severity=critical", "model=llm"], "pagerduty-ml"),
    ],
)
def test_amtool_routes_warning_to_slack_and_critical_to_pagerduty(tmp_path, labels, receiver):
    config = _amtool_copy(tmp_path)
    result = run(
        [
            binary("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={config}",
            f"--verify.receivers={receiver}",
            *labels,
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_alertmanager_config_has_no_inline_secret():
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    assert config["route"]["group_by"] == ["alertname", "model"]
    receivers = {r["name"]: r for r in config["receivers"]}
    slack = receivers["slack-ml"]["slack_configs"][0]
    pagerduty = receivers["pagerduty-ml"]["pagerduty_configs"][0]
    assert slack["api_url_file"].startswith("/etc/alertmanager/secrets/") and "api_url" not in slack
    assert pagerduty["routing_key_file"].startswith("/etc/alertmanager/secrets/")
    assert not {"routing_key", "service_key"} & set(pagerduty)
    assert "slack_api_url" not in config.get("global", {})
    assert not re.search(r"hooks\.slack\.com/services/\w", ALERTMANAGER_CONFIG.read_text())
    [inhibit] = config["inhibit_rules"]
    assert set(inhibit["source_matchers"]) == {'alertname="DriftRetrainingTrigger"', 'severity="critical"'}
    assert set(inhibit["target_matchers"]) == {'alertname="FeatureDriftHigh"', 'severity="warning"'}
    assert inhibit["equal"] == ["model"]
    # Only the README and .gitignore of the secrets directory are meant to be committed.
    gitignore = (DEPLOY / "alertmanager" / "secrets" / ".gitignore").read_text().split()
    assert gitignore[0] == "*" and "!README.md" in gitignore and "!.gitignore" in gitignore


def test_start_local_script_is_valid_bash():
    script = DEPLOY / "start-local.sh"
    result = run(["bash", "-n", str(script)])
    assert result.returncode == 0, result.stderr
