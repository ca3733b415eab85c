"""``log:`` / ``reference:`` as source mappings in monitors.yaml: what is accepted, and one line
naming the field for what is not (a DSN written in the file is refused without being echoed)."""

from __future__ import annotations

import pytest
import yaml
from support import PROJECT_ROOT

from drift_assets.monitoring.config import ConfigError, parse_monitors
from drift_assets.monitoring.source_config import SourceSpec


def _fraud(**changes):
    config = yaml.safe_load((PROJECT_ROOT / "monitors.yaml").read_text())
    fraud = config["monitors"]["fraud"]
    fraud.update(changes)
    return parse_monitors({"monitors": {"fraud": fraud}}, PROJECT_ROOT / "monitors.yaml").get("fraud")


def _error(**changes) -> str:
    with pytest.raises(ConfigError) as info:
        _fraud(**changes)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_plain_path_is_parquet_as_before():
    monitor = _fraud()
    assert monitor.log == "fraud/log" and monitor.log_source is None and monitor.reference_source is None
    assert _fraud(log={"kind": "parquet", "path": "fraud/log"}).log_source is None


def test_a_postgres_table_and_a_query():
    monitor = _fraud(
        log={"kind": "postgres", "dsn_env": "DRIFT_ASSETS_PG_DSN", "table": "shop.scored", "statement_timeout_s": 30},
        reference={"kind": "postgres", "dsn_file": "~/.pg_dsn", "query": "SELECT * FROM fraud_reference"},
    )
    assert monitor.log_source == SourceSpec(
        "postgres", dsn_env="DRIFT_ASSETS_PG_DSN", table="shop.scored", statement_timeout_s=30.0
    )
    assert monitor.log == "postgres:shop.scored"
    assert monitor.reference_source is not None and monitor.reference_source.dsn_file == "~/.pg_dsn"
    duck = _fraud(log={"kind": "duckdb", "path": "fraud/log"})
    assert duck.log == "fraud/log" and duck.log_source == SourceSpec("duckdb", path="fraud/log")


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        ({"kind": "oracle"}, "monitors.fraud.log.kind: expected one of parquet, postgres, duckdb, got 'oracle'"),
        ({"kind": "postgres", "table": "t"}, "monitors.fraud.log: give exactly one of dsn_env"),
        ({"kind": "postgres", "dsn_env": "X", "dsn_file": "f", "table": "t"}, "give exactly one of dsn_env"),
        ({"kind": "postgres", "dsn_env": "X"}, "monitors.fraud.log: give exactly one of table or query"),
        ({"kind": "postgres", "dsn_env": "X", "table": "t; DROP TABLE t"}, "log.table: expected a table"),
        ({"kind": "postgres", "dsn_env": "not a name", "table": "t"}, "log.dsn_env: expected an environment variable"),
        ({"kind": "postgres", "dsn_env": "X", "query": "SELECT * FROM t"}, "log.query: must filter on the window"),
        ({"kind": "postgres", "dsn_env": "X", "table": "t", "statement_timeout_s": 0}, "statement_timeout_s"),
        ({"kind": "postgres", "dsn_env": "X", "table": "t", "port": 5432}, "unknown field(s) ['port']"),
        ({"kind": "duckdb"}, "monitors.fraud.log.path: required"),
        ("", "monitors.fraud.log: expected a path or a source mapping"),
    ],
)
def test_malformed_sources_name_the_field(log, expected):
    assert expected in _error(log=log)


def test_a_dsn_in_the_file_is_refused_and_not_echoed():
    message = _error(log={"kind": "postgres", "dsn": "postgresql://u:Sekr3tMarker@h/db", "table": "t"})
    assert "monitors.fraud.log.dsn: a DSN is never written in monitors.yaml" in message
    assert "Sekr3tMarker" not in message


def test_duckdb_is_for_a_partitioned_log_not_a_reference():
    assert "reference.kind: duckdb reads a partitioned log" in _error(reference={"kind": "duckdb", "path": "x"})
