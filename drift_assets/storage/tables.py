"""Reading tables (parquet file, directory of parquet files, CSV) from local paths or s3:// URIs.

Windows are streamed file by file, batch by batch: a corrupt file fails with its own name, and a
week of millions of rows is never held in memory just to be counted. Parquet files are opened with
``pre_buffer=False``: pyarrow's default keeps every column chunk it has read (a 20M-row file
peaked at 1.7 GB instead of ~0.4 GB).

A directory is one table: the files' schemas are unified the way a window's files are (int and
float -> float64, dictionary and plain strings -> string, a column absent from a file -> nulls);
a column whose types cannot be unified (text in one file, numbers in another) fails naming both
files. CSV files (``.csv``, ``.csv.gz``, ``.csv.zst``, ``.csv.bz2``) have their separator detected
from the header (or given), their column types inferred over the whole file (a column empty in its
first 300k rows is still read), and a duplicate header name fails naming the file.
"""

from __future__ import annotations

import csv
import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from drift_assets.stats.errors import DriftInputError
from drift_assets.storage.s3 import display_path, filesystem_for_uri

BATCH_ROWS = 256_000
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.zst", ".csv.bz2")
CSV_DELIMITERS = (",", ";", "\t", "|")
# Bytes read from the start of a CSV to find its header and separator.
_SNIFF_BYTES = 1 << 16
# Types tried, narrowest first, when inferring a CSV column over the whole file.
_CSV_CANDIDATES = (pa.int64(), pa.float64(), pa.bool_(), pa.timestamp("ns"), pa.timestamp("ns", tz="UTC"))


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


def is_csv(path: str) -> bool:
    return path.lower().endswith(CSV_SUFFIXES)


def _is_data_file(path: str) -> bool:
    base = path.rsplit("/", 1)[-1]
    return not base.startswith((".", "_")) and (base.lower().endswith(PARQUET_SUFFIXES) or is_csv(base))


