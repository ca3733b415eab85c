"""Bad input in one window fails that window clearly and loses nothing else."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetCheckKey, AssetKey, instance_for_test

from drift_assets.definitions import build_definitions

pytestmark = pytest.mark.slow  # servers, Dagster runs or long simulations

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
DRIFT_REPORT = AssetKey(["fraud", "drift_report"])


def _reference(defs, instance):
    assert defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET).success


def _week(defs, instance, key):
    return defs.resolve_job_def("fraud_window_job").execute_in_process(
        partition_key=key, instance=instance, run_config=QUIET, raise_on_error=False
    )


def _step_errors(result) -> str:
    return " ".join(e.event_specific_data.error.message for e in result.get_step_failure_events())


def _check(instance, name, partition):
    history = instance.event_log_storage.get_asset_check_execution_history(AssetCheckKey(DRIFT_REPORT, name), limit=20)
    return next(r for r in history if r.partition == partition).evaluation


def _day_file(project: Path, day: str) -> Path:
    return next((project / "data" / "fraud" / "log" / f"date={day}").glob("*.parquet"))


def test_corrupt_file_fails_its_week_only_and_names_the_file(project):
    corrupt = _day_file(project, "2026-08-12")
    corrupt.write_bytes(b"PAR1 this is not parquet PAR1")
    defs = build_definitions()
    with instance_for_test() as instance:
        _reference(defs, instance)
        bad = _week(defs, instance, "2026-08-10")
        assert not bad.success
        assert corrupt.name in _step_errors(bad) and "date=2026-08-12" in _step_errors(bad)
        # The drift report of that week never ran: no PSI was invented for it.
        assert not (project / "reports" / "fraud" / "drift" / "2026-08-10.json").exists()
        # Other weeks are unaffected.
        assert _week(defs, instance, "2026-08-03").success
        assert _week(defs, instance, "2026-08-17").success


def test_week_without_rows_fails_clearly_never_psi_zero(project):
    for day in range(10, 17):
        for f in (project / "data" / "fraud" / "log" / f"date=2026-08-{day:02d}").glob("*.parquet"):
            f.unlink()
    defs = build_definitions()
    with instance_for_test() as instance:
        _reference(defs, instance)
        empty = _week(defs, instance, "2026-08-10")
        assert not empty.success
        message = _step_errors(empty)
        assert "no rows" in message and "2026-08-10" in message
        assert not (project / "reports" / "fraud" / "drift" / "2026-08-10.json").exists()
        assert _week(defs, instance, "2026-08-03").success


def _rewrite(path: Path, transform) -> None:
    table = pq.read_table(path)
    pq.write_table(transform(table), path)


def test_missing_column_fails_the_schema_check_naming_it(project):
    day = _day_file(project, "2026-08-05")
    _rewrite(
        day, lambda t: t.rename_columns(["txn_count_1h_renamed" if c == "txn_count_1h" else c for c in t.column_names])
    )
    defs = build_definitions()
    with instance_for_test() as instance:
        _reference(defs, instance)
        result = _week(defs, instance, "2026-08-03")
        assert result.success  # the week is still measured
        schema = _check(instance, "columns_match_reference_schema", "2026-08-03")
        assert not schema.passed and schema.severity.value == "ERROR"
        assert "txn_count_1h" in schema.metadata["failing_columns"].value
        assert "date=2026-08-05" in schema.metadata["worst_reason"].value
        # The other columns were measured normally.
        assert _check(instance, "feature_psi_below_retrain_threshold", "2026-08-03").passed


def test_type_change_is_named_by_the_schema_check(project):
    day = _day_file(project, "2026-08-06")
    _rewrite(
        day,
        lambda t: t.set_column(
            t.schema.get_field_index("txn_amount"),
            "txn_amount",
            pa.array([f"{v:.2f} EUR" for v in t.column("txn_amount").to_pylist()]),
        ),
    )
    defs = build_definitions()
    with instance_for_test() as instance:
        _reference(defs, instance)
        assert _week(defs, instance, "2026-08-03").success
        schema = _check(instance, "columns_match_reference_schema", "2026-08-03")
        assert not schema.passed
        assert schema.metadata["failing_columns"].value == "txn_amount"
        reason = schema.metadata["worst_reason"].value
        assert "string" in reason and "numerical" in reason


def test_column_missing_everywhere_is_named_and_other_columns_still_measured(project):
    for path in (project / "data" / "fraud" / "log").glob("date=2026-08-*/*.parquet"):
        _rewrite(path, lambda t: t.drop_columns(["merchant_category"]))
    defs = build_definitions()
    with instance_for_test() as instance:
        _reference(defs, instance)
        assert _week(defs, instance, "2026-08-17").success
        schema = _check(instance, "columns_match_reference_schema", "2026-08-17")
        assert "merchant_category" in schema.metadata["failing_columns"].value
        # Drift in the remaining columns is still caught on the drifted week.
        assert not _check(instance, "feature_psi_below_retrain_threshold", "2026-08-17").passed
