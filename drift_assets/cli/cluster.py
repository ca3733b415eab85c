"""``drift-assets cluster``: the distributed stack on one machine, to try it (``make cluster``).

PostgreSQL (``initdb`` into a project-local directory; Dagster's run, event and schedule storage),
Redis (Celery's broker and result backend), a Dask scheduler and two workers (a window's counts),
the Dagster webserver and daemon (queued run coordinator) and two Celery workers (``-P solo``: each
run is a Celery task), configured by ``deploy/dagster/dagster.postgres-celery.yaml``. Everything
listens on 127.0.0.1 and free ports (Dask's dashboards included). The command prints the addresses,
writes ``cluster.json`` and ``env.sh`` (source it to point ``dagster`` and ``drift-assets`` at the
cluster) into its directory, and runs until Ctrl-C or SIGTERM; then it stops every process it
started, by process id, newest first. Postgres data stays in the directory for the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from drift_assets.monitoring.config import PROJECT_ROOT

CONFIG = PROJECT_ROOT / "deploy" / "dagster" / "dagster.postgres-celery.yaml"
POSTGRES_BIN_DIR = Path(os.environ.get("POSTGRES_BIN_DIR", "/usr/local/bin"))
POSTGRES_USER = "postgres"  # the unprivileged user PostgreSQL runs as when this runs as root
STARTUP_SECONDS = 90.0
STOP_SECONDS = 20.0
BIN = Path(sys.executable).parent


class ClusterError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    log: Path

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "<no log>"


def _wait(what: str, ready, services: list[Service], timeout: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if ready():
                return
        dead = [s for s in services if s.process.poll() is not None]
        if dead:
            raise ClusterError(f"{dead[0].name} exited with {dead[0].process.returncode}:\n{dead[0].tail()}")
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} not ready within {timeout:g}s")
        time.sleep(0.25)


@dataclass
class LocalCluster:
    directory: Path
    dask_workers: int = 2
    celery_workers: int = 2
    services: list[Service] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------ processes
    def spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> Service:
        log = self.directory / "logs" / f"{name}.log"
        with open(log, "wb") as fh:
            process = subprocess.Popen(
                argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=PROJECT_ROOT,
                env=dict(env if env is not None else self.env), start_new_session=True,
            )  # fmt: skip
        service = Service(name, process, log)
        self.services.append(service)
        return service

    def stop(self) -> None:
        """Newest first: SIGTERM by pid, SIGKILL after STOP_SECONDS; Postgres by ``pg_ctl stop``."""
        for service in reversed(self.services):
            if service.name == "postgres":
                self._stop_postgres(service)
                continue
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
                try:
                    service.process.wait(timeout=STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    service.process.kill()
                    service.process.wait(timeout=10)
        self.services.clear()

    # ------------------------------------------------------------------ PostgreSQL
    def _as_postgres(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        try:
            pwd.getpwnam(POSTGRES_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", POSTGRES_USER],
                check=True, capture_output=True,
            )  # fmt: skip
        return ["runuser", "-u", POSTGRES_USER, "--", *argv]

    def start_postgres(self) -> str:
        datadir = self.directory / "postgres"
        if not (datadir / "PG_VERSION").exists():
            datadir.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                self._as_postgres(["true"])
                shutil.chown(datadir, POSTGRES_USER, POSTGRES_USER)
            initdb = [str(POSTGRES_BIN_DIR / "initdb"), "-D", str(datadir), "-U", POSTGRES_USER, "--auth=trust"]
            out = subprocess.run(self._as_postgres([*initdb, "-E", "UTF8", "--locale=C"]), capture_output=True)
            if out.returncode != 0:
                raise ClusterError(f"initdb {datadir} failed: {out.stderr.decode(errors='replace').strip()}")
        port = free_port()
        argv = [str(POSTGRES_BIN_DIR / "postgres"), "-D", str(datadir), "-h", "127.0.0.1", "-p", str(port)]
        self.spawn("postgres", self._as_postgres([*argv, "-k", str(datadir)]))

        def accepting() -> bool:  # postmaster.pid's last line is "ready" once it accepts connections
            status = (datadir / "postmaster.pid").read_text().splitlines()
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return len(status) >= 8 and status[7].strip() == "ready"

        _wait("postgres", accepting, self.services)
        self.info["postgres"] = f"127.0.0.1:{port}"
        return f"postgresql+psycopg2://{POSTGRES_USER}@127.0.0.1:{port}/postgres"

    def _stop_postgres(self, service: Service) -> None:
        datadir = self.directory / "postgres"
        pg_ctl = [str(POSTGRES_BIN_DIR / "pg_ctl"), "-D", str(datadir), "stop", "-m", "fast", "-w"]
        if (datadir / "postmaster.pid").exists():
            subprocess.run(self._as_postgres(pg_ctl), capture_output=True, timeout=60)
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.process.wait(timeout=STOP_SECONDS)
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait(timeout=10)

    # ------------------------------------------------------------------ Redis, Dask
    def start_redis(self) -> str:
        port = free_port()
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        (self.directory / "redis").mkdir(exist_ok=True)
        argv = [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
        self.spawn("redis", [*argv, "--dir", str(self.directory / "redis")])

        def pong() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return sock.recv(16).startswith(b"+PONG")

        _wait("redis", pong, self.services)
        self.info["redis"] = f"redis://127.0.0.1:{port}"
        return f"redis://127.0.0.1:{port}"

    def start_dask(self) -> str:
        scheduler_file = self.directory / "dask-scheduler.json"
        scheduler_file.unlink(missing_ok=True)
        argv = [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(free_port())]
        argv += ["--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file)]
        self.spawn("dask-scheduler", argv)
        _wait("dask scheduler", lambda: json.loads(scheduler_file.read_text())["address"], self.services)
        address = json.loads(scheduler_file.read_text())["address"]
        for i in range(self.dask_workers):
            worker = [str(BIN / "dask"), "worker", address, "--host", "127.0.0.1", "--nthreads", "1"]
            local = str(self.directory / "dask" / f"worker-{i}")
            self.spawn(
                f"dask-worker-{i}",
                [*worker, "--name", f"worker-{i}", "--dashboard-address", "127.0.0.1:0", "--local-directory", local],
            )
        from distributed import Client

        with Client(address, timeout=30, set_as_default=False) as client:
            _wait("dask workers", lambda: len(client.scheduler_info()["workers"]) >= self.dask_workers, self.services)
        self.info["dask_scheduler"] = address
        return address

    # ------------------------------------------------------------------ Dagster, Celery
    def start_dagster(self) -> None:
        workspace = str(PROJECT_ROOT / "workspace.yaml")
        port = free_port()
        self.spawn("dagster-daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace])
        webserver = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", workspace]
        self.spawn("dagster-webserver", webserver)

        def serving() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"GET /server_info HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                return b" 200 " in sock.recv(64)

        _wait("dagster webserver", serving, self.services, timeout=STARTUP_SECONDS * 2)
        self.info["dagster_webserver"] = f"http://127.0.0.1:{port}"

    def start_celery(self) -> None:
        for i in range(1, self.celery_workers + 1):
            argv = [str(BIN / "celery"), "-A", "dagster_celery.app", "-b", self.env["DAGSTER_CELERY_BROKER_URL"]]
            argv += ["--result-backend", self.env["DAGSTER_CELERY_BACKEND_URL"], "worker", "-P", "solo"]
            argv += ["-Q", "dagster", "--prefetch-multiplier=1", "-l", "INFO", "-n", f"worker{i}@%h"]
            service = self.spawn(f"celery-worker{i}", [*argv, "--without-gossip", "--without-mingle"])
            _wait(f"celery worker {i}", lambda s=service: " ready." in s.log.read_text(errors="replace"), self.services)
        self.info["celery_workers"] = self.celery_workers

    # ------------------------------------------------------------------ all of it
    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o755)  # PostgreSQL's user must reach its data directory
        (self.directory / "logs").mkdir(exist_ok=True)
        home = self.directory / "dagster_home"
        home.mkdir(exist_ok=True)
        shutil.copy(CONFIG, home / "dagster.yaml")
        self.env = dict(os.environ)
        pg_url = self.start_postgres()
        broker = self.start_redis()
        dask_address = self.start_dask()
        self.env.update(
            {
                "DAGSTER_HOME": str(home),
                "DAGSTER_PG_URL": pg_url,
                "DAGSTER_CELERY_BROKER_URL": f"{broker}/0",
                "DAGSTER_CELERY_BACKEND_URL": f"{broker}/1",
                "DRIFT_ASSETS_COMPUTE": "dask",
                "DRIFT_ASSETS_DASK_ADDRESS": dask_address,
            }
        )
        self.start_dagster()
        self.start_celery()
        self.write_files()

    def exported(self) -> dict[str, str]:
        names = ("DAGSTER_HOME", "DAGSTER_PG_URL", "DAGSTER_CELERY_BROKER_URL", "DAGSTER_CELERY_BACKEND_URL")
        return {n: self.env[n] for n in (*names, "DRIFT_ASSETS_COMPUTE", "DRIFT_ASSETS_DASK_ADDRESS")}

    def write_files(self) -> None:
        doc = {**self.info, "env": self.exported(), "pids": {s.name: s.process.pid for s in self.services}}
        (self.directory / "cluster.json").write_text(json.dumps(doc, indent=2) + "\n")
        lines = [f"export {k}={shlex.quote(v)}" for k, v in self.exported().items()]
        (self.directory / "env.sh").write_text("\n".join(lines) + "\n")


@contextlib.contextmanager
def running(directory: Path, dask_workers: int = 2, celery_workers: int = 2) -> Iterator[LocalCluster]:
    cluster = LocalCluster(Path(directory).resolve(), dask_workers, celery_workers)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        (cluster.directory / "cluster.json").unlink(missing_ok=True)


def run_cluster(args) -> int:
    stop_requested = []
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.append(True))
    try:
        with running(Path(args.dir), args.dask_workers, args.celery_workers) as cluster:
            for name, value in cluster.info.items():
                print(f"{name:<18} {value}")
            print(f"environment        source {cluster.directory / 'env.sh'}")
            print(f"logs               {cluster.directory / 'logs'}")
            print("ready; Ctrl-C stops every process", flush=True)
            while not stop_requested:
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except ClusterError as exc:
        print(f"drift-assets: cluster: {exc}", file=sys.stderr)
        return 1
    print("stopped", flush=True)
    return 0
