"""Estimated performance through Dagster, on the fraud simulation (``project``): the estimator fitted
once on the labelled reference, an estimate with its band for every window (labels or not), realized
and estimated side by side once labels cover the window, the estimated-AUC check and the retraining
sensor's ``require_performance_impact``. On an on-disk instance (``instance_for_test``)."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from dagster import AssetCheckKey, AssetKey, instance_for_test
from support import write_monitors_file

from drift_assets.cli.demo import evaluate_sensor, performance_line, retraining_decision
from drift_assets.definitions import build_definitions
from drift_assets.monitoring.config import load_monitors
from drift_assets.stats.calibration import CalibrationMap
from drift_assets.stats.performance_estimation import PerformanceEstimator, count_scores, estimate_performance
from drift_assets.stats.summary import WindowSummary

pytestmark = pytest.mark.slow  # Dagster runs

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
WEEKS = ["2026-08-03", "2026-08-10", "2026-08-17", "2026-08-24", "2026-08-31", "2026-09-07"]
LABELLED, PENDING = "2026-08-03", "2026-09-07"  # labels arrive ~14 days late: none for the last two weeks
PERFORMANCE = AssetKey(["fraud", "model_performance"])
ESTIMATED = "estimated_auc_not_below_champion"


def run_job(defs, instance, name, partition=None):
    result = defs.resolve_job_def(name).execute_in_process(partition_key=partition, instance=instance, run_config=QUIET)
    assert result.success
    return result


def record(project, week) -> dict:
    return json.loads((project / "reports" / "fraud" / "performance" / f"{week}.json").read_text())


def check(instance, name, week):
    history = instance.event_log_storage.get_asset_check_execution_history(AssetCheckKey(PERFORMANCE, name), limit=50)
    return {r.partition: r for r in history}[week].evaluation


def check_failed(instance, name, week) -> bool:
    """Evaluated and failed (a check that could not be evaluated has no result: never a failure)."""
    evaluation = check(instance, name, week)
    return hasattr(evaluation, "passed") and not evaluation.passed


def sorted_expected_auc(scores: np.ndarray, p: np.ndarray) -> float:
    """Exact expected AUC from per-row calibrated probabilities (no binning): the independent value."""
    order = np.argsort(scores, kind="stable")
    p = p[order]
    negatives_below = np.cumsum(1.0 - p) - (1.0 - p)
    pairs = p.sum() * (1.0 - p).sum() - (p * (1.0 - p)).sum()
    return float((p * negatives_below).sum() / pairs)


def week_scores(project, week) -> np.ndarray:
    files = sorted((project / "data" / "fraud" / "log").glob("date=*/*.parquet"))
    start = np.datetime64(week)
    days = {str(start + np.timedelta64(d, "D")) for d in range(7)}
    parts = [pq.read_table(f, columns=["fraud_score"]) for f in files if f.parent.name[len("date=") :] in days]
    return np.concatenate([t.column("fraud_score").to_numpy() for t in parts])


def test_every_window_has_an_estimate_and_labelled_ones_are_reconciled(project):
    defs = build_definitions()
    with instance_for_test() as instance:
        run_job(defs, instance, "fraud_reference_job")
        estimator = instance.get_latest_materialization_event(
            AssetKey(["fraud", "performance_estimator"])
        ).asset_materialization.metadata
        assert estimator["reference_rows"].value == 10_000
        assert estimator["brier_score_calibrated"].value <= estimator["brier_score_raw"].value + 1e-12
        results, metadata_of = {}, {}
        for week in (PENDING, LABELLED):
            results[week] = run_job(defs, instance, "fraud_window_job", week)
            metadata = instance.get_latest_materialization_event(PERFORMANCE).asset_materialization.metadata
            assert {"estimated_roc_auc", "estimated_auc_lower", "estimated_auc_upper"} <= set(metadata)
            metadata_of[week] = metadata

        pending, labelled = record(project, PENDING), record(project, LABELLED)
        # Before labels: the estimate with its band, no realized value, and the check evaluated on it.
        assert pending["status"] == "labels_pending" and pending["realized"] is None
        est = pending["estimated"]
        assert est["lower"] < est["roc_auc"] < est["upper"] and est["rows"] == 3000
        assert est["threshold"] == 0.5 and "CBPE" in est["method"]
        evaluation = check(instance, ESTIMATED, PENDING)
        assert evaluation.passed and evaluation.metadata["value"].value == pytest.approx(est["upper"])
        # The realized-AUC check is not evaluated before labels (no result: the UI shows it skipped).
        assert check(instance, "auc_not_below_champion", PENDING) is None or not hasattr(
            check(instance, "auc_not_below_champion", PENDING), "passed"
        )
        assert "labels pending" in metadata_of[PENDING]["check auc_not_below_champion"].value

        # Independent value: calibrate the week's scores with the stored map, exact pairwise expectation.
        stored = json.loads((project / "assets" / "fraud" / "performance_estimator" / "__all__.json").read_text())
        scores = week_scores(project, PENDING)
        exact = sorted_expected_auc(scores, CalibrationMap.from_dict(stored["calibration"])(scores))
        assert est["roc_auc"] == pytest.approx(exact, abs=2e-3)

        # Once labelled: realized, estimated and the estimate's error side by side.
        assert labelled["status"] == "ok"
        realized, error = labelled["realized"], labelled["estimate_error"]
        assert realized["roc_auc"] == labelled["auc"]
        assert error["roc_auc"] == pytest.approx(labelled["estimated"]["roc_auc"] - realized["roc_auc"])
        band = labelled["estimated"]
        assert error["roc_auc_within_band"] == (band["lower"] <= realized["roc_auc"] <= band["upper"])
        assert error["recall"] == pytest.approx(band["recall"] - realized["recall"])
        metadata = instance.get_latest_materialization_event(PERFORMANCE).asset_materialization.metadata
        assert metadata["realized_roc_auc"].value == pytest.approx(realized["roc_auc"])
        assert metadata["estimate_error_auc"].value == pytest.approx(error["roc_auc"])

        # The demo's per-week line: estimate with band, realized (or pending), the retraining decision.
        storage, monitor = defs.resources["storage"].storage(), load_monitors().get("fraud")
        line = performance_line(storage, monitor, LABELLED, results[LABELLED])
        expected = (
            f"estimated AUC {band['roc_auc']:.2f} [{band['lower']:.2f}, {band['upper']:.2f}]"
            f" | realized {realized['roc_auc']:.2f} | "
        )
        assert line.startswith(expected), line
        assert re.fullmatch(
            r"estimated AUC 0\.\d\d \[0\.\d\d, (0|1)\.\d\d\] \| realized pending \(0% labelled\) \| .+",
            performance_line(storage, monitor, PENDING, results[PENDING]),
        )


def test_estimated_check_fails_error_below_champion_and_can_trigger_retraining(project):
    # A champion that claims AUC 0.99: every band's upper bound is more than 0.02 below it.
    meta = project / "data" / "fraud" / "models" / "versions" / "v0001" / "metadata.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "auc_reference": 0.99}))
    path = write_monitors_file(
        project / "monitors-estimated.yaml",
        retraining={"enabled": True, "on_checks": [ESTIMATED], "cooldown_hours": 0, "holdout_weeks": 1},
    )
    defs = build_definitions(monitors_file=path)
    with instance_for_test() as instance:
        run_job(defs, instance, "fraud_reference_job")
        run = run_job(defs, instance, "fraud_window_job", PENDING)
        evaluation = check(instance, ESTIMATED, PENDING)
        assert not evaluation.passed and evaluation.severity.value == "ERROR"
        assert evaluation.metadata["value"].value < 0.99 - 0.02
        tick = evaluate_sensor(defs, "fraud_retraining_sensor", instance, None)
        assert [r.partition_key for r in tick.run_requests] == [PENDING]
        assert tick.run_requests[0].run_key == f"retrain:fraud:{PENDING}:{run.run_id}"


def _drift_ticks(project, instance, **retraining):
    settings = {"enabled": True, "on_checks": ["feature_psi_below_retrain_threshold"], "cooldown_hours": 0}
    path = write_monitors_file(project / "monitors-impact.yaml", retraining={**settings, **retraining})
    defs = build_definitions(monitors_file=path)
    requests, cursor = [], None
    for _ in range(10):
        tick = evaluate_sensor(defs, "fraud_retraining_sensor", instance, cursor)
        cursor = tick.cursor
        if not tick.run_requests:
            return [r.partition_key for r in requests]
        requests += tick.run_requests
    raise AssertionError("sensor kept requesting")


def test_require_performance_impact_retrains_only_where_performance_dropped(project):
    defs = build_definitions()
    with instance_for_test() as instance:
        run_job(defs, instance, "fraud_reference_job")
        for week in WEEKS:
            run_job(defs, instance, "fraud_window_job", week)
        drifted = [w for w in WEEKS if not check_drift(instance, w)]
        dropped = [
            w
            for w in WEEKS
            if check_failed(instance, "auc_not_below_champion", w) or check_failed(instance, ESTIMATED, w)
        ]
        assert drifted == WEEKS[2:]  # the wave from week 3
        # The design document's matrix: every drift ERROR retrains.
        assert _drift_ticks(project, instance) == drifted
        # With the option: only the drifted weeks whose performance also dropped (here the labelled
        # ones: the wave's damage is not visible in the scores, see the simulator's stories).
        impact = _drift_ticks(project, instance, require_performance_impact=True)
        monitor = load_monitors(project / "monitors-impact.yaml").get("fraud")
        flat_drift = [("feature_psi_below_retrain_threshold", "ERROR", "")]
        assert retraining_decision(monitor, flat_drift).startswith("drift without performance impact")
        assert retraining_decision(monitor, [*flat_drift, ("auc_not_below_champion", "ERROR", "")]).startswith(
            "retrain"
        )
        assert impact == [w for w in drifted if w in dropped]
        assert impact and len(impact) < len(drifted)


def check_drift(instance, week) -> bool:
    key = AssetCheckKey(AssetKey(["fraud", "drift_report"]), "feature_psi_below_retrain_threshold")
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=50)
    return {r.partition: r for r in history}[week].evaluation.passed


def test_a_reference_that_cannot_calibrate_leaves_drift_and_realized_auc_running(project):
    reference = project / "data" / "fraud" / "reference" / "reference.parquet"
    table = pq.read_table(reference)
    scores = table.column("fraud_score").to_numpy() * 2.0  # not a probability any more
    pq.write_table(table.set_column(table.schema.get_field_index("fraud_score"), "fraud_score", [scores]), reference)
    defs = build_definitions()
    with instance_for_test() as instance:
        run_job(defs, instance, "fraud_reference_job")
        run_job(defs, instance, "fraud_window_job", LABELLED)
        rec = record(project, LABELLED)
        assert rec["estimated"] is None and rec["status"] == "ok" and rec["auc"] > 0.5
        assert "'fraud_score'" in rec["estimate_problem"] and "outside [0, 1]" in rec["estimate_problem"]
        # Not evaluated (no result, the UI shows it skipped), and the reason is in the metadata.
        assert not hasattr(check(instance, ESTIMATED, LABELLED), "passed")
        metadata = instance.get_latest_materialization_event(PERFORMANCE).asset_materialization.metadata
        assert "outside [0, 1]" in metadata["check estimated_auc_not_below_champion"].value
        assert (project / "reports" / "fraud" / "drift" / f"{LABELLED}.json").exists()


def test_the_estimate_is_made_from_the_score_counts_of_the_drift_pass(project):
    """drift_report counts the scores in its own pass over the window and stores them with the drift
    counts; model_performance's estimate is exactly the one made from those stored counts."""
    defs = build_definitions()
    with instance_for_test() as instance:
        run_job(defs, instance, "fraud_reference_job")
        run_job(defs, instance, "fraud_window_job", PENDING)
    stored = json.loads((project / "assets" / "fraud" / "window_counts" / f"{PENDING}.json").read_text())
    summary = WindowSummary.from_dict(stored["summary"])
    estimator = PerformanceEstimator.from_json(
        (project / "assets" / "fraud" / "performance_estimator" / "__all__.json").read_text()
    )
    assert summary.performance is not None and summary.performance.total_rows == summary.rows == 3000
    assert summary.performance.estimator_fingerprint == estimator.fingerprint
    # Independent: the week's scores counted by themselves.
    assert summary.performance.to_dict() == count_scores(estimator, week_scores(project, PENDING)).to_dict()
    assert record(project, PENDING)["estimated"] == estimate_performance(estimator, summary.performance).to_dict()


