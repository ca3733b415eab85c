"""Fitted reference profiles, cached by what they are fitted from (issue 16).

A profile is a pure function of the reference's bytes, the column roles and the fitting settings,
so it is stored under a key hashing exactly those: the sha256 of every reference file's content
(in order, with its name), the column specs (name, kind, role), ``psi_bins``,
``sketch_resolution``, ``max_categories``, ``max_in_memory_rows``, the CSV settings, the profile
format version and ``FIT_VERSION`` (bumped whenever the fitting code changes its output). A file
that changes in any byte changes the key: a stale profile is never reused, whatever its mtime.

Where: next to a local reference, in ``<folder>/.drift_assets/profiles/<name>.<key>.json`` (the
folder holding the reference file, or the reference directory's parent); for an ``s3://``
reference, or when that folder is not writable, under the project's cache directory
(``$DRIFT_ASSETS_CACHE_DIR``, else ``$XDG_CACHE_HOME/drift_assets``, else
``~/.cache/drift_assets``) in ``profiles/<key>.json``. Writes are atomic (temporary file +
rename); an unreadable or corrupt cached profile is refitted and replaced, never an error.
Hashing reads every byte of the reference once (~700 MB/s here; for S3 that is one download).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from drift_assets.stats import ColumnSpec, ReferenceProfile, fit_profile
from drift_assets.stats.errors import ProfileError
from drift_assets.stats.profile import (
    DEFAULT_MAX_CATEGORIES,
    DEFAULT_MAX_IN_MEMORY_ROWS,
    DEFAULT_SKETCH_RESOLUTION,
    PROFILE_VERSION,
)
from drift_assets.storage.s3 import display_path
from drift_assets.storage.tables import TableReadError, TableSource

# Bump when a change to the fitting code changes the profiles it writes.
FIT_VERSION = 1
CACHE_DIR_ENV = "DRIFT_ASSETS_CACHE_DIR"
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class CacheOutcome:
    """How a profile was obtained: ``hit`` (read from ``path``), else fitted (and stored at
    ``path`` unless it is None: cache disabled or not writable). Seconds spent hashing and fitting.

    ``pending``: a hit found by the reference's file stat (``speculative=True``) whose content hash
    is still being computed on a thread; ``confirmed()`` waits for it and says whether the bytes
    are the profile's (only then may anything computed with it be reported or stored)."""

    hit: bool
    key: str | None
    path: str | None
    hash_seconds: float
    fit_seconds: float
    pending: Future | None = None
    pointer: tuple[TableSource, str] | None = None  # (reference, its stat header): refreshed once confirmed

    def confirmed(self) -> bool:
        if self.pending is None:
            return True
        full = self.pending.result()  # the hash's read errors are raised here
        if full != self.key:
            return False
        if self.pointer is not None:
            _write_pointer(*self.pointer, full)
        return True


def project_cache_dir() -> Path:
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "drift_assets"


def _key_header(source: TableSource, specs: Sequence[ColumnSpec], settings: Mapping[str, object]) -> dict:
    return {
        "profile_version": PROFILE_VERSION,
        "fit_version": FIT_VERSION,
        "columns": [[s.name, s.kind, s.role] for s in specs],
        "settings": dict(settings),
        "csv_delimiter": source.csv_delimiter,
        "csv_types": {k: str(v) for k, v in sorted((source.csv_types or {}).items())},
    }


def content_key(source: TableSource, specs: Sequence[ColumnSpec], settings: Mapping[str, object]) -> str:
    """sha256 over the files' names and bytes, the column roles and the fitting settings."""
    digest = hashlib.sha256()
    digest.update(json.dumps(_key_header(source, specs, settings), sort_keys=True).encode())
    root = source.path.rstrip("/")
    for path in source.files():
        digest.update(b"\0file\0" + path.removeprefix(root).encode() + b"\0")
        try:
            with source.filesystem.open_input_stream(path) as stream:
                while chunk := stream.read(_HASH_CHUNK):
                    digest.update(chunk)
        except OSError as exc:
            raise TableReadError(f"{display_path(source.filesystem, path)}: cannot read: {exc}") from exc
    return digest.hexdigest()


