"""The pooled SQLite storage (orchestration/sqlite_storage.py) against Dagster's own SQLite classes.

It must write the same files with the same schema and alembic revision, so that Dagster's classes
(the webserver of another install, ``dagster instance migrate``) read them unchanged and the other
way round; keep its open files bounded; survive a fork, a wipe and two processes writing at once.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSpec,
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    HourlyPartitionsDefinition,
    MaterializeResult,
    asset,
    define_asset_job,
    in_process_executor,
)
from dagster._core.storage.dagster_run import RunsFilter
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from drift_assets.orchestration import sqlite_storage
from drift_assets.orchestration.sqlite_storage import MAX_OPEN_RUN_FILES, stamp_new_event_log_file

TESTS = Path(__file__).resolve().parent
HOURLY = HourlyPartitionsDefinition(start_date="2026-10-05-00:00", end_date="2026-10-06-00:00")
KEYS = HOURLY.get_partition_keys()
CHECKS = ["rows_present", "no_drift"]
STORAGE_BLOCK = (
    "storage:\n  custom:\n    module: drift_assets.orchestration.sqlite_storage\n"
    "    class: PooledSqliteStorage\n    config:\n      base_dir: {env: DAGSTER_HOME}\n"
)
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@asset(key=["store", "window"], partitions_def=HOURLY)
def window() -> int:
    return 1


@asset(
    key=["store", "report"],
    partitions_def=HOURLY,
    deps=[window],
    check_specs=[AssetCheckSpec(name, asset=AssetKey(["store", "report"]), partitions_def=HOURLY) for name in CHECKS],
)
def report(context):
    odd = int(context.partition_key[-5:-3]) % 2  # the check fails on odd hours
    return MaterializeResult(
        check_results=[AssetCheckResult(check_name="rows_present", passed=True)]
        + [AssetCheckResult(check_name="no_drift", passed=not odd)]
    )


JOB = Definitions(
    assets=[window, report], jobs=[define_asset_job("store_job", executor_def=in_process_executor)]
).resolve_job_def("store_job")


def _home(path: Path, pooled: bool) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n" + (STORAGE_BLOCK if pooled else ""))
    return path


def _instance(home: Path, monkeypatch) -> DagsterInstance:
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return DagsterInstance.get()


def run_partitions(keys: list[str], instance: DagsterInstance) -> None:
    for key in keys:
        assert JOB.execute_in_process(partition_key=key, instance=instance, run_config=QUIET).success


def _schema(path: Path) -> tuple:
    with sqlite3.connect(path) as conn:
        objects = sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall(), key=str)
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        journal = conn.execute("PRAGMA journal_mode").fetchone()
    return objects, version, journal


def _run_files(home: Path) -> list[Path]:
    return sorted(p for p in (home / "history" / "runs").glob("*.db") if p.name != "index.db")


def _summary(instance: DagsterInstance) -> dict:
    """What a reader sees per partition: run status, event types in order, check outcomes."""
    history = {
        name: {
            r.run_id: r.status.value
            for r in instance.event_log_storage.get_asset_check_execution_history(
                AssetCheckKey(AssetKey(["store", "report"]), name), limit=100
            )
        }
        for name in CHECKS
    }
    mats = instance.fetch_materializations(AssetKey(["store", "report"]), limit=100).records
    partitions = [m.partition_key for m in mats]
    out = {}
    for run in instance.get_runs(RunsFilter(job_name="store_job")):
        key = run.tags["dagster/partition"]
        types = [e.dagster_event_type.value for e in instance.all_logs(run.run_id) if e.is_dagster_event]
        checks = {name: history[name].get(run.run_id) for name in CHECKS}
        out[key] = (run.status.value, types, checks, partitions.count(key))
    return out


@pytest.fixture
def both(tmp_path, monkeypatch):
    """The same three hours run through Dagster's storage and through the pooled one."""
    homes = {"dagster": _home(tmp_path / "dagster", False), "pooled": _home(tmp_path / "pooled", True)}
    for name, home in homes.items():
        instance = _instance(home, monkeypatch)
        assert type(instance.event_log_storage).__name__ == (
            "PooledSqliteEventLogStorage" if name == "pooled" else "SqliteEventLogStorage"
        )
        run_partitions(KEYS[:3], instance)
        instance.dispose()
    return homes


def test_the_files_are_dagsters_files(both):
    dagster, pooled = both["dagster"], both["pooled"]
    for relative in ("history/runs.db", "history/runs/index.db", "schedules/schedules.db"):
        assert _schema(pooled / relative) == _schema(dagster / relative), relative
    assert len(_run_files(pooled)) == len(_run_files(dagster)) == 3
    for ours, theirs in zip(_run_files(pooled), _run_files(dagster), strict=True):
        assert _schema(ours) == _schema(theirs)
    # the stamp is alembic's head, as Dagster's own path writes it
    assert _schema(_run_files(pooled)[0])[1] == [(sqlite_storage._event_log_script()[1],)]


def test_each_storage_reads_what_the_other_wrote(both, monkeypatch):
    seen = {}
    for writer, home in both.items():
        for reader in ("dagster", "pooled"):
            _home(home, reader == "pooled")  # the same files under the other storage class
            instance = _instance(home, monkeypatch)
            seen[writer, reader] = _summary(instance)
            instance.dispose()
    reference = seen["dagster", "dagster"]
    assert set(reference) == set(KEYS[:3])
    assert reference[KEYS[1]][2] == {"rows_present": "SUCCEEDED", "no_drift": "FAILED"}
    assert all(summary == reference for summary in seen.values()), seen


