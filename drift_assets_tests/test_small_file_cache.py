"""storage.tables.SmallFileCache: a small log file read again unchanged is not decoded again; what a
reader gets is what it got without the cache; a rewritten file is read again; big files, other
columns and non-local filesystems are not served from it."""

from __future__ import annotations

import datetime as dt
import os

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from drift_assets.monitoring.windows import Window, preflight
from drift_assets.storage import tables
from drift_assets.storage.root import Root
from drift_assets.storage.tables import SMALL_FILES, SmallFileCache, iter_file_batches

LOCAL = pafs.LocalFileSystem()


def _write(path, n: int, offset: float = 0.0) -> None:
    start = dt.datetime(2026, 10, 12, tzinfo=dt.UTC)
    pq.write_table(
        pa.table(
            {
                "timestamp": pa.array(
                    [start + dt.timedelta(seconds=30 * i) for i in range(n)], pa.timestamp("us", "UTC")
                ),
                "x": pa.array([offset + i * 0.5 for i in range(n)]),
                "text": pa.array([f"answer {i}" for i in range(n)]),
            }
        ),
        path,
    )


@pytest.fixture(autouse=True)
def _empty_cache():
    SMALL_FILES.clear()
    yield
    SMALL_FILES.clear()


def _decodes(monkeypatch) -> list[str]:
    """Paths actually decoded (ParquetFile opened) from now on."""
    opened: list[str] = []
    real = tables.pq.ParquetFile

    def counting(source, *args, **kwargs):
        opened.append(getattr(source, "path", str(source)))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(tables.pq, "ParquetFile", counting)
    return opened


def test_a_second_read_returns_the_same_rows_without_decoding(tmp_path, monkeypatch):
    path = str(tmp_path / "day.parquet")
    _write(path, 2000)
    plain = pa.Table.from_batches(list(iter_file_batches(LOCAL, path, ["x", "text"])))
    opened = _decodes(monkeypatch)
    first = pa.Table.from_batches(list(iter_file_batches(LOCAL, path, ["x", "text"], reuse_small=True)))
    again = pa.Table.from_batches(list(iter_file_batches(LOCAL, path, ["x", "text"], reuse_small=True)))
    assert first.equals(plain) and again.equals(plain)
    assert len(opened) == 1  # decoded once
    other = list(iter_file_batches(LOCAL, path, ["timestamp"], reuse_small=True))  # other columns
    assert other[0].schema.names == ["timestamp"] and len(opened) == 2
    list(iter_file_batches(LOCAL, path, ["x", "text"]))  # callers that do not ask never use it
    assert len(opened) == 3


def test_a_rewritten_file_is_read_again(tmp_path, monkeypatch):
    path = str(tmp_path / "day.parquet")
    _write(path, 100)
    list(iter_file_batches(LOCAL, path, ["x"], reuse_small=True))
    stat = os.stat(path)
    _write(path, 100, offset=1000.0)  # same size, new values
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # even one nanosecond later
    (batch,) = list(iter_file_batches(LOCAL, path, ["x"], reuse_small=True))
    assert batch.column("x")[0].as_py() == 1000.0


def test_big_files_and_other_filesystems_are_not_kept(tmp_path, monkeypatch):
    path = str(tmp_path / "day.parquet")
    _write(path, 500)
    monkeypatch.setattr(tables, "BATCH_ROWS", 100)  # a file of more than one batch
    opened = _decodes(monkeypatch)
    for _ in range(2):
        assert sum(b.num_rows for b in iter_file_batches(LOCAL, path, ["x"], reuse_small=True)) == 500
    assert len(opened) == 2
    wrapped = pafs.SubTreeFileSystem(str(tmp_path), LOCAL)  # not the local filesystem itself
    monkeypatch.setattr(tables, "BATCH_ROWS", 256_000)
    for _ in range(2):
        list(iter_file_batches(wrapped, "day.parquet", ["x"], reuse_small=True))
    assert len(opened) == 4


def test_the_cache_is_bounded():
    cache = SmallFileCache(max_files=2, max_bytes=2 * 10_000)
    batch = pa.record_batch({"x": pa.array(range(100), pa.int64())})  # 800 bytes
    big = pa.record_batch({"x": pa.array(range(2000), pa.int64())})  # 16,000 bytes > 20,000 / 2
    paths = []
    for i in range(3):
        p = f"/tmp/{os.getpid()}-small-cache-{i}.parquet"
        pq.write_table(pa.table({"x": [i]}), p)
        paths.append(p)
    try:
        for p in paths:
            cache.put(cache.key(LOCAL, p, None), [batch])
        assert cache.get(cache.key(LOCAL, paths[0], None)) is None  # the oldest went
        assert cache.get(cache.key(LOCAL, paths[2], None)) == [batch]
        cache.put(cache.key(LOCAL, paths[0], ["x"]), [big])
        assert cache.get(cache.key(LOCAL, paths[0], ["x"])) is None  # over its share of the bytes: never kept
    finally:
        for p in paths:
            os.unlink(p)


def test_an_hourly_preflight_and_window_decode_the_day_once(tmp_path, monkeypatch):
    day = tmp_path / "log" / "date=2026-10-12"
    day.mkdir(parents=True)
    _write(str(day / "part-0.parquet"), 2880)  # one day, a row every 30 s
    root = Root.open(str(tmp_path))
    opened = _decodes(monkeypatch)
    counts = []
    for hour in range(3):
        start = dt.datetime(2026, 10, 12, hour, tzinfo=dt.UTC)
        _, rows = preflight(root, "log", Window(f"h{hour}", start, start + dt.timedelta(hours=1)), "timestamp")
        counts.append(rows)
    assert counts == [120, 120, 120]
    assert len(opened) == 1