def _stat_key(source: TableSource, header: str) -> str | None:
    """A stand-in for ``content_key`` read off the files' stat (name, size, mtime, ctime, inode):
    local files only (None otherwise). Only ever a hint: the content hash decides."""
    if not isinstance(source.filesystem, pafs.LocalFileSystem):
        return None
    digest = hashlib.sha256(header.encode())
    try:
        for path in source.files():
            st = os.stat(path)
            digest.update(f"\0{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}".encode())
    except OSError:
        return None
    return digest.hexdigest()


def _pointer_path(source: TableSource) -> Path | None:
    """``<folder>/.drift_assets/profiles/<name>.latest``: the last content key of a local reference."""
    if not isinstance(source.filesystem, pafs.LocalFileSystem):
        return None
    reference = Path(source.path.rstrip("/"))
    return reference.parent / ".drift_assets" / "profiles" / f"{reference.name}.latest"


def _pointer_header(source: TableSource, specs: Sequence[ColumnSpec], settings: Mapping[str, object]) -> str:
    return json.dumps([_key_header(source, specs, settings), source.path], sort_keys=True)


def _write_pointer(source: TableSource, header: str, key: str) -> None:
    """Record which content key the reference's current stat had (best effort, atomic)."""
    pointer, stat = _pointer_path(source), _stat_key(source, header)
    if pointer is None or stat is None:
        return
    try:
        pointer.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".latest", dir=pointer.parent)
        with os.fdopen(fd, "w") as handle:
            json.dump({"stat": stat, "key": key}, handle)
        os.replace(tmp, pointer)
    except OSError:
        pass


def _pointed_key(source: TableSource, header: str) -> str | None:
    """The content key recorded for the reference's current stat, if any."""
    pointer, stat = _pointer_path(source), _stat_key(source, header)
    if pointer is None or stat is None:
        return None
    try:
        doc = json.loads(pointer.read_text())
        return str(doc["key"]) if doc.get("stat") == stat else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def cache_path(source: TableSource, key: str) -> Path:
    """Next to a local reference when that folder is writable, else the project's cache dir."""
    if isinstance(source.filesystem, pafs.LocalFileSystem):
        reference = Path(source.path.rstrip("/"))
        folder = reference.parent / ".drift_assets" / "profiles"
        writable = folder if folder.is_dir() else reference.parent
        if os.access(writable, os.W_OK | os.X_OK):
            return folder / f"{reference.name}.{key[:32]}.json"
    return project_cache_dir() / "profiles" / f"{key}.json"


def _read(path: Path, key: str) -> ReferenceProfile | None:
    try:
        doc = json.loads(path.read_text())
        if doc.get("cache_key") != key:
            return None
        return ReferenceProfile.from_dict(doc["profile"])
    except (OSError, ValueError, KeyError, TypeError, ProfileError):
        return None  # missing, truncated or from another version: refit


def _write(path: Path, key: str, profile: ReferenceProfile) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
        with os.fdopen(fd, "w") as handle:
            json.dump({"cache_key": key, "profile": profile.to_dict()}, handle, separators=(",", ":"), allow_nan=False)
        os.replace(tmp, path)
        return True
    except (OSError, ValueError):
        return False  # a cache that cannot be written only costs the next call a fit


