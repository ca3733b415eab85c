"""Webhook POSTs and the Slack message for a failed check."""

from __future__ import annotations

import json

import pytest
from servers import WebhookReceiver, free_port

from drift_assets.alerting.notify import (
    WebhookError,
    post_webhook,
    slack_message_for_check_failure,
)


def test_post_webhook_delivers_json():
    payload = {"text": "hello", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]}
    with WebhookReceiver() as receiver:
        response = post_webhook(f"{receiver.url}/services/T000/B000/secret", payload)
        assert response.status_code == 200
        [request] = receiver.received()
    assert request.path == "/services/T000/B000/secret"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json == payload


def test_http_error_names_the_host_not_the_secret():
    with WebhookReceiver(status=403, response_body=b"invalid_token") as receiver, pytest.raises(WebhookError) as info:
        post_webhook(f"{receiver.url}/services/T000/B000/supersecret?token=alsosecret", {"text": "x"})
    message = str(info.value)
    assert f"127.0.0.1:{receiver.port}" in message and "HTTP 403" in message and "invalid_token" in message
    assert "supersecret" not in message and "alsosecret" not in message
    assert info.value.status_code == 403


def test_connection_error_names_the_host_not_the_secret():
    port = free_port()  # nothing listens there
    with pytest.raises(WebhookError) as info:
        post_webhook(f"http://127.0.0.1:{port}/services/T000/B000/supersecret", {"text": "x"}, timeout=2)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "supersecret" not in str(info.value)
    # The requests exception (whose text has the full URL) is not chained onto it.
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_non_http_url_is_refused():
    with pytest.raises(WebhookError, match="unsupported URL scheme"):
        post_webhook("file:///etc/passwd", {"text": "x"})


def test_slack_message_names_monitor_partition_check_value_threshold():
    message = slack_message_for_check_failure(
        "fraud",
        "2026-09-28",
        "feature_psi_below_retrain_threshold",
        "ERROR",
        0.41234,
        0.25,
        ["txn_count_1h", "amount"],
        dagster_url="http://127.0.0.1:3000/runs/abc",
    )
    text = message["text"]
    for part in (
        "fraud",
        "2026-09-28",
        "feature_psi_below_retrain_threshold",
        "ERROR",
        "0.4123",
        "0.25",
        "txn_count_1h",
        "amount",
        "http://127.0.0.1:3000/runs/abc",
    ):
        assert part in text, part
    blocks = json.dumps(message["blocks"])
    for part in ("fraud", "2026-09-28", "feature_psi_below_retrain_threshold", "0.4123", "0.25", "txn_count_1h"):
        assert part in blocks, part
    assert message["blocks"][0]["type"] == "header"
    assert len(message["blocks"][0]["text"]["text"]) <= 150
    [button] = [b for b in message["blocks"] if b["type"] == "actions"][0]["elements"]
    assert button["url"] == "http://127.0.0.1:3000/runs/abc"
    json.dumps(message)  # serialisable as is


def test_slack_message_window_level_check_and_long_column_lists():
    window = slack_message_for_check_failure(
        "llm", "2026-10-13-14:00", "share_of_drifted_features_below_threshold", "WARN", 0.5, 0.3, None
    )
    assert "llm / 2026-10-13-14:00" in window["text"] and " on " not in window["text"]
    assert not [b for b in window["blocks"] if b["type"] == "actions"]
    many = slack_message_for_check_failure(
        "fraud", "2026-09-28", "missing_rate_below_threshold", "WARN", 0.07, 0.05, [f"f{i}" for i in range(25)]
    )
    assert "and 15 more" in many["text"]
    # Slack control characters in names are escaped, not turned into mentions or links.
    odd = slack_message_for_check_failure("<!channel>", "p", "c", "WARN", 1, 0, ["a&b"])
    mrkdwn = json.dumps([odd["text"]] + odd["blocks"][1:])  # the header is plain_text: never parsed
    assert odd["blocks"][0]["text"]["type"] == "plain_text"
    assert "<!channel>" not in mrkdwn and "&lt;!channel&gt;" in odd["text"] and "a&amp;b" in mrkdwn


def test_slack_message_is_accepted_by_a_webhook():
    message = slack_message_for_check_failure(
        "fraud", "2026-09-28", "prediction_has_no_drift", "ERROR", 0.001, 0.05, "fraud_score"
    )
    with WebhookReceiver() as receiver:
        post_webhook(receiver.url + "/slack", message)
        [request] = receiver.received("/slack")
    assert request.json == message
