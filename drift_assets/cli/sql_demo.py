"""``drift-assets simulate --target postgresql://...``: the demo data loaded into a database.

The files are simulated under the data root as always (the model registry, the labels and the
champion's files live there), then each monitor's log and reference are loaded into tables
``<monitor>_log`` and ``<monitor>_reference``, its labels into ``<monitor>_labels`` with an
``arrived`` date column (tables replaced if they exist) with ADBC's bulk ingest,
one parquet file at a time, and the timestamp column is indexed. Messages name host, port and
database, never the DSN.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pyarrow as pa

from drift_assets.storage.root import Root
from drift_assets.storage.sql import PostgresSource, dsn_parts, load_table

DSN_PREFIXES = ("postgresql://", "postgres://")


def is_database_target(target: str | None) -> bool:
    return bool(target) and target.startswith(DSN_PREFIXES)  # type: ignore[union-attr]


def check_connection(dsn: str) -> None:
    """Fail before simulating (one line, exit 2) when the database cannot be reached."""
    with PostgresSource(_dsn=dsn).connect():
        pass


def _batches(data: Root, relative: str):
    yield from data.table(relative).batches()


def load_demo_tables(dsn: str, data_root: str, monitors: list[str], echo: Callable[[str], None] = print) -> dict:
    """Load ``<monitor>/log`` and ``<monitor>/reference/reference.parquet`` of each simulated monitor."""
    data = Root.open(data_root)
    p = dsn_parts(dsn)
    where = f"postgres {p['host']}:{p['port']}/{p['database']}"
    loaded = {}
    for name in monitors:
        for table, relative in (
            (f"{name}_log", f"{name}/log"),
            (f"{name}_reference", f"{name}/reference/reference.parquet"),
        ):
            if not data.exists(relative):
                continue
            rows = load_table(dsn, table, _batches(data, relative))
            loaded[table] = rows
            echo(f"{name}: loaded {rows:,} rows into {where} table {table}")
        _index_timestamp(dsn, f"{name}_log")
        if data.is_dir(f"{name}/labels"):
            rows = load_table(dsn, f"{name}_labels", _label_batches(data, f"{name}/labels"))
            loaded[f"{name}_labels"] = rows
            echo(
                f"{name}: loaded {rows:,} labels into {where} table {name}_labels (column arrived: the day it arrived)"
            )
    return loaded


def _label_batches(data: Root, relative: str):
    """``arrived=YYYY-MM-DD/*.parquet`` as rows with an ``arrived`` date column."""
    for folder in sorted(data.list_dir(relative)):
        if not folder.startswith("arrived="):
            continue
        day = dt.date.fromisoformat(folder.removeprefix("arrived="))
        for batch in data.table(f"{relative}/{folder}").batches():
            arrived = pa.array([day] * batch.num_rows, pa.date32())
            yield pa.RecordBatch.from_arrays([*batch.columns, arrived], names=[*batch.schema.names, "arrived"])


def _index_timestamp(dsn: str, table: str) -> None:
    """An index on the log's timestamp: a window's rows are found without scanning the table."""
    source = PostgresSource(table=table, _dsn=dsn)
    with source.connect() as conn, conn.cursor() as cur:
        cur.execute(f'CREATE INDEX IF NOT EXISTS "{table}_timestamp" ON "{table}" ("timestamp")')
        conn.commit()
