"""The results store: one JSON document per evaluated window, on a local disk or S3.

Layout under the root::

    <root>/<monitor>/drift/<partition_key>.json         one per evaluated window (rewritten if re-evaluated)
    <root>/<monitor>/performance/<partition_key>.json
    <root>/<monitor>/retraining/<version_name>.json     one per retraining attempt

The evaluation assets write it (``write_json`` + the ``*_path`` helpers); the metrics exporter
and anything else read it. Reads always go to the filesystem: nothing is cached, so a re-evaluated
window is visible on the next read.

Every path goes through a ``pyarrow.fs.FileSystem`` (local by default, ``s3://bucket/prefix`` roots
open pyarrow's S3 filesystem), so one code path serves both.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow.fs as pafs

from drift_assets.monitoring.timestamps import parse_timestamp
from drift_assets.storage.root import Root, json_dumps

DRIFT = "drift"
PERFORMANCE = "performance"
RETRAINING = "retraining"
KINDS = (DRIFT, PERFORMANCE, RETRAINING)


class ResultsStoreError(Exception):
    """The results store cannot be read (missing permissions, not a directory, S3 down...)."""


class CorruptResultError(ResultsStoreError):
    """One result file is not a valid result document. ``path`` names the file."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"corrupt result file {path}: {reason}")
        self.path = path
        self.reason = reason


# Called with each unreadable file when a reader is asked to skip them instead of raising.
ErrorHandler = Callable[[ResultsStoreError], None]


@dataclass(frozen=True)
class MonitorResults:
    """Everything the exporter needs about one monitor, read in one pass over its files."""

    monitor: str
    latest_drift: dict | None
    window_seconds: float | None  # window_end - window_start of the latest drift document
    last_evaluated_at: datetime | None
    performance_by_version: dict[str, dict]
    retraining: list[dict]
    # The latest window with an estimate (every evaluated window) and the latest with labels ("ok").
    latest_estimated: dict | None = None
    latest_realized: dict | None = None
    # The newest drift file that could not be read, when it is newer (by partition key) than
    # ``latest_drift``: the monitor's latest window is unknown, ``latest_drift`` is an older one.
    newer_unreadable_drift: str | None = None


def _check_component(value: str, what: str) -> str:
    text = str(value)
    if not text or text in (".", "..") or "/" in text or "\\" in text or text.startswith("."):
        raise ValueError(f"invalid {what} {value!r}: must be a non-empty name without '/' and not starting with '.'")
    return text


def dumps(obj: Any) -> str:
    """Strict, key-sorted JSON (the project's one encoder, with sorted keys for diffable documents)."""
    return json_dumps(obj, sort_keys=True)


