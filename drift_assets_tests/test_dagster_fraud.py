"""The fraud monitor through Dagster: definitions load, weekly partitions materialise on an on-disk
instance, checks pass on stationary weeks and fail with the right severity on drifted ones."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import AssetCheckKey, AssetKey, build_schedule_context, instance_for_test

from drift_assets.definitions import build_definitions

pytestmark = pytest.mark.slow  # servers, Dagster runs or long simulations

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
DRIFT_REPORT = AssetKey(["fraud", "drift_report"])
STATIONARY, DRIFTED = "2026-08-03", "2026-08-17"


def run_reference(defs, instance):
    result = defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET)
    assert result.success


def run_week(defs, instance, key, raise_on_error=True):
    return defs.resolve_job_def("fraud_window_job").execute_in_process(
        partition_key=key, instance=instance, run_config=QUIET, raise_on_error=raise_on_error
    )


def check_records(instance, check_name, asset=DRIFT_REPORT):
    history = instance.event_log_storage.get_asset_check_execution_history(AssetCheckKey(asset, check_name), limit=50)
    return {r.partition: r for r in history}


def test_project_definitions_load_and_validate():
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for name in (
        "reference_data",
        "reference_profile",
        "production_window",
        "drift_report",
        "model_performance",
        "champion_model",
    ):
        assert f"fraud/{name}" in keys
    checks = {k.name for k in graph.asset_check_keys if k.asset_key == DRIFT_REPORT}
    assert {
        "feature_psi_below_warn_threshold",
        "feature_psi_below_retrain_threshold",
        "prediction_has_no_drift",
        "missing_rate_below_threshold",
        "share_of_drifted_features_below_threshold",
    } <= checks
    env = {**os.environ, "DAGSTER_HOME": ""}
    env.pop("DAGSTER_HOME")
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Validation successful" in out.stdout + out.stderr


def test_weekly_windows_pass_when_stationary_and_fail_with_severity_when_drifted(project):
    defs = build_definitions()
    with instance_for_test() as instance:
        run_reference(defs, instance)
        assert run_week(defs, instance, STATIONARY).success
        drifted_run = run_week(defs, instance, DRIFTED)
        assert drifted_run.success  # failing non-blocking checks do not fail the run

        psi_error = check_records(instance, "feature_psi_below_retrain_threshold")
        psi_warn = check_records(instance, "feature_psi_below_warn_threshold")
        prediction = check_records(instance, "prediction_has_no_drift")
        assert set(psi_error) == {STATIONARY, DRIFTED}  # one evaluation per week (partitioned check)
        for name in (
            "feature_psi_below_retrain_threshold",
            "feature_psi_below_warn_threshold",
            "prediction_has_no_drift",
            "share_of_drifted_features_below_threshold",
            "missing_rate_below_threshold",
            "features_have_no_significant_drift",
        ):
            stationary = check_records(instance, name)[STATIONARY].evaluation
            assert stationary.passed, (name, stationary.metadata)

        failed = psi_error[DRIFTED].evaluation
        assert not failed.passed and failed.severity.value == "ERROR"
        meta = {k: v.value for k, v in failed.metadata.items()}
        # The configured 0.25 plus the PSI a stationary window of the week's size shows (psi_noise).
        assert meta["worst_configured_threshold"] == pytest.approx(0.25) and meta["value"] > meta["threshold"]
        assert meta["threshold"] == pytest.approx(0.25 + meta["worst_psi_noise"]) and meta["worst_psi_noise"] < 0.01
        assert "txn_count_1h" in meta["failing_columns"]
        assert psi_warn[DRIFTED].evaluation.severity.value == "WARN" and not psi_warn[DRIFTED].evaluation.passed
        assert not prediction[DRIFTED].evaluation.passed and prediction[DRIFTED].evaluation.severity.value == "ERROR"

        # The materialisation carries numbers the UI plots across partitions.
        event = instance.get_latest_materialization_event(DRIFT_REPORT)
        assert event.dagster_event.partition == DRIFTED
        mat_meta = event.asset_materialization.metadata
        assert mat_meta["max_feature_psi"].value > 0.25
        assert "| txn_count_1h |" in mat_meta["psi_table"].value
        assert 0.0 <= mat_meta["share_drifted"].value <= 1.0

        # The results store holds the same numbers for the exporter.
        import json

        record = json.loads((project / "reports" / "fraud" / "drift" / f"{DRIFTED}.json").read_text())
        assert record["summary"]["max_feature_psi"] == pytest.approx(mat_meta["max_feature_psi"].value)
        assert record["columns"]["txn_count_1h"]["psi"] > 0.25


EVIDENTLY_REPORT = AssetKey(["fraud", "evidently_report"])


def report_events(instance) -> dict[str, list]:
    """partition -> the evidently_report materialisations, oldest first."""
    from dagster import AssetRecordsFilter

    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=EVIDENTLY_REPORT), limit=100).records
    out: dict[str, list] = {}
    for r in sorted(records, key=lambda r: r.storage_id):
        out.setdefault(r.partition_key, []).append(r.asset_materialization)
    return out


def materialize_report_on_demand(defs, instance, key):
    """What the UI's Materialize on the asset does: a run of the implicit asset job selecting it alone."""
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=[EVIDENTLY_REPORT], partition_key=key, instance=instance, run_config=QUIET
    )