def fit_profile_cached(
    source: TableSource,
    specs: Sequence[ColumnSpec],
    *,
    psi_bins: int,
    sketch_resolution: int = DEFAULT_SKETCH_RESOLUTION,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    max_in_memory_rows: int = DEFAULT_MAX_IN_MEMORY_ROWS,
    metadata: Mapping | None = None,
    table_name: str = "reference",
    use_cache: bool = True,
    column_hook: Callable[[str, Any], None] | None = None,
    speculative: bool = False,
) -> tuple[ReferenceProfile, CacheOutcome]:
    """``fit_profile(source, ...)``, or the profile cached for the same bytes, roles and settings.

    ``speculative``: when the reference's file stat is the one last recorded with a content key,
    return that key's cached profile at once, the content hash computing on a thread
    (``CacheOutcome.pending``): the caller works with the profile meanwhile and must check
    ``confirmed()`` before it reports or stores anything computed with it."""
    settings = {
        "psi_bins": psi_bins,
        "sketch_resolution": sketch_resolution,
        "max_categories": max_categories,
        "max_in_memory_rows": max_in_memory_rows,
        "metadata": dict(metadata or {}),
    }
    key = path = None
    hash_seconds = 0.0
    header = _pointer_header(source, specs, settings)
    if use_cache:
        if speculative and (found := _speculative_hit(source, specs, settings, header)) is not None:
            return found
        started = time.perf_counter()
        key = content_key(source, specs, settings)
        hash_seconds = time.perf_counter() - started
        path = cache_path(source, key)
        cached = _read(path, key)
        if cached is not None:
            _write_pointer(source, header, key)
            return cached, CacheOutcome(True, key, str(path), hash_seconds, 0.0)
    started = time.perf_counter()
    profile = fit_profile(
        source,
        specs,
        psi_bins=psi_bins,
        sketch_resolution=sketch_resolution,
        max_categories=max_categories,
        max_in_memory_rows=max_in_memory_rows,
        metadata=metadata,
        table_name=table_name,
        column_hook=column_hook,
    )
    fit_seconds = time.perf_counter() - started
    stored = path is not None and key is not None and _write(path, key, profile)
    if stored and key is not None:
        _write_pointer(source, header, key)
    return profile, CacheOutcome(False, key, str(path) if stored else None, hash_seconds, fit_seconds)


def _speculative_hit(
    source: TableSource, specs: Sequence[ColumnSpec], settings: Mapping[str, object], header: str
) -> tuple[ReferenceProfile, CacheOutcome] | None:
    """The profile recorded for the reference's current stat, its content hash started on a thread."""
    key = _pointed_key(source, header)
    if key is None:
        return None
    path = cache_path(source, key)
    profile = _read(path, key)
    if profile is None:
        return None
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift-assets-hash")
    pending = executor.submit(content_key, source, specs, settings)
    executor.shutdown(wait=False)
    return profile, CacheOutcome(True, key, str(path), 0.0, 0.0, pending, (source, header))


def companion_path(profile_path: str, name: str) -> Path:
    """Where something fitted from the same reference bytes as the profile at ``profile_path`` is
    kept (``compare``'s multivariate model): beside it, ``<profile>.<name>.json``."""
    return Path(profile_path).with_suffix(f".{name}.json")


def read_companion(profile_path: str | None, key: str | None, name: str, version: object) -> dict | None:
    """The document stored by ``write_companion`` for this cache key and version, else None."""
    if profile_path is None or key is None:
        return None
    try:
        doc = json.loads(companion_path(profile_path, name).read_text())
        if doc.get("cache_key") != key or doc.get("version") != version:
            return None
        return doc["content"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing, truncated or from another version: refit


def write_companion(profile_path: str | None, key: str | None, name: str, version: object, content: dict) -> bool:
    """Store ``content`` beside the cached profile, under the same key (atomic; False if it cannot)."""
    if profile_path is None or key is None:
        return False
    path = companion_path(profile_path, name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
        with os.fdopen(fd, "w") as handle:
            doc = {"cache_key": key, "version": version, "content": content}
            json.dump(doc, handle, separators=(",", ":"), allow_nan=False)
        os.replace(tmp, path)
        return True
    except (OSError, ValueError):
        return False
