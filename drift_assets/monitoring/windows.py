"""Time windows over a production log partitioned by day (``date=YYYY-MM-DD/*.parquet``).

A window is [start, end) in UTC. Only the day directories that overlap the window are listed, and
rows are filtered on the timestamp column batch by batch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from drift_assets.monitoring.config import DerivedColumn
from drift_assets.monitoring.derived import apply_derived, optional_columns
from drift_assets.stats.errors import SchemaError
from drift_assets.storage.root import Root
from drift_assets.storage.tables import iter_file_batches

UTC = dt.UTC
CADENCE_LENGTH = {"hourly": dt.timedelta(hours=1), "daily": dt.timedelta(days=1), "weekly": dt.timedelta(weeks=1)}


@dataclass(frozen=True)
class Window:
    key: str
    start: dt.datetime
    end: dt.datetime


def partition_key_format(cadence: str) -> str:
    """The one partition-key format: ``2026-09-28`` (daily/weekly), ``2026-10-13-14:00`` (hourly)."""
    return "%Y-%m-%d-%H:%M" if cadence == "hourly" else "%Y-%m-%d"


def partition_key(start: dt.datetime, cadence: str) -> str:
    return start.strftime(partition_key_format(cadence))


def parse_partition_key(key: str, cadence: str) -> Window:
    start = dt.datetime.strptime(key, partition_key_format(cadence)).replace(tzinfo=UTC)
    return Window(key, start, start + CADENCE_LENGTH[cadence])


def days_in(window: Window) -> list[dt.date]:
    last = (window.end - dt.timedelta(microseconds=1)).date()
    day, days = window.start.date(), []
    while day <= last:
        days.append(day)
        day += dt.timedelta(days=1)
    return days


@dataclass
class WindowScan:
    """What reading a window touched: for asset metadata and clear failure messages."""

    files: list[str] = field(default_factory=list)
    rows: int = 0
    # column -> what was wrong with it, and in which file (missing, wrong type)
    problems: dict[str, str] = field(default_factory=dict)
    first_timestamp: dt.datetime | None = None
    last_timestamp: dt.datetime | None = None

    def observe(self, timestamps: pa.Array) -> None:
        if len(timestamps) == 0:
            return
        lo, hi = pc.min_max(timestamps).values()
        lo, hi = lo.as_py(), hi.as_py()
        self.first_timestamp = lo if self.first_timestamp is None else min(self.first_timestamp, lo)
        self.last_timestamp = hi if self.last_timestamp is None else max(self.last_timestamp, hi)


def expected_log_types(monitor) -> dict[str, pa.DataType]:
    """The types the window is written with: one schema for the whole window, whatever the files."""
    types: dict[str, pa.DataType] = {c: pa.float64() for c in monitor.numerical}
    types.update({c: pa.string() for c in monitor.categorical})
    if monitor.prediction:
        types[monitor.prediction] = pa.float64() if monitor.prediction_kind != "categorical" else pa.string()
    for d in monitor.derived:
        types.pop(d.name, None)
        types[d.source] = pa.string()
    if monitor.labels:
        types[monitor.labels.id_column] = pa.string()
    if monitor.model_version_column:
        types[monitor.model_version_column] = pa.string()
    types[monitor.timestamp_column] = pa.timestamp("us", tz="UTC")
    for column in optional_columns(monitor.derived):
        types.setdefault(column, pa.bool_())
    return types


def conform_batch(
    batch: pa.RecordBatch,
    types: dict[str, pa.DataType],
    path: str,
    problems: dict[str, str],
    optional: frozenset[str] = frozenset(),
) -> pa.RecordBatch:
    """Give every batch the window's schema. A column missing from a file, or of a type that cannot
    be converted (text where numbers are expected), becomes nulls and is recorded as a problem: the
    data-quality check then names it, and the other columns and files are still measured."""
    arrays = []
    for name, wanted in types.items():
        if name not in batch.schema.names:
            if name not in optional:
                problems.setdefault(name, f"column {name!r} is missing in {path}")
            arrays.append(pa.nulls(batch.num_rows, wanted))
            continue
        column = batch.column(name)
        if column.type == wanted:
            arrays.append(column)
            continue
        numeric_target = pa.types.is_floating(wanted)
        convertible = (
            (
                numeric_target
                and (
                    pa.types.is_integer(column.type)
                    or pa.types.is_floating(column.type)
                    or pa.types.is_decimal(column.type)
                    or pa.types.is_boolean(column.type)
                )
            )
            or (pa.types.is_string(wanted) and not pa.types.is_floating(column.type))
            or pa.types.is_timestamp(wanted)
            and pa.types.is_timestamp(column.type)
            or pa.types.is_null(column.type)
        )
        if pa.types.is_string(wanted) and (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
            arrays.append(_decode_utf8(column, name, path, problems))
            continue
        if convertible:
            try:
                if pa.types.is_dictionary(column.type):
                    column = column.dictionary_decode()
                arrays.append(pc.cast(column, wanted))
                continue
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        kind = "numerical" if numeric_target else str(wanted)
        problems.setdefault(name, f"column {name!r} has type {column.type} in {path}, expected {kind}")
        arrays.append(pa.nulls(batch.num_rows, wanted))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(list(types.items())))


def _decode_utf8(column: pa.Array, name: str, path: str, problems: dict[str, str]) -> pa.Array:
    """Bytes in a text column: valid UTF-8 passes; invalid bytes are replaced (U+FFFD) so the
    row is still measured, and the column is reported with the count of such rows."""
    try:
        return pc.cast(column, pa.string())
    except pa.ArrowInvalid:
        values = column.to_pylist()
        bad = 0
        decoded: list[str | None] = []
        for v in values:
            if v is None:
                decoded.append(None)
                continue
            try:
                decoded.append(v.decode("utf-8"))
            except UnicodeDecodeError:
                bad += 1
                decoded.append(v.decode("utf-8", errors="replace"))
        problems.setdefault(
            name, f"column {name!r} has {bad} row(s) of invalid UTF-8 in {path} (replaced, still measured)"
        )
        return pa.array(decoded, type=pa.string())


def log_files(root: Root, log: str, window: Window) -> list[str]:
    files: list[str] = []
    for day in days_in(window):
        day_dir = f"{log}/date={day.isoformat()}"
        if root.is_dir(day_dir):
            files += [
                root.path_of(f"{day_dir}/{name}")
                for name in root.list_dir(day_dir)
                if name.endswith((".parquet", ".pq")) and not name.startswith((".", "_"))
            ]
    return files


def preflight(root: Root, log: str, window: Window, timestamp_column: str) -> tuple[list[str], int]:
    """Open every file of the window and count its rows in the window, reading only the timestamp
    column: a corrupt file or an empty window fails here, with the file named, before any output
    is written."""
    files = log_files(root, log, window)
    start = pa.scalar(window.start, type=pa.timestamp("us", tz="UTC"))
    end = pa.scalar(window.end, type=pa.timestamp("us", tz="UTC"))
    rows = 0
    for path in files:
        for batch in iter_file_batches(root.filesystem, path, [timestamp_column], reuse_small=True):
            ts = _timestamps(batch, timestamp_column, path).cast(pa.timestamp("us", tz="UTC"))
            rows += pc.sum(pc.and_(pc.greater_equal(ts, start), pc.less(ts, end))).as_py() or 0
    return files, rows


def _timestamps(batch: pa.RecordBatch, column: str, path: str) -> pa.Array:
    if column not in batch.schema.names:
        raise SchemaError(f"{path}: timestamp column {column!r} is missing")
    ts = batch.column(column)
    if not pa.types.is_timestamp(ts.type):
        raise SchemaError(f"{path}: column {column!r} should be a timestamp but has type {ts.type}")
    if ts.type.tz is None:  # naive timestamps in a log are taken as UTC
        ts = pc.assume_timezone(ts, "UTC")
    return ts


def stream_window(
    root: Root,
    log: str,
    window: Window,
    *,
    timestamp_column: str,
    types: dict[str, pa.DataType],
    derived: Sequence[DerivedColumn] = (),
    scan: WindowScan | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of the rows in ``window`` in the schema ``types``, with derived columns added."""
    scan = scan if scan is not None else WindowScan()
    for path in log_files(root, log, window):
        scan.files.append(path)
        for batch in iter_file_batches(root.filesystem, path, list(types), reuse_small=True):
            selected = window_rows(
                batch, path, window, timestamp_column=timestamp_column, types=types, derived=derived, scan=scan
            )
            if selected is not None:
                yield selected


def window_rows(
    batch: pa.RecordBatch,
    path: str,
    window: Window,
    *,
    timestamp_column: str,
    types: dict[str, pa.DataType],
    derived: Sequence[DerivedColumn],
    scan: WindowScan,
) -> pa.RecordBatch | None:
    """The rows of one batch of ``path`` that fall in ``window``, conformed to ``types`` and with
    derived columns added; None when no row is in the window. Rows, timestamps and column problems
    are recorded in ``scan``. One function for every reader (streamed here, or one parquet row
    group per task on a cluster), so both count the same rows the same way."""
    start = pa.scalar(window.start, type=pa.timestamp("us", tz="UTC"))
    end = pa.scalar(window.end, type=pa.timestamp("us", tz="UTC"))
    ts = _timestamps(batch, timestamp_column, path).cast(pa.timestamp("us", tz="UTC"))
    mask = pc.and_(pc.greater_equal(ts, start), pc.less(ts, end))
    selected = batch.filter(mask)
    if selected.num_rows == 0:
        return None
    scan.rows += selected.num_rows
    scan.observe(ts.filter(mask))
    conformed = conform_batch(selected, types, path, scan.problems, frozenset(optional_columns(derived)))
    return apply_derived(conformed, derived, table_name=path)
