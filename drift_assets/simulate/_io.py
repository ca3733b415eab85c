"""Filesystem helpers shared by the simulators.

Everything goes through a ``pyarrow.fs.FileSystem`` so the same simulator can
write to a local directory today and to S3 (``pyarrow.fs.S3FileSystem``) later
without a second code path.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from drift_assets.storage.root import atomic_write

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR
UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")


def resolve_filesystem(filesystem: pafs.FileSystem | None) -> pafs.FileSystem:
    """Default to the local disk so callers only pass a filesystem for S3 & co."""
    return filesystem if filesystem is not None else pafs.LocalFileSystem()


def join(base: str, *parts: str) -> str:
    """Join with '/' (not os.sep): pyarrow paths are the same on every filesystem."""
    cleaned = [base.rstrip("/")] + [p.strip("/") for p in parts if p]
    return "/".join(cleaned)


def parent(path: str) -> str:
    """Directory part of a '/'-separated path."""
    return path.rsplit("/", 1)[0] if "/" in path else "."


def ensure_dir(fs: pafs.FileSystem, path: str) -> None:
    """Create a directory and its parents; a no-op when it already exists."""
    fs.create_dir(path, recursive=True)


def remove_if_exists(fs: pafs.FileSystem, path: str) -> None:
    """Delete a stale directory or file so re-running never mixes two simulations."""
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif info.type == pafs.FileType.File:
        fs.delete_file(path)


def write_parquet(fs: pafs.FileSystem, path: str, table: pa.Table) -> None:
    """Write one parquet file, creating its directory first."""
    ensure_dir(fs, parent(path))
    pq.write_table(table, path, filesystem=fs)


def write_bytes_atomic(fs: pafs.FileSystem, path: str, payload: bytes) -> None:
    """Readers never see a half-written artifact (the storage layer's atomic write)."""
    atomic_write(fs, path, payload)


def write_json_atomic(fs: pafs.FileSystem, path: str, obj: Any) -> None:
    """Pretty, key-sorted JSON so manifests diff cleanly between runs."""
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    write_bytes_atomic(fs, path, text.encode("utf-8"))


def write_joblib_atomic(fs: pafs.FileSystem, path: str, obj: Any) -> None:
    """Serialise in memory first: joblib cannot stream to every pyarrow filesystem."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    write_bytes_atomic(fs, path, buffer.getvalue())


def midnight_utc(day: date) -> datetime:
    """Start of a UTC day as an aware datetime."""
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


def epoch_us(day: date) -> int:
    """Microseconds since the epoch at the start of a UTC day."""
    return (day - date(1970, 1, 1)).days * US_PER_DAY


def iso_hour(day: date, hour: int) -> str:
    """ISO key of an hour, e.g. '2026-10-13T14:00:00+00:00' (matches hourly partitions)."""
    return datetime.combine(day, time(hour, 0), tzinfo=UTC).isoformat()


def timestamp_array(us: np.ndarray) -> pa.Array:
    """int64 microseconds → tz-aware UTC timestamp column."""
    return pa.array(np.asarray(us, dtype=np.int64), type=pa.int64()).cast(UTC_TIMESTAMP)


def largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Split an integer total by weights so the parts sum exactly to the total."""
    share = np.asarray(weights, dtype=float) / float(np.sum(weights)) * total
    counts = np.floor(share).astype(np.int64)
    short = int(total - counts.sum())
    if short > 0:
        order = np.argsort(-(share - counts), kind="stable")
        counts[order[:short]] += 1
    return counts


def padded_ids(prefix: str, start: int, n: int, width: int) -> pa.Array:
    """Vectorised '<prefix><zero-padded counter>' string ids (no per-row Python loop)."""
    import pyarrow.compute as pc

    numbers = pa.array(np.arange(start, start + n, dtype=np.int64)).cast(pa.string())
    padded = pc.utf8_lpad(numbers, width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), padded, "")
