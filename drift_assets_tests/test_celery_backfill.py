"""Runs across processes as across machines: the instance of deploy/dagster/dagster.postgres-celery.yaml
(Postgres run/event/schedule storage, the queued run coordinator, ``CeleryRunLauncher`` with Redis)
with ``dagster-daemon`` and two Celery workers (``-P solo``) as real processes on 127.0.0.1.

A backfill of 8 weekly partitions submitted with ``dagster job backfill`` runs to completion, each
run executed by a Celery worker, both workers used, and every check result equals the one of the
same weeks run in this process on a SQLite instance. No process outlives the test.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from cluster_servers import REPO_ROOT, _environment, _spawn, start_postgres, start_redis, stop
from dagster import AssetCheckKey, AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter, instance_for_test
from support import write_monitors_file

pytest.importorskip("dagster_postgres")
pytest.importorskip("dagster_celery")

pytestmark = pytest.mark.slow  # Postgres, Redis, a daemon, two workers, 9 runs: ~2.5 min

CONFIG = REPO_ROOT / "deploy" / "dagster" / "dagster.postgres-celery.yaml"
BIN = Path(sys.executable).parent
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
DRIFT_REPORT = AssetKey(["fraud", "drift_report"])
WEEKS = 8
START = dt.date(2026, 8, 3)
KEYS = [(START + dt.timedelta(weeks=i)).isoformat() for i in range(WEEKS)]
RUN_TIMEOUT = 600


@pytest.fixture
def eight_weeks(tmp_path, monkeypatch):
    from drift_assets.simulate import simulate_fraud

    data = tmp_path / "data"
    simulate_fraud(
        str(data / "fraud"), rows_per_week=2000, weeks=WEEKS, drift_week=3, training_rows=10_000, reference_rows=5_000
    )
    monkeypatch.setenv("DRIFT_ASSETS_ENV", "local")
    monkeypatch.setenv("DRIFT_ASSETS_DATA_ROOT", str(data))
    monkeypatch.setenv("DRIFT_ASSETS_HTML_REPORTS", "0")
    monkeypatch.setenv("DRIFT_ASSETS_MONITORS", str(write_monitors_file(tmp_path / "monitors.yaml", weeks=WEEKS)))
    monkeypatch.delenv("DRIFT_ASSETS_COMPUTE", raising=False)
    return tmp_path


def check_results(defs, instance) -> dict:
    out = {}
    for spec in defs.resolve_assets_def(DRIFT_REPORT).check_specs:
        key = AssetCheckKey(DRIFT_REPORT, spec.name)
        for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=100):
            evaluation = record.evaluation
            values = {k: v.value for k, v in evaluation.metadata.items()}
            out[(spec.name, record.partition)] = (evaluation.passed, evaluation.severity.value, values)
    return out


def _roots(monkeypatch, base: Path, label: str) -> None:
    monkeypatch.setenv("DRIFT_ASSETS_ASSETS_ROOT", str(base / f"assets-{label}"))
    monkeypatch.setenv("DRIFT_ASSETS_REPORTS_ROOT", str(base / f"reports-{label}"))


def in_process_results(base: Path, monkeypatch) -> dict:
    from drift_assets.definitions import build_definitions

    _roots(monkeypatch, base, "sqlite")
    defs = build_definitions()
    with instance_for_test() as instance:
        assert (
            defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET).success
        )
        for key in KEYS:
            job = defs.resolve_job_def("fraud_window_job")
            assert job.execute_in_process(partition_key=key, instance=instance, run_config=QUIET).success
        return check_results(defs, instance)


def _wait_for_runs(instance, backfill_id: str, processes) -> list:
    deadline = time.monotonic() + RUN_TIMEOUT
    done = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    runs: list = []
    while time.monotonic() < deadline:
        runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id}))
        if len(runs) == WEEKS and all(r.status in done for r in runs):
            return runs
        dead = [p for p in processes if p.process.poll() is not None]
        if dead:
            pytest.fail(f"{dead[0].name} exited with {dead[0].process.returncode}:\n{dead[0].log_tail()}")
        time.sleep(1)
    logs = "\n".join(f"--- {p.name}\n{p.log_tail(15)}" for p in processes)
    states = [(r.tags.get("dagster/partition"), r.status) for r in runs]
    pytest.fail(f"backfill not finished in {RUN_TIMEOUT}s: {states}\n{logs}")


def test_a_backfill_of_8_weeks_runs_on_two_celery_workers_with_the_in_process_results(eight_weeks, monkeypatch):
    from drift_assets.definitions import build_definitions

    base = eight_weeks
    expected = in_process_results(base, monkeypatch)
    assert len({week for _, week in expected}) == WEEKS

    workdir = base / "cluster"
    (home := base / "dagster_home").mkdir()
    workdir.mkdir()
    shutil.copy(CONFIG, home / "dagster.yaml")
    _roots(monkeypatch, base, "celery")
    started = []
    with start_postgres() as pg, start_redis(workdir) as redis:
        env = _environment(
            {
                "DAGSTER_HOME": str(home),
                "DAGSTER_PG_URL": pg.url(),
                "DAGSTER_CELERY_BROKER_URL": redis.url,
                "DAGSTER_CELERY_BACKEND_URL": redis.url.rsplit("/", 1)[0] + "/1",
            }
        )
        for name in ("DAGSTER_HOME", "DAGSTER_PG_URL", "DAGSTER_CELERY_BROKER_URL", "DAGSTER_CELERY_BACKEND_URL"):
            monkeypatch.setenv(name, env[name])
        try:
            with DagsterInstance.get() as instance:  # the Postgres instance: creates the schema
                defs = build_definitions()
                reference = defs.resolve_job_def("fraud_reference_job")
                assert reference.execute_in_process(instance=instance, run_config=QUIET).success
            workspace = str(REPO_ROOT / "workspace.yaml")
            started.append(
                _spawn("dagster-daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace], workdir, env)
            )
            for i in (1, 2):
                argv = [
                    str(BIN / "celery"),
                    "-A",
                    "dagster_celery.app",
                    "-b",
                    env["DAGSTER_CELERY_BROKER_URL"],
                    "--result-backend",
                    env["DAGSTER_CELERY_BACKEND_URL"],
                    "worker",
                    "-P",
                    "solo",
                    "-Q",
                    "dagster",
                    "--prefetch-multiplier=1",
                    "-l",
                    "INFO",
                    "-n",
                    f"worker{i}@%h",
                    "--without-gossip",
                    "--without-mingle",
                ]
                started.append(_spawn(f"celery-worker{i}", argv, workdir, env))
            submitted = subprocess.run(
                [
                    str(BIN / "dagster"),
                    "job",
                    "backfill",
                    "-w",
                    workspace,
                    "-j",
                    "fraud_window_job",
                    "--from",
                    KEYS[0],
                    "--to",
                    KEYS[-1],
                    "--noprompt",
                ],
                capture_output=True,
                text=True,
                env=env,
                cwd=REPO_ROOT,
                timeout=300,
            )
            assert submitted.returncode == 0, submitted.stdout + submitted.stderr
            backfill_id = submitted.stdout.split("Launched backfill job `", 1)[1].split("`", 1)[0]
            with DagsterInstance.get() as instance:
                runs = _wait_for_runs(instance, backfill_id, started)
                statuses = {r.tags["dagster/partition"]: r.status for r in runs}
                assert statuses == dict.fromkeys(KEYS, DagsterRunStatus.SUCCESS), statuses
                assert all("dagster-celery/task_id" in r.tags for r in runs)  # launched as Celery tasks
                actual = check_results(defs, instance)
            listening = _non_loopback_listeners([p.pid for p in started] + pg.pids + [redis.server.pid])
        finally:
            for process in reversed(started):
                stop(process)
        worker_logs = [p.log.read_text(errors="replace") for p in started if p.name.startswith("celery-worker")]

    # Each worker ran some of the 8 runs (its log names the task each time it gets one).
    received = [log.count("execute_job") for log in worker_logs]
    assert all(n > 0 for n in received), received
    assert set(actual) == set(expected)
    for key, (passed, severity, values) in expected.items():
        assert actual[key][:2] == (passed, severity), key
        for name, value in values.items():
            assert actual[key][2][name] == (pytest.approx(value) if isinstance(value, float) else value), (key, name)
    assert expected[("feature_psi_below_retrain_threshold", "2026-08-17")][:2] == (False, "ERROR")
    assert not listening, listening
    assert not [p.pid for p in started if psutil.pid_exists(p.pid) and psutil.Process(p.pid).status() != "zombie"]


def _non_loopback_listeners(pids: list[int]) -> list:
    found = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            family = [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in family:
            try:
                for c in p.net_connections(kind="inet"):
                    if c.status == psutil.CONN_LISTEN and c.laddr.ip not in ("127.0.0.1", "::1"):
                        found.append((p.name(), c.laddr))
            except psutil.NoSuchProcess:
                continue
    return found
