"""Issue 15 item 1: the CLI's runs are runs of the code location (orchestration/launch.py).

Real Dagster runs on an on-disk instance over the small simulated fraud data: the launched run
evaluates the window exactly as ``execute_in_process`` does, carries the origin read from a workspace
file, and a range of windows is a backfill record whose final status follows its runs. The webserver
and the browser view of the same runs are in test_ui_browser.py.
"""

from __future__ import annotations

import pytest
from dagster import RunRequest, RunsFilter, instance_for_test
from dagster._core.execution.backfill import BulkActionStatus

from drift_assets.cli.demo import QUIET, execute_run_request, monitor_runs, run_window
from drift_assets.definitions import build_definitions
from drift_assets.monitoring.config import load_monitors
from drift_assets.orchestration.keys import MONITOR_TAG, REFERENCE_REFRESH_TAG
from drift_assets.orchestration.launch import InProcessLauncher, code_location
from drift_assets.orchestration.sensors import _reference_keys

pytestmark = pytest.mark.slow  # Dagster runs
STATIONARY, DRIFTED = "2026-08-03", "2026-08-17"


def _checks(result) -> list[tuple[str, bool, str]]:
    return sorted((e.check_name, e.passed, e.severity.value) for e in result.get_asset_check_evaluations())


def test_the_location_is_read_from_the_workspace_file(tmp_path):
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: drift_assets.definitions\n"
        "      working_directory: .\n      location_name: elsewhere\n"
    )
    location = code_location("__repository__", workspace)
    assert location.label == "__repository__@elsewhere"
    assert location.python.code_pointer.working_directory == str(tmp_path.resolve())
    assert code_location("__repository__").label == "__repository__@drift_assets"  # the project's file
    workspace.write_text("load_from: []\n")
    with pytest.raises(ValueError, match="expected one code location"):
        code_location("__repository__", workspace)


def test_a_launched_window_evaluates_like_execute_in_process_and_is_tied_to_the_location(project):
    defs = build_definitions()
    with instance_for_test() as instance:
        assert defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET)
        launcher = InProcessLauncher(defs, instance, launched_by="test")
        for week in (STATIONARY, DRIFTED):
            old = defs.resolve_job_def("fraud_window_job").execute_in_process(
                partition_key=week, instance=instance, run_config=QUIET
            )
            new = launcher.run("fraud_window_job", partition_key=week, tags={MONITOR_TAG: "fraud"}, run_config=QUIET)
            assert new.success and _checks(new) == _checks(old)
            run = instance.get_run_by_id(new.run_id)
            assert run.remote_job_origin.job_name == "fraud_window_job"
            assert run.remote_job_origin.repository_origin.get_label() == "__repository__@drift_assets"
            assert run.job_code_origin.job_name == "fraud_window_job"
            assert run.tags["dagster/partition"] == week and run.tags[MONITOR_TAG] == "fraud"
            assert instance.get_run_by_id(old.run_id).remote_job_origin is None  # the old path had none
        assert ("feature_psi_below_retrain_threshold", False, "ERROR") in _checks(new)  # the drifted week
        # The verdict job runs with Dagster's default executor told to stay in process (run config).
        alert = launcher.run("fraud_alert_job", partition_key=DRIFTED, run_config=QUIET)
        assert not alert.success  # drift_alert fails on the drifted week
        assert instance.get_run_by_id(alert.run_id).run_config["execution"] == {"config": {"in_process": {}}}
        started = instance.get_records_for_run(alert.run_id).records
        assert any(
            (r.event_log_entry.message or "").startswith("Started process for run (pid: ") for r in started
        )  # what the lost-run watchdog reads


def test_window_runs_form_backfills_whose_status_follows_the_runs(project):
    defs = build_definitions()
    fraud = load_monitors().get("fraud")
    with instance_for_test() as instance:
        assert defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET)
        runs = monitor_runs(defs, instance, "fraud", launched_by="test")
        with runs.backfill([STATIONARY, DRIFTED], title="two weeks") as batch:
            window_id, alert_id = batch.backfill_ids
            for week in (STATIONARY, DRIFTED):
                assert run_window(defs, fraud, week, instance, batch).success
            assert instance.get_backfill(window_id).status == BulkActionStatus.REQUESTED  # until the block ends
        window, alert = instance.get_backfill(window_id), instance.get_backfill(alert_id)
        assert window.status == BulkActionStatus.COMPLETED_SUCCESS
        assert alert.status == BulkActionStatus.COMPLETED_FAILED  # the drifted week's verdict
        assert list(alert.partition_names) == [STATIONARY, DRIFTED] == list(window.partition_names)
        assert window.last_submitted_partition_name == DRIFTED  # a daemon would submit nothing more
        assert window.tags == {MONITOR_TAG: "fraud"} and window.title == "two weeks"
        tagged = instance.get_runs(RunsFilter(tags={"dagster/backfill": window_id}))
        assert sorted(r.tags["dagster/partition"] for r in tagged) == [STATIONARY, DRIFTED]
        assert {r.tags["dagster/partition_set"] for r in tagged} == {"fraud_window_job_partition_set"}

        # Interrupted: the backfill is canceled, not left requested; a backfill that ran nothing leaves no record.
        with pytest.raises(KeyboardInterrupt), runs.backfill(["2026-08-10"], title="interrupted") as batch:
            batch.run("window", "2026-08-10", run_config=QUIET)
            raise KeyboardInterrupt
        statuses = {b.title: b.status for b in instance.get_backfills()}
        assert statuses["interrupted"] == BulkActionStatus.CANCELED
        assert "interrupted: verdicts" not in statuses  # no verdict run happened
        assert len(instance.get_backfills()) == 3


