"""One storage abstraction for local files and S3: a pyarrow filesystem plus three roots.

- ``data_root``: inputs the monitors read (reference tables, production logs, label feeds) and the
  model registry;
- ``assets_root``: what Dagster assets materialise (IO manager outputs);
- ``reports_root``: the results store (JSON per evaluated window) and HTML reports.

Everything above this module speaks in relative paths, so switching local <-> S3 is one setting.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import posixpath
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow.fs as pafs

from drift_assets.storage.s3 import s3_errors
from drift_assets.storage.tables import TableSource, resolve

# Temporary files of atomic writes; readers skip names starting with it.
TMP_PREFIX = ".tmp-"
_HASH_CHUNK = 1 << 20


def sha256_of_files(filesystem: pafs.FileSystem, paths: Iterable[str]) -> str:
    """One content hash over the files, streamed (a reference of many GB is never in memory)."""
    digest = hashlib.sha256()
    for path in paths:
        with filesystem.open_input_stream(path) as stream:
            while chunk := stream.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def sha256_of(filesystem: pafs.FileSystem, path: str) -> str:
    return sha256_of_files(filesystem, [path])


def sha256_file(path: str | os.PathLike) -> str:
    """Content hash of a local file."""
    return sha256_of(pafs.LocalFileSystem(), os.path.abspath(path))


def _remove_quietly(filesystem: pafs.FileSystem, path: str) -> None:
    """Best effort: when the store is unreachable this fails too, and must not hide the first error."""
    try:
        if filesystem.get_file_info(path).type != pafs.FileType.NotFound:
            filesystem.delete_file(path)
    except Exception:  # noqa: BLE001
        pass


@contextlib.contextmanager
def atomic_path(filesystem: pafs.FileSystem, path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path``; move it into place on success, remove it on failure.

    Readers never see a half-written file: the temporary name starts with ``TMP_PREFIX``, which every
    directory reader skips. On S3 the move is a server-side copy + delete."""
    parent = posixpath.dirname(path)
    filesystem.create_dir(parent, recursive=True)
    tmp = posixpath.join(parent, f"{TMP_PREFIX}{uuid.uuid4().hex}-{posixpath.basename(path)}")
    try:
        yield tmp
        filesystem.move(tmp, path)
    except BaseException:
        _remove_quietly(filesystem, tmp)
        raise


