"""End to end on loopback: results store -> exporter -> real Prometheus (committed rules, `for:`
shortened) -> real Alertmanager (committed routing/inhibition) -> local webhook; and every PromQL
expression of the Grafana dashboard run against that Prometheus.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import requests
import yaml
from servers import (
    ALERT_RULES,
    DEPLOY,
    GRAFANA_DASHBOARD,
    REPO_ROOT,
    WebhookReceiver,
    alertmanager_test_config,
    binary,
    free_port,
    run,
    running_exporter,
    start_alertmanager,
    start_prometheus,
    wait_until,
    write_drifted_store,
)

from drift_assets.monitoring.results_store import ResultsStore

pytestmark = pytest.mark.slow  # servers, Dagster runs or long simulations

# Test copy of the rules: the critical trigger first, the warnings a little later (as in
# production, where DriftRetrainingTrigger's 2h outlasts FeatureDriftHigh's 1h, the order only
# matters for which notification goes out first).
FOR_IN_TEST = {"DriftRetrainingTrigger": "1s", "PredictionDrift": "1s"}
DEFAULT_FOR_IN_TEST = "3s"


def shortened_rules() -> str:
    data = yaml.safe_load(ALERT_RULES.read_text())
    for rule in data["groups"][0]["rules"]:
        if "for" in rule:
            rule["for"] = FOR_IN_TEST.get(rule["alert"], DEFAULT_FOR_IN_TEST)
    return yaml.safe_dump(data, sort_keys=False)


def prometheus_test_config(exporter_port: int, alertmanager_port: int) -> str:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    config["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "drift_assets"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{exporter_port}"]}]
    return yaml.safe_dump(config, sort_keys=False)


class Stack:
    def __init__(self, prometheus, alertmanager, receiver, exporter):
        self.prometheus, self.alertmanager, self.receiver, self.exporter = prometheus, alertmanager, receiver, exporter

    def query(self, expr: str) -> dict:
        response = requests.get(f"{self.prometheus.url}/api/v1/query", params={"query": expr}, timeout=10)
        return response.json()

    def firing(self) -> list[dict]:
        alerts = requests.get(f"{self.prometheus.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return [a for a in alerts if a["state"] == "firing"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    store = ResultsStore(str(tmp / "results"))
    write_drifted_store(store)
    with (
        running_exporter(store) as exporter,
        WebhookReceiver() as receiver,
        start_alertmanager(alertmanager_test_config(receiver.url), tmp) as alertmanager,
    ):
        config = prometheus_test_config(exporter.server_address[1], alertmanager.port)
        with start_prometheus(config, {"drift_alerts.yml": shortened_rules()}, tmp) as prometheus:
            yield Stack(prometheus, alertmanager, receiver, exporter)


def _vector(result: dict) -> list[dict]:
    assert result["status"] == "success", result
    return result["data"]["result"]


def test_prometheus_scrapes_the_drifted_feature(stack):
    def drifted_value():
        for series in _vector(stack.query("ml_feature_psi")):
            labels = series["metric"]
            if labels.get("model") == "fraud" and labels.get("feature_name") == "txn_count_1h":
                return float(series["value"][1])
        return None

    assert wait_until(drifted_value, timeout=30, message="ml_feature_psi of txn_count_1h in Prometheus") == 0.31
    [up] = _vector(stack.query('up{job="drift_assets"}'))
    assert up["value"][1] == "1"
    [store_up] = _vector(stack.query("ml_results_store_up"))
    assert store_up["value"][1] == "1"


def test_committed_rules_load_and_evaluate_without_error(stack):
    def groups():
        data = requests.get(f"{stack.prometheus.url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        # Wait until every rule has been evaluated at least once.
        return (
            data
            if data and all(r.get("lastEvaluation", "").startswith("20") for g in data for r in g["rules"])
            else None
        )

    [group] = wait_until(groups, timeout=30, message="rules evaluated")
    assert group["name"] == "ml_drift_alerts"
    expected = {r["alert"] for r in yaml.safe_load(ALERT_RULES.read_text())["groups"][0]["rules"]}
    assert {r["name"] for r in group["rules"]} == expected
    for rule in group["rules"]:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))


EXPECTED_FIRING = {
    ("FeatureDriftHigh", "fraud", "txn_count_1h"),
    ("FeatureDriftHigh", "llm", "output_length"),
    ("DriftRetrainingTrigger", "fraud", None),
    ("DriftRetrainingTrigger", "llm", None),
    ("PredictionDrift", "fraud", None),
    ("FeatureMissingRateHigh", "fraud", "account_age_days"),
    ("LlmRefusalRateHigh", "llm", None),
    ("LlmOutputLengthDrift", "llm", None),
}


def test_alerts_fire_from_the_store(stack):
    def firing():
        got = {
            (a["labels"]["alertname"], a["labels"].get("model"), a["labels"].get("feature_name")): a
            for a in stack.firing()
        }
        return got if set(got) >= EXPECTED_FIRING else None

    alerts = wait_until(firing, timeout=30, message=f"{sorted(EXPECTED_FIRING, key=str)} firing")
    assert set(alerts) == EXPECTED_FIRING  # nothing else: not stale, store up, exporter up, amount not drifted
    drift = alerts[("FeatureDriftHigh", "fraud", "txn_count_1h")]
    assert drift["labels"]["severity"] == "warning"
    assert drift["annotations"]["summary"] == "Feature drift detected: txn_count_1h"
    assert "0.310" in drift["annotations"]["description"] and "fraud" in drift["annotations"]["description"]
    trigger = alerts[("DriftRetrainingTrigger", "fraud", None)]["annotations"]["description"]
    assert "feature_psi_below_retrain_threshold" in trigger and "txn_count_1h = 0.310" in trigger
    assert "p-value 0.001" in alerts[("PredictionDrift", "fraud", None)]["annotations"]["description"]


def test_alerts_reach_the_receivers_through_alertmanager(stack):
    def delivered(path):
        return {
            (a["labels"]["alertname"], a["labels"]["model"])
            for r in stack.receiver.received(path)
            for a in r.json["alerts"]
        }

    wanted_pd = {("DriftRetrainingTrigger", "fraud"), ("PredictionDrift", "fraud"), ("DriftRetrainingTrigger", "llm")}
    wanted_slack = {("LlmRefusalRateHigh", "llm"), ("LlmOutputLengthDrift", "llm"), ("FeatureMissingRateHigh", "fraud")}
    wait_until(
        lambda: wanted_pd <= delivered("/pagerduty-ml") and wanted_slack <= delivered("/slack-ml"),
        timeout=30,
        message="notifications",
    )
    # FeatureDriftHigh fires in Prometheus but both models have a retraining trigger: inhibited.
    assert not {k for k in delivered("/slack-ml") if k[0] == "FeatureDriftHigh"}
    first = next(r.json for r in stack.receiver.received("/pagerduty-ml"))
    assert first["alerts"][0]["generatorURL"].startswith("http://")
    assert all(a["labels"]["job"] == "drift_assets" for r in stack.receiver.received() for a in r.json["alerts"])


# --------------------------------------------------------------------------- Grafana
def _dashboard() -> dict:
    return json.loads(GRAFANA_DASHBOARD.read_text())


def _panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_expressions(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target, annotation and variable query."""
    out = []
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target.get('refId')}", target["expr"]))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            out.append((f"annotation {annotation['name']!r}", annotation["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\)\s*", query)
            out.append((f"variable {variable['name']}", match.group(1) if match else query))
    return out


