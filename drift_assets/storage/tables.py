"""Reading tables (parquet file, directory of parquet files, CSV) from local paths or s3:// URIs.

Windows are streamed file by file, batch by batch: a corrupt file fails with its own name, and a
week of millions of rows is never held in memory just to be counted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from drift_assets.stats.errors import DriftInputError
from drift_assets.storage.s3 import display_path, filesystem_for_uri

BATCH_ROWS = 256_000


class TableReadError(DriftInputError):
    """A file that cannot be read (missing, corrupt, not parquet/CSV). The message names it."""


def resolve(location: str, filesystem: pafs.FileSystem | None = None) -> tuple[pafs.FileSystem, str]:
    """A filesystem and a path inside it; ``s3://bucket/key`` picks pyarrow's S3 filesystem."""
    if filesystem is not None:
        return filesystem, location.removeprefix("s3://") if location.startswith("s3://") else location
    if "://" in location:
        try:
            if location.startswith("s3://") and "?" not in location:
                # Endpoint (MinIO, moto), region, timeouts and retries from the environment.
                return filesystem_for_uri(location)
            return pafs.FileSystem.from_uri(location)
        except (pa.ArrowInvalid, OSError, ValueError) as exc:
            raise TableReadError(f"{location}: cannot open: {exc}") from exc
    return pafs.LocalFileSystem(), os.path.abspath(location)


def _is_data_file(path: str) -> bool:
    base = path.rsplit("/", 1)[-1]
    return not base.startswith((".", "_")) and base.endswith((".parquet", ".csv", ".pq"))


@dataclass(frozen=True)
class TableSource:
    """A file or a directory of files on some filesystem."""

    filesystem: pafs.FileSystem
    path: str
    display: str

    @classmethod
    def open(cls, location: str, filesystem: pafs.FileSystem | None = None) -> TableSource:
        fs, path = resolve(location, filesystem)
        return cls(fs, path, location)

    def files(self) -> list[str]:
        try:
            info = self.filesystem.get_file_info(self.path)
        except OSError as exc:
            raise TableReadError(f"{self.display}: cannot access: {exc}") from exc
        if info.type == pafs.FileType.NotFound:
            raise TableReadError(f"{self.display}: no such file or directory")
        if info.type == pafs.FileType.File:
            return [self.path]
        selector = pafs.FileSelector(self.path, recursive=True)
        files = sorted(
            i.path
            for i in self.filesystem.get_file_info(selector)
            if i.type == pafs.FileType.File and _is_data_file(i.path)
        )
        if not files:
            raise TableReadError(f"{self.display}: directory holds no .parquet or .csv files")
        return files

    def schema(self) -> pa.Schema:
        first = self.files()[0]
        if first.endswith(".csv"):
            return next(iter(iter_file_batches(self.filesystem, first, None))).schema
        try:
            return pq.read_schema(first, filesystem=self.filesystem)
        except (pa.ArrowInvalid, OSError) as exc:
            raise TableReadError(f"{display_path(self.filesystem, first)}: not a readable parquet file: {exc}") from exc

    def num_rows(self) -> int | None:
        """Row count from the parquet footers (None for CSV, which has no footer to read)."""
        total = 0
        for path in self.files():
            if path.endswith(".csv"):
                return None
            try:
                total += pq.read_metadata(path, filesystem=self.filesystem).num_rows
            except (pa.ArrowInvalid, OSError) as exc:
                raise TableReadError(f"{path}: not a readable parquet file: {exc}") from exc
        return total

    def batches(self, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
        for path in self.files():
            yield from iter_file_batches(self.filesystem, path, columns)

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        batches = list(self.batches(columns))
        if not batches:
            raise TableReadError(f"{self.display}: no rows")
        return pa.Table.from_batches(batches)


def iter_file_batches(
    filesystem: pafs.FileSystem, path: str, columns: Sequence[str] | None
) -> Iterator[pa.RecordBatch]:
    """Batches of one file; any read failure names the file. Missing columns are left out (the
    caller's schema check names them) rather than failing the whole file."""
    try:
        if path.endswith(".csv"):
            with filesystem.open_input_stream(path) as stream:
                reader = pa_csv.open_csv(stream)
                for batch in reader:
                    yield batch.select([c for c in columns if c in batch.schema.names]) if columns else batch
            return
        with filesystem.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            present = parquet.schema_arrow.names
            wanted = [c for c in columns if c in present] if columns else None
            yield from parquet.iter_batches(batch_size=BATCH_ROWS, columns=wanted)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise TableReadError(f"{display_path(filesystem, path)}: cannot read ({type(exc).__name__}: {exc})") from exc
