"""A PostgreSQL table or query as a source of record batches (a production log, a reference).

Reading: ADBC's PostgreSQL driver (``adbc-driver-postgresql``) decodes PostgreSQL's binary wire
format straight into Arrow arrays, with no Python object per row. Its default path wraps a query in
``COPY ... TO STDOUT``, which cannot take bound parameters, and a query with parameters is fetched
whole as one batch (1M rows: one 1M-row batch). So a window is read through a server-side cursor:
``DECLARE ... NO SCROLL CURSOR FOR <query with $1, $2>`` with the window bounds bound as parameters
(never formatted into the SQL), then ``FETCH <batch_rows>`` until empty, each answer one Arrow
batch. The rows stay on the server; the client holds one batch at a time.

Secrets: the DSN comes from an environment variable or a file (never from ``monitors.yaml``) and is
never part of a message: errors name ``postgres <host>:<port>/<database> <table>`` only, and every
driver message is scrubbed of the DSN and its password before it is raised.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from drift_assets.stats.errors import DriftInputError

DEFAULT_BATCH_ROWS = 100_000
DEFAULT_STATEMENT_TIMEOUT_S = 300.0
CONNECT_TIMEOUT_S = 10
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
# An instant before every window, for asking a query's columns without reading its rows.
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class SqlSourceError(DriftInputError):
    """A database source that cannot be read: one line naming host, database and table, never the DSN."""


def dsn_from(dsn_env: str | None, dsn_file: str | None) -> str:
    """The DSN from the environment variable or the file named in the config (messages name the
    variable or the file, never the value)."""
    if dsn_env:
        value = os.environ.get(dsn_env, "").strip()
        if not value:
            raise SqlSourceError(f"environment variable {dsn_env} (the database DSN) is not set")
        return value
    if dsn_file:
        try:
            with open(os.path.expanduser(dsn_file)) as fh:
                value = fh.read().strip()
        except OSError as exc:
            raise SqlSourceError(f"DSN file {dsn_file}: cannot read: {exc.strerror}") from None
        if not value:
            raise SqlSourceError(f"DSN file {dsn_file} is empty")
        return value
    raise SqlSourceError("no DSN: give dsn_env or dsn_file")


def _keyword_dsn(dsn: str) -> dict[str, str]:
    """``host=... port=... dbname=...`` (libpq's keyword form) as a mapping."""
    out = {}
    for m in re.finditer(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn):
        value = m.group(2)
        out[m.group(1)] = value[1:-1] if value.startswith("'") else value
    return out


def dsn_parts(dsn: str) -> dict[str, str]:
    """host, port, database, user and password of a DSN (URI or keyword form); absent ones empty."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        try:
            port = str(parts.port or query.get("port", "5432"))
        except ValueError:
            port = "?"
        return {
            "host": parts.hostname or query.get("host", "localhost"),
            "port": port,
            "database": unquote(parts.path.lstrip("/")) or query.get("dbname", ""),
            "user": unquote(parts.username or query.get("user", "")),
            "password": unquote(parts.password or query.get("password", "")),
        }
    kw = _keyword_dsn(dsn)
    return {
        "host": kw.get("host", kw.get("hostaddr", "localhost")),
        "port": kw.get("port", "5432"),
        "database": kw.get("dbname", ""),
        "user": kw.get("user", ""),
        "password": kw.get("password", ""),
    }


def _uri(dsn: str) -> str:
    """ADBC takes a URI; a keyword DSN is turned into one (values percent-encoded)."""
    if "://" in dsn:
        return dsn
    from urllib.parse import quote, urlencode

    kw = _keyword_dsn(dsn)
    auth = quote(kw.pop("user", ""), safe="")
    if "password" in kw:
        auth += ":" + quote(kw.pop("password"), safe="")
    host = kw.pop("host", "localhost")
    port = kw.pop("port", "")
    database = quote(kw.pop("dbname", ""), safe="")
    netloc = f"{auth + '@' if auth else ''}{host}{':' + port if port else ''}"
    return f"postgresql://{netloc}/{database}" + (f"?{urlencode(kw)}" if kw else "")


def scrub(text: str, dsn: str) -> str:
    """``text`` without the DSN, its URI form, or its password (however the driver quoted it)."""
    secrets = {dsn, _uri(dsn)}
    password = dsn_parts(dsn)["password"]
    if password:
        from urllib.parse import quote

        secrets |= {password, quote(password, safe=""), quote(password)}
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def quote_identifier(name: str) -> str:
    """``schema.table`` or a column name, double-quoted for PostgreSQL."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def _one_line(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class PostgresSource:
    """A table (``table``) or a query (``query``: ``$1`` is the window start, ``$2`` its end, both
    ``timestamptz``) with a timestamp column. The DSN is read when a connection opens; ``repr``
    never shows it."""

    dsn_env: str | None = None
    dsn_file: str | None = None
    table: str | None = None
    query: str | None = None
    timestamp_column: str = "timestamp"
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S
    batch_rows: int = DEFAULT_BATCH_ROWS
    _dsn: str | None = field(default=None, repr=False, compare=False)  # tests and `simulate` pass one

    # ------------------------------------------------------------------ naming
    def dsn(self) -> str:
        return self._dsn if self._dsn is not None else dsn_from(self.dsn_env, self.dsn_file)

    @property
    def what(self) -> str:
        return f" table {self.table}" if self.table else " query" if self.query else ""

    def describe(self, dsn: str | None = None) -> str:
        """``postgres 127.0.0.1:5432/shop table scored_transactions``: what errors and metadata show."""
        try:
            p = dsn_parts(dsn if dsn is not None else self.dsn())
        except SqlSourceError:
            return f"postgres ({self.dsn_env or self.dsn_file}){self.what}"
        return f"postgres {p['host']}:{p['port']}/{p['database']}{self.what}"

    @property
    def display(self) -> str:
        return self.describe()

    # ------------------------------------------------------------------ SQL
    def _relation(self, window: bool) -> str:
        """The rows as a sub-select; with ``window`` filtered to ``[$1, $2)`` on the timestamp column."""
        if self.query is not None:
            return f"({self.query.strip().rstrip(';')}) AS _source"
        assert self.table is not None
        base = quote_identifier(self.table)
        if not window:
            return base
        ts = quote_identifier(self.timestamp_column)
        return f"(SELECT * FROM {base} WHERE {ts} >= $1 AND {ts} < $2) AS _source"

    def _params(self, start: dt.datetime | None, end: dt.datetime | None) -> tuple | None:
        """The bound window bounds: a table read with a window, or a query that has ``$1``."""
        if (self.query is not None and "$1" in self.query) or (self.query is None and start is not None):
            return (start or _EPOCH, end or _EPOCH)
        return None

    # ------------------------------------------------------------------ connections
    @contextlib.contextmanager
    def connect(self) -> Iterator:
        """An ADBC connection, in UTC, with the statement timeout set; errors are one scrubbed line."""
        dsn = self.dsn()
        where = self.describe(dsn)
        try:
            import adbc_driver_postgresql.dbapi as pgdb
        except ImportError:  # pragma: no cover - pinned in pyproject.toml
            raise SqlSourceError(f"{where}: adbc-driver-postgresql is not installed") from None
        uri = _uri(dsn)
        if "connect_timeout" not in uri:
            uri += ("&" if "?" in uri else "?") + f"connect_timeout={CONNECT_TIMEOUT_S}"
        try:
            conn = pgdb.connect(uri)
        except Exception as exc:  # the driver's own error types; the message is classified below
            raise SqlSourceError(f"{where}: {classify(exc, dsn, self)}") from None
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT set_config('statement_timeout', $1, false), set_config('TimeZone', 'UTC', false),"
                    " set_config('cursor_tuple_fraction', '1', false)",
                    (str(int(self.statement_timeout_s * 1000)),),
                )
                cur.fetchall()
            yield conn
        except SqlSourceError:
            raise
        except Exception as exc:
            raise SqlSourceError(f"{where}: {classify(exc, dsn, self)}") from None
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def _execute(self, cur, sql: str, params: tuple | None) -> None:
        if params is None:
            cur.execute(sql)
        else:
            cur.execute(sql, params)

    # ------------------------------------------------------------------ reading
    def schema(self) -> pa.Schema:
        """The columns of the table or query (no row is read)."""
        with self.connect() as conn, conn.cursor() as cur:
            cur.adbc_statement.set_options(**{"adbc.postgresql.use_copy": "false"})
            self._execute(cur, f"SELECT * FROM {self._relation(False)} LIMIT 0", self._params(None, None))
            return _arrow_types(cur.fetch_arrow_table().schema)

    def count(self, start: dt.datetime | None = None, end: dt.datetime | None = None) -> int:
        """Rows in ``[start, end)`` (all rows when no bounds are given), counted on the server."""
        windowed = start is not None
        with self.connect() as conn, conn.cursor() as cur:
            cur.adbc_statement.set_options(**{"adbc.postgresql.use_copy": "false"})
            self._execute(cur, f"SELECT count(*) AS n FROM {self._relation(windowed)}", self._params(start, end))
            return int(cur.fetchone()[0])

    def num_rows(self) -> int:
        return self.count()

    def batches(
        self,
        columns: Sequence[str] | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of ``columns`` (those that exist; all when None) through a server-side cursor,
        ``batch_rows`` at a time. With ``start``/``end``: the rows in ``[start, end)``."""
        windowed = start is not None
        with self.connect() as conn, conn.cursor() as cur:
            cur.adbc_statement.set_options(**{"adbc.postgresql.use_copy": "false"})
            self._execute(cur, f"SELECT * FROM {self._relation(False)} LIMIT 0", self._params(None, None))
            present = cur.fetch_arrow_table().schema.names
            wanted = present if columns is None else [c for c in columns if c in present]
            select = ", ".join(quote_identifier(c) for c in wanted) or "1 AS _none"
            sql = f"DECLARE _drift_window NO SCROLL CURSOR FOR SELECT {select} FROM {self._relation(windowed)}"
            self._execute(cur, sql, self._params(start, end))
            while True:
                cur.execute(f"FETCH {int(self.batch_rows)} FROM _drift_window")
                table = cur.fetch_arrow_table()
                if table.num_rows == 0:
                    break
                table = _cast_numeric(table)
                yield from table.to_batches()
            cur.execute("CLOSE _drift_window")
            conn.rollback()

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        batches = list(self.batches(columns))
        if not batches:
            raise SqlSourceError(f"{self.display}: no rows")
        return pa.Table.from_batches(batches)

    def column(self, name: str) -> pa.ChunkedArray:
        field_ = self.schema().field(name)
        return pa.chunked_array([b.column(0) for b in self.batches([name])], type=field_.type)

    def column_reader(self):
        return self.column


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Dictionary-encoded columns decoded (the loader writes plain PostgreSQL types)."""
    if not any(pa.types.is_dictionary(t) for t in batch.schema.types):
        return batch
    arrays = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def load_table(dsn: str, table: str, batches: Iterable[pa.RecordBatch], *, replace: bool = True) -> int:
    """Write record batches into ``table`` (created from the Arrow schema; replaced when it exists
    and ``replace``, else appended) with ADBC's bulk ingest (COPY). Returns the rows written."""
    if not IDENTIFIER.match(table):
        raise SqlSourceError(f"table name {table!r}: expected name or schema.name")
    source = PostgresSource(table=table, _dsn=dsn)
    rows, mode = 0, "replace" if replace else "create_append"
    with source.connect() as conn, conn.cursor() as cur:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            schema, _, name = table.rpartition(".")
            cur.adbc_ingest(name, _plain(batch), mode=mode, db_schema_name=schema or None)
            rows, mode = rows + batch.num_rows, "append"
        conn.commit()
    return rows


def _arrow_types(schema: pa.Schema) -> pa.Schema:
    """The schema as the batches will have it (``numeric`` read as float64)."""
    return pa.schema([pa.field(f.name, pa.float64()) if _is_numeric(f) else f.remove_metadata() for f in schema])


def _is_numeric(f: pa.Field) -> bool:
    return bool(f.metadata) and f.metadata.get(b"POSTGRESQL:type") == b"numeric"


def _cast_numeric(table: pa.Table) -> pa.Table:
    """ADBC hands PostgreSQL ``numeric`` over as text; a monitor measures it as a number."""
    for i, f in enumerate(table.schema):
        if _is_numeric(f):
            table = table.set_column(i, f.name, pc.cast(table.column(i), pa.float64()))
    return table.replace_schema_metadata(None)


_SQLSTATE = re.compile(r"SQLSTATE: (\w{5})")


def classify(exc: BaseException, dsn: str, source: PostgresSource | None = None) -> str:
    """One line for a driver error: what failed, in words a user can act on, scrubbed of secrets."""
    message = scrub(str(exc), dsn)
    state = getattr(exc, "sqlstate", None) or next(iter(_SQLSTATE.findall(message)), None)
    p = dsn_parts(dsn)
    first = _one_line(message.split("\n\n")[0].split("Query was:")[0])
    if state == "42P01":
        missing = re.search(r'relation "([^"]+)" does not exist', message)
        return f"table {missing.group(1) if missing else (source.table if source else '?')} does not exist"
    if state == "42703":
        missing = re.search(r'column "?([^" ]+)"? does not exist', message)
        return f"column {missing.group(1) if missing else '?'} does not exist"
    if state == "57014":
        timeout = f" after {source.statement_timeout_s:g} s (statement_timeout_s)" if source else ""
        return f"statement timed out{timeout}"
    if state in ("28P01", "28000") or "password authentication failed" in message:
        return f"authentication failed for user {p['user'] or '?'} (wrong credentials)"
    if state in ("57P01", "57P02") or re.search(
        r"server closed the connection unexpectedly|terminating connection|connection to server .* lost", message
    ):
        return "the connection was lost while reading (the server stopped or ended the session)"
    if "Connection refused" in message or "could not connect" in message.lower():
        return "connection refused (is the server running and listening there?)"
    if "timeout expired" in message:
        return f"no answer within {CONNECT_TIMEOUT_S} s (connect timeout)"
    if re.search(r'database "[^"]+" does not exist', message):
        return f"database {p['database']} does not exist"
    return scrub(first, dsn)
