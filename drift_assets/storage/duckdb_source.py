"""DuckDB over a hive-partitioned parquet log (``<log>/date=YYYY-MM-DD/*.parquet``), local or S3.

The window filter is pushed down: the ``date`` partition column prunes whole day folders before a
file is opened (DuckDB's "File Filters"), the timestamp filter prunes row groups by their
statistics, and only the wanted columns are decoded. Bounds are bound as parameters. Batches come
out as Arrow record batches of at most ``batch_rows`` rows.

S3: DuckDB's own S3 reader is its ``httpfs`` extension, which DuckDB downloads from its extension
site at run time (no PyPI package ships it, and this project's machines reach package registries
only). So on S3 the day folders of the window are listed with pyarrow's S3 filesystem (the same
endpoint and credentials as every other read) and DuckDB scans them as a ``pyarrow.dataset`` with
the projection and the timestamp filter pushed into the Arrow scanner.

Differences from the default reader (``monitoring.windows.stream_window``): DuckDB unifies the
files' schemas by name (``union_by_name``), so a column missing from one file is nulls without a
per-file problem, and a column whose type differs between files is widened (to text if need be)
and then named by the window's schema check as the wrong type.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs

from drift_assets.stats.errors import DriftInputError

DEFAULT_BATCH_ROWS = 256_000


class DuckDBSourceError(DriftInputError):
    """The log cannot be read through DuckDB; the message names the log folder."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class DuckDBLog:
    """``path``: the log folder on ``filesystem``; ``display``: how messages name it."""

    filesystem: pafs.FileSystem
    path: str
    display: str
    timestamp_column: str = "timestamp"
    batch_rows: int = DEFAULT_BATCH_ROWS
    threads: int | None = None

    @property
    def is_local(self) -> bool:
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    def _connect(self):
        import duckdb

        con = duckdb.connect(config={"threads": self.threads} if self.threads else {})
        con.execute("SET TimeZone = 'UTC'")
        return con

    def _days(self, start: dt.datetime, end: dt.datetime) -> tuple[dt.date, dt.date]:
        return start.date(), (end - dt.timedelta(microseconds=1)).date()

    def _relation(self, con, files: Sequence[str], columns: Sequence[str] | None, start, end, wrap: str = "{}"):
        ts = _quote(self.timestamp_column)
        if self.is_local:
            first, last = self._days(start, end)
            select = "*" if columns is None else ", ".join(_quote(c) for c in columns)
            sql = (
                f"SELECT {select} FROM read_parquet($1, hive_partitioning = true, union_by_name = true)"
                f" WHERE date >= $2 AND date <= $3 AND {ts} >= $4 AND {ts} < $5"
            )
            # The window's files (the day folders it overlaps, as the default reader lists them), so
            # both readers read the same files; the date filter still prunes at the partition level.
            return con.sql(wrap.format(sql), params=[list(files), first, last, start, end])
        import pyarrow.dataset as pads

        dataset = pads.dataset(list(files), filesystem=self.filesystem, format="parquet")
        con.register("_window_files", dataset)
        select = "*" if columns is None else ", ".join(_quote(c) for c in columns if c in dataset.schema.names)
        sql = f"SELECT {select or '1 AS _none'} FROM _window_files WHERE {ts} >= $1 AND {ts} < $2"
        return con.sql(wrap.format(sql), params=[start, end])

    def schema(self, files: Sequence[str], start: dt.datetime, end: dt.datetime) -> pa.Schema:
        with self._connect() as con:
            try:
                return self._relation(con, files, None, start, end).limit(0).to_arrow_table().schema
            except Exception as exc:  # duckdb's error types; the message is one line naming the log
                raise DuckDBSourceError(f"{self.display}: {_one_line(exc)}") from None

    def count(self, files: Sequence[str], start: dt.datetime, end: dt.datetime) -> int:
        if not files:
            return 0
        with self._connect() as con:
            try:
                row = self._relation(
                    con, files, [self.timestamp_column], start, end, "SELECT count(*) FROM ({})"
                ).fetchall()[0]
            except Exception as exc:
                raise DuckDBSourceError(f"{self.display}: {_one_line(exc)}") from None
            return int(row[0]) if row else 0

    def batches(
        self, files: Sequence[str], columns: Sequence[str], start: dt.datetime, end: dt.datetime
    ) -> Iterator[pa.RecordBatch]:
        """Batches of the window's rows, ``columns`` that exist in the files (all others absent)."""
        if not files:
            return
        with self._connect() as con:
            try:
                present = self._relation(con, files, None, start, end).limit(0).to_arrow_table().schema.names
                wanted = [c for c in columns if c in present]
                reader = self._relation(con, files, wanted, start, end).to_arrow_reader(self.batch_rows)
                yield from reader
            except DriftInputError:
                raise
            except Exception as exc:
                raise DuckDBSourceError(f"{self.display}: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
