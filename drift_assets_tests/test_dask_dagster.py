"""The ``compute`` resource through Dagster: a fraud week materialised with ``compute=dask`` against a
real scheduler and two workers (processes on 127.0.0.1) gives the same check results as
``compute=in_process``, and both workers counted row groups. Bad configuration fails when
definitions load; an unreachable scheduler fails the run with its address named."""

from __future__ import annotations

import json
import re
import time

import pyarrow.parquet as pq
import pytest
from cluster_servers import start_dask_cluster
from dagster import AssetCheckEvaluation, AssetCheckKey, AssetKey, instance_for_test

from drift_assets.definitions import build_definitions
from drift_assets.monitoring import dask_compute

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
DRIFT_REPORT = AssetKey(["fraud", "drift_report"])
STATIONARY, DRIFTED = "2026-08-03", "2026-08-17"
ROWS_PER_ROW_GROUP = 2_000


def _check_results(defs, instance) -> dict:
    """Every drift_report check's evaluation per week: passed, severity and metadata values."""
    out = {}
    for spec in defs.resolve_assets_def(DRIFT_REPORT).check_specs:
        history = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(DRIFT_REPORT, spec.name), limit=50
        )
        for record in history:
            evaluation = record.evaluation
            if not isinstance(evaluation, AssetCheckEvaluation):  # planned, never evaluated
                out[(spec.name, record.partition)] = (None, _resolved_status(instance, record), {})
                continue
            out[(spec.name, record.partition)] = (
                evaluation.passed,
                evaluation.severity.value,
                {k: v.value for k, v in evaluation.metadata.items()},
            )
    return out


def _resolved_status(instance, record) -> str:
    """What the UI shows for a planned check (Dagster's AssetCheckExecutionRecord.resolve_status):
    SKIPPED once its run finished without failing."""
    run = instance.get_run_by_id(record.run_id)
    if record.status.value != "PLANNED" or run is None or not run.is_finished:
        return record.status.value
    return "EXECUTION_FAILED" if run.status.value == "FAILURE" else "SKIPPED"


def _not_evaluated_reasons(instance) -> dict[str, str]:
    """drift_report's ``check no_multivariate_drift`` metadata per week (why it was not evaluated)."""
    out = {}
    for event in instance.fetch_materializations(DRIFT_REPORT, limit=20).records:
        materialization = event.asset_materialization
        value = materialization.metadata.get("check no_multivariate_drift")
        if value is not None:
            out[materialization.partition] = value.value
    return out


def _materialise(project, label: str, monkeypatch, reasons: dict | None = None) -> dict:
    """Reference job, then the stationary and the drifted week, on a fresh on-disk instance and
    fresh asset/report roots; returns the check results."""
    monkeypatch.setenv("DRIFT_ASSETS_ASSETS_ROOT", str(project / f"assets-{label}"))
    monkeypatch.setenv("DRIFT_ASSETS_REPORTS_ROOT", str(project / f"reports-{label}"))
    defs = build_definitions()
    with instance_for_test() as instance:
        assert (
            defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET).success
        )
        for week in (STATIONARY, DRIFTED):
            result = defs.resolve_job_def("fraud_window_job").execute_in_process(
                partition_key=week, instance=instance, run_config=QUIET
            )
            assert result.success
        if reasons is not None:
            reasons.update(_not_evaluated_reasons(instance))
        return _check_results(defs, instance)


def _assert_same(actual, expected) -> None:
    for key in expected:
        passed, severity, meta = actual[key]
        exp_passed, exp_severity, exp_meta = expected[key]
        assert (passed, severity) == (exp_passed, exp_severity), key
        assert set(meta) == set(exp_meta), key
        for name, value in exp_meta.items():
            if isinstance(value, float):
                # counts are equal; float sums are added in another grouping (relative ~1e-15)
                assert meta[name] == pytest.approx(value, rel=1e-9, abs=1e-12), (key, name)
            else:
                assert meta[name] == value, (key, name)


