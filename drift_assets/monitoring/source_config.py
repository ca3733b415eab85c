"""Where a monitor's rows come from, as ``monitors.yaml`` says it (``log:``, ``reference:``).

A string is a path under the data root (parquet, as before). A mapping names a kind:

- ``{kind: postgres, dsn_env: DRIFT_ASSETS_PG_DSN, table: scored_transactions}``, or ``query:``
  instead of ``table:`` (for a log, the query takes the window as ``$1`` (start) and ``$2`` (end),
  bound as parameters); ``dsn_file:`` instead of ``dsn_env:``; ``statement_timeout_s`` (default
  300), ``batch_rows`` (default 100000). The DSN itself is never in this file: a ``dsn`` key is
  refused (without echoing its value).
- ``{kind: duckdb, path: fraud/log}``: the same ``date=YYYY-MM-DD/*.parquet`` log, read by DuckDB
  with the window filter pushed down (``storage/duckdb_source.py``).
- ``{kind: parquet, path: fraud/log}``: the same as the plain string.

Pure data and validation (no reading): the readers are in ``monitoring/sources.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("parquet", "postgres", "duckdb")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_FIELDS = {
    "parquet": {"kind", "path"},
    "duckdb": {"kind", "path"},
    "postgres": {"kind", "dsn_env", "dsn_file", "table", "query", "statement_timeout_s", "batch_rows"},
}


class SourceConfigError(ValueError):
    """A malformed source mapping; the message names the field (``config.ConfigError`` wraps it)."""


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # parquet | postgres | duckdb
    path: str | None = None
    dsn_env: str | None = None
    dsn_file: str | None = None
    table: str | None = None
    query: str | None = None
    statement_timeout_s: float = 300.0
    batch_rows: int = 100_000

    @property
    def label(self) -> str:
        """What ``MonitorConfig.log`` / ``.reference`` hold for this source: the data-root path for
        file sources, ``postgres:<table>`` (or ``postgres:query``) for a database."""
        if self.kind == "postgres":
            return f"postgres:{self.table or 'query'}"
        assert self.path is not None
        return self.path


def parse_source(value: Any, where: str, *, windowed: bool) -> tuple[str, SourceSpec | None]:
    """``(label, spec)``: a string is a parquet path (spec None); a mapping is validated here.
    ``windowed``: the source is read one window at a time (a log), so a query must take ``$1``/``$2``."""
    if isinstance(value, str):
        if not value:
            raise SourceConfigError(f"{where}: expected a path or a source mapping, got an empty string")
        return value, None
    if not isinstance(value, Mapping):
        raise SourceConfigError(f"{where}: expected a path or a mapping with kind:, got {value!r}")
    kind = value.get("kind")
    if kind not in KINDS:
        raise SourceConfigError(f"{where}.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if "dsn" in value:
        raise SourceConfigError(
            f"{where}.dsn: a DSN is never written in monitors.yaml; name an environment variable (dsn_env) or a file"
            " (dsn_file) that holds it"
        )
    unknown = set(value) - _FIELDS[kind]
    if unknown:
        raise SourceConfigError(f"{where}: unknown field(s) {sorted(unknown)} for kind {kind}")
    if kind in ("parquet", "duckdb"):
        path = value.get("path")
        if not isinstance(path, str) or not path:
            raise SourceConfigError(f"{where}.path: required (a folder under the data root)")
        if kind == "duckdb" and not windowed:
            raise SourceConfigError(f"{where}.kind: duckdb reads a partitioned log; a reference is a parquet path")
        return path, (SourceSpec(kind, path=path) if kind == "duckdb" else None)
    spec = _postgres(value, where, windowed)
    return spec.label, spec


def _postgres(value: Mapping, where: str, windowed: bool) -> SourceSpec:
    dsn_env, dsn_file = value.get("dsn_env"), value.get("dsn_file")
    if (dsn_env is None) == (dsn_file is None):
        raise SourceConfigError(f"{where}: give exactly one of dsn_env (an environment variable) or dsn_file")
    if dsn_env is not None and (not isinstance(dsn_env, str) or not _ENV_NAME.match(dsn_env)):
        raise SourceConfigError(f"{where}.dsn_env: expected an environment variable name, got {dsn_env!r}")
    if dsn_file is not None and (not isinstance(dsn_file, str) or not dsn_file):
        raise SourceConfigError(f"{where}.dsn_file: expected a file path, got {dsn_file!r}")
    table, query = value.get("table"), value.get("query")
    if (table is None) == (query is None):
        raise SourceConfigError(f"{where}: give exactly one of table or query")
    if table is not None and (not isinstance(table, str) or not _IDENTIFIER.match(table)):
        raise SourceConfigError(f"{where}.table: expected a table name (name or schema.name), got {table!r}")
    if query is not None:
        if not isinstance(query, str) or not query.strip():
            raise SourceConfigError(f"{where}.query: expected SQL text")
        if windowed and not ("$1" in query and "$2" in query):
            raise SourceConfigError(
                f"{where}.query: must filter on the window with $1 (start) and $2 (end), e.g."
                " WHERE ts >= $1 AND ts < $2 (they are bound as parameters)"
            )
    timeout = value.get("statement_timeout_s", 300.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise SourceConfigError(f"{where}.statement_timeout_s: expected a number of seconds > 0, got {timeout!r}")
    batch_rows = value.get("batch_rows", 100_000)
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise SourceConfigError(f"{where}.batch_rows: expected a whole number >= 1, got {batch_rows!r}")
    return SourceSpec(
        "postgres",
        dsn_env=dsn_env,
        dsn_file=dsn_file,
        table=table,
        query=query,
        statement_timeout_s=float(timeout),
        batch_rows=batch_rows,
    )