def test_evidently_report_asset_on_failure_on_demand_and_linked(project, monkeypatch):
    """The HTML is its own asset: the window job writes it only for a week failing an ERROR check
    (the on_failure policy), a run materialising it alone writes it whatever the verdict, and
    DRIFT_ASSETS_HTML_REPORTS=0 turns the policy (not the on-demand run) off."""
    from support import write_monitors_file

    write_monitors_file(project / "monitors.yaml", html="on_failure")
    defs = build_definitions()
    with instance_for_test() as instance:
        run_reference(defs, instance)
        monkeypatch.setenv("DRIFT_ASSETS_REPORTS_URL", "http://127.0.0.1:8765")
        assert run_week(defs, instance, STATIONARY).success
        assert report_events(instance) == {}  # a passing week: no report, the run still succeeds
        drift_meta = instance.get_latest_materialization_event(DRIFT_REPORT).asset_materialization.metadata
        assert "evidently_report" not in drift_meta
        assert drift_meta["results_url"].value == f"http://127.0.0.1:8765/fraud/drift/{STATIONARY}.json"

        first = run_week(defs, instance, DRIFTED)
        [mat] = report_events(instance)[DRIFTED]
        meta = mat.metadata
        html = meta["evidently_report"].value
        assert html.endswith(f"{DRIFTED}-{first.run_id[:8]}.html") and os.path.getsize(html) > 10_000
        assert meta["evidently_report_url"].value == f"http://127.0.0.1:8765/fraud/html/{Path(html).name}"
        assert meta["reason"].value.startswith("on_failure: failed ERROR check(s): ")
        assert "prediction_has_no_drift[fraud_score]" in meta["reason"].value
        text = Path(html).read_text(encoding="utf-8")
        assert "txn_count_1h" in text and "drift" in text.lower()
        # Evidently's bundle is shared: referenced relatively, stored once next to the pages.
        assert meta["shared_assets"].value is True and meta["size_bytes"].value < 1_500_000
        [script] = [s for s in text.split('<script src="')[1:]]
        script = script.split('"')[0]
        assert script.startswith("_assets/evidently-") and (Path(html).parent / script).stat().st_size > 3_000_000
        # The project's decision comes first, as the checks saw it; Evidently's presets follow.
        record = json.loads((project / "reports" / "fraud" / "drift" / f"{DRIFTED}.json").read_text())
        decision = text[text.index('<section id="drift-assets-decision"') :]
        assert text.index("drift-assets-decision") < text.index("</section>") < text.index('<div id="root_metric_')
        assert "DRIFT: an ERROR check failed" in decision[:2000]
        drifted = record["summary"]["drifted_features"]
        assert f"{len(drifted)} of " in decision and all(name in decision[:4000] for name in drifted)
        assert "feature_psi_below_retrain_threshold[txn_count_1h]" in decision
        # Evidently knows the prediction column (no more "None"); the label is not in the window.
        assert '["prediction column", "fraud_score", "fraud_score"]' in text

        # On demand (the UI): the passing week's report is written all the same.
        on_demand = materialize_report_on_demand(defs, instance, STATIONARY)
        [mat] = report_events(instance)[STATIONARY]
        assert mat.metadata["reason"].value == "always: always"
        assert mat.metadata["evidently_report"].value.endswith(f"{STATIONARY}-{on_demand.run_id[:8]}.html")

        # A re-evaluation keeps the first run's report.
        run_week(defs, instance, DRIFTED)
        assert os.path.exists(html)
        assert len(list(Path(html).parent.glob(f"{DRIFTED}-*.html"))) == 2
        assert len(list((Path(html).parent / "_assets").iterdir())) == 2  # the bundle and font, once

        # The policy off: the window job writes none, an on-demand run still does.
        monkeypatch.setenv("DRIFT_ASSETS_HTML_REPORTS", "0")
        run_week(defs, instance, DRIFTED)
        assert len(report_events(instance)[DRIFTED]) == 2
        materialize_report_on_demand(defs, instance, DRIFTED)
        assert len(report_events(instance)[DRIFTED]) == 3

        # On demand for a window never evaluated: one line saying what to do, no report.
        missing = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            asset_selection=[EVIDENTLY_REPORT],
            partition_key="2026-08-10",
            instance=instance,
            run_config=QUIET,
            raise_on_error=False,
        )
        [failure] = [e for e in missing.all_events if e.is_step_failure]
        message = failure.step_failure_data.error.message
        assert "fraud window 2026-08-10: no drift_report at " in message and "materialise drift_report" in message
        assert "2026-08-10" not in report_events(instance)