def test_a_sensor_request_runs_with_the_sensors_tags_on_the_location(project):
    defs = build_definitions()
    with instance_for_test() as instance:
        # What the retraining sensor requests after a promotion (sensors.py): the reference assets.
        request = RunRequest(
            run_key="reference:fraud:v0001:test",
            asset_selection=_reference_keys(load_monitors().get("fraud")),
            tags={REFERENCE_REFRESH_TAG: "fraud"},
        )
        result = execute_run_request(defs, "fraud_retraining_sensor", request, instance)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        job = defs.resolve_sensor_def("fraud_retraining_sensor").job_name  # the job the daemon would launch
        assert run.job_name == job and defs.get_repository_def().has_job(job)
        assert run.tags["dagster/sensor_name"] == "fraud_retraining_sensor"
        assert run.tags["dagster/run_key"] == "reference:fraud:v0001:test"
        assert run.tags[REFERENCE_REFRESH_TAG] == "fraud" and run.tags[MONITOR_TAG] == "fraud"
        assert run.remote_job_origin.repository_origin.get_label() == "__repository__@drift_assets"
        assert {k.path[-1] for k in run.asset_selection} == {k.path[-1] for k in request.asset_selection}


def test_the_demo_can_skip_sqlites_wait_for_the_disk(tmp_path, monkeypatch):
    from sqlalchemy import create_engine, text

    from drift_assets.orchestration.launch import SQLITE_SYNCHRONOUS_ENV, relax_sqlite_sync

    def synchronous() -> int:
        engine = create_engine(f"sqlite:///{tmp_path / 'probe.db'}")
        with engine.connect() as conn:
            value = conn.execute(text("PRAGMA synchronous")).scalar()
        engine.dispose()
        return value

    monkeypatch.delenv(SQLITE_SYNCHRONOUS_ENV, raising=False)
    assert relax_sqlite_sync() is None and synchronous() == 2  # nothing asked: SQLite's default, FULL
    try:
        assert relax_sqlite_sync(default="OFF") == "OFF" and synchronous() == 0
        monkeypatch.setenv(SQLITE_SYNCHRONOUS_ENV, "normal")  # the environment wins over the default
        assert relax_sqlite_sync(default="OFF") == "NORMAL" and synchronous() == 1
        monkeypatch.setenv(SQLITE_SYNCHRONOUS_ENV, "sometimes")
        with pytest.raises(ValueError, match=SQLITE_SYNCHRONOUS_ENV):
            relax_sqlite_sync()
    finally:
        monkeypatch.setenv(SQLITE_SYNCHRONOUS_ENV, "FULL")
        assert relax_sqlite_sync() == "FULL" and synchronous() == 2


def test_joined_runs_belong_to_another_processs_backfill_and_write_no_record(project):
    """What a demo hour worker does (cli/hours.py): its runs carry the parent's backfill ids, the parent
    adds its verdict partitions and failures, and only the parent's records exist."""
    defs = build_definitions()
    fraud = load_monitors().get("fraud")
    with instance_for_test() as instance:
        assert defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET)
        runs = monitor_runs(defs, instance, "fraud", launched_by="test")
        worker = monitor_runs(defs, instance, "fraud", launched_by="worker")
        with runs.backfill([STATIONARY, DRIFTED], title="two weeks") as batch:
            window_id, alert_id = batch.backfill_ids
            assert run_window(defs, fraud, STATIONARY, instance, batch).success  # the parent's part
            with worker.joined(window_id, alert_id) as joined:
                assert run_window(defs, fraud, DRIFTED, instance, joined).success
                window_part, alert_part = joined.batches
                assert (window_part.failed, alert_part.failed) == (0, 1)  # the drifted week's verdict
                assert alert_part.partition_names == [DRIFTED] and alert_part.record is None
            assert worker.batches is None  # outside the block: plain runs again
            assert {b.backfill_id for b in instance.get_backfills()} == {alert_id, window_id}
            window, alert = batch.batches
            assert list(instance.get_backfill(alert_id).partition_names) == [STATIONARY]
            window.add_runs([DRIFTED], 0)
            alert.add_runs([DRIFTED], 1)
        assert instance.get_backfill(window_id).status == BulkActionStatus.COMPLETED_SUCCESS
        verdicts = instance.get_backfill(alert_id)
        assert verdicts.status == BulkActionStatus.COMPLETED_FAILED
        assert list(verdicts.partition_names) == [STATIONARY, DRIFTED]
        assert len(instance.get_backfills()) == 2
        for backfill_id, job in ((window_id, "fraud_window_job"), (alert_id, "fraud_alert_job")):
            tagged = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id}))
            assert sorted(r.tags["dagster/partition"] for r in tagged) == [STATIONARY, DRIFTED]
            assert {r.tags["dagster/partition_set"] for r in tagged} == {f"{job}_partition_set"}
            assert {r.tags["drift_assets/launched_by"] for r in tagged} == {"test", "worker"}
