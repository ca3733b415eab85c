"""The DVC pipeline's inputs exported from PostgreSQL into the attempt's staging folder as parquet.

``training/src/prepare.py`` reads files: ``data.log`` (a folder of parquet files with the id,
timestamp and feature columns; rows at or after ``window.cutoff`` are dropped), ``data.reference``
(one parquet file: features, target, optionally id and timestamp) and ``data.labels`` (a folder of
parquet files: id, target, ``label_arrived_at``). A source in PostgreSQL is streamed into that
layout: record batches from ``monitoring.sources.postgres_source`` (a server-side cursor) go through
one ``pyarrow.parquet.ParquetWriter`` each, so a table never sits in memory. The log is read up to
the window's end only (``[LOG_START, cutoff)``, bound as parameters). Only paths reach
``params.yaml``; the DSN stays in the environment variable or file the monitor names, and errors
name host, database and table (``SqlSourceError``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from drift_assets.monitoring.config import MonitorConfig
from drift_assets.monitoring.source_config import SourceSpec
from drift_assets.monitoring.sources import postgres_source
from drift_assets.storage.sql import PostgresSource

# The earliest production row a log export asks for (a query's ``$1``; ``$2`` is the cutoff).
LOG_START = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
# The label feed's arrival column as the pipeline names it (``prepare.read_labels``).
PIPELINE_ARRIVED_COLUMN = "label_arrived_at"


def _write(path: Path, batches: Iterator[pa.RecordBatch], empty: pa.Schema, renames: dict[str, str]) -> int:
    """Stream ``batches`` into one parquet file (one row group per batch); returns the rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for batch in batches:
            batch = batch.rename_columns([renames.get(n, n) for n in batch.schema.names])
            if writer is None:
                writer = pq.ParquetWriter(path, batch.schema, compression="zstd")
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer is None:  # no rows: an empty file with the columns (prepare reports "no rows")
            writer = pq.ParquetWriter(path, pa.schema([f.with_name(renames.get(f.name, f.name)) for f in empty]))
    finally:
        if writer is not None:
            writer.close()
    return rows


def _columns(source: PostgresSource, wanted: Sequence[str]) -> tuple[list[str], pa.Schema]:
    schema = source.schema()
    present = [c for c in wanted if c in schema.names]
    return present, pa.schema([schema.field(c) for c in present])


def export_log(monitor: MonitorConfig, spec: SourceSpec, cutoff: dt.datetime, dest: Path) -> tuple[str, int]:
    """The log's rows with ``timestamp < cutoff`` as ``dest/part-0.parquet``: ``(folder, rows)``."""
    labels = monitor.labels
    assert labels is not None
    source = postgres_source(spec, monitor.timestamp_column)
    wanted = [labels.id_column, monitor.timestamp_column, *monitor.numerical, *monitor.categorical]
    columns, schema = _columns(source, wanted)
    rows = _write(dest / "part-0.parquet", source.batches(columns, LOG_START, cutoff), schema, {})
    return str(dest), rows


def export_reference(monitor: MonitorConfig, spec: SourceSpec, dest: Path) -> tuple[str, int]:
    """The training reference (every row; features, target, id, timestamp) as the file ``dest``."""
    labels = monitor.labels
    assert labels is not None
    source = postgres_source(spec, monitor.timestamp_column)
    wanted = [*monitor.numerical, *monitor.categorical, labels.column, labels.id_column, monitor.timestamp_column]
    columns, schema = _columns(source, wanted)
    return str(dest), _write(dest, source.batches(columns), schema, {})


def export_labels(monitor: MonitorConfig, spec: SourceSpec, dest: Path) -> tuple[str, int]:
    """Every label that has arrived (``labels_as_of: null``: a label of a row before the cutoff may
    arrive after it) as ``dest/part-0.parquet``, with its arrival time as ``label_arrived_at``
    (``prepare`` keeps the latest label of a relabelled transaction)."""
    labels = monitor.labels
    assert labels is not None
    source = postgres_source(spec, labels.arrived_column)
    # The exact arrival time when the table has it (the files' column), else the arrival column.
    arrived = PIPELINE_ARRIVED_COLUMN if PIPELINE_ARRIVED_COLUMN in source.schema().names else labels.arrived_column
    columns, schema = _columns(source, [labels.id_column, labels.column, arrived])
    renames = {arrived: PIPELINE_ARRIVED_COLUMN}
    return str(dest), _write(dest / "part-0.parquet", source.batches(columns), schema, renames)
