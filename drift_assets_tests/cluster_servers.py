"""Test fixtures for running beyond one process: a Dask scheduler and workers, PostgreSQL and Redis,
each a real process.

Everything binds 127.0.0.1 on free ports (Dask's dashboard included: ``--dashboard-address
127.0.0.1:0``) and is stopped by process id when the context manager exits, whatever the test did.
Workers run without a nanny (``--no-nanny``): one process per worker, so a test can SIGKILL one
and the scheduler sees it gone, and every process the fixture started is a pid it knows. They
import the project from this checkout (``PYTHONPATH``), not from wherever the venv points.

PostgreSQL (``initdb`` into a fresh directory) runs as the unprivileged ``postgres`` user when the
tests run as root (``runuser``); Redis keeps nothing on disk.

Leak guards, should the test process itself be killed: the scheduler exits after
``IDLE_TIMEOUT`` of inactivity and workers exit ``DEATH_TIMEOUT`` after losing the scheduler.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from servers import REPO_ROOT, free_port, wait_until

DASK_CLI = str(Path(sys.executable).with_name("dask"))
STARTUP_TIMEOUT = 60.0
IDLE_TIMEOUT = "900s"
DEATH_TIMEOUT = "60s"


@dataclass
class StartedProcess:
    name: str
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as when a machine or the OOM killer takes a worker."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@dataclass
class DaskCluster:
    address: str
    scheduler_file: Path
    scheduler: StartedProcess
    workers: list[StartedProcess] = field(default_factory=list)

    @property
    def processes(self) -> list[StartedProcess]:
        return [self.scheduler, *self.workers]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=30, set_as_default=False)

    def worker_addresses(self) -> dict[int, str]:
        """pid -> the worker's address, as the scheduler knows it."""
        with self.client() as client:
            return {pid: address for address, pid in client.run(os.getpid).items()}


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    # Warnings about the dashboard's optional dependencies (bokeh) are noise in the logs.
    env.setdefault("PYTHONWARNINGS", "ignore")
    env.update(extra or {})
    return env


def _spawn(name: str, argv: list[str], workdir: Path, env: Mapping[str, str]) -> StartedProcess:
    log = workdir / f"{name}.log"
    with open(log, "wb") as fh:
        process = subprocess.Popen(
            argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir, env=dict(env)
        )
    return StartedProcess(name, process, log)


def stop(started: StartedProcess, timeout: float = 15.0) -> None:
    """SIGTERM by pid, then SIGKILL if it does not exit in ``timeout`` seconds; always reaped."""
    process = started.process
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _start_scheduler(workdir: Path, env: Mapping[str, str]) -> tuple[StartedProcess, str, Path]:
    """A scheduler on a free port; retried on another port if the one picked was taken meanwhile."""
    last = ""
    for attempt in range(3):
        port = free_port()
        scheduler_file = workdir / f"scheduler-{attempt}.json"
        argv = [
            DASK_CLI,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dashboard-address",
            "127.0.0.1:0",
            "--scheduler-file",
            str(scheduler_file),
            "--idle-timeout",
            IDLE_TIMEOUT,
        ]
        started = _spawn(f"dask-scheduler-{attempt}", argv, workdir, env)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline and started.process.poll() is None and not scheduler_file.exists():
            time.sleep(0.1)
        if scheduler_file.exists() and started.process.poll() is None:
            wait_until(
                lambda f=scheduler_file: json.loads(f.read_text()).get("address"),
                timeout=10,
                message="the scheduler file to be complete",
            )
            return started, json.loads(scheduler_file.read_text())["address"], scheduler_file
        stop(started)
        last = started.log_tail()
        if "already in use" not in last:
            break
    raise RuntimeError(f"dask scheduler did not start:\n{last}")


def _worker_argv(address: str, name: str, directory: Path, nthreads: int, memory_limit: str) -> list[str]:
    return [
        DASK_CLI,
        "worker",
        address,
        "--host",
        "127.0.0.1",
        "--dashboard-address",
        "127.0.0.1:0",
        "--nthreads",
        str(nthreads),
        "--no-nanny",
        "--name",
        name,
        "--local-directory",
        str(directory),
        "--memory-limit",
        memory_limit,
        "--death-timeout",
        DEATH_TIMEOUT,
    ]


