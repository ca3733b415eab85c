"""One way to read a monitor's window whatever its source: parquet files (the default reader in
``windows.py``), a PostgreSQL table or query, or DuckDB over the parquet log.

Every source goes through the same steps as the files do: ``preflight`` (the timestamp column is
there and is a timestamp, the window has rows; else ``DriftInputError`` with one line naming the
source), then record batches conformed by ``windows.window_rows`` (missing and mistyped columns
become the schema check's problems, derived columns are added), so the summary, the checks and the
problems are the same as for the files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa

from drift_assets.monitoring.config import DerivedColumn, MonitorConfig
from drift_assets.monitoring.source_config import SourceSpec
from drift_assets.monitoring.windows import (
    Window,
    WindowScan,
    log_files,
    preflight,
    stream_window,
    window_rows,
)
from drift_assets.stats.errors import SchemaError
from drift_assets.storage.duckdb_source import DuckDBLog
from drift_assets.storage.root import Root
from drift_assets.storage.sql import PostgresSource
from drift_assets.storage.tables import TableSource


def postgres_source(spec: SourceSpec, timestamp_column: str = "timestamp", dsn: str | None = None) -> PostgresSource:
    return PostgresSource(
        dsn_env=spec.dsn_env,
        dsn_file=spec.dsn_file,
        table=spec.table,
        query=spec.query,
        timestamp_column=timestamp_column,
        statement_timeout_s=spec.statement_timeout_s,
        batch_rows=spec.batch_rows,
        _dsn=dsn,
    )


def duckdb_log(root: Root, spec: SourceSpec, timestamp_column: str) -> DuckDBLog:
    assert spec.path is not None
    return DuckDBLog(root.filesystem, root.path_of(spec.path), root.uri_of(spec.path), timestamp_column)


def log_display(root: Root, monitor: MonitorConfig) -> str:
    """How messages and metadata name the log (never a DSN)."""
    spec = monitor.log_source
    if spec is not None and spec.kind == "postgres":
        return postgres_source(spec, monitor.timestamp_column).display
    return root.uri_of(monitor.log)


def _check_timestamp(schema: pa.Schema, column: str, shown: str) -> None:
    if column not in schema.names:
        raise SchemaError(f"{shown}: timestamp column {column!r} is missing")
    kind = schema.field(column).type
    if not pa.types.is_timestamp(kind):
        raise SchemaError(f"{shown}: column {column!r} should be a timestamp but has type {kind}")


def preflight_log(root: Root, monitor: MonitorConfig, window: Window) -> tuple[list[str], int]:
    """``(what was read, rows in the window)``; raises ``DriftInputError`` (one line) when the
    source cannot be read: connection refused, wrong credentials, a missing table, a statement
    timeout, a missing or mistyped timestamp column, a corrupt file."""
    spec, ts = monitor.log_source, monitor.timestamp_column
    if spec is None:
        return preflight(root, monitor.log, window, ts)
    if spec.kind == "postgres":
        source = postgres_source(spec, ts)
        _check_timestamp(source.schema(), ts, source.display)
        return [source.display], source.count(window.start, window.end)
    files = log_files(root, monitor.log, window)
    if not files:
        return [], 0
    lake = duckdb_log(root, spec, ts)
    _check_timestamp(lake.schema(files, window.start, window.end), ts, lake.display)
    return files, lake.count(files, window.start, window.end)


def stream_log(
    root: Root,
    monitor: MonitorConfig,
    window: Window,
    *,
    types: dict[str, pa.DataType],
    derived: Sequence[DerivedColumn] = (),
    scan: WindowScan | None = None,
) -> Iterator[pa.RecordBatch]:
    """``windows.stream_window`` for any source: the window's rows in the schema ``types``."""
    spec, ts = monitor.log_source, monitor.timestamp_column
    if spec is None:
        yield from stream_window(
            root, monitor.log, window, timestamp_column=ts, types=types, derived=derived, scan=scan
        )
        return
    scan = scan if scan is not None else WindowScan()
    if spec.kind == "postgres":
        source = postgres_source(spec, ts)
        shown = source.display
        scan.files.append(shown)
        batches: Iterator[pa.RecordBatch] = source.batches(list(types), window.start, window.end)
    else:
        files = log_files(root, monitor.log, window)
        lake = duckdb_log(root, spec, ts)
        shown = lake.display
        scan.files.extend(files)
        batches = lake.batches(files, list(types), window.start, window.end)
    for batch in batches:
        rows = window_rows(batch, shown, window, timestamp_column=ts, types=types, derived=derived, scan=scan)
        if rows is not None:
            yield rows


def reference_table(monitor: MonitorConfig, data: Root, location: str) -> TableSource | PostgresSource:
    """The reference to read: the configured PostgreSQL table or query when ``reference:`` is one
    (and no promoted champion brought its own parquet reference), else the parquet at ``location``."""
    spec = monitor.reference_source
    if spec is not None and spec.kind == "postgres" and location == monitor.reference:
        return postgres_source(spec, monitor.timestamp_column)
    return data.table(location)