def substitute(expr: str, model: str = "fraud|llm") -> str:
    for name, value in {"model": model, "__range": "1h", "__rate_interval": "1m", "__interval": "15s"}.items():
        expr = expr.replace("${" + name + "}", value)
        expr = re.sub(r"\$" + re.escape(name) + r"\b", value, expr)
    assert "$" not in expr, expr
    return expr


def test_dashboard_structure():
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert variables["model"]["type"] == "query" and variables["model"]["multi"]
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))
    for panel in _panels(dashboard["panels"]):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
                assert (
                    "ALERTS" in target["expr"]
                    or "ml_results_store" in target["expr"]
                    or 'model=~"$model"' in target["expr"]
                ), target["expr"]
    exprs = " ".join(e for _, e in dashboard_expressions(dashboard))
    for metric in (
        "ml_feature_psi",
        "ml_drift_detected",
        "ml_feature_drifted",
        "ml_prediction_drift_psi",
        "ml_prediction_drift_ks_pvalue",
        "ml_feature_missing_rate",
        "ml_model_auc",
        "ml_model_performance",
        "ml_model_performance_lower",
        "ml_model_performance_upper",
        "ml_model_champion_auc",
        "ml_last_evaluation_timestamp_seconds",
        "ml_monitor_window_seconds",
        "ml_retraining_runs_total",
        "ml_model_promotions_total",
        "ml_llm_refusal_rate",
        "ml_llm_output_length_psi",
        "ml_check_failed",
        "ml_share_drifted_features",
        "ml_results_store_up",
        "ml_multivariate_reconstruction_error",
        "ml_multivariate_domain_auc",
        "ml_segment_feature_psi",
    ):
        assert metric in exprs, metric