@contextlib.contextmanager
def start_dask_cluster(
    tmp_path: Path,
    n_workers: int = 2,
    *,
    nthreads: int = 1,
    memory_limit: str = "0",
    env: Mapping[str, str] | None = None,
) -> Iterator[DaskCluster]:
    """A scheduler and ``n_workers`` single-threaded workers, each its own process, on 127.0.0.1.

    ``env`` is added to the processes' environment (e.g. the S3 endpoint and credentials the
    workers read with). ``memory_limit="0"`` switches off Dask's memory management, so a test
    measures the project's memory, not Dask's spilling.
    """
    workdir = Path(tmp_path) / "dask"
    workdir.mkdir(parents=True, exist_ok=True)
    environment = _environment(env)
    scheduler, address, scheduler_file = _start_scheduler(workdir, environment)
    cluster = DaskCluster(address, scheduler_file, scheduler)
    try:
        for i in range(n_workers):
            name = f"worker-{i}"
            argv = _worker_argv(address, name, workdir / name, nthreads, memory_limit)
            cluster.workers.append(_spawn(f"dask-{name}", argv, workdir, environment))
        _wait_for_workers(cluster, n_workers)
        yield cluster
    finally:
        for started in reversed(cluster.processes):
            stop(started)


def _wait_for_workers(cluster: DaskCluster, n_workers: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with cluster.client() as client:
        while len(client.scheduler_info()["workers"]) < n_workers:
            dead = [w for w in cluster.workers if w.process.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead[0].name} exited with {dead[0].process.returncode}:\n{dead[0].log_tail()}")
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.name}\n{p.log_tail(10)}" for p in cluster.processes)
                raise RuntimeError(f"{n_workers} dask workers not connected within {STARTUP_TIMEOUT:g}s\n{logs}")
            time.sleep(0.2)


# --------------------------------------------------------------------------- PostgreSQL
POSTGRES_BIN_DIR = os.environ.get("POSTGRES_BIN_DIR", "/usr/local/bin")
POSTGRES_USER = "postgres"  # the unprivileged OS user the server runs as when the tests run as root


def _require_binary(path: str, hint: str) -> str:
    found = path if os.path.isabs(path) and os.access(path, os.X_OK) else shutil.which(path)
    if found:
        return found
    message = f"{path} not found ({hint})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _as_postgres_user(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as an unprivileged user (created if missing)."""
    if os.geteuid() != 0:
        return argv
    try:
        pwd.getpwnam(POSTGRES_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", POSTGRES_USER],
            check=True,
            capture_output=True,
        )
    return ["runuser", "-u", POSTGRES_USER, "--", *argv]


