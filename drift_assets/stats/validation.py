"""Input validation helpers: turn arrow columns into the arrays the statistics need, or fail clearly.

Like scikit-learn's ``check_array``: every public entry point funnels its inputs through here, so the
rules for "what counts as missing" and "what counts as numerical" live in one place.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drift_assets.stats.errors import ProfileError, SchemaError

#: Fewest reference rows a profile is fitted on (``min_reference_rows`` per monitor, ``compare
#: --min-reference-rows``): with 10 PSI bins each decile needs ~10 rows for its edges to mean
#: anything, and PSI's sample-size bias (k-1)/n is 0.09 at n=100 already.
DEFAULT_MIN_REFERENCE_ROWS = 100


def require_reference_rows(rows: int, minimum: int, where: str) -> None:
    """Refuse a reference too small to measure drift against, naming the file (``where``)."""
    if rows < minimum:
        raise ProfileError(
            f"{where}: reference has {rows} row(s), fewer than min_reference_rows ({minimum}): drift measured "
            "against it would be noise; use a bigger reference or lower min_reference_rows"
        )


def is_numeric_type(arrow_type: pa.DataType) -> bool:
    return (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_decimal(arrow_type)
        or pa.types.is_boolean(arrow_type)
    )


def is_categorical_type(arrow_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_string_view(arrow_type)
        or pa.types.is_dictionary(arrow_type)
        or pa.types.is_boolean(arrow_type)
        or pa.types.is_integer(arrow_type)
    )


def numeric_values(column: pa.Array | pa.ChunkedArray, name: str, table: str = "table") -> np.ndarray:
    """Float64 values of a numerical column; nulls become NaN. Strings are a schema error, not NaN."""
    arrow_type = column.type
    if pa.types.is_null(arrow_type):
        return np.full(len(column), np.nan)
    if not is_numeric_type(arrow_type):
        raise SchemaError(
            f"{table}: column {name!r} should be numerical but has type {arrow_type}"
            " (declare it categorical, or fix the producer)"
        )
    if not pa.types.is_floating(arrow_type) or arrow_type != pa.float64():
        column = pc.cast(column, pa.float64())
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if column.null_count:
        return as_numpy(pc.fill_null(column, np.nan)).copy()  # writable, as to_numpy's copy was
    return as_numpy(column)


_PRIMITIVE: dict[pa.DataType, np.dtype] = {
    pa.float64(): np.dtype(np.float64),
    pa.float32(): np.dtype(np.float32),
    pa.int64(): np.dtype(np.int64),
    pa.int32(): np.dtype(np.int32),
    pa.int16(): np.dtype(np.int16),
    pa.int8(): np.dtype(np.int8),
    pa.uint64(): np.dtype(np.uint64),
    pa.uint32(): np.dtype(np.uint32),
    pa.uint16(): np.dtype(np.uint16),
    pa.uint8(): np.dtype(np.uint8),
}


def as_numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``array.to_numpy(zero_copy_only=False)``. Numbers and booleans without nulls are read off the
    arrow buffers (a view for numbers, as ``to_numpy`` gives): pyarrow's own converter imports
    pandas on its first call (0.15-0.4 s of every ``compare`` process). Anything else goes to it."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    if array.null_count == 0:
        dtype = _PRIMITIVE.get(array.type)
        if dtype is not None:
            data = array.buffers()[1]
            if data is None or len(array) == 0:
                return np.empty(0, dtype)
            return np.frombuffer(memoryview(data), dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)
        if pa.types.is_boolean(array.type):
            data = array.buffers()[1]
            if data is None or len(array) == 0:
                return np.empty(0, bool)
            raw = np.frombuffer(memoryview(data), np.uint8)
            bits = np.unpackbits(raw, count=array.offset + len(array), bitorder="little")
            return bits[array.offset :].astype(bool)
    return array.to_numpy(zero_copy_only=False)


def missing_mask(values: np.ndarray) -> np.ndarray:
    """NaN, None (already NaN here) and +/-inf all count as missing: none of them is a measurement."""
    return ~np.isfinite(values)


def category_strings(column: pa.Array | pa.ChunkedArray, name: str, table: str = "table") -> pa.Array:
    """String view of a categorical column (ints/bools are stringified; floats are refused)."""
    arrow_type = column.type
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_null(arrow_type):
        return pa.nulls(len(column), pa.string())
    if pa.types.is_dictionary(arrow_type):
        column = column.dictionary_decode()
        arrow_type = column.type
    if not is_categorical_type(arrow_type):
        raise SchemaError(f"{table}: column {name!r} should be categorical but has type {arrow_type}")
    if not pa.types.is_string(arrow_type):
        column = pc.cast(column, pa.string())
    return column
