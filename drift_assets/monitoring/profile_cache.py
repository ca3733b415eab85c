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
    ``path`` unless it is None: cache disabled or not writable). Seconds spent hashing and fitting."""

    hit: bool
    key: str | None
    path: str | None
    hash_seconds: float
    fit_seconds: float


def project_cache_dir() -> Path:
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "drift_assets"


def content_key(source: TableSource, specs: Sequence[ColumnSpec], settings: Mapping[str, object]) -> str:
    """sha256 over the files' names and bytes, the column roles and the fitting settings."""
    digest = hashlib.sha256()
    header = {
        "profile_version": PROFILE_VERSION,
        "fit_version": FIT_VERSION,
        "columns": [[s.name, s.kind, s.role] for s in specs],
        "settings": dict(settings),
        "csv_delimiter": source.csv_delimiter,
        "csv_types": {k: str(v) for k, v in sorted((source.csv_types or {}).items())},
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
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
) -> tuple[ReferenceProfile, CacheOutcome]:
    """``fit_profile(source, ...)``, or the profile cached for the same bytes, roles and settings."""
    settings = {
        "psi_bins": psi_bins,
        "sketch_resolution": sketch_resolution,
        "max_categories": max_categories,
        "max_in_memory_rows": max_in_memory_rows,
        "metadata": dict(metadata or {}),
    }
    key = path = None
    hash_seconds = 0.0
    if use_cache:
        started = time.perf_counter()
        key = content_key(source, specs, settings)
        hash_seconds = time.perf_counter() - started
        path = cache_path(source, key)
        cached = _read(path, key)
        if cached is not None:
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
    return profile, CacheOutcome(False, key, str(path) if stored else None, hash_seconds, fit_seconds)


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
