"""Retraining from PostgreSQL (a real server on 127.0.0.1, real ``dvc repro``): the drifted week's
failed checks trigger a retraining whose inputs are exported from the database to parquet, and it
trains and is gated exactly like the same data read from the parquet files (same holdout rows, same
challenger AUC); the DSN's password reaches no file (params.yaml, dvc output, the registry, reports,
the Dagster instance); a connection refused during the export fails the attempt with one line and
leaves the champion; a stream that breaks after its first batch fails that week alone."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from cluster_servers import start_postgres
from dagster import instance_for_test
from support import write_monitors_file

from drift_assets.cli.demo import evaluate_sensor, execute_run_request
from drift_assets.cli.sql_demo import _label_batches
from drift_assets.definitions import build_definitions
from drift_assets.monitoring.config import load_monitors
from drift_assets.monitoring.registry import ModelRegistry
from drift_assets.monitoring.source_config import SourceSpec
from drift_assets.monitoring.sources import preflight_log, stream_log
from drift_assets.monitoring.windows import expected_log_types, parse_partition_key
from drift_assets.orchestration.resources import DvcResource
from drift_assets.storage.root import Root
from drift_assets.storage.sql import SqlSourceError, load_table

pytest.importorskip("adbc_driver_postgresql")
DVC = os.environ.get("DRIFT_ASSETS_DVC") or DvcResource().executable
pytestmark = [
    pytest.mark.skipif(not Path(DVC).is_file(), reason=f"DVC executable {DVC} not found (make .venv-dvc)"),
    pytest.mark.slow,  # a PostgreSQL server, Dagster runs and dvc repro
]

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
STATIONARY, SLOW, FAILING = "2026-08-03", "2026-08-10", "2026-08-17"
ON_CHECKS = ["feature_psi_below_retrain_threshold", "prediction_has_no_drift"]
MARKER = "Rt7-pass!word"
ENV = "DRIFT_ASSETS_PG_DSN"


def _pg(table: str, **extra) -> dict:
    return {"kind": "postgres", "dsn_env": ENV, "table": table, **extra}


@pytest.fixture(scope="module")
def database(fraud_data):
    """The simulated log, reference and labels in PostgreSQL; role ``reader`` (password MARKER)."""
    with start_postgres() as server:
        name = f"drift_{uuid.uuid4().hex[:8]}"
        server.create_database(name)
        trust = f"postgresql://postgres@127.0.0.1:{server.port}/{name}"
        fraud = fraud_data / "fraud"
        files = sorted((fraud / "log").glob("date=*/*.parquet"))
        load_table(trust, "fraud_log", (b for f in files for b in pq.ParquetFile(f).iter_batches()))
        load_table(trust, "fraud_reference", pq.ParquetFile(fraud / "reference" / "reference.parquet").iter_batches())
        load_table(trust, "fraud_labels", _label_batches(Root.open(str(fraud_data)), "fraud/labels"))
        # A log whose stream breaks after its first batches: reading the rows of 2026-08-12 to
        # 2026-08-17 (the middle of week SLOW) through the cursor sleeps past the statement timeout
        # (counting them does not: current_query() is the FETCH only while streaming).
        server.psql(
            "CREATE VIEW fraud_log_flaky AS SELECT * FROM fraud_log WHERE CASE WHEN timestamp >= '2026-08-12'"
            " AND timestamp < '2026-08-17' AND current_query() LIKE 'FETCH%' THEN pg_sleep(2) IS NOT NULL"
            " ELSE true END",
            name,
        )
        # ... and one whose session ends there (pg_terminate_backend: as if the server stopped).
        server.psql(
            "CREATE VIEW fraud_log_dying AS SELECT * FROM fraud_log WHERE CASE WHEN timestamp >= '2026-08-12'"
            " AND timestamp < '2026-08-17' AND current_query() LIKE 'FETCH%'"
            " THEN pg_terminate_backend(pg_backend_pid()) ELSE true END",
            name,
        )
        server.psql(f"CREATE ROLE reader LOGIN PASSWORD '{MARKER}'")
        server.psql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader", name)
        hba = server.directory / "data" / "pg_hba.conf"
        hba.write_text("host all reader 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        server.psql("SELECT pg_reload_conf()")
        yield server, name


def _dsn(database, port: int | None = None) -> str:
    server, name = database
    return f"postgresql://reader:{MARKER}@127.0.0.1:{port or server.port}/{name}"


@pytest.fixture
def setting(project, monkeypatch):
    monkeypatch.setenv("DRIFT_ASSETS_RETRAINING_DIR", str(project / "retraining"))
    monkeypatch.setenv("DRIFT_ASSETS_DVC", DVC)
    monkeypatch.setenv("DRIFT_ASSETS_KEEP_WORKDIRS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return project


def _monitors(tmp: Path, *, files_too: bool) -> Path:
    """``fraud_pg``: log, reference and labels in PostgreSQL, its own registry (a copy of fraud's);
    with ``files_too`` also ``fraud``, the same monitor over the parquet files."""
    data = tmp / "data"
    shutil.copytree(data / "fraud" / "models", data / "fraud_pg" / "models")
    retraining = {"enabled": True, "on_checks": ON_CHECKS, "cooldown_hours": 0, "holdout_weeks": 1}
    path = write_monitors_file(tmp / "monitors-pg.yaml", retraining={**retraining, "min_auc_gain": 0.0})
    config = yaml.safe_load(path.read_text())
    pg = copy.deepcopy(config["monitors"]["fraud"])
    pg.update(log=_pg("fraud_log"), reference=_pg("fraud_reference"))
    pg["target"]["labels"] = _pg("fraud_labels")
    pg["model"]["registry"] = "fraud_pg/models"
    config["monitors"] = {**(config["monitors"] if files_too else {}), "fraud_pg": pg}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _window(defs, instance, monitor: str, key: str):
    assert defs.resolve_job_def(f"{monitor}_reference_job").execute_in_process(instance=instance, run_config=QUIET)
    return defs.resolve_job_def(f"{monitor}_window_job").execute_in_process(
        partition_key=key, instance=instance, run_config=QUIET, raise_on_error=False
    )


def _retrain(defs, instance, monitor: str):
    [request] = evaluate_sensor(defs, f"{monitor}_retraining_sensor", instance, None).run_requests
    assert request.partition_key == FAILING
    return execute_run_request(defs, f"{monitor}_retraining_sensor", request, instance)


def _holdout(tmp: Path, monitor: str, run_id: str):
    frame = pq.read_table(tmp / "retraining" / monitor / run_id / "prepared" / "holdout.parquet").to_pandas()
    return frame.sort_values("transaction_id").reset_index(drop=True)


def _grep(root: Path, needle: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_a_drifted_week_in_postgres_retrains_like_the_parquet_files_and_no_secret_is_written(
    setting, database, monkeypatch
):
    tmp = setting
    monkeypatch.setenv(ENV, _dsn(database))
    defs = build_definitions(monitors_file=_monitors(tmp, files_too=True))
    home = tmp / "dagster_home"
    home.mkdir()
    runs, metrics = {}, {}
    with instance_for_test(temp_dir=str(home)) as instance:
        for monitor in ("fraud", "fraud_pg"):
            assert _window(defs, instance, monitor, FAILING).success
            runs[monitor] = _retrain(defs, instance, monitor)
            assert runs[monitor].success, monitor
            record = json.loads((tmp / "reports" / monitor / "retraining" / "v0002.json").read_text())
            metrics[monitor] = record
        for run in instance.get_runs():
            assert MARKER not in repr(run.tags) and MARKER not in repr(run.run_config)
            for entry in instance.all_logs(run.run_id):
                assert MARKER not in repr(entry)
        logs = " ".join(str(e.user_message) for e in instance.all_logs(runs["fraud_pg"].run_id))
    files, pg = metrics["fraud"], metrics["fraud_pg"]
    assert files["status"] == pg["status"] == "promoted"
    assert pg["holdout_rows"] == files["holdout_rows"] > 100
    assert pg["challenger_auc"] == pytest.approx(files["challenger_auc"], abs=1e-9)
    assert pg["champion_auc"] == pytest.approx(files["champion_auc"], abs=1e-9)
    holdout_files, holdout_pg = (
        _holdout(tmp, "fraud", runs["fraud"].run_id),
        _holdout(tmp, "fraud_pg", runs["fraud_pg"].run_id),
    )
    assert holdout_pg["transaction_id"].tolist() == holdout_files["transaction_id"].tolist()
    assert (holdout_pg["is_fraud"] == holdout_files["is_fraud"]).all()
    data = Root.open(str(tmp / "data"))
    assert ModelRegistry(data, "fraud_pg/models").champion().name == "v0002"
    # The export: the log only up to the window's end, streamed in parquet; params.yaml names paths.
    assert "exported from PostgreSQL" in logs
    workdir = tmp / "retraining" / "fraud_pg" / runs["fraud_pg"].run_id
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    assert params["data"]["log"].endswith("-inputs/log") and params["data"]["labels"].endswith("-inputs/labels")
    summary = json.loads((workdir / "prepared" / "summary.json").read_text())
    files_summary = json.loads(
        (tmp / "retraining" / "fraud" / runs["fraud"].run_id / "prepared" / "summary.json").read_text()
    )
    assert summary["holdout"] == files_summary["holdout"]
    # The same production rows before the cutoff; the export read none after it (the files had some).
    produced, produced_files = summary["production"], files_summary["production"]
    for key in ("rows_before_cutoff", "labelled_rows", "unlabelled_rows", "positives", "timestamp_range"):
        assert produced[key] == produced_files[key], key
    assert produced["files"] == 1 and produced["rows_at_or_after_cutoff_ignored"] == 0
    assert produced_files["rows_at_or_after_cutoff_ignored"] > 0
    assert summary["reference"]["rows"] == files_summary["reference"]["rows"]
    # Nothing on disk holds the password: instance, work dirs (params.yaml, dvc.lock), registry, reports.
    assert any(home.rglob("*.db"))
    for root in (home, tmp / "retraining", tmp / "data", tmp / "reports", tmp / "assets"):
        assert _grep(root, MARKER) == [], root


def test_a_connection_failure_during_the_export_fails_the_attempt_in_one_line(setting, database, monkeypatch):
    tmp = setting
    monkeypatch.setenv(ENV, _dsn(database))
    defs = build_definitions(monitors_file=_monitors(tmp, files_too=False))
    models = tmp / "data" / "fraud_pg" / "models"
    pointer = (models / "champion.json").read_bytes()
    server, name = database
    with instance_for_test() as instance:
        assert _window(defs, instance, "fraud_pg", FAILING).success
        from cluster_servers import free_port

        closed = free_port()
        monkeypatch.setenv(ENV, _dsn(database, port=closed))  # nothing listens there
        result = _retrain(defs, instance, "fraud_pg")
        assert not result.success
        [failure] = result.get_step_failure_events()
        message = failure.event_specific_data.error.message
    first = message.splitlines()[0]
    assert (
        f"cannot export the training inputs from PostgreSQL: postgres 127.0.0.1:{closed}/{name} table fraud_reference:"
        " connection refused" in first
    )
    assert "champion v0001 unchanged" in first and MARKER not in message
    assert (models / "champion.json").read_bytes() == pointer
    assert sorted(os.listdir(models / "versions")) == ["v0001"]
    [record_name] = os.listdir(tmp / "reports" / "fraud_pg" / "retraining")
    record = json.loads((tmp / "reports" / "fraud_pg" / "retraining" / record_name).read_text())
    assert record["status"] == "failed" and "connection refused" in record["reason"]
    assert not list((tmp / "retraining" / "fraud_pg").glob("*-inputs"))  # no partial export left


def test_a_stream_that_breaks_after_its_first_batch_fails_that_week_alone(project, database, monkeypatch):
    monkeypatch.setenv(ENV, _dsn(database))
    log = _pg("fraud_log_flaky", statement_timeout_s=1, batch_rows=200)
    write_monitors_file(project / "monitors.yaml", log=log, reference=_pg("fraud_reference"))
    defs = build_definitions()
    server, name = database
    with instance_for_test() as instance:
        assert defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET)
        results = {
            key: defs.resolve_job_def("fraud_window_job").execute_in_process(
                partition_key=key, instance=instance, run_config=QUIET, raise_on_error=False
            )
            for key in (STATIONARY, SLOW, FAILING)
        }
    assert results[STATIONARY].success and results[FAILING].success  # the weeks around it run
    assert not results[SLOW].success
    [failure] = results[SLOW].get_step_failure_events()
    message = failure.event_specific_data.error.message
    assert message.strip().count("\n") == 0, message  # one line, no traceback
    assert (
        f"fraud window {SLOW}: postgres 127.0.0.1:{server.port}/{name} table fraud_log_flaky: statement timed out"
        " after 1 s (statement_timeout_s)" in message
    )
    assert MARKER not in message
    # It did break after the first batch: the window's preflight passes, one batch streams, then the error.
    monitor = load_monitors().get("fraud")
    window = parse_partition_key(SLOW, monitor.cadence)
    data = Root.open(str(project / "data"))
    assert preflight_log(data, monitor, window)[1] > 1000
    stream = stream_log(data, monitor, window, types=expected_log_types(monitor))
    assert next(stream).num_rows > 0
    with pytest.raises(SqlSourceError, match="statement timed out"):
        list(stream)
    dying = dataclasses.replace(
        monitor, log_source=SourceSpec("postgres", dsn_env=ENV, table="fraud_log_dying", batch_rows=200)
    )
    stream = stream_log(data, dying, window, types=expected_log_types(monitor))
    assert next(stream).num_rows > 0
    with pytest.raises(SqlSourceError) as lost:
        list(stream)
    assert str(lost.value) == (
        f"postgres 127.0.0.1:{server.port}/{name} table fraud_log_dying: the connection was lost while reading"
        " (the server stopped or ended the session)"
    )