def atomic_write(filesystem: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write ``data`` so that ``path`` holds either the old or the new content, never a part.

    Local: temp file, fsync, rename. Object stores: one PUT is already atomic per object."""
    if not isinstance(filesystem, pafs.LocalFileSystem):
        filesystem.create_dir(posixpath.dirname(path), recursive=True)
        with filesystem.open_output_stream(path) as fh:
            fh.write(data)
        return
    with atomic_path(filesystem, path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


@dataclass(frozen=True)
class Root:
    filesystem: pafs.FileSystem
    path: str  # path inside the filesystem (no scheme)
    uri: str  # what users see: a local path or s3://bucket/prefix

    @classmethod
    def open(cls, location: str, filesystem: pafs.FileSystem | None = None) -> Root:
        fs, path = resolve(location, filesystem)
        return cls(fs, path.rstrip("/"), location.rstrip("/"))

    @property
    def is_local(self) -> bool:
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    def path_of(self, relative: str) -> str:
        return posixpath.join(self.path, relative) if relative else self.path

    def uri_of(self, relative: str) -> str:
        return posixpath.join(self.uri, relative) if relative else self.uri

    def errors(self, relative: str, action: str):
        """Remote filesystems: errors name the object (s3://bucket/key) and the error code."""
        return contextlib.nullcontext() if self.is_local else s3_errors(self.uri_of(relative), action)

    def table(self, relative: str) -> TableSource:
        return TableSource(self.filesystem, self.path_of(relative), self.uri_of(relative))

    def exists(self, relative: str) -> bool:
        with self.errors(relative, "look up"):
            return self.filesystem.get_file_info(self.path_of(relative)).type != pafs.FileType.NotFound

    def is_dir(self, relative: str) -> bool:
        with self.errors(relative, "look up"):
            return self.filesystem.get_file_info(self.path_of(relative)).type == pafs.FileType.Directory

    def list_dir(self, relative: str) -> list[str]:
        """Names directly below ``relative`` (empty if it does not exist)."""
        path = self.path_of(relative)
        selector = pafs.FileSelector(path, allow_not_found=True, recursive=False)
        with self.errors(relative, "list"):
            return sorted(posixpath.basename(i.path.rstrip("/")) for i in self.filesystem.get_file_info(selector))

    def make_dirs(self, relative: str) -> None:
        with self.errors(relative, "create directory"):
            self.filesystem.create_dir(self.path_of(relative), recursive=True)

    def read_bytes(self, relative: str) -> bytes:
        with self.errors(relative, "read"), self.filesystem.open_input_stream(self.path_of(relative)) as fh:
            return fh.read()

    def read_json(self, relative: str) -> dict:
        try:
            return json.loads(self.read_bytes(relative))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.uri_of(relative)}: corrupt JSON: {exc}") from exc

    def write_bytes(self, relative: str, data: bytes) -> str:
        """Write atomically where the filesystem allows (local: temp file + rename; S3 puts are
        atomic per object). Readers never see a half-written file."""
        with self.errors(relative, "write"):
            atomic_write(self.filesystem, self.path_of(relative), data)
        return self.uri_of(relative)

    def write_json(self, relative: str, obj: object, *, sort_keys: bool = False) -> str:
        return self.write_bytes(relative, json_dumps(obj, sort_keys=sort_keys).encode("utf-8"))

    def sha256(self, relative: str) -> str:
        with self.errors(relative, "read"):
            return sha256_of(self.filesystem, self.path_of(relative))

    def delete_dir(self, relative: str) -> None:
        if self.exists(relative):
            with self.errors(relative, "delete"):
                self.filesystem.delete_dir(self.path_of(relative))


def _json_default(obj: object) -> object:
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        return obj.item()  # numpy scalars
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return obj.tolist()  # numpy arrays
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite(obj: object) -> object:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


_ESCAPE = json.encoder.encode_basestring_ascii  # what json.dumps uses (ensure_ascii=True)
_INDENT = "  "


def _float_text(value: float) -> str:
    if value != value or value in (math.inf, -math.inf):
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    return float.__repr__(value)


class _Indent2:
    """``json.dumps(obj, default=_json_default, indent=2, allow_nan=False)``, the same text, faster.

    With ``indent`` the standard library encodes in Python, one generator step per value: ~22 ms
    for a window's counts (~10k numbers). This is the same algorithm with each list of plain ints
    or finite floats written by one ``join``. Same rules, in the same order: str, None, True, False,
    int (``int.__repr__``), float (``float.__repr__``; NaN/inf raise ValueError), list/tuple, dict
    (keys str/float/bool/None/int), else ``_json_default``; a circular reference raises ValueError
    (``test_indent2_is_json_dumps``)."""

    def __init__(self) -> None:
        self.markers: set[int] = set()

    def value(self, o: object, level: int) -> str:
        if isinstance(o, str):
            return _ESCAPE(o)
        if o is None:
            return "null"
        if o is True:
            return "true"
        if o is False:
            return "false"
        if isinstance(o, int):
            return int.__repr__(o)
        if isinstance(o, float):
            return _float_text(o)
        if isinstance(o, list | tuple):
            return self.sequence(o, level)
        if isinstance(o, dict):
            return self.mapping(o, level)
        self.mark(o)
        text = self.value(_json_default(o), level)
        self.markers.discard(id(o))
        return text

    def mark(self, o: object) -> None:
        if id(o) in self.markers:
            raise ValueError("Circular reference detected")
        self.markers.add(id(o))

    def sequence(self, items: list | tuple, level: int) -> str:
        if not items:
            return "[]"
        inner = "\n" + _INDENT * (level + 1)
        self.mark(items)
        types = set(map(type, items))
        if types == {int} or (types == {float} and all(map(math.isfinite, items))):
            body = ("," + inner).join(map(repr, items))  # repr is int's / float's own here
        else:
            body = ("," + inner).join([self.value(v, level + 1) for v in items])
        self.markers.discard(id(items))
        return "[" + inner + body + "\n" + _INDENT * level + "]"

    def mapping(self, d: dict, level: int) -> str:
        if not d:
            return "{}"
        inner = "\n" + _INDENT * (level + 1)
        self.mark(d)
        key, value = self.key, self.value
        body = ("," + inner).join([_ESCAPE(key(k)) + ": " + value(v, level + 1) for k, v in d.items()])
        self.markers.discard(id(d))
        return "{" + inner + body + "\n" + _INDENT * level + "}"

    def key(self, key: object) -> str:
        if isinstance(key, str):
            return key
        if key is None or isinstance(key, int | float):  # bools are ints: their text is value()'s
            return self.value(key, 0)
        raise TypeError(f"keys must be str, int, float, bool or None, not {key.__class__.__name__}")


def indent2(obj: object) -> str:
    """``json.dumps(obj, default=_json_default, indent=2, allow_nan=False)`` (see ``_Indent2``)."""
    return _Indent2().value(obj, 0)


def json_dumps(obj: object, *, sort_keys: bool = False) -> str:
    """The project's one JSON encoding: strict JSON (NaN/inf become null, as the documented
    schemas say float|null), numpy values as Python numbers, dates as ISO strings.

    One pass when the document has no NaN/inf (the usual case: a window's counts are ~10k numbers,
    and the round trip below was most of the cost of writing them); otherwise, and for sorted keys
    (keys that are not strings sort differently once converted), the document goes through JSON
    once to become plain Python values and NaN/inf are replaced. Both give the same text
    (``test_json_dumps_fast_path_is_the_normalised_text``)."""
    if not sort_keys:
        try:
            return indent2(obj) + "\n"
        except ValueError:  # a NaN or an infinity somewhere: normalise below
            pass
    normalised = _finite(json.loads(json.dumps(obj, default=_json_default)))
    return json.dumps(normalised, indent=2, sort_keys=sort_keys, allow_nan=False) + "\n"


@dataclass(frozen=True)
class Storage:
    data: Root
    assets: Root
    reports: Root

    @classmethod
    def at(
        cls, data_root: str, assets_root: str, reports_root: str, filesystem: pafs.FileSystem | None = None
    ) -> Storage:
        return cls(
            Root.open(data_root, filesystem), Root.open(assets_root, filesystem), Root.open(reports_root, filesystem)
        )