def test_every_dashboard_expression_runs_in_prometheus(stack):
    # Let the alerts fire first, so ALERTS and the increase() panels have data.
    wait_until(lambda: len(stack.firing()) >= len(EXPECTED_FIRING), timeout=30, message="alerts firing")
    expressions = dashboard_expressions(_dashboard())
    assert len(expressions) >= 20
    empty = []
    for where, expr in expressions:
        result = stack.query(substitute(expr))
        assert result["status"] == "success", (where, expr, result)
        if not result["data"]["result"] and where.startswith("panel"):
            empty.append(where)
    # Every panel shows data for the drifted store (annotations may legitimately be empty).
    assert not empty, empty


# --------------------------------------------------------------------------- start-local.sh
def test_start_local_script_runs_and_stops(tmp_path):
    for kind in ("prometheus", "alertmanager"):
        binary(kind)  # skip/fail clearly when missing
    store = ResultsStore(str(tmp_path / "results"))
    write_drifted_store(store)
    prom_port, am_port = free_port(), free_port()
    with running_exporter(store) as exporter:
        env = dict(
            os.environ,
            PROMETHEUS_PORT=str(prom_port),
            ALERTMANAGER_PORT=str(am_port),
            EXPORTER_ADDR=f"127.0.0.1:{exporter.server_address[1]}",
            LOCAL_DIR=str(tmp_path / "local"),
            PROMETHEUS_BIN=binary("prometheus"),
            ALERTMANAGER_BIN=binary("alertmanager"),
        )
        log = open(tmp_path / "start-local.out", "wb")  # noqa: SIM115 - outlives this block (the process writes it)
        process = subprocess.Popen(
            ["bash", str(DEPLOY / "start-local.sh")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        try:
            prom = f"http://127.0.0.1:{prom_port}"
            wait_until(
                lambda: b"Ctrl-C stops both" in Path(tmp_path / "start-local.out").read_bytes(),
                timeout=30,
                message="start-local ready",
            )
            assert requests.get(f"http://127.0.0.1:{am_port}/-/ready", timeout=5).status_code == 200
            # Every URL the script prints answers 200 on Debian's packages (classic UI, the API),
            # and the amtool command it suggests works.
            printed = Path(tmp_path / "start-local.out").read_text()
            urls = sorted(set(re.findall(r"http://[^\s)]+", printed)))
            assert len(urls) >= 4, printed
            statuses = {url: requests.get(url, timeout=10).status_code for url in urls}
            assert set(statuses.values()) == {200}, statuses
            amtool = re.search(r"amtool alert query --alertmanager.url=[^\s)]+", printed)
            assert amtool, printed
            query = run([binary("amtool"), *amtool.group(0).split()[1:]])
            assert query.returncode == 0, query.stderr
            groups = requests.get(f"{prom}/api/v1/rules", timeout=5).json()["data"]["groups"]
            assert [g["name"] for g in groups] == ["ml_drift_alerts"]
            am_config = requests.get(f"http://127.0.0.1:{am_port}/api/v2/status", timeout=5).json()["config"][
                "original"
            ]
            assert str(DEPLOY / "alertmanager" / "secrets" / "slack_api_url") in am_config
            # Prometheus targets the exporter given in EXPORTER_ADDR and the Alertmanager of this run
            # (target discovery publishes a few seconds after start).
            targets = wait_until(
                lambda: requests.get(f"{prom}/api/v1/targets", timeout=5).json()["data"]["activeTargets"],
                timeout=20,
                message="scrape target",
            )
            assert [t["scrapeUrl"] for t in targets] == [f"http://127.0.0.1:{exporter.server_address[1]}/metrics"]
            managers = wait_until(
                lambda: requests.get(f"{prom}/api/v1/alertmanagers", timeout=5).json()["data"]["activeAlertmanagers"],
                timeout=20,
                message="alertmanager",
            )
            assert [a["url"] for a in managers] == [f"http://127.0.0.1:{am_port}/api/v2/alerts"]

            process.send_signal(signal.SIGINT)  # Ctrl-C
            assert process.wait(timeout=20) is not None
            output = Path(tmp_path / "start-local.out").read_text()
            assert "stopped Prometheus and Alertmanager" in output
            for port in (prom_port, am_port):
                with pytest.raises(requests.ConnectionError):
                    requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=2)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)  # the script's own process group (started above)
                process.wait(timeout=10)
            log.close()
