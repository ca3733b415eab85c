"""Smoke tests of the PostgreSQL and Redis fixtures Dagster's run storage and Celery's broker will
use: real servers on 127.0.0.1 and free ports, PostgreSQL as an unprivileged user, both stopped by
process id with nothing left behind."""

from __future__ import annotations

import os
import uuid

import psutil
import pytest
from cluster_servers import POSTGRES_USER, start_postgres, start_redis

pytestmark = pytest.mark.slow  # PostgreSQL and Redis servers


def listening_addresses(pid: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process(pid).net_connections("inet") if c.status == psutil.CONN_LISTEN}


def test_postgres_starts_stores_and_stops_leaving_nothing():
    with start_postgres() as pg:
        directory, pids = pg.directory, pg.pids
        server = psutil.Process(pg.postmaster_pid)
        if os.geteuid() == 0:
            assert server.username() == POSTGRES_USER  # never as root
        assert listening_addresses(pg.postmaster_pid) == {"127.0.0.1"}
        assert pg.psql("SHOW server_version").startswith("15.")
        name = f"drift_{uuid.uuid4().hex[:8]}"
        url = pg.create_database(name)
        assert url == f"postgresql+psycopg2://{POSTGRES_USER}@127.0.0.1:{pg.port}/{name}"
        pg.psql("CREATE TABLE runs (id serial PRIMARY KEY, partition text NOT NULL)", database=name)
        pg.psql("INSERT INTO runs (partition) VALUES ('2026-08-03'), ('2026-08-10')", database=name)
        assert pg.psql("SELECT count(*), max(partition) FROM runs", database=name) == "2|2026-08-10"
        children = [c.pid for c in server.children(recursive=True)]
        assert children  # checkpointer, walwriter, ...: stopped with the postmaster
    assert [p for p in pids + children if psutil.pid_exists(p)] == []
    assert not directory.exists()


def test_redis_answers_and_stops_leaving_nothing(tmp_path):
    with start_redis(tmp_path) as redis:
        pid = redis.server.pid
        assert listening_addresses(pid) == {"127.0.0.1"}
        assert redis.command("PING") == b"+PONG"
        assert redis.command("SET", "drift:key", "weekly") == b"+OK"
        assert redis.command("GET", "drift:key") == b"weekly"
        assert redis.command("GET", "missing") == b"$-1"
        assert redis.command("INCR", "drift:count") == b":1"
        assert redis.url == f"redis://127.0.0.1:{redis.port}/0"
    assert not psutil.pid_exists(pid)