@dataclass(frozen=True)
class TableSource:
    """A file or a directory of files on some filesystem.

    ``csv_delimiter``: the CSV separator (default: detected from the header line).
    ``csv_types``: declared types of CSV columns (the others are inferred over the whole file);
    parquet files carry their own.
    """

    filesystem: pafs.FileSystem
    path: str
    display: str
    csv_delimiter: str | None = None
    csv_types: Mapping[str, pa.DataType] | None = None
    _cache: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    @classmethod
    def open(
        cls,
        location: str,
        filesystem: pafs.FileSystem | None = None,
        *,
        csv_delimiter: str | None = None,
        csv_types: Mapping[str, pa.DataType] | None = None,
    ) -> TableSource:
        fs, path = resolve(location, filesystem)
        return cls(fs, path, location, csv_delimiter, csv_types)

    def _shown(self, path: str) -> str:
        return display_path(self.filesystem, path)

    def files(self) -> list[str]:
        if "files" in self._cache:
            return self._cache["files"]
        try:
            info = self.filesystem.get_file_info(self.path)
        except OSError as exc:
            raise TableReadError(f"{self.display}: cannot access: {_one_line(exc)}") from exc
        if info.type == pafs.FileType.NotFound:
            raise TableReadError(f"{self.display}: no such file or directory")
        if info.type == pafs.FileType.File:
            files = [self.path]
        else:
            selector = pafs.FileSelector(self.path, recursive=True)
            try:
                infos = self.filesystem.get_file_info(selector)
            except OSError as exc:
                raise TableReadError(f"{self.display}: cannot list directory: {_one_line(exc)}") from exc
            files = sorted(i.path for i in infos if i.type == pafs.FileType.File and _is_data_file(i.path))
            if not files:
                raise TableReadError(f"{self.display}: directory holds no .parquet or .csv files")
        self._cache["files"] = files
        return files

    # ------------------------------------------------------------------ schemas
    def file_schema(self, path: str) -> pa.Schema:
        """One file's schema (CSV: types inferred over the whole file, declared types applied)."""
        key = ("schema", path)
        if key not in self._cache:
            if is_csv(path):
                self._cache[key] = pa.schema(list(self._csv_types(path).items()))
            else:
                try:
                    with self.filesystem.open_input_file(path) as handle:
                        self._cache[key] = pq.ParquetFile(handle, pre_buffer=False).schema_arrow
                except (pa.ArrowInvalid, OSError) as exc:
                    raise TableReadError(f"{self._shown(path)}: not a readable parquet file: {_one_line(exc)}") from exc
                _reject_duplicates(self._cache[key].names, self._shown(path))
        return self._cache[key]

    def schema(self) -> pa.Schema:
        """The table's schema: every file's, unified (see the module docstring)."""
        if "schema" not in self._cache:
            self._cache["schema"] = unify_schemas([(self._shown(p), self.file_schema(p)) for p in self.files()])
        return self._cache["schema"]

    def _csv_types(self, path: str) -> dict[str, pa.DataType]:
        key = ("csv", path)
        if key not in self._cache:
            names, delimiter = csv_header(self.filesystem, path, self.csv_delimiter)
            declared = dict(self.csv_types or {})
            inferred = infer_csv_types(self.filesystem, path, names, delimiter, skip=set(declared))
            self._cache[key] = ({n: declared[n] if n in declared else inferred[n] for n in names}, delimiter)
        return self._cache[key][0]

    def num_rows(self) -> int | None:
        """Row count from the parquet footers (None for CSV, which has no footer to read)."""
        total = 0
        for path in self.files():
            if is_csv(path):
                return None
            try:
                total += pq.read_metadata(path, filesystem=self.filesystem).num_rows
            except (pa.ArrowInvalid, OSError) as exc:
                raise TableReadError(f"{self._shown(path)}: not a readable parquet file: {_one_line(exc)}") from exc
        return total

    # ------------------------------------------------------------------ rows
    def batches(self, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
        """Record batches in the unified schema (restricted to ``columns`` that exist)."""
        schema = self.schema()
        wanted = [c for c in (columns if columns is not None else schema.names) if c in schema.names]
        target = pa.schema([schema.field(c) for c in wanted])
        for path in self.files():
            options = {}
            if is_csv(path):
                self._csv_types(path)
                types, delimiter = self._cache[("csv", path)]
                options = {"delimiter": delimiter, "column_types": types}
            for batch in iter_file_batches(self.filesystem, path, wanted, **options):
                yield conform_to(batch, target, self._shown(path))

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        batches = list(self.batches(columns))
        if not batches or sum(b.num_rows for b in batches) == 0:
            raise TableReadError(f"{self.display}: no rows")
        return pa.Table.from_batches(batches)

    def column(self, name: str) -> pa.ChunkedArray:
        """One column of every file, streamed: what fitting a reference holds, one column at a time."""
        field_ = self.schema().field(name)
        return pa.chunked_array([b.column(0) for b in self.batches([name])], type=field_.type)

    def column_chunks(self, name: str) -> Iterator[pa.Array]:
        """One column batch by batch (parquet: row group by row group, ``pre_buffer=False``): what a
        reference above the in-memory threshold is fitted from, in a few passes."""
        for batch in self.batches([name]):
            yield batch.column(0)

    def column_reader(self) -> Callable[[str], pa.ChunkedArray]:
        return self.column


# ---------------------------------------------------------------------- unification
def _normalise(t: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    return t


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def merge_types(a: pa.DataType, b: pa.DataType) -> pa.DataType | None:
    """The type both columns convert to without loss of meaning, or None if there is none."""
    a, b = _normalise(a), _normalise(b)
    if a == b:
        return a
    if pa.types.is_null(a):
        return b
    if pa.types.is_null(b):
        return a
    if pa.types.is_integer(a) and pa.types.is_integer(b):
        return pa.int64()
    if _is_number(a) and _is_number(b):
        return pa.float64()
    if pa.types.is_timestamp(a) and pa.types.is_timestamp(b):
        if (a.tz is None) != (b.tz is None):
            return None
        return pa.timestamp("us", tz="UTC" if a.tz else None)
    return None


def unify_schemas(schemas: Sequence[tuple[str, pa.Schema]]) -> pa.Schema:
    """One schema for the files of a table (``(shown name, schema)`` each), or a TableReadError
    naming the file whose column cannot join the others."""
    types: dict[str, pa.DataType] = {}
    seen_in: dict[str, tuple[str, pa.DataType]] = {}
    for shown, schema in schemas:
        for f in schema:
            if f.name not in types:
                types[f.name], seen_in[f.name] = _normalise(f.type), (shown, f.type)
                continue
            merged = merge_types(types[f.name], f.type)
            if merged is None:
                first, first_type = seen_in[f.name]
                raise TableReadError(
                    f"{shown}: column {f.name!r} has type {f.type}, but {first} has {first_type}"
                    " (the files of a table must agree on each column's type)"
                )
            types[f.name] = merged
    return pa.schema(list(types.items()))


def conform_to(batch: pa.RecordBatch, schema: pa.Schema, shown: str) -> pa.RecordBatch:
    """``batch`` in ``schema``: absent columns become nulls, others are converted (naming the file
    and the column when a value does not convert)."""
    if batch.schema.equals(schema):
        return batch
    arrays = []
    for f in schema:
        if f.name not in batch.schema.names:
            arrays.append(pa.nulls(batch.num_rows, f.type))
            continue
        column = batch.column(f.name)
        if column.type != f.type:
            try:
                if pa.types.is_dictionary(column.type):
                    column = column.dictionary_decode()
                column = pc.cast(column, f.type) if column.type != f.type else column
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise TableReadError(
                    f"{shown}: column {f.name!r} of type {batch.schema.field(f.name).type} cannot be read as"
                    f" {f.type}: {_one_line(exc)}"
                ) from exc
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _reject_duplicates(names: Sequence[str], shown: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise TableReadError(f"{shown}: column name {name!r} appears twice in the header")
        seen.add(name)


# ---------------------------------------------------------------------- CSV
def csv_header(filesystem: pafs.FileSystem, path: str, delimiter: str | None) -> tuple[list[str], str]:
    """The header's column names and the separator (given, or the candidate splitting the header
    line into the most fields). A header that is one field holding a candidate separator fails:
    reading it as one column would report nonsense (an "identifier" of whole rows)."""
    shown = display_path(filesystem, path)
    try:
        with filesystem.open_input_stream(path) as stream:  # compression detected from the extension
            head = stream.read(_SNIFF_BYTES)
    except (pa.ArrowInvalid, OSError) as exc:
        raise TableReadError(f"{shown}: cannot read ({type(exc).__name__}: {_one_line(exc)})") from exc
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = head.decode("utf-8-sig", errors="replace")
    line = text.splitlines()[0] if text.strip() else ""
    if not line.strip():
        raise TableReadError(f"{shown}: empty CSV file (no header line)")
    if delimiter is None:
        delimiter = max(CSV_DELIMITERS, key=lambda d: len(next(csv.reader(io.StringIO(line), delimiter=d))))
    names = next(csv.reader(io.StringIO(line), delimiter=delimiter))
    if len(names) == 1 and any(d in names[0] for d in CSV_DELIMITERS if d != delimiter):
        raise TableReadError(
            f"{shown}: the header is one column {names[0]!r} with {delimiter!r} as separator;"
            " pass --csv-delimiter with the file's separator"
        )
    _reject_duplicates(names, shown)
    return names, delimiter


def _open_csv(stream, delimiter: str, types: Mapping[str, pa.DataType], include: Sequence[str] | None):
    return pa_csv.open_csv(
        stream,
        read_options=pa_csv.ReadOptions(block_size=1 << 22),
        parse_options=pa_csv.ParseOptions(delimiter=delimiter),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict(types), include_columns=list(include) if include is not None else None
        ),
    )


def _narrowest(column: pa.Array, start: int) -> int:
    """Index into _CSV_CANDIDATES of the first type (from ``start``) every value converts to;
    len(_CSV_CANDIDATES) when none does (text)."""
    for i in range(start, len(_CSV_CANDIDATES)):
        try:
            pc.cast(column, _CSV_CANDIDATES[i])
            return i
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return len(_CSV_CANDIDATES)


def infer_csv_types(
    filesystem: pafs.FileSystem, path: str, names: Sequence[str], delimiter: str, skip: AbstractSet[str] = frozenset()
) -> dict[str, pa.DataType]:
    """Column types over the whole file (one streaming pass reading text): pyarrow infers from the
    first block only, so a column empty for its first 300k rows was typed null and its first value
    failed the read ("conversion error to null")."""
    shown = display_path(filesystem, path)
    state: dict[str, int | None] = {n: None for n in names if n not in skip}  # None: only nulls so far
    text = dict.fromkeys(state, pa.string())
    try:
        with filesystem.open_input_stream(path) as stream:
            reader = pa_csv.open_csv(
                stream,
                read_options=pa_csv.ReadOptions(block_size=1 << 22),
                parse_options=pa_csv.ParseOptions(delimiter=delimiter),
                convert_options=pa_csv.ConvertOptions(
                    column_types=text, include_columns=list(state), strings_can_be_null=True
                ),
            )
            for batch in reader:
                for name, current in state.items():
                    if current == len(_CSV_CANDIDATES):
                        continue
                    values = batch.column(name).drop_null()
                    if len(values) == 0:
                        continue
                    state[name] = _join(current, _narrowest(values, 0 if current is None else current))
    except (pa.ArrowInvalid, OSError) as exc:
        raise TableReadError(f"{shown}: cannot read ({type(exc).__name__}: {_one_line(exc)})") from exc
    out: dict[str, pa.DataType] = {}
    for name in names:
        if name in skip:
            continue
        i = state[name]
        out[name] = pa.null() if i is None else pa.string() if i == len(_CSV_CANDIDATES) else _CSV_CANDIDATES[i]
    return out


def _join(current: int | None, found: int) -> int:
    """Types seen in two parts of a column (``found`` was searched from ``current`` on): ints then
    floats give floats; any other mix of kinds (numbers and booleans, dates and text) is text."""
    if current is None or current == found:
        return found
    if (current, found) == (0, 1):
        return 1
    return len(_CSV_CANDIDATES)


def iter_file_batches(
    filesystem: pafs.FileSystem,
    path: str,
    columns: Sequence[str] | None,
    *,
    delimiter: str | None = None,
    column_types: Mapping[str, pa.DataType] | None = None,
    reuse_small: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Batches of one file; any read failure names the file. Missing columns are left out (the
    caller's schema check names them) rather than failing the whole file. ``reuse_small``: a small
    parquet file read again unchanged is not decoded again (see ``SmallFileCache``)."""
    shown = display_path(filesystem, path)
    # The file's stat before it is read: a file rewritten while it is read is never kept as the new one.
    small_key = SMALL_FILES.key(filesystem, path, columns) if reuse_small and not is_csv(path) else None
    cached = SMALL_FILES.get(small_key)
    if cached is not None:
        yield from cached
        return
    try:
        if is_csv(path):
            names, delimiter = csv_header(filesystem, path, delimiter)
            if column_types is None:
                column_types = infer_csv_types(filesystem, path, names, delimiter)
            include = [c for c in columns if c in names] if columns is not None else None
            with filesystem.open_input_stream(path) as stream:
                types = {n: t for n, t in column_types.items() if n in names}
                yield from _open_csv(stream, delimiter, types, include)
            return
        with filesystem.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle, pre_buffer=False)
            present = parquet.schema_arrow.names
            wanted = [c for c in columns if c in present] if columns is not None else None
            if small_key is not None and parquet.metadata.num_rows <= BATCH_ROWS:
                batches = list(parquet.iter_batches(batch_size=BATCH_ROWS, columns=wanted))
                SMALL_FILES.put(small_key, batches)
                yield from batches
                return
            for groups in _row_group_runs(parquet):
                yield from parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=groups, columns=wanted)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise TableReadError(f"{shown}: cannot read ({type(exc).__name__}: {_one_line(exc)})") from exc


class SmallFileCache:
    """The decoded batches of the last few small parquet files read (one batch each, at most
    ``max_bytes`` in all) on the local disk, keyed by path, columns, size and modification time (in
    nanoseconds): an hourly window reads the day's log file the previous hour read (and its
    preflight read it just before), so a backfill of hourly windows decodes each day's file once,
    not 24 or 48 times. A file rewritten since (new size or time) is read again. Arrow batches are
    immutable, so sharing them is safe."""

    def __init__(self, max_files: int = 4, max_bytes: int = 64 * 2**20):
        self.max_files, self.max_bytes = max_files, max_bytes
        self._entries: OrderedDict[tuple, list[pa.RecordBatch]] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, filesystem: pafs.FileSystem, path: str, columns: Sequence[str] | None) -> tuple | None:
        """What an entry is kept under (None: not kept): path, columns, size, mtime in nanoseconds."""
        if not isinstance(filesystem, pafs.LocalFileSystem):
            return None  # S3 times are whole seconds: a rewrite within one could pass for the old file
        try:
            info = filesystem.get_file_info(path)
        except (OSError, pa.ArrowException):
            return None  # the read that follows names the problem
        if info.type != pafs.FileType.File or info.mtime_ns is None:
            return None
        return (path, tuple(columns) if columns is not None else None, info.size, info.mtime_ns)

    def get(self, key: tuple | None) -> list | None:
        with self._lock:
            if key is None or key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key: tuple | None, batches: list[pa.RecordBatch]) -> None:
        size = sum(b.nbytes for b in batches)
        if key is None or size > self.max_bytes // self.max_files:
            return
        with self._lock:
            self._entries[key] = batches
            while len(self._entries) > self.max_files:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


SMALL_FILES = SmallFileCache()


def _row_group_runs(parquet: pq.ParquetFile) -> Iterator[list[int]]:
    """Consecutive row groups of about ``BATCH_ROWS`` rows: pyarrow's ``iter_batches`` over a whole
    file can keep the buffers of every row group it has read until the end (memory growing with
    the file), while one call per tiny row group would make tiny batches."""
    groups: list[int] = []
    rows = 0
    for index in range(parquet.num_row_groups):
        groups.append(index)
        rows += parquet.metadata.row_group(index).num_rows
        if rows >= BATCH_ROWS:
            yield groups
            groups, rows = [], 0
    if groups:
        yield groups


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