def test_labels_pending_leaves_the_auc_check_not_evaluated(project):
    """A week without labels yields no AUC check result: the check is planned and never evaluated
    (Dagster resolves it as SKIPPED), never recorded as passed."""
    from dagster import AssetCheckEvaluation
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    defs = build_definitions()
    with instance_for_test() as instance:
        run_reference(defs, instance)
        last_week = "2026-09-07"  # labels arrive ~14 days late: none yet for the last week
        assert run_week(defs, instance, last_week).success
        auc = check_records(instance, "auc_not_below_champion", AssetKey(["fraud", "model_performance"]))[last_week]
        assert auc.status == AssetCheckExecutionRecordStatus.PLANNED
        assert not isinstance(auc.evaluation, AssetCheckEvaluation)  # only the "planned" event, no result
        perf = instance.get_latest_materialization_event(
            AssetKey(["fraud", "model_performance"])
        ).asset_materialization.metadata
        assert perf["status"].value == "labels_pending"
        assert perf["check auc_not_below_champion"].value.startswith("not evaluated (labels pending: 0 of ")


def test_auc_check_fails_on_labelled_drifted_week(project):
    defs = build_definitions()
    with instance_for_test() as instance:
        run_reference(defs, instance)
        run_week(defs, instance, STATIONARY)
        run_week(defs, instance, DRIFTED)
        auc = check_records(instance, "auc_not_below_champion", AssetKey(["fraud", "model_performance"]))
        assert auc[STATIONARY].evaluation.passed, auc[STATIONARY].evaluation.metadata
        drifted = auc[DRIFTED].evaluation
        assert not drifted.passed and drifted.severity.value == "ERROR"
        assert drifted.metadata["value"].value < -0.02


def test_weekly_schedule_requests_the_week_that_just_ended():
    defs = build_definitions()
    schedule = defs.resolve_schedule_def("fraud_weekly_schedule")
    assert schedule.cron_schedule == "0 6 * * 1"
    tick = dt.datetime(2026, 9, 14, 6, 0, tzinfo=dt.UTC)  # Monday
    with instance_for_test() as instance:
        context = build_schedule_context(instance=instance, scheduled_execution_time=tick)
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2026-09-07"]


def test_backfill_from_the_cli_records_one_run_per_week(project, tmp_path, monkeypatch):
    from dagster import DagsterInstance

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    defs = build_definitions()
    with DagsterInstance.get() as instance:
        run_reference(defs, instance)
    cli = os.path.join(os.path.dirname(sys.executable), "drift-assets")
    out = subprocess.run(
        [cli, "backfill", "--monitor", "fraud", "--from", "2026-08-03", "--to", "2026-08-17"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "3 window(s), 0 failed run(s)" in out.stdout
    assert "2026-08-17: run" in out.stdout and "feature_psi_below_retrain_threshold/ERROR" in out.stdout
    lines = {line.split(":")[0]: line for line in out.stdout.splitlines() if line.startswith("2026-")}
    assert "drift_alert failed" in lines["2026-08-17"] and "drift_alert failed" not in lines["2026-08-03"]
    with DagsterInstance.get() as instance:
        partitions = {r.dagster_run.tags.get("dagster/partition") for r in instance.get_run_records()}
    assert {"2026-08-03", "2026-08-10", "2026-08-17"} <= partitions
    bad = subprocess.run(
        [cli, "backfill", "--monitor", "fraud", "--from", "2026-08-04", "--to", "2026-08-17"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert bad.returncode == 2 and "not a partition" in bad.stderr


def test_drift_alert_fails_only_for_the_week_that_failed_an_error_check(project):
    """drift_alert's run fails for the drifted week (so the UI marks that partition failed) and
    materialises for the stationary one; the window job itself succeeds on both."""
    from dagster import DagsterEventType

    from drift_assets.cli.demo import run_alert

    defs = build_definitions()
    alert = AssetKey(["fraud", "drift_alert"])
    with instance_for_test() as instance:
        run_reference(defs, instance)
        for week in (STATIONARY, DRIFTED):
            assert run_week(defs, instance, week).success
        assert run_alert(defs, "fraud", STATIONARY, instance)
        assert not run_alert(defs, "fraud", DRIFTED, instance)
        assert instance.get_materialized_partitions(alert) == {STATIONARY}
        failures = [
            r.event_log_entry
            for r in instance.get_records_for_run(
                instance.get_runs(limit=1)[0].run_id, of_type=DagsterEventType.STEP_FAILURE
            ).records
        ]
        assert failures and "feature_psi_below_retrain_threshold[txn_count_1h]" in str(failures[0].dagster_event)