@dataclass
class PostgresServer:
    port: int
    directory: Path  # data directory, socket and log: removed when the server stops
    runner: StartedProcess  # runuser (or postgres itself when not root)
    postmaster_pid: int

    @property
    def pids(self) -> list[int]:
        return sorted({self.runner.pid, self.postmaster_pid})

    def url(self, database: str = "postgres") -> str:
        # psycopg2 spelled out: SQLAlchemy 2.1 maps a bare postgresql:// URL to psycopg 3.
        return f"postgresql+psycopg2://{POSTGRES_USER}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql over TCP; the output rows, unaligned. Fails with psql's message."""
        psql = _require_binary("psql", "Debian: apt-get install postgresql-client")
        out = subprocess.run(
            [
                psql,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                POSTGRES_USER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.returncode != 0:
            raise RuntimeError(f"psql failed on {sql!r}: {out.stderr.strip()}")
        return out.stdout.strip()

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _postmaster_pid(datadir: Path) -> int | None:
    try:
        return int((datadir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _stop_postgres(runner: StartedProcess, datadir: Path) -> None:
    """Fast shutdown (SIGINT) of the postmaster by its pid, then reap runuser. runuser alone would
    forward SIGTERM (a *smart* shutdown, which waits for clients) and SIGKILL it after 2 s."""
    pid = _postmaster_pid(datadir)
    if pid is not None and runner.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
    try:
        runner.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stop(runner)


def _initdb(directory: Path) -> Path:
    initdb = _require_binary(os.path.join(POSTGRES_BIN_DIR, "initdb"), "PostgreSQL 15 server binaries")
    datadir = directory / "data"
    out = subprocess.run(
        _as_postgres_user(
            [initdb, "-D", str(datadir), "-U", POSTGRES_USER, "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C"]
        ),
        capture_output=True,
        text=True,
        cwd=directory,
        timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"initdb failed: {out.stderr.strip() or out.stdout.strip()}")
    return datadir


def _wait_for_postgres(runner: StartedProcess, datadir: Path, port: int) -> int | None:
    """The postmaster's pid once it accepts connections; None if it exited (e.g. port taken)."""
    ready = _require_binary("pg_isready", "Debian: apt-get install postgresql-client")
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline and runner.process.poll() is None:
        probe = subprocess.run([ready, "-h", "127.0.0.1", "-p", str(port), "-t", "1"], capture_output=True)
        pid = _postmaster_pid(datadir)
        if probe.returncode == 0 and pid is not None:
            return pid
        time.sleep(0.1)
    if runner.process.poll() is None:
        _stop_postgres(runner, datadir)
        raise RuntimeError(f"postgres not ready within {STARTUP_TIMEOUT:g}s:\n{runner.log_tail()}")
    return None


@contextlib.contextmanager
def start_postgres() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster (initdb) on 127.0.0.1 and a free port, as an unprivileged user.

    Its directory is made outside pytest's private tmp tree (mode 0700, owned by root, which the
    server's user could not enter) and removed afterwards. Trust authentication, loopback only.
    """
    postgres = _require_binary(os.path.join(POSTGRES_BIN_DIR, "postgres"), "PostgreSQL 15 server binaries")
    directory = Path(tempfile.mkdtemp(prefix="drift-assets-pg-"))
    try:
        if os.geteuid() == 0:
            _as_postgres_user(["true"])  # creates the user if missing
            shutil.chown(directory, POSTGRES_USER, POSTGRES_USER)
        datadir = _initdb(directory)
        last = ""
        for attempt in range(3):
            port = free_port()
            argv = _as_postgres_user(
                [
                    postgres,
                    "-D",
                    str(datadir),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-k",
                    str(directory),
                    "-c",
                    "fsync=off",
                    "-c",
                    "logging_collector=off",
                ]
            )
            runner = _spawn(f"postgres-{attempt}", argv, directory, os.environ)
            try:
                pid = _wait_for_postgres(runner, datadir, port)
                if pid is None:
                    last = runner.log_tail()
                    if "already in use" in last:
                        continue
                    raise RuntimeError(f"postgres exited with {runner.process.returncode}:\n{last}")
                yield PostgresServer(port, directory, runner, pid)
                return
            finally:
                _stop_postgres(runner, datadir)
        raise RuntimeError(f"postgres could not bind a free port:\n{last}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------- Redis
@dataclass
class RedisServer:
    port: int
    server: StartedProcess

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *args: str) -> bytes:
        """One command over the RESP protocol (no client library needed): its reply."""
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(payload.encode())
            return _read_reply(sock)


def _read_reply(sock: socket.socket) -> bytes:
    """A status/error/integer reply as its line (b"+PONG"); a bulk string as its bytes."""
    with sock.makefile("rb") as reply:
        line = reply.readline().rstrip(b"\r\n")
        if line.startswith(b"$") and line != b"$-1":
            return reply.read(int(line[1:]) + 2)[:-2]
        return line


@contextlib.contextmanager
def start_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """redis-server on 127.0.0.1 and a free port, no persistence, stopped by pid."""
    redis_server = _require_binary("redis-server", "Debian: apt-get install redis-server")
    directory = Path(tmp_path) / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    last = ""
    for attempt in range(3):
        port = free_port()
        argv = [
            redis_server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        started = _spawn(f"redis-{attempt}", argv, directory, os.environ)
        server = RedisServer(port, started)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while time.monotonic() < deadline and started.process.poll() is None:
                with contextlib.suppress(OSError):
                    if server.command("PING") == b"+PONG":
                        break
                time.sleep(0.05)
            if started.process.poll() is not None:
                last = started.log_tail()
                if "already in use" in last:
                    continue
                raise RuntimeError(f"redis-server exited with {started.process.returncode}:\n{last}")
            yield server
            return
        finally:
            stop(started)
    raise RuntimeError(f"redis-server could not bind a free port:\n{last}")