class ResultsStore:
    """Reader and writer of the results store under ``root``.

    ``root`` is a local directory, ``s3://bucket/prefix``, or a path inside ``filesystem`` when one
    is given (for S3: ``bucket/prefix``).
    """

    def __init__(self, root: str, filesystem: pafs.FileSystem | None = None):
        root = str(root)
        if filesystem is None:
            from drift_assets.storage.tables import (
                resolve,  # s3:// with the configured endpoint and region
            )

            filesystem, path = resolve(root)
        else:
            path = root.split("://", 1)[1] if "://" in root else root
        self.filesystem: pafs.FileSystem = filesystem
        self.root: str = path.rstrip("/") or "/"
        # What messages show: the URI as given (s3://...), or the absolute local path.
        self.uri: str = (root.rstrip("/") or "/") if "://" in root or filesystem.type_name != "local" else self.root
        self._root = Root(self.filesystem, self.root, self.uri)  # writes go through the shared atomic writer

    def __repr__(self) -> str:
        return f"ResultsStore({self.uri!r})"

    @property
    def is_local(self) -> bool:
        return self.filesystem.type_name == "local"

    # ------------------------------------------------------------------ paths
    @staticmethod
    def drift_path(monitor: str, partition: str) -> str:
        return f"{_check_component(monitor, 'monitor')}/{DRIFT}/{_check_component(partition, 'partition key')}.json"

    @staticmethod
    def performance_path(monitor: str, partition: str) -> str:
        return (
            f"{_check_component(monitor, 'monitor')}/{PERFORMANCE}/{_check_component(partition, 'partition key')}.json"
        )

    @staticmethod
    def retraining_path(monitor: str, version_name: str) -> str:
        return (
            f"{_check_component(monitor, 'monitor')}/{RETRAINING}/{_check_component(version_name, 'version name')}.json"
        )

    def full_path(self, relative_path: str) -> str:
        """Path inside the filesystem of a store-relative path."""
        parts = [p for p in str(relative_path).split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise ValueError(f"invalid relative path {relative_path!r}")
        return posixpath.join(self.root, *parts)

    def uri_of(self, relative_path: str) -> str:
        return posixpath.join(self.uri, str(relative_path).lstrip("/"))

    # ------------------------------------------------------------------ writer
    def write_json(self, relative_path: str, obj: Any) -> str:
        """Write one result document; readers never see a half-written file.

        Local: temp file in the same directory, fsync, then rename over the target. S3 (and other
        object stores): one put, which is atomic per object. Returns the written file's URI.
        """
        self.full_path(relative_path)  # validates the relative path
        return self._root.write_bytes(str(relative_path).strip("/"), dumps(obj).encode("utf-8"))

    # ------------------------------------------------------------------ listing
    def _list(self, path: str) -> list[pafs.FileInfo]:
        """Entries directly under ``path``; a directory that does not exist (yet) is empty."""
        try:
            return self.filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=False))
        except (OSError, ValueError) as exc:
            raise ResultsStoreError(f"cannot list {self._display(path)}: {exc}") from exc

    def _display(self, path: str) -> str:
        if path == self.root:
            return self.uri
        return self.uri_of(posixpath.relpath(path, self.root))

    def root_problem(self) -> str | None:
        """Why the root holds nothing to export: ``"missing"`` (no such directory: a mistyped root
        or nothing evaluated yet), ``"not_a_directory"`` or ``"empty"`` (no monitor directory);
        None when there is at least one monitor. Listing errors raise ``ResultsStoreError``."""
        try:
            info = self.filesystem.get_file_info(self.root)
        except (OSError, ValueError) as exc:
            raise ResultsStoreError(f"cannot read {self.uri}: {exc}") from exc
        if info.type == pafs.FileType.NotFound:
            return "missing"
        if info.type != pafs.FileType.Directory:
            return "not_a_directory"
        return None if self.monitors() else "empty"

    def monitors(self) -> list[str]:
        """Monitor names (the directories under the root). A root that does not exist yet is empty."""
        return sorted(
            posixpath.basename(i.path.rstrip("/"))
            for i in self._list(self.root)
            if i.type == pafs.FileType.Directory and not posixpath.basename(i.path.rstrip("/")).startswith(".")
        )

    def _files(self, monitor: str, kind: str) -> list[str]:
        directory = posixpath.join(self.root, _check_component(monitor, "monitor"), kind)
        names = []
        for info in self._list(directory):
            base = posixpath.basename(info.path)
            if info.type == pafs.FileType.File and base.endswith(".json") and not base.startswith("."):
                names.append(info.path)
        return sorted(names)

    def read_json(self, relative_path: str) -> dict:
        """One document; a missing, unreadable or invalid file raises an error naming it."""
        return self._read_document(self.full_path(relative_path))

    def _read_document(self, path: str) -> dict:
        shown = self._display(path)
        try:
            with self.filesystem.open_input_stream(path) as stream:
                raw = stream.read()
        except (OSError, ValueError) as exc:
            raise ResultsStoreError(f"cannot read result file {shown}: {exc}") from exc
        try:
            doc = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise CorruptResultError(shown, f"not UTF-8 text ({exc})") from exc
        except json.JSONDecodeError as exc:
            raise CorruptResultError(shown, f"invalid JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise CorruptResultError(shown, f"expected a JSON object, got {type(doc).__name__}")
        return doc

    def _records(
        self, monitor: str, kind: str, on_error: ErrorHandler | None, failed: list[str] | None = None
    ) -> list[_Record]:
        """Readable documents; with ``on_error`` the others are reported and their paths appended to ``failed``."""
        required = _REQUIRED_TIMESTAMPS[kind]
        out = []
        for path in self._files(monitor, kind):
            shown = self._display(path)
            try:
                doc = self._read_document(path)
                # The timestamps used for ordering are checked here, so a bad one names its file.
                stamps: dict[str, datetime] = {}
                for key in required:
                    try:
                        stamps[key] = parse_timestamp(doc.get(key), where=key)
                    except ValueError as exc:
                        raise CorruptResultError(shown, str(exc)) from exc
            except ResultsStoreError as exc:
                if on_error is None:
                    raise
                on_error(exc)
                if failed is not None:
                    failed.append(path)
                continue
            out.append(_Record(doc, shown, stamps))
        return out

    # ------------------------------------------------------------------ readers
    def drift_records(self, monitor: str, on_error: ErrorHandler | None = None) -> list[dict]:
        """Every drift document of ``monitor``, in file-name order."""
        return [r.doc for r in self._records(monitor, DRIFT, on_error)]

    def performance_records(self, monitor: str, on_error: ErrorHandler | None = None) -> list[dict]:
        return [r.doc for r in self._records(monitor, PERFORMANCE, on_error)]

    def latest_drift(self, monitor: str, on_error: ErrorHandler | None = None) -> dict | None:
        """The drift document with the greatest ``window_end`` (ties: the latest ``evaluated_at``).

        Without ``on_error`` an unreadable or corrupt file raises (``CorruptResultError`` names
        it); with one, each such error is passed to it and the file is skipped.
        """
        latest = _latest(self._records(monitor, DRIFT, on_error))
        return latest.doc if latest else None

    def latest_performance_by_version(self, monitor: str, on_error: ErrorHandler | None = None) -> dict[str, dict]:
        """Per ``model_version``, the latest ``status == "ok"`` performance document.

        Latest = the greatest partition key (the most recent window with labels), ties broken by
        ``evaluated_at``. Partition keys of one monitor share one format, so they sort by time.
        """
        return _performance_by_version(self._records(monitor, PERFORMANCE, on_error))

    def retraining_records(self, monitor: str, on_error: ErrorHandler | None = None) -> list[dict]:
        """Every retraining attempt, oldest first (by ``created_at``, then ``version``)."""
        return _sorted_retraining(self._records(monitor, RETRAINING, on_error))

    def last_evaluated_at(self, monitor: str, on_error: ErrorHandler | None = None) -> datetime | None:
        """The latest ``evaluated_at`` over the monitor's drift documents (its window evaluations)."""
        return max((r.evaluated_at for r in self._records(monitor, DRIFT, on_error)), default=None)

    def monitor_results(self, monitor: str, on_error: ErrorHandler | None = None) -> MonitorResults:
        """All of the above for one monitor, reading each file once."""
        failed: list[str] = []
        drift = self._records(monitor, DRIFT, on_error, failed)
        performance = self._records(monitor, PERFORMANCE, on_error)
        latest = _latest(drift)
        return MonitorResults(
            monitor=monitor,
            latest_drift=latest.doc if latest else None,
            window_seconds=(latest.window_end - latest.window_start).total_seconds() if latest else None,
            last_evaluated_at=max((r.evaluated_at for r in drift), default=None),
            performance_by_version=_performance_by_version(performance),
            retraining=_sorted_retraining(self._records(monitor, RETRAINING, on_error)),
            latest_estimated=_latest_performance(performance, lambda doc: bool(doc.get("estimated"))),
            latest_realized=_latest_performance(performance, lambda doc: doc.get("status") == "ok"),
            newer_unreadable_drift=self._newer_unreadable(failed, latest),
        )

    def _newer_unreadable(self, failed: list[str], latest: _Record | None) -> str | None:
        """The newest unreadable drift file if its partition key sorts after the latest readable
        window's (keys of one monitor share one format, so they sort by time)."""
        if not failed:
            return None
        newest = max(failed, key=lambda p: posixpath.basename(p))
        key = posixpath.basename(newest)[: -len(".json")]
        if latest is not None and key <= str(latest.doc.get("partition", posixpath.basename(latest.path)[:-5])):
            return None
        return self._display(newest)


_REQUIRED_TIMESTAMPS = {
    DRIFT: ("window_start", "window_end", "evaluated_at"),
    PERFORMANCE: ("evaluated_at",),
    RETRAINING: (),
}


@dataclass(frozen=True)
class _Record:
    doc: dict
    path: str
    # The kind's ``_REQUIRED_TIMESTAMPS``, parsed; the properties below are read only for kinds that require them.
    stamps: Mapping[str, datetime]

    @property
    def window_start(self) -> datetime:
        return self.stamps["window_start"]

    @property
    def window_end(self) -> datetime:
        return self.stamps["window_end"]

    @property
    def evaluated_at(self) -> datetime:
        return self.stamps["evaluated_at"]


def _latest(records: list[_Record]) -> _Record | None:
    return max(records, key=lambda r: (r.window_end, r.evaluated_at, r.path), default=None)


def _performance_by_version(records: list[_Record]) -> dict[str, dict]:
    best: dict[str, tuple] = {}
    for record in records:
        if record.doc.get("status") != "ok":
            continue
        version = str(record.doc.get("model_version") or "unknown")
        key = (str(record.doc.get("partition", "")), record.evaluated_at, record.path)
        if version not in best or key > best[version][0]:
            best[version] = (key, record.doc)
    return {version: best[version][1] for version in sorted(best)}


def _latest_performance(records: list[_Record], wanted: Callable[[dict], bool]) -> dict | None:
    """The performance document of the latest window (greatest partition key) that ``wanted`` accepts."""
    chosen = [r for r in records if wanted(r.doc)]
    latest = max(chosen, key=lambda r: (str(r.doc.get("partition", "")), r.evaluated_at, r.path), default=None)
    return latest.doc if latest else None


def _sorted_retraining(records: list[_Record]) -> list[dict]:
    def key(record: _Record):
        try:
            created = parse_timestamp(record.doc.get("created_at"), where="created_at").timestamp()
        except ValueError:
            created = float("-inf")
        version = record.doc.get("version")
        return (created, version if isinstance(version, int) and not isinstance(version, bool) else -1, record.path)

    return [r.doc for r in sorted(records, key=key)]


__all__ = [
    "CorruptResultError",
    "MonitorResults",
    "ResultsStore",
    "ResultsStoreError",
    "dumps",
    "parse_timestamp",
]