def _open_db_files(home: Path) -> list[str]:
    """The SQLite files under ``home`` this process holds open (from /proc/self/fd)."""
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # the descriptor listdir itself used
            continue
    return [path for path in paths if path.startswith(str(home)) and path.endswith(".db")]


def test_open_database_files_stay_bounded(tmp_path, monkeypatch):
    home = _home(tmp_path / "pooled", True)
    instance = _instance(home, monkeypatch)
    run_partitions(KEYS[:10], instance)
    ours = _open_db_files(home)
    # runs.db, schedules.db, index.db and the most recent run files, never one per run (SQLite
    # keeps a closed connection's descriptor while another holds the file's locks: at most two)
    assert 1 <= len(set(ours)) <= MAX_OPEN_RUN_FILES + 3 and len(ours) <= 2 * len(set(ours)), "\n".join(ours)
    assert len(_run_files(home)) == 10
    instance.dispose()  # Dagster's instance does not dispose its schedule storage
    assert [Path(path).name for path in _open_db_files(home)] in ([], ["schedules.db"])


def _child(home: str, key: str, inherited: DagsterInstance, result) -> None:
    pools = [p for p in sqlite_storage._LIVE_POOLS if p.open_urls()]
    run_partitions([key], inherited)
    result.put(len(pools))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork")
def test_a_forked_child_opens_its_own_connections(tmp_path, monkeypatch):
    home = _home(tmp_path / "pooled", True)
    instance = _instance(home, monkeypatch)
    run_partitions(KEYS[:1], instance)
    context = multiprocessing.get_context("fork")
    result = context.Queue()
    child = context.Process(target=_child, args=(str(home), KEYS[1], instance, result))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert result.get(timeout=5) == 0  # the parent's engines were dropped in the child, unclosed
    run_partitions(KEYS[2:3], instance)  # the parent's kept connections still work
    runs = instance.get_runs(RunsFilter(job_name="store_job"))
    assert sorted(r.tags["dagster/partition"] for r in runs) == KEYS[:3]
    assert all(r.status == DagsterRunStatus.SUCCESS for r in runs)
    instance.dispose()


def test_wipe_closes_the_run_files_it_deletes(tmp_path, monkeypatch):
    home = _home(tmp_path / "pooled", True)
    instance = _instance(home, monkeypatch)
    run_partitions(KEYS[:2], instance)
    instance.wipe()
    assert instance.get_runs() == [] and _run_files(home) == []
    run_partitions(KEYS[2:3], instance)
    (run,) = instance.get_runs()
    assert run.status == DagsterRunStatus.SUCCESS and len(instance.all_logs(run.run_id)) > 10
    instance.dispose()


@pytest.mark.slow
def test_two_processes_write_at_once(tmp_path):
    home = _home(tmp_path / "pooled", True)
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    code = (
        "import sys; from dagster import DagsterInstance; import test_sqlite_storage as t; "
        "t.run_partitions(sys.argv[1].split(','), DagsterInstance.get())"
    )
    halves = [",".join(KEYS[0:12:2]), ",".join(KEYS[1:12:2])]
    procs = [subprocess.Popen([sys.executable, "-c", code, keys], env=env, stderr=subprocess.PIPE) for keys in halves]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    monkeypatch = pytest.MonkeyPatch()
    try:
        instance = _instance(home, monkeypatch)
        summary = _summary(instance)
        assert sorted(summary) == KEYS[:12]
        assert all(status == "SUCCESS" and mats == 1 for status, _, _, mats in summary.values())
        failed = sorted(key for key, (_, _, checks, _) in summary.items() if checks["no_drift"] == "FAILED")
        assert failed == KEYS[1:12:2]
        instance.dispose()
    finally:
        monkeypatch.undo()


def test_a_file_in_another_state_is_left_to_dagster(tmp_path):
    legacy = tmp_path / "legacy.db"
    with sqlite3.connect(legacy) as conn:
        conn.execute("CREATE TABLE event_logs (id INTEGER PRIMARY KEY)")
    import sqlalchemy as db

    engine = db.create_engine(f"sqlite:///{legacy}")
    assert stamp_new_event_log_file(engine) is False  # no alembic stamp guessed on an old layout
    with sqlite3.connect(legacy) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["event_logs"]
    fresh = db.create_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert stamp_new_event_log_file(fresh) is True
    assert stamp_new_event_log_file(fresh) is True  # already at the head: nothing to do
    engine.dispose()
    fresh.dispose()


def test_many_threads_at_once_each_get_a_connection(tmp_path, monkeypatch):
    """The webserver answers requests on many threads: none waits for another's connection."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    home = _home(tmp_path / "pooled", True)
    instance = _instance(home, monkeypatch)
    run_partitions(KEYS[:1], instance)
    barrier = threading.Barrier(16, timeout=20)

    def hold_a_connection(_):
        with instance.run_storage.connect() as conn:
            barrier.wait()  # all 16 hold a connection to runs.db at the same time
            time.sleep(0.05)
            return conn.exec_driver_sql("SELECT count(*) FROM runs").scalar()

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(hold_a_connection, range(16))) == [1] * 16
    assert len(instance.get_runs()) == 1
    instance.dispose()


def test_has_table_answers_as_dagsters(tmp_path, monkeypatch):
    pooled = _instance(_home(tmp_path / "pooled", True), monkeypatch).event_log_storage
    for name in ("asset_check_executions", "event_logs", "concurrency_limits", "no_such_table"):
        reference = SqliteEventLogStorage(pooled._base_dir)  # Dagster's class on the same files
        assert pooled.has_table(name) == reference.has_table(name) == (name != "no_such_table")
        assert pooled.has_table(name) == reference.has_table(name)  # the cached answer too
    assert pooled.supports_asset_checks
