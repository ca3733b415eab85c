"""A real Alertmanager with the committed routing and inhibition, delivering to a local webhook.

The test config is the committed deploy/alertmanager/alertmanager.yml with each receiver's
Slack/PagerDuty settings replaced by a webhook to a local receiver at /<receiver name>, and short
group timings. Route tree and inhibit_rules are loaded from the committed file as they are.
"""

from __future__ import annotations

import time

import pytest
import requests
import yaml
from servers import (
    ALERTMANAGER_CONFIG,
    WebhookReceiver,
    alertmanager_test_config,
    start_alertmanager,
    wait_until,
)

pytestmark = pytest.mark.slow  # servers, Dagster runs or long simulations

SLACK = "/slack-ml"
PAGERDUTY = "/pagerduty-ml"


@pytest.fixture(scope="module")
def receiver():
    with WebhookReceiver() as webhook:
        yield webhook


@pytest.fixture(scope="module")
def alertmanager(receiver, tmp_path_factory):
    with start_alertmanager(alertmanager_test_config(receiver.url), tmp_path_factory.mktemp("am")) as server:
        yield server


def alert(name: str, severity: str, model: str, **labels: str) -> dict:
    return {
        "labels": {"alertname": name, "severity": severity, "team": "ml", "model": model, **labels},
        "annotations": {"summary": f"{name} for {model}", "model": model, "value": "0.312"},
        "generatorURL": "http://127.0.0.1:9090/graph",
    }


def post_alerts(alertmanager, alerts: list[dict]) -> None:
    response = requests.post(f"{alertmanager.url}/api/v2/alerts", json=alerts, timeout=5)
    assert response.status_code == 200, response.text


def delivered(receiver, path: str, model: str) -> list[dict]:
    """Alerts (from every notification to ``path``) whose model label is ``model``."""
    out = []
    for request in receiver.received(path):
        out += [a for a in request.json["alerts"] if a["labels"].get("model") == model]
    return out


def test_drift_alert_reaches_the_slack_receiver_with_its_labels(alertmanager, receiver):
    post_alerts(alertmanager, [alert("FeatureDriftHigh", "warning", "fraud_a", feature_name="txn_count_1h")])
    [got] = wait_until(
        lambda: delivered(receiver, SLACK, "fraud_a"), timeout=20, message="FeatureDriftHigh at the Slack receiver"
    )
    assert got["status"] == "firing"
    assert got["labels"]["alertname"] == "FeatureDriftHigh"
    assert got["labels"]["model"] == "fraud_a"
    assert got["labels"]["feature_name"] == "txn_count_1h"
    assert got["annotations"]["value"] == "0.312"
    notification = next(
        r.json for r in receiver.received(SLACK) if any(a["labels"]["model"] == "fraud_a" for a in r.json["alerts"])
    )
    assert notification["receiver"] == "slack-ml"
    assert notification["groupLabels"] == {"alertname": "FeatureDriftHigh", "model": "fraud_a"}  # group_by
    assert not delivered(receiver, PAGERDUTY, "fraud_a")


def test_critical_alert_goes_to_pagerduty(alertmanager, receiver):
    post_alerts(alertmanager, [alert("PredictionDrift", "critical", "fraud_b")])
    [got] = wait_until(
        lambda: delivered(receiver, PAGERDUTY, "fraud_b"),
        timeout=20,
        message="PredictionDrift at the PagerDuty receiver",
    )
    assert got["labels"]["alertname"] == "PredictionDrift"
    assert not delivered(receiver, SLACK, "fraud_b")


