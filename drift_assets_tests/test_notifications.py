"""A failed ERROR check reaches a webhook (Slack-compatible) through the Dagster sensor: once per
failed evaluation, retried when the receiver is down, nothing for passed or WARN checks."""

from __future__ import annotations

import pytest
from dagster import build_sensor_context, instance_for_test
from servers import WebhookReceiver

from drift_assets.definitions import build_definitions
from drift_assets.monitoring.config import load_monitors
from drift_assets.orchestration.notifications import notification_sensors
from drift_assets.orchestration.resources import NotifierResource

pytestmark = pytest.mark.slow  # servers, Dagster runs or long simulations

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _tick(sensor, instance, cursor, url):
    context = build_sensor_context(
        instance=instance, cursor=cursor, resources={"notifier": NotifierResource(webhook_url=url)}
    )
    result = sensor(context)
    return context.cursor, result


def test_failed_error_checks_are_posted_once_and_retried_after_a_failure(project):
    defs = build_definitions()
    sensor = notification_sensors(list(load_monitors()))[0]
    with instance_for_test() as instance:
        assert (
            defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET).success
        )
        assert (
            defs.resolve_job_def("fraud_window_job")
            .execute_in_process(partition_key="2026-08-03", instance=instance, run_config=QUIET)
            .success
        )
        with WebhookReceiver() as receiver:
            cursor, _ = _tick(sensor, instance, None, receiver.url)
            assert receiver.received() == []  # a stationary week: nothing to say

            assert (
                defs.resolve_job_def("fraud_window_job")
                .execute_in_process(partition_key="2026-08-17", instance=instance, run_config=QUIET)
                .success
            )
            cursor, _ = _tick(sensor, instance, cursor, receiver.url)
            posts = [p.json for p in receiver.received()]
            texts = " ".join(p["text"] for p in posts)
            assert "feature_psi_below_retrain_threshold" in texts and "prediction_has_no_drift" in texts
            assert "2026-08-17" in texts and "txn_count_1h" in texts
            assert "feature_psi_below_warn_threshold" not in texts  # WARN is not posted
            assert all("ERROR" in p["text"] for p in posts)
            count = len(posts)

            _tick(sensor, instance, cursor, receiver.url)  # same cursor again: nothing new
            assert len(receiver.received()) == count

        # The receiver is down for the next failure: nothing is lost, the next tick delivers it.
        assert (
            defs.resolve_job_def("fraud_window_job")
            .execute_in_process(partition_key="2026-08-24", instance=instance, run_config=QUIET)
            .success
        )
        with WebhookReceiver(status=503) as down:
            failed_cursor, result = _tick(sensor, instance, cursor, down.url)
            assert len(down.received()) == 1
        with WebhookReceiver() as back:
            _tick(sensor, instance, failed_cursor, back.url)
            texts = [p.json["text"] for p in back.received()]
            assert texts and all("2026-08-24" in t for t in texts)
