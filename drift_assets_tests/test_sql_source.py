"""The fraud monitor reading its log from PostgreSQL (a real server on 127.0.0.1, the
``cluster_servers.start_postgres`` fixture) and through DuckDB: the same counts and check results as
from the parquet files; every fault fails its window with one line; the DSN's password is never in
a message."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cluster_servers import start_postgres
from support import SMALL, START

from drift_assets.monitoring.config import load_monitors
from drift_assets.monitoring.evaluation import evaluate_window, read_reference
from drift_assets.monitoring.source_config import SourceSpec
from drift_assets.monitoring.sources import preflight_log, stream_log
from drift_assets.monitoring.windows import WindowScan, expected_log_types, parse_partition_key
from drift_assets.stats import fit_profile
from drift_assets.stats.errors import DriftInputError
from drift_assets.storage.root import Root
from drift_assets.storage.sql import PostgresSource, load_table

pytest.importorskip("adbc_driver_postgresql")
pytestmark = pytest.mark.slow  # a PostgreSQL server and a simulated fraud log

MARKER = "Sekr3tMarker!pw"  # a password that must never appear in any message
WEEKS = [(START + dt.timedelta(weeks=i)).isoformat() for i in range(SMALL["weeks"])]


@pytest.fixture(scope="module")
def postgres():
    with start_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def loaded(postgres, fraud_data):
    """The simulated fraud log in table ``fraud_log`` of a fresh database; the DSN (trust auth)."""
    database = f"drift_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    dsn = f"postgresql://postgres@127.0.0.1:{postgres.port}/{database}"
    files = sorted((fraud_data / "fraud" / "log").glob("date=*/*.parquet"))
    rows = load_table(dsn, "fraud_log", (b for f in files for b in pq.ParquetFile(f).iter_batches()))
    assert rows == sum(pq.read_metadata(f).num_rows for f in files)
    return dsn


@pytest.fixture(scope="module")
def fraud(fraud_data, tmp_path_factory):
    from support import write_monitors_file

    monitors = load_monitors(write_monitors_file(tmp_path_factory.mktemp("m") / "monitors.yaml"))
    monitor = monitors.get("fraud")
    data = Root.open(str(fraud_data))
    reference = read_reference(monitor, data.table(monitor.reference))
    profile = fit_profile(reference, monitor.column_specs(), psi_bins=monitor.psi_bins)
    return monitor, data, profile


def _with_log(monitor, dsn_env: str = "DRIFT_TEST_PG_DSN", **spec):
    fields = {"kind": "postgres", "dsn_env": dsn_env, "table": "fraud_log", **spec}
    source = SourceSpec(**fields)
    return dataclasses.replace(monitor, log=source.label, log_source=source)


def _evaluate(monitor, data, profile, key):
    window = parse_partition_key(key, monitor.cadence)
    files, rows = preflight_log(data, monitor, window)
    scan = WindowScan()
    batches = stream_log(data, monitor, window, types=expected_log_types(monitor), derived=monitor.derived, scan=scan)
    evaluation = evaluate_window(monitor, profile, window, batches, data=data, problems=scan.problems)
    return rows, scan, evaluation


def _outcomes(evaluation):
    return [(o.name, o.passed, o.severity, o.value) for o in evaluation.outcomes]


def _same_summary(a, b) -> None:
    """Counts identical; per-bin sums equal up to the order of addition (batches are cut
    differently: a day file vs a FETCH of N rows), i.e. to 1e-12 relative."""
    a, b = a.summary.to_dict(), b.summary.to_dict()
    assert a["rows"] == b["rows"] and a.get("problems") == b.get("problems")
    assert a["columns"].keys() == b["columns"].keys()
    for name, col in a["columns"].items():
        other = b["columns"][name]
        assert {k: v for k, v in col.items() if k != "sketch_sums"} == {
            k: v for k, v in other.items() if k != "sketch_sums"
        }, name
        if "sketch_sums" in col:
            np.testing.assert_allclose(col["sketch_sums"], other["sketch_sums"], rtol=1e-12, atol=1e-12)


def _same_checks(a, b) -> None:
    assert [(o.name, o.passed, o.severity) for o in a.outcomes] == [(o.name, o.passed, o.severity) for o in b.outcomes]
    for x, y in zip(a.outcomes, b.outcomes, strict=True):
        if isinstance(x.value, float) and isinstance(y.value, float):
            assert x.value == pytest.approx(y.value, rel=1e-9, abs=1e-12), x.name
        else:
            assert x.value == y.value, x.name


def test_postgres_and_parquet_give_identical_counts_and_checks(fraud, loaded, monkeypatch):
    monitor, data, profile = fraud
    monkeypatch.setenv("DRIFT_TEST_PG_DSN", loaded)
    from_pg = _with_log(monitor, batch_rows=1000)  # several FETCHes per week
    failed_somewhere = False
    for key in WEEKS:
        rows_files, scan_files, files = _evaluate(monitor, data, profile, key)
        rows_pg, scan_pg, pg = _evaluate(from_pg, data, profile, key)
        assert rows_pg == rows_files == scan_pg.rows == scan_files.rows > 0
        _same_summary(pg, files)
        _same_checks(pg, files)
        assert scan_pg.problems == scan_files.problems == {}
        assert scan_pg.first_timestamp == scan_files.first_timestamp
        failed_somewhere |= bool(files.failed("ERROR"))
    assert failed_somewhere  # the drifted weeks fail: the comparison covers failing checks too


def test_a_query_source_binds_the_window_and_gives_the_same_counts(fraud, loaded, monkeypatch):
    monitor, data, profile = fraud
    monkeypatch.setenv("DRIFT_TEST_PG_DSN", loaded)
    query = "SELECT * FROM fraud_log WHERE timestamp >= $1 AND timestamp < $2 AND channel IS NOT NULL"
    from_query = _with_log(monitor, table=None, query=query)
    rows_files, _, files = _evaluate(monitor, data, profile, WEEKS[3])
    rows_q, _, q = _evaluate(from_query, data, profile, WEEKS[3])
    assert rows_q == rows_files
    _same_summary(q, files)


def test_duckdb_reads_the_same_rows_as_the_default_reader(fraud):
    monitor, data, profile = fraud
    lake = SourceSpec("duckdb", path=monitor.log)
    via_duckdb = dataclasses.replace(monitor, log_source=lake)
    for key in WEEKS[2:4]:
        rows_files, _, files = _evaluate(monitor, data, profile, key)
        rows_duck, scan, duck = _evaluate(via_duckdb, data, profile, key)
        assert rows_duck == rows_files == scan.rows
        _same_summary(duck, files)
        _same_checks(duck, files)


# ------------------------------------------------------------------------------------------ faults
def _fails(monitor, data, key=WEEKS[0]) -> str:
    window = parse_partition_key(key, monitor.cadence)
    with pytest.raises(DriftInputError) as info:
        preflight_log(data, monitor, window)
        list(stream_log(data, monitor, window, types=expected_log_types(monitor)))
    message = str(info.value)
    assert "\n" not in message and MARKER not in message
    return message


def test_a_missing_table_fails_its_window_naming_host_database_and_table(fraud, loaded, monkeypatch):
    monitor, data, _ = fraud
    monkeypatch.setenv("DRIFT_TEST_PG_DSN", loaded)
    message = _fails(_with_log(monitor, table="no_such_log"), data)
    database = loaded.rsplit("/", 1)[-1]
    assert message == f"postgres 127.0.0.1:{loaded.split(':')[2].split('/')[0]}/{database} table no_such_log: " + (
        "table no_such_log does not exist"
    )


def test_a_missing_timestamp_column_fails_and_a_missing_feature_is_a_schema_problem(
    fraud, loaded, postgres, monkeypatch
):
    monitor, data, profile = fraud
    monkeypatch.setenv("DRIFT_TEST_PG_DSN", loaded)
    database = loaded.rsplit("/", 1)[-1]
    postgres.psql("DROP TABLE IF EXISTS log_no_ts; CREATE TABLE log_no_ts AS SELECT * FROM fraud_log", database)
    postgres.psql("ALTER TABLE log_no_ts RENAME COLUMN timestamp TO ts", database)
    message = _fails(_with_log(monitor, table="log_no_ts"), data)
    assert message.endswith("table log_no_ts: timestamp column 'timestamp' is missing")

    postgres.psql("DROP TABLE IF EXISTS log_no_amount; CREATE TABLE log_no_amount AS SELECT * FROM fraud_log", database)
    postgres.psql("ALTER TABLE log_no_amount DROP COLUMN txn_amount", database)
    rows, scan, evaluation = _evaluate(_with_log(monitor, table="log_no_amount"), data, profile, WEEKS[0])
    assert rows > 0 and list(scan.problems) == ["txn_amount"]
    assert scan.problems["txn_amount"].startswith("column 'txn_amount' is missing in postgres 127.0.0.1:")
    schema_check = next(o for o in evaluation.outcomes if o.name == "columns_match_reference_schema")
    assert not schema_check.passed and schema_check.severity == "ERROR"
    # the other features were still measured: the same PSI as from the files for an untouched column
    _, _, files = _evaluate(monitor, data, profile, WEEKS[0])
    assert evaluation.result.columns["txn_count_1h"].psi == files.result.columns["txn_count_1h"].psi


def test_a_column_of_another_type_is_named_by_the_schema_check(fraud, loaded, postgres, monkeypatch):
    monitor, data, profile = fraud
    monkeypatch.setenv("DRIFT_TEST_PG_DSN", loaded)
    database = loaded.rsplit("/", 1)[-1]
    postgres.psql("DROP TABLE IF EXISTS log_text; CREATE TABLE log_text AS SELECT * FROM fraud_log", database)
    postgres.psql("ALTER TABLE log_text ALTER COLUMN txn_amount TYPE text USING txn_amount::text || ' EUR'", database)
    _, scan, evaluation = _evaluate(_with_log(monitor, table="log_text"), data, profile, WEEKS[0])
    assert list(scan.problems) == ["txn_amount"]
    assert "has type string" in scan.problems["txn_amount"] and "expected numerical" in scan.problems["txn_amount"]
    assert not next(o for o in evaluation.outcomes if o.name == "columns_match_reference_schema").passed
    # a timestamp of the wrong type fails the window (as for the files)
    postgres.psql("ALTER TABLE log_text ALTER COLUMN timestamp TYPE text", database)
    assert "column 'timestamp' should be a timestamp but has type string" in _fails(
        _with_log(monitor, table="log_text"), data
    )


def test_connection_refused_fails_with_one_line(fraud, monkeypatch):
    from servers import free_port

    monitor, data, _ = fraud
    port = free_port()  # nothing listens there
    monkeypatch.setenv("DRIFT_TEST_PG_DSN", f"postgresql://reader:{MARKER}@127.0.0.1:{port}/shop")
    message = _fails(_with_log(monitor), data)
    assert message == f"postgres 127.0.0.1:{port}/shop table fraud_log: connection refused" + (
        " (is the server running and listening there?)"
    )


@pytest.fixture(scope="module")
def password_role(postgres, loaded):
    """A role that must give its password (scram-sha-256 for it, trust for the rest), reload."""
    database = loaded.rsplit("/", 1)[-1]
    postgres.psql(f"CREATE ROLE reader LOGIN PASSWORD '{MARKER}'")
    postgres.psql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader", database)
    hba = postgres.directory / "data" / "pg_hba.conf"
    hba.write_text("host all reader 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    postgres.psql("SELECT pg_reload_conf()")
    return database


def test_wrong_credentials_fail_with_one_line_and_never_show_the_password(fraud, postgres, password_role, monkeypatch):
    monitor, data, _ = fraud
    wrong = f"postgresql://reader:{MARKER}x@127.0.0.1:{postgres.port}/{password_role}"
    monkeypatch.setenv("DRIFT_TEST_PG_DSN", wrong)
    message = _fails(_with_log(monitor), data)
    assert message.endswith("table fraud_log: authentication failed for user reader (wrong credentials)")
    assert f"{MARKER}x" not in message
    # the right password (from a file this time) reads the week
    right = postgres.directory / "reader.dsn"
    right.write_text(f"host=127.0.0.1 port={postgres.port} dbname={password_role} user=reader password={MARKER}\n")
    good = _with_log(monitor, dsn_env=None, dsn_file=str(right))
    assert preflight_log(data, good, parse_partition_key(WEEKS[0], "weekly"))[1] > 0


def test_a_statement_timeout_fails_the_window_and_says_the_setting(fraud, loaded, postgres, monkeypatch):
    monitor, data, _ = fraud
    monkeypatch.setenv("DRIFT_TEST_PG_DSN", loaded)
    slow = "SELECT * FROM fraud_log, pg_sleep(2) WHERE timestamp >= $1 AND timestamp < $2"
    message = _fails(_with_log(monitor, table=None, query=slow, statement_timeout_s=0.2), data)
    assert message.endswith("query: statement timed out after 0.2 s (statement_timeout_s)")


def test_the_source_repr_and_messages_never_hold_the_dsn(postgres, password_role):
    dsn = f"postgresql://reader:{MARKER}@127.0.0.1:{postgres.port}/{password_role}"
    source = PostgresSource(table="fraud_log", _dsn=dsn)
    assert MARKER not in repr(source) and MARKER not in source.display
    assert source.count() > 0
    with pytest.raises(DriftInputError) as info:
        PostgresSource(query="SELECT syntax error here", _dsn=dsn).count()
    assert MARKER not in str(info.value) and "syntax error" in str(info.value)


def test_loaded_types_match_the_files(loaded, fraud_data):
    source = PostgresSource(table="fraud_log", _dsn=loaded)
    first = sorted((fraud_data / "fraud" / "log").glob("date=*/*.parquet"))[0]
    files = pq.read_schema(first)
    schema = source.schema()
    assert schema.names == files.names
    for f in files:
        want = pa.string() if pa.types.is_dictionary(f.type) else f.type
        assert schema.field(f.name).type == want, f.name


# ------------------------------------------------------------------------------------------ CLI
def _cli(*argv, env_extra=None, tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, DRIFT_ASSETS_ENV="local", DRIFT_ASSETS_DATA_ROOT=str(tmp_path / "data"), **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "drift_assets", *argv], capture_output=True, text=True, env=env, timeout=300
    )


def test_simulate_loads_the_demo_data_into_postgres(postgres, tmp_path):
    database = f"demo_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    target = f"postgresql://postgres@127.0.0.1:{postgres.port}/{database}"
    out = _cli(
        "simulate", "--target", target, "--only", "fraud", "--rows-per-week", "700", "--weeks", "2", tmp_path=tmp_path
    )
    assert out.returncode == 0, out.stderr
    files = sorted((tmp_path / "data" / "fraud" / "log").glob("date=*/*.parquet"))
    in_files = sum(pq.read_metadata(f).num_rows for f in files)
    assert in_files > 0
    assert (
        f"fraud: loaded {in_files:,} rows into postgres 127.0.0.1:{postgres.port}/{database} table fraud_log"
        in out.stdout
    )
    assert int(postgres.psql("SELECT count(*) FROM fraud_log", database)) == in_files
    reference = pq.read_metadata(tmp_path / "data" / "fraud" / "reference" / "reference.parquet").num_rows
    assert int(postgres.psql("SELECT count(*) FROM fraud_reference", database)) == reference
    assert "fraud_log_timestamp" in postgres.psql(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'fraud_log'", database
    )


def test_simulate_to_an_unreachable_database_exits_2_with_one_line(tmp_path):
    from servers import free_port

    port = free_port()
    out = _cli("simulate", "--target", f"postgresql://reader:{MARKER}@127.0.0.1:{port}/shop", tmp_path=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and MARKER not in out.stderr + out.stdout
    assert f"postgres 127.0.0.1:{port}/shop: connection refused" in out.stderr
    assert not (tmp_path / "data" / "fraud").exists()  # nothing simulated before the database was checked


def test_labels_from_postgres_are_the_labels_of_the_files(fraud, loaded, monkeypatch):
    from drift_assets.cli.sql_demo import _label_batches
    from drift_assets.monitoring.performance import labels_since

    monitor, data, _ = fraud
    monkeypatch.setenv("DRIFT_TEST_PG_DSN", loaded)
    load_table(loaded, "fraud_labels", _label_batches(data, monitor.labels.location))
    spec = SourceSpec("postgres", dsn_env="DRIFT_TEST_PG_DSN", table="fraud_labels")
    files, in_db = monitor.labels, dataclasses.replace(monitor.labels, source=spec, location=spec.label)
    window = parse_partition_key(WEEKS[1], "weekly")
    types = {files.id_column: pa.string(), monitor.timestamp_column: pa.timestamp("us", tz="UTC")}
    ids = pa.chunked_array([b.column(0) for b in stream_log(data, monitor, window, types=types)])
    key = files.id_column
    from_files = labels_since(data, files.location, window.start, files, ids).sort_by(key)
    from_db = labels_since(data, in_db.location, window.start, in_db, ids).sort_by(key)
    assert from_files.num_rows > 0.5 * len(ids)
    assert from_db.to_pylist() == from_files.to_pylist()
    # a later start drops the labels that arrived before it (arrived >= $1), in both
    later = window.start + dt.timedelta(days=24)
    fewer_files = labels_since(data, files.location, later, files, ids)
    assert labels_since(data, in_db.location, later, in_db, ids).num_rows == fewer_files.num_rows < from_db.num_rows


# ------------------------------------------------------------------------------------------ limits
def test_an_unset_dsn_variable_fails_the_window_naming_the_variable(fraud, monkeypatch):
    monitor, data, _ = fraud
    monkeypatch.delenv("DRIFT_TEST_PG_DSN", raising=False)
    assert _fails(_with_log(monitor), data) == "environment variable DRIFT_TEST_PG_DSN (the database DSN) is not set"


def test_dask_compute_refuses_a_postgres_log_with_one_line(fraud):
    from drift_assets.orchestration.resources import ComputeResource

    monitor, data, profile = fraud
    compute = ComputeResource(kind="dask", dask_address="tcp://127.0.0.1:9")
    with pytest.raises(DriftInputError, match=r"^fraud: compute kind 'dask' splits parquet files in row groups"):
        compute.window_summary(_with_log(monitor), profile, parse_partition_key(WEEKS[0], "weekly"), data)


def test_a_retraining_attempt_whose_postgres_dsn_is_unset_fails_with_one_line_before_dvc(project, monkeypatch):
    from drift_assets.retraining.attempt import DvcSettings, RetrainingAttempt, RetrainingFailed
    from drift_assets.storage.root import Storage

    class Log:
        info = warning = error = staticmethod(lambda msg: None)

    monitor = _with_log(load_monitors(project / "monitors.yaml").get("fraud"))
    storage = Storage.at(str(project / "data"), str(project / "assets"), str(project / "reports"))
    attempt = RetrainingAttempt(
        monitor,
        storage,
        DvcSettings("/nonexistent/dvc", str(project), str(project / "work")),
        run_id="r1",
        partition="2026-08-17",
        trigger={"partition": "2026-08-17", "check": "manual", "run_id": None},
        log=Log(),
    )
    monkeypatch.delenv("DRIFT_TEST_PG_DSN", raising=False)
    # The log is exported from PostgreSQL before dvc runs (test_sql_retraining.py runs it end to end).
    with pytest.raises(RetrainingFailed) as failed:
        attempt.run()
    assert str(failed.value) == (
        "retraining of fraud for 2026-08-17 failed: cannot export the training inputs from PostgreSQL: environment"
        " variable DRIFT_TEST_PG_DSN (the database DSN) is not set; champion v0001 unchanged"
    )
    assert not list((project / "work").rglob("dvc.yaml"))  # DVC never started