def test_retraining_trigger_inhibits_feature_drift_of_the_same_model_only(alertmanager, receiver):
    post_alerts(
        alertmanager,
        [
            alert("DriftRetrainingTrigger", "critical", "fraud_c"),
            alert("FeatureDriftHigh", "warning", "fraud_c", feature_name="txn_count_1h"),
            alert("FeatureDriftHigh", "warning", "fraud_c", feature_name="amount"),
            # Another model without a critical alert: its warning is not inhibited (equal: [model]).
            alert("FeatureDriftHigh", "warning", "llm_c", feature_name="output_length"),
        ],
    )
    [critical] = wait_until(
        lambda: delivered(receiver, PAGERDUTY, "fraud_c"), timeout=20, message="DriftRetrainingTrigger delivered"
    )
    assert critical["labels"]["alertname"] == "DriftRetrainingTrigger"
    [other] = wait_until(
        lambda: delivered(receiver, SLACK, "llm_c"), timeout=20, message="llm_c FeatureDriftHigh delivered"
    )
    assert other["labels"]["feature_name"] == "output_length"

    # Alertmanager itself reports the fraud_c warnings as inhibited by the critical alert.
    def states() -> dict[str, dict]:
        alerts = requests.get(
            f"{alertmanager.url}/api/v2/alerts", params={"filter": 'model="fraud_c"'}, timeout=5
        ).json()
        return {a["labels"]["alertname"] + "/" + a["labels"].get("feature_name", ""): a["status"] for a in alerts}

    inhibited = wait_until(
        lambda: (
            (s := states())
            and all(
                v["state"] == "suppressed" and v["inhibitedBy"]
                for k, v in s.items()
                if k.startswith("FeatureDriftHigh")
            )
            and s
        ),
        timeout=10,
        message="FeatureDriftHigh suppressed",
    )
    assert inhibited["DriftRetrainingTrigger/"]["state"] == "active"
    assert len([k for k in inhibited if k.startswith("FeatureDriftHigh")]) == 2

    # Several group_interval cycles later, still only the critical one was delivered for fraud_c.
    time.sleep(3)
    assert not delivered(receiver, SLACK, "fraud_c")
    assert [a["labels"]["alertname"] for a in delivered(receiver, PAGERDUTY, "fraud_c")] == ["DriftRetrainingTrigger"]


def test_committed_receivers_render_and_read_their_secret_files(tmp_path):
    """The real slack/pagerduty receivers (templates, *_file secrets), pointed at a local webhook."""
    with WebhookReceiver() as webhook:
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        (secrets / "slack_api_url").write_text(f"{webhook.url}/services/T000/B000/slacksecret\n")
        (secrets / "pagerduty_routing_key").write_text("pd-routing-key-123")
        config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text().replace("/etc/alertmanager/secrets/", f"{secrets}/"))
        config["route"].update(group_wait="1s", group_interval="1s")
        for receiver in config["receivers"]:
            for pagerduty in receiver.get("pagerduty_configs", []):
                pagerduty["url"] = f"{webhook.url}/pagerduty/v2/enqueue"  # instead of events.pagerduty.com
        with start_alertmanager(yaml.safe_dump(config, sort_keys=False), tmp_path) as am:
            warning = alert("FeatureDriftHigh", "warning", "fraud", feature_name="txn_count_1h")
            warning["annotations"].update(
                summary="Feature drift detected: txn_count_1h",
                description="PSI of feature txn_count_1h for model fraud is 0.312",
            )
            critical = alert("PredictionDrift", "critical", "llm")
            critical["annotations"].update(summary="Prediction drift for model llm", description="PSI 0.300")
            post_alerts(am, [warning, critical])
            [slack] = wait_until(
                lambda: webhook.received("/services/T000/B000/slacksecret"), timeout=20, message="Slack notification"
            )
            [pagerduty] = wait_until(
                lambda: webhook.received("/pagerduty/v2/enqueue"), timeout=20, message="PagerDuty event"
            )

    attachment = slack.json["attachments"][0]
    assert attachment["title"] == "[FIRING:1] FeatureDriftHigh - model fraud"
    assert "Feature drift detected: txn_count_1h" in attachment["text"]
    assert "PSI of feature txn_count_1h for model fraud is 0.312" in attachment["text"]
    assert "feature: `txn_count_1h`" in attachment["text"]
    event = pagerduty.json
    assert event["routing_key"] == "pd-routing-key-123"  # read from the file
    assert event["event_action"] == "trigger"
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["summary"] == "PredictionDrift - model llm: Prediction drift for model llm"
    assert event["payload"]["custom_details"]["model"] == "llm"