@pytest.mark.slow  # a cluster and six Dagster runs, ~60 s
def test_a_fraud_week_on_the_dask_cluster_gives_the_in_process_check_results(project, tmp_path, monkeypatch):
    # Small row groups: many tasks, so both workers get some.
    for path in (project / "data" / "fraud" / "log").rglob("*.parquet"):
        pq.write_table(pq.read_table(path), path, row_group_size=ROWS_PER_ROW_GROUP)
    monkeypatch.setenv("DRIFT_ASSETS_HTML_REPORTS", "0")
    monkeypatch.delenv("DRIFT_ASSETS_COMPUTE", raising=False)
    in_process = _materialise(project, "in-process", monkeypatch)

    with start_dask_cluster(tmp_path / "cluster", n_workers=2) as cluster, cluster.client() as client:
        client.get_task_stream(start=time.time())  # registers the scheduler's task-stream plugin
        since = time.time()
        monkeypatch.setenv("DRIFT_ASSETS_COMPUTE", "dask")
        monkeypatch.setenv("DRIFT_ASSETS_DASK_ADDRESS", cluster.address)
        on_dask_reasons: dict[str, str] = {}
        on_dask = _materialise(project, "dask", monkeypatch, on_dask_reasons)
        stream = client.get_task_stream(start=since)
    workers = {r["worker"] for r in stream if "count-row-group" in str(r["key"])}
    assert len(workers) == 2, stream[:3]

    assert {week for _, week in in_process} == {STATIONARY, DRIFTED}
    assert set(on_dask) == set(in_process)
    # The performance estimate, from the score counts the row-group tasks made in the same pass:
    # fixed-point sums, so exactly the in-process estimate (band included).
    for week in (STATIONARY, DRIFTED):
        estimated = [
            json.loads((project / f"reports-{label}" / "fraud" / "performance" / f"{week}.json").read_text())[
                "estimated"
            ]
            for label in ("in-process", "dask")
        ]
        assert estimated[0] is not None and estimated[0]["rows"] > 0
        assert estimated[1] == estimated[0], week
    # The joint check needs the window's rows, which stay on the cluster: not evaluated there (no
    # result, so the UI shows it skipped, never passed), and drift_report's metadata says why.
    for week in (STATIONARY, DRIFTED):
        assert on_dask.pop(("no_multivariate_drift", week)) == (None, "SKIPPED", {})
        assert "counted elsewhere" in on_dask_reasons[week], on_dask_reasons
        assert "value" in in_process.pop(("no_multivariate_drift", week))[2]  # evaluated in process
    _assert_same(on_dask, in_process)
    # Not vacuous: the drifted week fails the ERROR PSI check in both.
    assert in_process[("feature_psi_below_retrain_threshold", DRIFTED)][:2] == (False, "ERROR")
    assert in_process[("feature_psi_below_retrain_threshold", STATIONARY)][0] is True
    # The stored results (row counts, PSI per column) agree too.
    records = [
        json.loads((project / f"reports-{label}" / "fraud" / "drift" / f"{DRIFTED}.json").read_text())
        for label in ("in-process", "dask")
    ]
    assert records[0]["current_rows"] == records[1]["current_rows"] > 0
    for column, values in records[0]["columns"].items():
        assert records[1]["columns"][column]["psi"] == pytest.approx(values["psi"], rel=1e-9, abs=1e-12), column


@pytest.mark.slow  # Dagster runs, ~15 s
def test_an_unreachable_scheduler_fails_the_run_naming_its_address(project, monkeypatch):
    from servers import free_port

    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setattr(dask_compute, "CONNECT_TIMEOUT_SECONDS", 1)
    monkeypatch.setenv("DRIFT_ASSETS_HTML_REPORTS", "0")
    monkeypatch.setenv("DRIFT_ASSETS_COMPUTE", "dask")
    monkeypatch.setenv("DRIFT_ASSETS_DASK_ADDRESS", address)
    defs = build_definitions()
    with instance_for_test() as instance:
        assert (
            defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET).success
        )
        result = defs.resolve_job_def("fraud_window_job").execute_in_process(
            partition_key=DRIFTED, instance=instance, run_config=QUIET, raise_on_error=False
        )
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1 and "drift_report" in failures[0].step_key
    message = str(failures[0].event_specific_data.error.message)
    assert address in message and "fraud window 2026-08-17" in message


@pytest.mark.parametrize(
    ("kind", "address", "expected"),
    [
        ("spark", "", "compute kind must be one of in_process, dask, got 'spark'"),
        ("dask", "", "needs a scheduler address like tcp://host:8786"),
        ("dask", "127.0.0.1:8786", "got '127.0.0.1:8786'"),
    ],
)
def test_bad_compute_configuration_fails_when_definitions_load(monkeypatch, kind, address, expected):
    monkeypatch.setenv("DRIFT_ASSETS_COMPUTE", kind)
    monkeypatch.setenv("DRIFT_ASSETS_DASK_ADDRESS", address)
    with pytest.raises(ValueError, match=re.escape(expected)):
        build_definitions()


def test_in_process_is_the_default(monkeypatch):
    monkeypatch.delenv("DRIFT_ASSETS_COMPUTE", raising=False)
    compute = build_definitions().resources["compute"]
    assert compute.kind == "in_process" and not compute.on_cluster
