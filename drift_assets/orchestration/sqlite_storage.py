"""Dagster's SQLite storage with its engines and connections kept open between statements.

Dagster's SQLite storages (runs, event logs, schedules) build a new SQLAlchemy engine and open a new
SQLite connection for every transaction: the engine's statement cache starts empty, so every
statement is compiled again, and closing the file's last connection checkpoints the WAL. A run
stores ~60 events (two or three transactions each: the run's file, the index), so on an hourly monitor
that is most of a run's cost: an empty-bodied run of the LLM window job's shape took 0.86 s with
Dagster's classes and 0.38 s with these (``benchmarks/bench_dagster_week.py``). Each new run's event
log file was also created through alembic, which reads every migration script each time (~80 ms),
and every check result stored asks twice whether the checks table exists, on a new engine each time.

These classes change only that, for the run and event log files: one engine per database file, a
pooled connection, one compiled statement cache shared by all files, a new run's file stamped at
the schema head read once per process, and a table found once not looked for again. The files,
their schema and their alembic revision are exactly Dagster's (tested against Dagster's own
classes), so the webserver, the daemon and ``dagster instance migrate`` read them unchanged, and
going back is deleting the ``storage`` block of dagster.yaml. Dagster's classes stay the reference
for everything else (migrations, wipes, watching a run's file, schedules).

Configured in dagster.yaml, as the instance's default storage (so it follows the instance's
directory: ``$DAGSTER_HOME``, or the temporary one ``dagster dev`` makes without it)::

    instance_class:
      module: drift_assets.orchestration.sqlite_storage
      class: PooledSqliteInstance

A ``storage:`` block in the same file (Postgres, say) still wins: only the default changes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as db
import yaml
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef, compute_logs_directory
from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sql import get_alembic_config
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from dagster._utils import mkdir_p
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.util import LRUCache

COMPUTE_LOGS_MODULE = "drift_assets.orchestration.compute_logs"  # by name: imported when a run needs it

# Run files whose engines stay open: the runs being written or read now. Older ones are closed.
MAX_OPEN_RUN_FILES = 4
# Statements compiled once per process (Dagster issues a few hundred distinct ones).
_COMPILED_STATEMENTS: LRUCache = LRUCache(2000)
_LIVE_POOLS: weakref.WeakSet[EnginePool] = weakref.WeakSet()


class EnginePool:
    """One engine per SQLite file, the ``max_engines`` most recently used kept open (the others are
    disposed); every engine compiles into the shared statement cache."""

    def __init__(self, max_engines: int, **engine_kwargs: Any):
        self.max_engines = max_engines
        self.engine_kwargs = engine_kwargs
        self._engines: OrderedDict[str, tuple[Engine, Engine]] = OrderedDict()
        self._lock = threading.Lock()
        _LIVE_POOLS.add(self)

    def engine(self, url: str) -> Engine:
        with self._lock:
            pair = self._engines.get(url)
            if pair is None:
                # One connection kept; any number more while threads overlap (as Dagster's NullPool
                # allows), closed when returned.
                base = db.create_engine(
                    url, poolclass=db.pool.QueuePool, pool_size=1, max_overflow=-1, **self.engine_kwargs
                )
                pair = (base, base.execution_options(compiled_cache=_COMPILED_STATEMENTS))
                self._engines[url] = pair
                while len(self._engines) > self.max_engines:
                    _, (old, _) = self._engines.popitem(last=False)
                    old.dispose()
            else:
                self._engines.move_to_end(url)
            return pair[1]

    def dispose(self, *, close: bool = True) -> None:
        with self._lock:
            for base, _ in self._engines.values():
                base.dispose(close=close)
            self._engines.clear()

    def open_urls(self) -> list[str]:
        with self._lock:
            return list(self._engines)


def _forget_inherited_connections() -> None:
    # A forked child must not use (or close) the parent's SQLite connections: it opens its own.
    for pool in list(_LIVE_POOLS):
        pool.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_connections)


_HEAD_LOCK = threading.Lock()
_SCHEMA_HEAD: dict[str, Any] = {}


def _event_log_script():
    """Alembic's script directory for the event log schema, read once per process."""
    with _HEAD_LOCK:
        if "script" not in _SCHEMA_HEAD:
            from alembic.script import ScriptDirectory

            script = ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__))
            _SCHEMA_HEAD["script"], _SCHEMA_HEAD["head"] = script, script.get_current_head()
        return _SCHEMA_HEAD["script"], _SCHEMA_HEAD["head"]


def _table_names(conn: Connection) -> set[str]:
    return set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars())


