"""The retraining trigger (drift_assets.orchestration.sensors): which failed check evaluations start a retraining,
exactly once, and when it waits. No DVC here: requests are inspected, not run (test_retraining.py
runs them).

Setting: the shared 6-week simulation (drift from week 3, 2026-08-17), plus a test-only WARN check
that fails every week -- which is also listed in ``on_checks`` -- while the ERROR checks fail only
from week 3: WARN failures must never trigger.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterRunStatus, instance_for_test
from dagster._core.test_utils import create_run_for_test
from support import write_monitors_file

from drift_assets.cli.demo import evaluate_sensor
from drift_assets.definitions import build_definitions
from drift_assets.monitoring.config import load_monitors
from drift_assets.monitoring.registry import ModelRegistry
from drift_assets.orchestration.keys import (
    RETRAINING_TAG,
    TRIGGER_CHECK_TAG,
    TRIGGER_PARTITION_TAG,
    TRIGGER_RUN_TAG,
)
from drift_assets.orchestration.sensors import (
    evaluate_retraining,
    retraining_sensor_name,
)
from drift_assets.stats.checks import DEFAULT_CHECKS, CheckRule
from drift_assets.storage.root import Root

pytestmark = pytest.mark.slow  # servers, Dagster runs or long simulations

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
WEEKS = ["2026-08-03", "2026-08-10", "2026-08-17", "2026-08-24", "2026-08-31", "2026-09-07"]
DRIFTED = WEEKS[2:]
SENSOR = "fraud_retraining_sensor"
DRIFT_REPORT = AssetKey(["fraud", "drift_report"])
ALWAYS_WARNS = "test_only_check_that_warns_every_window"
ON_CHECKS = [ALWAYS_WARNS, "feature_psi_below_retrain_threshold", "prediction_has_no_drift"]


def _warns_every_window(rule, facts):
    return [rule.outcome(None, False, 1.0, 0.0)]


# A WARN check that fails every week (through the check registry), listed in on_checks: WARN
# failures must never retrain.
CHECKS = DEFAULT_CHECKS.extended(
    CheckRule(ALWAYS_WARNS, "WARN", "share", "higher", "fails every window (test only)", evaluate=_warns_every_window)
)


def monitors_file(tmp_path, **retraining):
    settings = {"enabled": True, "on_checks": ON_CHECKS, "cooldown_hours": 0, "min_auc_gain": 0.0, "holdout_weeks": 1}
    return write_monitors_file(tmp_path / "monitors-retraining.yaml", retraining={**settings, **retraining})


def definitions(path):
    return build_definitions(monitors_file=path, check_table=CHECKS)


def monitor_of(path):
    return replace(load_monitors(path).get("fraud"), checks=CHECKS)


def run_week(defs, instance, key):
    result = defs.resolve_job_def("fraud_window_job").execute_in_process(
        partition_key=key, instance=instance, run_config=QUIET
    )
    assert result.success
    return result


@pytest.fixture
def evaluated(project):
    """Definitions and an on-disk instance where the reference and all six weeks were evaluated."""
    path = monitors_file(project)
    defs = definitions(path)
    with instance_for_test() as instance:
        assert (
            defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET).success
        )
        runs = {key: run_week(defs, instance, key).run_id for key in WEEKS}
        yield defs, instance, runs, monitor_of(path)


def drain(defs, instance, cursor, limit=20):
    """Tick until a tick requests nothing; returns (requests in order, final cursor, last skip reason)."""
    requests = []
    for _ in range(limit):
        result = evaluate_sensor(defs, SENSOR, instance, cursor)
        cursor = result.cursor
        if not result.run_requests:
            return requests, cursor, result.skip_reason
        assert len(result.run_requests) == 1  # one retraining per monitor per tick
        requests += result.run_requests
    raise AssertionError("sensor kept requesting")


def defs_reports(defs):
    from pathlib import Path

    return Path(str(defs.resources["storage"].reports_root))


def failed_error_evaluations(instance):
    out = []
    for name in ON_CHECKS:
        for rec in instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(DRIFT_REPORT, name), limit=100
        ):
            if rec.evaluation and not rec.evaluation.passed and rec.evaluation.severity.value == "ERROR":
                out.append((rec.partition, rec.run_id, name))
    return out


def test_one_request_per_failed_error_evaluation_and_none_for_warn_or_passed(evaluated):
    defs, instance, runs, _ = evaluated
    # The setting: WARN fails every week, ERROR checks from week 3 on.
    warn = {
        r.partition: r
        for r in instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(DRIFT_REPORT, ALWAYS_WARNS), limit=10
        )
    }
    assert all(not warn[k].evaluation.passed and warn[k].evaluation.severity.value == "WARN" for k in WEEKS)
    failures = failed_error_evaluations(instance)
    assert {p for p, _, _ in failures} == set(DRIFTED)
    assert len(failures) == 2 * len(DRIFTED)  # PSI and prediction drift fail together each week

    first = evaluate_sensor(defs, SENSOR, instance, None)
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.partition_key == "2026-08-17"  # oldest failing week first
    assert request.asset_selection == [AssetKey(["fraud", "retrained_model"])]
    assert request.run_key == f"retrain:fraud:2026-08-17:{runs['2026-08-17']}"
    assert request.tags[RETRAINING_TAG] == "fraud"
    assert request.tags[TRIGGER_CHECK_TAG] == "feature_psi_below_retrain_threshold,prediction_has_no_drift"
    assert request.tags[TRIGGER_PARTITION_TAG] == "2026-08-17"
    assert request.tags[TRIGGER_RUN_TAG] == runs["2026-08-17"]
    assert set(json.loads(first.cursor)["checks"]) == {f"fraud/drift_report:{n}" for n in ON_CHECKS}

    rest, cursor, skip = drain(defs, instance, first.cursor)
    requests = [request, *rest]
    # Exactly one per failing (week, materialisation run); none for the WARN-only weeks.
    assert [r.partition_key for r in requests] == DRIFTED
    assert [r.run_key for r in requests] == [f"retrain:fraud:{k}:{runs[k]}" for k in DRIFTED]
    assert "no new failed ERROR evaluation" in skip.skip_message


def test_saved_cursor_repeats_nothing_and_a_rerun_of_the_failing_week_triggers_again(evaluated):
    defs, instance, runs, _ = evaluated
    emitted, cursor, _ = drain(defs, instance, None)
    assert len(emitted) == len(DRIFTED)

    # A restarted daemon resumes from the stored cursor: nothing is repeated.
    again = evaluate_sensor(defs, SENSOR, instance, cursor)
    assert again.run_requests == [] and again.cursor == cursor

    # The failing week is evaluated again (a new run): one new trigger, with a new run key.
    rerun = run_week(defs, instance, "2026-09-07")
    requests, cursor, _ = drain(defs, instance, cursor)
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("2026-09-07", f"retrain:fraud:2026-09-07:{rerun.run_id}")
    ]
    assert requests[0].run_key not in {r.run_key for r in emitted}

    # Even with the cursor lost, every request has a run key the daemon already launched (it drops
    # them): the superseded first evaluation of 2026-09-07 is not requested again.
    replay, _, _ = drain(defs, instance, None)
    keys_so_far = {r.run_key for r in emitted} | {requests[0].run_key}
    assert {r.run_key for r in replay} <= keys_so_far
    assert f"retrain:fraud:2026-09-07:{runs['2026-09-07']}" not in {r.run_key for r in replay}


def test_one_retraining_per_monitor_at_a_time_and_cool_down(evaluated):
    defs, instance, runs, monitor = evaluated
    running = create_run_for_test(
        instance, job_name="fraud_retraining_job", status=DagsterRunStatus.STARTED, tags={RETRAINING_TAG: "fraud"}
    )
    blocked = evaluate_sensor(defs, SENSOR, instance, None)
    assert blocked.run_requests == []
    assert "started" in blocked.skip_reason.skip_message and running.run_id in blocked.skip_reason.skip_message
    assert json.loads(blocked.cursor) == {"checks": {}}  # cursor left as it was: nothing consumed

    instance.report_run_failed(running)
    released = evaluate_sensor(defs, SENSOR, instance, blocked.cursor)
    assert [r.partition_key for r in released.run_requests] == ["2026-08-17"]

    # Cool-down: counted from the start (here: creation) of the last retraining run.
    cooling = dataclasses.replace(monitor, retraining=dataclasses.replace(monitor.retraining, cooldown_hours=2.0))
    registry = ModelRegistry(Root.open(str(defs.resources["storage"].data_root)), monitor.model_registry)
    last = instance.get_run_record_by_id(running.run_id)
    started = last.start_time or last.create_timestamp.timestamp()
    within = evaluate_retraining(instance, cooling, released.cursor, registry=registry, now=started + 3600)
    assert within.run_requests == [] and "cool-down" in within.skip_reason
    assert within.cursor == released.cursor
    after = evaluate_retraining(instance, cooling, released.cursor, registry=registry, now=started + 2 * 3600 + 1)
    assert [r.partition_key for r in after.run_requests] == ["2026-08-24"]


def test_after_a_promotion_older_failures_are_stale_and_the_reference_is_refreshed(evaluated):
    defs, instance, runs, monitor = evaluated
    data = Root.open(str(defs.resources["storage"].data_root))
    registry = ModelRegistry(data, monitor.model_registry)
    first = evaluate_sensor(defs, SENSOR, instance, None)
    assert [r.partition_key for r in first.run_requests] == ["2026-08-17"]

    # The retraining for 2026-08-17 promoted a new champion (stand-in: a copy of v0001).
    number, path = registry.reserve()
    data.write_bytes(f"{path}/model.joblib", data.read_bytes(registry.champion().model_file))
    registry.commit(number, {"status": "promoted", "parent": 1, "auc_reference": 0.9})
    registry.promote(number, reason="test")

    tick = evaluate_sensor(defs, SENSOR, instance, first.cursor)
    # The reference assets are requested; the failures of later weeks, measured against v0001, are not.
    assert len(tick.run_requests) == 1
    refresh = tick.run_requests[0]
    assert refresh.partition_key is None
    assert set(refresh.asset_selection) == {
        AssetKey(["fraud", n])
        for n in ("reference_data", "reference_profile", "champion_model", "performance_estimator")
    }
    evaluation = evaluate_retraining(instance, monitor, first.cursor, registry=registry)
    assert {(p, why.split(" (")[0]) for _, p, _, why in evaluation.dropped} == {(k, "stale") for k in DRIFTED[1:]}

    from drift_assets.cli.demo import execute_run_request

    assert execute_run_request(defs, SENSOR, refresh, instance).success
    quiet = evaluate_sensor(defs, SENSOR, instance, tick.cursor)
    assert quiet.run_requests == []  # champion_model now records v0002; nothing pending

    # A backfill of a week the old champion served, evaluated after the promotion: its document
    # says which reference it was measured against (the stand-in v0002 has no reference of its own:
    # the configured one), and no retraining is requested for it.
    backfill = run_week(defs, instance, "2026-08-24")
    doc = json.loads((defs_reports(defs) / "fraud" / "drift" / "2026-08-24.json").read_text())
    assert doc["model_version"] == "v0001" and doc["reference_lineage"] == {"reference_version": "configured"}
    old = evaluate_retraining(instance, monitor, quiet.cursor, registry=registry)
    assert old.run_requests == []
    assert {(p, why.split(" (")[0]) for _, p, r, why in old.dropped if r == backfill.run_id} == {
        ("2026-08-24", "stale")
    }
    assert all("served by v0001" in why for _, _, r, why in old.dropped if r == backfill.run_id)

    # A week served by the new champion (its log re-scored, as a deployment would) triggers normally.
    from datetime import date

    from drift_assets.cli.demo import serve_champion_from

    serve_champion_from(defs.resources["storage"].storage(), monitor, date(2026, 8, 31))
    rerun = run_week(defs, instance, "2026-08-31")
    fresh = evaluate_sensor(defs, SENSOR, instance, old.cursor)
    assert [r.run_key for r in fresh.run_requests] == [f"retrain:fraud:2026-08-31:{rerun.run_id}"]


def test_unknown_check_in_on_checks_fails_at_load_time(project):
    from drift_assets.monitoring.config import ConfigError

    path = monitors_file(project, on_checks=["feature_psi_below_retrain_threshold", "no_such_check"])
    with pytest.raises(ConfigError, match="no_such_check"):
        build_definitions(monitors_file=path)


def test_sensor_names():
    monitor = load_monitors().get("fraud")
    assert retraining_sensor_name(monitor) == SENSOR
