"""`drift-assets cluster`: Postgres, Redis, a Dask scheduler and two workers, the Dagster webserver
and daemon and two Celery workers start, each answers on 127.0.0.1 (and nothing listens anywhere
else); the fraud reference and two weeks launched into it run as Celery tasks with each window's
counts from the Dask workers; SIGTERM to the command stops every process, by process id."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from servers import REPO_ROOT

pytest.importorskip("dagster_postgres")
pytest.importorskip("dagster_celery")

pytestmark = pytest.mark.slow  # ten processes and three runs, ~2-3 min

WEEKS = ["2026-08-10", "2026-08-17"]
CLI = os.path.join(os.path.dirname(sys.executable), "drift-assets")
SERVICES = {
    "postgres",
    "redis",
    "dask-scheduler",
    "dask-worker-0",
    "dask-worker-1",
    "dagster-daemon",
    "dagster-webserver",
    "celery-worker1",
    "celery-worker2",
}


def _family(pids) -> list[psutil.Process]:
    found = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            found += [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return found


def _listening(processes) -> list[tuple[str, str, int]]:
    out = []
    for p in processes:
        try:
            out += [(p.name(), c.laddr.ip, c.laddr.port) for c in p.net_connections("inet") if c.status == "LISTEN"]
        except psutil.NoSuchProcess:
            continue
    return out


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _dagster(doc: dict, *args: str) -> str:
    env = {**os.environ, **doc["env"]}
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "dagster"), *args, "-w", str(REPO_ROOT / "workspace.yaml")],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _wait_for(instance, run_filter, n: int, timeout: float = 300) -> list:
    from dagster import DagsterRunStatus

    done = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs(run_filter)
        if len(runs) == n and all(r.status in done for r in runs):
            return runs
        time.sleep(1)
    raise AssertionError(f"runs not finished in {timeout:g}s: {[(r.job_name, r.status) for r in runs]}")


def _run_two_weeks(doc: dict, monkeypatch) -> None:
    """The reference job and two weeks, launched into the cluster: queued, run by Celery workers,
    each window's counts from the Dask workers."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    for name, value in doc["env"].items():
        monkeypatch.setenv(name, value)
    _dagster(doc, "job", "launch", "-j", "fraud_reference_job")
    with DagsterInstance.get() as instance:
        [reference] = _wait_for(instance, RunsFilter(job_name="fraud_reference_job"), 1)
        assert reference.status == DagsterRunStatus.SUCCESS
        out = _dagster(doc, "job", "backfill", "-j", "fraud_window_job", "--from", WEEKS[0], "--to", WEEKS[1],
                       "--noprompt")  # fmt: skip
        backfill = out.split("Launched backfill job `", 1)[1].split("`", 1)[0]
        runs = _wait_for(instance, RunsFilter(tags={"dagster/backfill": backfill}), 2)
        assert {r.tags["dagster/partition"]: r.status for r in runs} == dict.fromkeys(WEEKS, DagsterRunStatus.SUCCESS)
        for run in runs:
            assert "dagster-celery/task_id" in run.tags
            messages = [e.user_message for e in instance.all_logs(run.run_id)]
            assert any("window counts from the Dask scheduler at " + doc["dask_scheduler"] in m for m in messages)


def test_the_cluster_starts_answers_on_loopback_runs_weeks_and_stops_by_pid(project, monkeypatch):
    # Outside pytest's 0700 tmp tree: PostgreSQL runs as an unprivileged user that must reach it.
    directory = Path(tempfile.mkdtemp(prefix="drift-assets-cluster-"))
    directory.chmod(0o755)
    state = directory / "state"
    monkeypatch.setenv("DRIFT_ASSETS_HTML_REPORTS", "0")
    command = subprocess.Popen(  # inherits the project's data, assets and reports roots
        [CLI, "cluster", "--dir", str(state)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 300
        while not (state / "cluster.json").exists():
            assert command.poll() is None, command.stdout.read()
            assert time.monotonic() < deadline, "cluster not ready in 300 s"
            time.sleep(0.5)
        doc = json.loads((state / "cluster.json").read_text())
        assert set(doc["pids"]) == SERVICES
        family = _family([command.pid, *doc["pids"].values()])
        listening = _listening(family)
        assert listening and all(ip == "127.0.0.1" for _, ip, _ in listening), listening

        from distributed import Client

        with Client(doc["dask_scheduler"], timeout=10, set_as_default=False) as client:
            assert len(client.scheduler_info()["workers"]) == 2
        with urllib.request.urlopen(doc["dagster_webserver"] + "/server_info", timeout=10) as reply:
            assert reply.status == 200 and "dagster_webserver_version" in reply.read().decode()
        import psycopg2

        url = doc["env"]["DAGSTER_PG_URL"].replace("postgresql+psycopg2://", "postgresql://")
        with psycopg2.connect(url) as conn, conn.cursor() as cursor:  # Dagster created its schema there
            cursor.execute("select count(*) from information_schema.tables where table_name = 'runs'")
            assert cursor.fetchone()[0] == 1
        env_sh = (state / "env.sh").read_text()
        assert f"export DRIFT_ASSETS_DASK_ADDRESS={doc['dask_scheduler']}" in env_sh
        assert "export DRIFT_ASSETS_COMPUTE=dask" in env_sh
        _run_two_weeks(doc, monkeypatch)
    finally:
        command.send_signal(signal.SIGTERM)
        output, _ = command.communicate(timeout=180)
    assert command.returncode == 0, output
    assert output.rstrip().endswith("stopped")
    left = [p for p in family if _alive(p)]
    assert not left, [(p.pid, p.name()) for p in left]
    assert not (state / "cluster.json").exists()
    assert (state / "postgres" / "PG_VERSION").exists()  # the data stays for the next start
    shutil.rmtree(directory, ignore_errors=True)
