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

from drift_assets.derived import apply_derived
from drift_assets.config import DerivedColumn
from drift_assets.stats.errors import SchemaError
from drift_assets.storage import Root
from drift_assets.tables import iter_file_batches

UTC = dt.timezone.utc
CADENCE_LENGTH = {"hourly": dt.timedelta(hours=1), "daily": dt.timedelta(days=1), "weekly": dt.timedelta(weeks=1)}


@dataclass(frozen=True)
class Window:
    key: str
    start: dt.datetime
    end: dt.datetime


def parse_partition_key(key: str, cadence: str) -> Window:
    """Dagster partition keys: ``2026-09-28`` (daily/weekly) or ``2026-10-13-14:00`` (hourly)."""
    fmt = "%Y-%m-%d-%H:%M" if cadence == "hourly" else "%Y-%m-%d"
    start = dt.datetime.strptime(key, fmt).replace(tzinfo=UTC)
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
    first_timestamp: dt.datetime | None = None
    last_timestamp: dt.datetime | None = None

    def observe(self, timestamps: pa.Array) -> None:
        if len(timestamps) == 0:
            return
        lo, hi = pc.min_max(timestamps).values()
        lo, hi = lo.as_py(), hi.as_py()
        self.first_timestamp = lo if self.first_timestamp is None else min(self.first_timestamp, lo)
        self.last_timestamp = hi if self.last_timestamp is None else max(self.last_timestamp, hi)


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
    columns: Sequence[str],
    derived: Sequence[DerivedColumn] = (),
    scan: WindowScan | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of the rows in ``window``, with derived columns added."""
    scan = scan if scan is not None else WindowScan()
    start = pa.scalar(window.start, type=pa.timestamp("us", tz="UTC"))
    end = pa.scalar(window.end, type=pa.timestamp("us", tz="UTC"))
    for path in log_files(root, log, window):
        scan.files.append(path)
        for batch in iter_file_batches(root.filesystem, path, list(columns)):
            ts = _timestamps(batch, timestamp_column, path)
            ts = ts.cast(pa.timestamp("us", tz="UTC"))
            mask = pc.and_(pc.greater_equal(ts, start), pc.less(ts, end))
            selected = batch.filter(mask)
            if selected.num_rows == 0:
                continue
            scan.rows += selected.num_rows
            scan.observe(ts.filter(mask))
            yield apply_derived(selected, derived, table_name=path)
