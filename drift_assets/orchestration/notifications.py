"""Dagster tells people too: a sensor posts every failed ERROR check to a Slack-compatible webhook,
so a team without Prometheus still hears about drift.

Delivery is at least once: the cursor (shared ``CheckExecutionFeed`` logic with the retraining
trigger) advances only over executions that were posted or need no post. A webhook failure stops
the tick; the next tick retries from the first unposted failure.
"""

from __future__ import annotations

from dagster import (
    AssetCheckKey,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,
)

from drift_assets.alerting.notify import (
    WebhookError,
    post_webhook,
    slack_message_for_check_failure,
)
from drift_assets.monitoring.config import MonitorConfig
from drift_assets.orchestration.check_feed import CheckExecutionFeed
from drift_assets.orchestration.keys import MonitorKeys
from drift_assets.orchestration.resources import NotifierResource

SENSOR_NAME = "check_failure_notifier"


def error_check_keys(monitors: list[MonitorConfig]) -> list[AssetCheckKey]:
    keys = []
    for monitor in monitors:
        mk = MonitorKeys(monitor.name)
        for asset_key, asset in ((mk.drift_report, "drift_report"), (mk.model_performance, "model_performance")):
            keys += [
                AssetCheckKey(asset_key, rule.name) for rule in monitor.check_rules(asset) if rule.severity == "ERROR"
            ]
    return keys


def run_finished(instance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is None or run.is_finished


def _message(record, dagster_url: str) -> dict:
    meta = {k: v.value for k, v in (record.evaluation.metadata or {}).items()}
    failing = meta.get("failing_columns", "")
    columns = [c.strip() for c in failing.split(",") if c.strip() and c.strip() != "(none)"]
    return slack_message_for_check_failure(
        monitor=record.key.asset_key.path[0],
        partition=record.partition or "-",
        check_name=record.key.name,
        severity=record.evaluation.severity.value,
        value=meta.get("value", float("nan")),
        threshold=meta.get("threshold", float("nan")),
        columns=columns,
        dagster_url=f"{dagster_url.rstrip('/')}/runs/{record.run_id}" if dagster_url else None,
        what_changed=meta.get("what_changed"),
    )


def notification_sensors(monitors: list[MonitorConfig]) -> list:
    keys = error_check_keys(monitors)

    @sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description="Posts every failed ERROR check to the webhook in DRIFT_ASSETS_WEBHOOK_URL (Slack-compatible).",
    )
    def check_failure_notifier(context: SensorEvaluationContext, notifier: NotifierResource):
        if not notifier.webhook_url:
            return SkipReason("no webhook configured (set DRIFT_ASSETS_WEBHOOK_URL)")
        feed = CheckExecutionFeed(context.instance, keys, context.cursor)
        sent, error = 0, None
        for key in keys:
            for record in feed.unconsumed(key):
                if record.status == AssetCheckExecutionRecordStatus.PLANNED:
                    if run_finished(context.instance, record.run_id):
                        feed.consume(key, record.id)  # the run ended without evaluating it
                        continue
                    break  # still running: keep order, look again next tick
                failed = record.status == AssetCheckExecutionRecordStatus.FAILED and record.evaluation is not None
                if failed and record.evaluation.severity.value == "ERROR":
                    try:
                        post_webhook(notifier.webhook_url, _message(record, notifier.dagster_url))
                    except WebhookError as exc:
                        error = exc
                        break
                    sent += 1
                feed.consume(key, record.id)
            if error:
                break
        context.update_cursor(feed.cursor())
        if error:
            context.log.error(f"webhook delivery failed, will retry next tick: {error}")
            return SkipReason(f"posted {sent}; delivery failed: {error}")
        return SkipReason(f"posted {sent} failed ERROR check(s)")

    return [check_failure_notifier]
