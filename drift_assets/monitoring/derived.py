"""Derived columns: values computed from log columns before profiling, declared in the monitors
file (``derived: [{name, function, source, options}]``). This is how the LLM monitor turns raw
text into measurable columns without a parallel copy of the Dagster code.

Functions (all vectorised on arrow, no per-row Python loop except the regex engine's own):
- ``char_length``: characters of a text column (null stays null).
- ``token_count``: whitespace/punctuation tokens: runs of word characters plus each punctuation
  mark, a dependency-free approximation of a tokenizer (documented, stable across versions).
- ``is_empty``: "yes"/"no" for empty or whitespace-only text (categorical).
- ``matches_any``: "yes"/"no" when the text matches any of ``options.patterns`` (case-insensitive
  regular expressions); if ``options.flag_column`` is present in the batch, that boolean column
  is used instead (the log's own refusal flag wins over pattern guessing).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from drift_assets.stats.errors import SchemaError

TOKEN_PATTERN = r"\w+|[^\w\s]"
# Unit of a numerical derived function's values (the exporter names ml_derived_mean_<unit> by it).
MEAN_UNITS = {"token_count": "tokens", "char_length": "chars"}


def _text(batch: pa.RecordBatch, source: str, table_name: str) -> pa.Array:
    if source not in batch.schema.names:
        raise SchemaError(f"{table_name}: column {source!r} (source of a derived column) is missing")
    column = batch.column(source)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        # Bytes that are not valid UTF-8 are replaced, not fatal: one bad response must not hide
        # the hour. The count of replaced rows is not tracked here; the text is still measured.
        column = pa.array(
            [None if v is None else v.decode("utf-8", errors="replace") for v in column.to_pylist()],
            type=pa.string(),
        )
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise SchemaError(f"{table_name}: column {source!r} should be text but has type {column.type}")
    return column


def char_length(text: pa.Array, options: Mapping) -> pa.Array:
    return pc.cast(pc.utf8_length(text), pa.float64())


def token_count(text: pa.Array, options: Mapping) -> pa.Array:
    return pc.cast(pc.count_substring_regex(text, TOKEN_PATTERN), pa.float64())


def is_empty(text: pa.Array, options: Mapping) -> pa.Array:
    blank = pc.equal(pc.utf8_trim_whitespace(text), "")
    return pc.if_else(blank, "yes", "no")


def matches_any(text: pa.Array, options: Mapping) -> pa.Array:
    patterns = options.get("patterns") or []
    if not patterns:
        raise ValueError("matches_any needs options.patterns")
    for p in patterns:
        re.compile(p)  # a bad pattern fails with Python's clear message, at load
    combined = "(?i)(" + "|".join(f"(?:{p})" for p in patterns) + ")"
    return pc.if_else(pc.match_substring_regex(text, combined), "yes", "no")


FUNCTIONS: dict[str, Callable[[pa.Array, Mapping], pa.Array]] = {
    "char_length": char_length,
    "token_count": token_count,
    "is_empty": is_empty,
    "matches_any": matches_any,
}


def optional_columns(derived: Sequence) -> set[str]:
    """Log columns read when present but not required (e.g. a refusal flag)."""
    return {d.options["flag_column"] for d in derived if d.options.get("flag_column")}


def apply_derived(batch: pa.RecordBatch, derived: Sequence, table_name: str = "table") -> pa.RecordBatch:
    if not derived:
        return batch
    for spec in derived:
        if spec.function not in FUNCTIONS:
            raise ValueError(
                f"derived column {spec.name!r}: unknown function {spec.function!r} (have {sorted(FUNCTIONS)})"
            )
        values = FUNCTIONS[spec.function](_text(batch, spec.source, table_name), spec.options)
        flag = spec.options.get("flag_column")
        if flag and flag in batch.schema.names:
            # The log's own flag wins where it is set; rows without it fall back to the patterns.
            flagged = pc.if_else(pc.cast(batch.column(flag), pa.bool_()), "yes", "no")
            values = pc.coalesce(flagged, values)
        if spec.name in batch.schema.names:
            batch = batch.drop_columns([spec.name])
        batch = batch.append_column(spec.name, values)
    return batch
