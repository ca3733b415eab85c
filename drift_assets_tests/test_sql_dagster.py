"""The fraud monitor through Dagster with its log and reference in PostgreSQL (a real server on
127.0.0.1): the same check results as from the parquet files; a week whose query times out fails
with one line while the other weeks run; a wrong password fails clearly; and the DSN's password is
nowhere in the instance's storage (event log, run metadata, compute logs), the asset outputs or the
results store."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from cluster_servers import start_postgres
from dagster import AssetCheckKey, AssetKey, instance_for_test
from support import write_monitors_file

from drift_assets.definitions import build_definitions
from drift_assets.monitoring.config import load_monitors
from drift_assets.storage.sql import load_table

pytest.importorskip("adbc_driver_postgresql")
pytestmark = pytest.mark.slow  # a PostgreSQL server and Dagster runs

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
DRIFT_REPORT = AssetKey(["fraud", "drift_report"])
STATIONARY, SLOW, DRIFTED = "2026-08-03", "2026-08-10", "2026-08-17"
MARKER = "Mk9-pass!word"
PG_LOG = {"kind": "postgres", "dsn_env": "DRIFT_ASSETS_PG_DSN", "table": "fraud_log"}
PG_REFERENCE = {"kind": "postgres", "dsn_env": "DRIFT_ASSETS_PG_DSN", "table": "fraud_reference"}


@pytest.fixture(scope="module")
def database(fraud_data):
    """The simulated log and reference in PostgreSQL; role ``reader`` must give MARKER as password."""
    with start_postgres() as server:
        name = f"drift_{uuid.uuid4().hex[:8]}"
        server.create_database(name)
        trust = f"postgresql://postgres@127.0.0.1:{server.port}/{name}"
        files = sorted((fraud_data / "fraud" / "log").glob("date=*/*.parquet"))
        load_table(trust, "fraud_log", (b for f in files for b in pq.ParquetFile(f).iter_batches()))
        reference = fraud_data / "fraud" / "reference" / "reference.parquet"
        load_table(trust, "fraud_reference", pq.ParquetFile(reference).iter_batches())
        server.psql(f"CREATE ROLE reader LOGIN PASSWORD '{MARKER}'")
        server.psql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader", name)
        hba = server.directory / "data" / "pg_hba.conf"
        hba.write_text("host all reader 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        server.psql("SELECT pg_reload_conf()")
        yield server, name


def _dsn(database, password=MARKER) -> str:
    server, name = database
    return f"postgresql://reader:{password}@127.0.0.1:{server.port}/{name}"


def _run(defs, instance, job, key=None):
    return defs.resolve_job_def(job).execute_in_process(
        partition_key=key, instance=instance, run_config=QUIET, raise_on_error=False
    )


def _checks(instance, partition) -> dict[str, tuple[bool, str, object]]:
    """check name -> (passed, severity, value) of the drift report's checks for one week."""
    found = {}
    for rule in load_monitors().get("fraud").check_rules("drift_report"):
        history = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(DRIFT_REPORT, rule.name), limit=20
        )
        record = next((r for r in history if r.partition == partition), None)
        if record is not None and record.evaluation is not None:
            value = record.evaluation.metadata.get("value")
            found[rule.name] = (record.evaluation.passed, record.evaluation.severity.value, value and value.value)
    return found


def _errors(result) -> str:
    return " ".join(e.event_specific_data.error.message for e in result.get_step_failure_events())


def _monitors(project: Path, **overrides) -> None:
    write_monitors_file(project / "monitors.yaml", **overrides)


def _grep(root: Path, needle: str) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            hits.append(str(path))
    return hits


def test_postgres_log_and_reference_give_the_checks_of_the_parquet_files(project, database, monkeypatch):
    monkeypatch.setenv("DRIFT_ASSETS_PG_DSN", _dsn(database))
    results = {}
    for name, overrides in (("files", {}), ("postgres", {"log": PG_LOG, "reference": PG_REFERENCE})):
        _monitors(project, **overrides)
        defs = build_definitions()
        with instance_for_test() as instance:
            assert _run(defs, instance, "fraud_reference_job").success
            for key in (STATIONARY, DRIFTED):
                assert _run(defs, instance, "fraud_window_job", key).success
            results[name] = {key: _checks(instance, key) for key in (STATIONARY, DRIFTED)}
            if name == "postgres":
                event = instance.get_latest_materialization_event(AssetKey(["fraud", "production_window"]))
                meta = event.asset_materialization.metadata
                assert meta["files"].value == [f"postgres 127.0.0.1:{database[0].port}/{database[1]} table fraud_log"]
    files, pg = results["files"], results["postgres"]
    assert files[STATIONARY] and files[DRIFTED]
    for key in (STATIONARY, DRIFTED):
        assert {n: v[:2] for n, v in pg[key].items()} == {n: v[:2] for n, v in files[key].items()}
        for n, (_, _, value) in files[key].items():
            other = pg[key][n][2]
            assert other == pytest.approx(value, rel=1e-9) if isinstance(value, float) else other == value, n
    assert not files[DRIFTED]["feature_psi_below_retrain_threshold"][0]  # the drifted week fails in both


def test_a_timed_out_week_fails_alone_and_no_secret_is_stored(project, database, monkeypatch, tmp_path):
    slow_week = (
        "WITH pause AS MATERIALIZED (SELECT pg_sleep(CASE WHEN $1 = '2026-08-10'::timestamptz THEN 3 ELSE 0 END))"
        " SELECT fraud_log.* FROM fraud_log, pause WHERE timestamp >= $1 AND timestamp < $2"
    )
    log = {"kind": "postgres", "dsn_env": "DRIFT_ASSETS_PG_DSN", "query": slow_week, "statement_timeout_s": 1}
    _monitors(project, log=log, reference=PG_REFERENCE)
    defs = build_definitions()
    home = tmp_path / "dagster_home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        monkeypatch.setenv("DRIFT_ASSETS_PG_DSN", _dsn(database))
        assert _run(defs, instance, "fraud_reference_job").success
        assert _run(defs, instance, "fraud_window_job", STATIONARY).success
        slow = _run(defs, instance, "fraud_window_job", SLOW)
        assert not slow.success
        server, name = database
        expected = (
            f"fraud window {SLOW}: postgres 127.0.0.1:{server.port}/{name} query: statement timed out after 1 s"
            " (statement_timeout_s)"
        )
        assert expected in _errors(slow)
        assert _run(defs, instance, "fraud_window_job", DRIFTED).success  # the next week runs

        monkeypatch.setenv("DRIFT_ASSETS_PG_DSN", _dsn(database, password="wrong-" + MARKER))
        denied = _run(defs, instance, "fraud_window_job", STATIONARY)
        assert not denied.success
        assert f"postgres 127.0.0.1:{server.port}/{name} query: authentication failed for user reader" in _errors(
            denied
        )
        leaks = [message for message in (_errors(slow), _errors(denied)) if MARKER in message]
        assert not leaks
        for run in instance.get_runs():
            assert MARKER not in repr(run.tags) and MARKER not in repr(run.run_config)
            for record in instance.all_logs(run.run_id):
                assert MARKER not in repr(record)
    # Nothing on disk holds it: the instance (event log, runs, compute logs), outputs, reports.
    assert any(home.rglob("*.db"))  # the instance's SQLite storage is there to be searched
    for root in (home, project / "assets", project / "reports", project / "data"):
        assert _grep(root, MARKER) == [], root
