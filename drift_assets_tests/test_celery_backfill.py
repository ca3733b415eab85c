"""Runs across processes as across machines: the instance of deploy/dagster/dagster.postgres-celery.yaml
(Postgres run/event/schedule storage, the queued run coordinator, ``CeleryRunLauncher`` with Redis)
with ``dagster-daemon`` and two Celery workers (``-P solo``) as real processes on 127.0.0.1.

A backfill of 8 weekly partitions submitted with ``dagster job backfill`` runs to completion, each
run executed by a Celery worker, both workers used, and every check result equals the one of the
same weeks run in this process on a SQLite instance. No process outlives the test.
"""

from __future__ import annotations

import contextlib
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
WORKSPACE = str(REPO_ROOT / "workspace.yaml")
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


@contextlib.contextmanager
def celery_cluster(base: Path, monkeypatch, label: str = "celery"):
    """Postgres, Redis, ``dagster-daemon`` and two Celery workers (``-P solo``) on 127.0.0.1, with the
    fraud reference materialised on the Postgres instance. Yields ``(env, started, postgres, redis)``;
    every process is stopped by its pid on exit."""
    from drift_assets.definitions import build_definitions

    workdir = base / f"cluster-{label}"
    (home := base / f"dagster_home-{label}").mkdir()
    workdir.mkdir()
    shutil.copy(CONFIG, home / "dagster.yaml")
    _roots(monkeypatch, base, label)
    started: list = []
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
                reference = build_definitions().resolve_job_def("fraud_reference_job")
                assert reference.execute_in_process(instance=instance, run_config=QUIET).success
            started.append(
                _spawn("dagster-daemon", [str(BIN / "dagster-daemon"), "run", "-w", WORKSPACE], workdir, env)
            )
            for i in (1, 2):
                started.append(_spawn(f"celery-worker{i}", _celery_worker_argv(env, i), workdir, env))
            yield env, started, pg, redis
        finally:
            for process in reversed(started):
                stop(process)


