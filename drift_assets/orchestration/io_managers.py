"""IO managers on the project's Storage (local or S3 through pyarrow's filesystem).

- ``ParquetIOManager`` writes a ``pa.Table`` or a ``BatchStream`` (an iterator of record batches)
  with a streaming ParquetWriter, and loads a ``StoredTable``: a handle whose ``batches()`` streams
  the file, so a downstream asset never has to hold a week of rows in memory.
- ``JsonIOManager`` stores JSON documents (profiles, drift results, model records).

Paths: ``<assets_root>/<asset key path>/<partition key or "__all__">.<ext>``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableIOManager, InputContext, OutputContext

from drift_assets.orchestration.resources import StorageResource
from drift_assets.storage.root import Root, atomic_path
from drift_assets.storage.tables import TableSource


@dataclass
class BatchStream:
    """Rows to be written as they are produced. ``schema`` may be None: taken from the first batch."""

    batches: Iterator[pa.RecordBatch]
    schema: pa.Schema | None = None
    # Called after the stream was consumed: metadata only known at the end (files read, time range).
    describe: Callable[[], dict] | None = None
    # Called after the stream was consumed: key-value metadata stored in the parquet footer.
    footer: Callable[[], dict[str, str]] | None = None


class StoredTable(TableSource):
    """A parquet asset output, read lazily."""

    def __init__(self, root: Root, relative: str) -> None:
        super().__init__(root.filesystem, root.path_of(relative), root.uri_of(relative))

    def footer(self) -> dict[str, str]:
        meta = pq.read_metadata(self.path, filesystem=self.filesystem).metadata or {}
        return {k.decode(): v.decode() for k, v in meta.items() if not k.startswith(b"ARROW:")}


def asset_path(key_path: Sequence[str], partition: str | None, ext: str) -> str:
    """Where an asset output lives under the assets root (the layout above)."""
    return f"{'/'.join(key_path)}/{(partition or '__all__').replace(':', '')}.{ext}"


def _relative_path(context: OutputContext | InputContext, ext: str) -> str:
    return asset_path(
        context.asset_key.path, context.asset_partition_key if context.has_asset_partitions else None, ext
    )


def write_parquet(root: Root, relative: str, data: pa.Table | BatchStream) -> int:
    """Stream to a temporary object, then move it in place: a failed write never replaces a good file.

    On S3 the temporary object is a multipart upload and the move is a server-side copy + delete:
    the final key only ever holds a complete file. (The temporary name starts with ``TMP_PREFIX``,
    so readers of the directory skip a leftover one.)"""
    rows = 0
    batches: Iterator[pa.RecordBatch] = iter(data.to_batches()) if isinstance(data, pa.Table) else data.batches
    schema = data.schema
    with root.errors(relative, "write"), atomic_path(root.filesystem, root.path_of(relative)) as tmp:
        writer = None
        try:
            for batch in batches:
                if writer is None:
                    schema = schema or batch.schema
                    writer = pq.ParquetWriter(tmp, schema, filesystem=root.filesystem, compression="zstd")
                writer.write_batch(batch)
                rows += batch.num_rows
            if writer is None:  # no batches at all: still write a valid, empty file
                writer = pq.ParquetWriter(tmp, schema or pa.schema([]), filesystem=root.filesystem)
            if isinstance(data, BatchStream) and data.footer:
                writer.add_key_value_metadata(data.footer())
        except BaseException:
            if writer is not None:
                with contextlib.suppress(Exception):  # keep the first error
                    writer.close()
            raise
        writer.close()
    return rows


class ParquetIOManager(ConfigurableIOManager):
    storage: StorageResource

    def handle_output(self, context: OutputContext, obj: pa.Table | BatchStream) -> None:
        if obj is None:
            return
        root = self.storage.storage().assets
        relative = _relative_path(context, "parquet")
        rows = write_parquet(root, relative, obj)
        extra = obj.describe() if isinstance(obj, BatchStream) and obj.describe else {}
        context.add_output_metadata({"rows": rows, "path": root.uri_of(relative), **extra})

    def load_input(self, context: InputContext) -> StoredTable:
        root = self.storage.storage().assets
        return StoredTable(root, _relative_path(context, "parquet"))


class JsonIOManager(ConfigurableIOManager):
    storage: StorageResource

    def handle_output(self, context: OutputContext, obj: dict) -> None:
        if obj is None:
            return
        root = self.storage.storage().assets
        relative = _relative_path(context, "json")
        root.write_json(relative, obj)
        context.add_output_metadata({"path": root.uri_of(relative)})

    def load_input(self, context: InputContext) -> dict:
        root = self.storage.storage().assets
        return root.read_json(_relative_path(context, "json"))