def _alembic_state(engine: Engine) -> tuple[set[str], str | None]:
    with engine.connect() as conn:
        tables = _table_names(conn)
        if "alembic_version" not in tables:
            return tables, None
        return tables, conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def stamp_new_event_log_file(engine: Engine, settle_seconds: float = 2.0) -> bool:
    """Bring an event log file to the schema head if it is empty, as Dagster's ``_initdb`` does
    (tables, WAL, alembic stamp), without reading alembic's scripts again. True when the file is
    at the head afterwards; False for any other state, which Dagster's own path then handles."""
    from alembic.runtime.migration import MigrationContext

    script, head = _event_log_script()
    tables, version = _alembic_state(engine)
    deadline = time.monotonic() + settle_seconds
    while tables and version is None and time.monotonic() < deadline:
        # Tables without a stamp: another process between its create_all and its stamp (a fresh
        # instance started twice at once), or a file from an older layout. Wait for the stamp
        # rather than stamp an older revision beside the other process's head.
        time.sleep(0.05)
        tables, version = _alembic_state(engine)
    if version is not None:
        return version == head
    if tables:
        return False  # a file from an older layout: Dagster's path knows what to stamp
    try:
        SqlEventLogStorageMetadata.create_all(engine)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL;")
            MigrationContext.configure(conn).stamp(script, "head")
            conn.commit()
    except (db.exc.DatabaseError, sqlite3.DatabaseError):
        return False  # another process stamped it first (or holds the lock): Dagster's retrying path
    return True


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's per-run-file SQLite event log, with pooled engines (see the module docstring)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines = EnginePool(
            MAX_OPEN_RUN_FILES + 1, connect_args={"timeout": sqlite_event_log.SQLITE_BUSY_TIMEOUT_SECONDS}
        )
        self._tables_present: set[str] = set()
        super().__init__(base_dir, inst_data)

    def _initdb(self, engine: Engine, for_index_shard: bool = False) -> None:
        if not stamp_new_event_log_file(engine):
            super()._initdb(engine, for_index_shard=for_index_shard)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engines.engine(self.conn_string_for_shard(shard))
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        # Asked twice for every check result stored (``supports_asset_checks``); Dagster's answer
        # opens a new engine each time. A table, once there, stays (migrations only add them).
        if table_name in self._tables_present:
            return True
        # Not through ``_connect``: its lock is not reentrant, and this is asked inside other calls.
        engine = self._engines.engine(self.conn_string_for_shard(sqlite_event_log.INDEX_SHARD_NAME))
        with engine.connect() as conn:
            present = bool(conn.dialect.has_table(conn, table_name))
        if present:
            self._tables_present.add(table_name)
        return present

    def wipe(self) -> None:
        self._engines.dispose()  # the run files are deleted: no connection may outlive them
        super().wipe()

    def dispose(self) -> None:
        self._engines.dispose()
        super().dispose()


class PooledSqliteRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage on a kept engine (the schedule storage, used by sensor and
    schedule ticks only, is Dagster's own)."""

    _conn_string: str

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None):
        self._engine_pool = EnginePool(1)
        super().__init__(conn_string, inst_data)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._engine_pool.engine(self._conn_string).connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self._engine_pool.dispose()
        super().dispose()


class PooledSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite instance storage (same files under ``base_dir``), on pooled engines."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self.base_dir = base_dir
        self._run_storage = PooledSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: dict) -> PooledSqliteStorage:  # type: ignore[override]
        mkdir_p(config_value["base_dir"])
        return cls(config_value["base_dir"], inst_data=inst_data)


class PooledSqliteInstance(DagsterInstance):
    """Dagster's instance with two other defaults, both in the instance's own directory: the
    storage (no ``storage:`` in dagster.yaml) is ``PooledSqliteStorage``, and the compute logs (no
    ``compute_logs:``) are ``compute_logs.TeeComputeLogManager``: Dagster's files, mirrored to the
    terminal without ``tail`` processes. Nothing else differs."""

    @classmethod
    def config_schema(cls) -> dict:
        return {}  # no settings of its own

    @classmethod
    def config_defaults(cls, base_dir: str):
        defaults = dict(InstanceRef.config_defaults(base_dir))
        defaults["storage"] = ConfigurableClassData(
            __name__, PooledSqliteStorage.__name__, yaml.dump({"base_dir": base_dir}, default_flow_style=False)
        )
        defaults["compute_logs"] = ConfigurableClassData(
            COMPUTE_LOGS_MODULE,
            "TeeComputeLogManager",
            yaml.dump({"base_dir": compute_logs_directory(base_dir)}, default_flow_style=False),
        )
        return defaults


__all__ = [
    "PooledSqliteInstance",
    "PooledSqliteEventLogStorage",
    "PooledSqliteRunStorage",
    "PooledSqliteStorage",
]