def test_scores_outside_0_1_in_a_window_name_the_column_and_drift_still_runs(project):
    day = project / "data" / "fraud" / "log" / "date=2026-08-04"
    for path in day.glob("*.parquet"):
        table = pq.read_table(path)
        scores = table.column("fraud_score").to_numpy() * 3.0 + 0.5  # not a probability any more
        pq.write_table(table.set_column(table.schema.get_field_index("fraud_score"), "fraud_score", [scores]), path)
    defs = build_definitions()
    with instance_for_test() as instance:
        run_job(defs, instance, "fraud_reference_job")
        run_job(defs, instance, "fraud_window_job", LABELLED)
        rec = record(project, LABELLED)
        problem = rec["estimate_problem"]
        assert rec["estimated"] is None and "\n" not in problem
        assert problem.startswith(f"fraud window {LABELLED}: column 'fraud_score' (prediction) has ")
        assert "outside [0, 1]" in problem
        assert rec["status"] == "ok" and rec["auc"] > 0.5  # realized AUC from the labels still runs
        assert not hasattr(check(instance, ESTIMATED, LABELLED), "passed")  # not evaluated, not passed
        # Every drift check ran on the window, the prediction's drift included (it sees the damage).
        drift = json.loads((project / "reports" / "fraud" / "drift" / f"{LABELLED}.json").read_text())
        names = {c["name"] for c in drift["checks"]}
        assert {"prediction_has_no_drift", "feature_psi_below_retrain_threshold"} <= names
        assert not next(c for c in drift["checks"] if c["name"] == "prediction_has_no_drift")["passed"]