def _celery_worker_argv(env: dict, i: int) -> list[str]:
    return [
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


def submit_backfill(env: dict, first: str, last: str) -> str:
    """``dagster job backfill`` of the window job over ``first..last``; the backfill id."""
    submitted = subprocess.run(
        [
            str(BIN / "dagster"),
            "job",
            "backfill",
            "-w",
            WORKSPACE,
            "-j",
            "fraud_window_job",
            "--from",
            first,
            "--to",
            last,
            "--noprompt",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    return submitted.stdout.split("Launched backfill job `", 1)[1].split("`", 1)[0]


def test_a_backfill_of_8_weeks_runs_on_two_celery_workers_with_the_in_process_results(eight_weeks, monkeypatch):
    from drift_assets.definitions import build_definitions

    base = eight_weeks
    expected = in_process_results(base, monkeypatch)
    assert len({week for _, week in expected}) == WEEKS
    with celery_cluster(base, monkeypatch) as (env, started, pg, redis):
        backfill_id = submit_backfill(env, KEYS[0], KEYS[-1])
        with DagsterInstance.get() as instance:
            runs = _wait_for_runs(instance, backfill_id, started)
            statuses = {r.tags["dagster/partition"]: r.status for r in runs}
            assert statuses == dict.fromkeys(KEYS, DagsterRunStatus.SUCCESS), statuses
            assert all("dagster-celery/task_id" in r.tags for r in runs)  # launched as Celery tasks
            actual = check_results(build_definitions(), instance)
        listening = _non_loopback_listeners([p.pid for p in started] + pg.pids + [redis.server.pid])
    worker_logs = [p.log.read_text(errors="replace") for p in started if p.name.startswith("celery-worker")]

    # Each worker ran some of the 8 runs (its log names the task each time it gets one).
    received = [log.count("execute_job") for log in worker_logs]
    assert all(n > 0 for n in received), received
    assert set(actual) == set(expected)
    # no_gradual_drift continues the CUSUM of the windows already stored: a backfill evaluates weeks
    # concurrently, so its value depends on which earlier weeks were in when each ran (README).
    order_dependent = {key for key in expected if key[0] == "no_gradual_drift"}
    assert order_dependent
    for key, (passed, severity, values) in expected.items():
        if key in order_dependent:
            continue
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


def _enlarge_week(data: Path, week: str, times: int) -> int:
    """Add to each day of ``week`` a file with its rows ``times`` over (same values, so the same
    distribution): that week's run lasts long enough to kill its worker mid-run. Rows added."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    added = 0
    for day in range(7):
        folder = data / "fraud" / "log" / f"date={(dt.date.fromisoformat(week) + dt.timedelta(days=day)).isoformat()}"
        table = pq.read_table(folder / "part-0.parquet")
        pq.write_table(pa.concat_tables([table] * times), folder / "part-1.parquet")
        added += table.num_rows * times
    return added


def _wait_until(predicate, timeout: float, what: str, processes):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        dead = [p for p in processes if p.process.poll() is not None and not p.name.startswith("celery-worker")]
        if dead:
            pytest.fail(f"{dead[0].name} exited with {dead[0].process.returncode}:\n{dead[0].log_tail()}")
        time.sleep(0.2)
    logs = "\n".join(f"--- {p.name}\n{p.log_tail(15)}" for p in processes)
    pytest.fail(f"{what}: not within {timeout:.0f} s\n{logs}")


def _only_run(instance, backfill_id: str):
    runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id}))
    return runs[0] if len(runs) == 1 else None


def _celery_pid(env: dict, task_id: str) -> int | None:
    """The pid the result backend says runs ``task_id`` (Celery's STARTED meta)."""
    from celery import Celery
    from celery.result import AsyncResult

    app = Celery(broker=env["DAGSTER_CELERY_BROKER_URL"], backend=env["DAGSTER_CELERY_BACKEND_URL"])
    result = AsyncResult(task_id, app=app)
    info = result.info if result.state == "STARTED" else None
    return int(info["pid"]) if isinstance(info, dict) and "pid" in info else None


def test_a_celery_worker_killed_mid_run_fails_that_run_only_and_the_partition_runs_again(eight_weeks, monkeypatch):
    """SIGKILL of the worker running one week: the lost-run watchdog (a sensor in the daemon) fails
    that run within a few ticks (Celery's result backend still says STARTED), a run of another week
    on the other worker succeeds meanwhile, and a new run of the killed week succeeds."""
    from drift_assets.orchestration.keys import WORKER_LOST_TAG
    from drift_assets.orchestration.run_watchdog import INTERVAL_ENV

    base = eight_weeks
    heavy, other = KEYS[0], KEYS[1]
    assert _enlarge_week(base / "data", heavy, times=800) > 1_000_000
    monkeypatch.setenv(INTERVAL_ENV, "5")
    with celery_cluster(base, monkeypatch, label="kill") as (env, started, pg, redis):
        workers = {p.pid: p for p in started if p.name.startswith("celery-worker")}
        with DagsterInstance.get() as instance:
            both = submit_backfill(env, heavy, other)  # one run per week, one per worker (solo pools)

            def run_of(week: str):
                runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": both, "dagster/partition": week}))
                return runs[0] if runs else None

            run = _wait_until(
                lambda: (r := run_of(heavy)) and r.status == DagsterRunStatus.STARTED and r,
                RUN_TIMEOUT,
                "the heavy week's run to start",
                started,
            )
            pid = _wait_until(
                lambda: _celery_pid(env, run.tags["dagster-celery/task_id"]), 60, "its task's pid", started
            )
            assert pid in workers, (pid, list(workers))
            workers[pid].process.kill()
            killed = time.monotonic()
            workers[pid].process.wait()
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED, "finished before the kill"

            def failed():
                r = instance.get_run_by_id(run.run_id)
                return r if r.status == DagsterRunStatus.FAILURE else None

            lost = _wait_until(failed, 120, "the watchdog to fail the killed run", started)
            noticed = time.monotonic() - killed
            assert f"run worker pid {pid}" in lost.tags[WORKER_LOST_TAG], lost.tags
            done = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE}
            other_run = _wait_until(
                lambda: (r := run_of(other)) and r.status in done and r, RUN_TIMEOUT, "the other week", started
            )
            assert other_run.status == DagsterRunStatus.SUCCESS
            again = submit_backfill(env, heavy, heavy)
            rerun = _wait_until(
                lambda: (r := _only_run(instance, again)) and r.status in done and r, RUN_TIMEOUT, "the rerun", started
            )
            assert rerun.status == DagsterRunStatus.SUCCESS
            statuses = {r.run_id: r.status for r in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))}
            assert statuses == {}, statuses  # nothing left STARTED
    print(f"watchdog failed the killed run {noticed:.1f} s after SIGKILL")
    assert not [p.pid for p in started if psutil.pid_exists(p.pid) and psutil.Process(p.pid).status() != "zombie"]
