"""``no_gradual_drift`` in the loop (issue 11): the LLM monitor's slow output-length trend, window by
window through ``evaluate_window`` and the results store (no rescan of earlier windows), and the
partitioned Dagster check on ``llm/drift_report`` failing on the trend.

The simulator's output length grows 1% a day from the first reference day (drift_assets/simulate/
llm.py); the reference is the 7 days before the log, so the log starts ~4% above the reference's
mean and keeps moving away.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import yaml
from dagster import AssetCheckKey, AssetKey, instance_for_test
from support import PROJECT_ROOT

from drift_assets.monitoring.config import load_monitors
from drift_assets.monitoring.evaluation import evaluate_window, read_reference
from drift_assets.monitoring.results import record_drift
from drift_assets.monitoring.windows import Window, expected_log_types, stream_window
from drift_assets.stats import fit_profile
from drift_assets.stats import rules as r
from drift_assets.storage.root import Root

pytestmark = pytest.mark.slow  # a 20-day hourly simulation and Dagster runs

START = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
DAYS = 20  # the per-window PSI check first fails after ~2 weeks of the trend
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
COLUMN = "output_length"


@pytest.fixture(scope="module")
def trend_data(tmp_path_factory):
    from drift_assets.simulate import simulate_llm

    root = tmp_path_factory.mktemp("trend")
    # The incidents are pushed to the last hour: only the trend moves output length before it.
    simulate_llm(
        str(root / "llm"),
        start=START.date(),
        days=DAYS,
        reference_days=7,
        refusal_spike_day=DAYS,
        refusal_spike_hours=(23, 24),
        version_change_day=DAYS,
        version_change_hour=23,
    )
    return root


def monitors_file(path):
    config = yaml.safe_load((PROJECT_ROOT / "monitors.yaml").read_text())
    llm = config["monitors"]["llm"]
    llm["start"], llm["end"] = START.date().isoformat(), (START + dt.timedelta(days=DAYS)).date().isoformat()
    llm["extra"] = {"html_report": False}
    path.write_text(yaml.safe_dump({"monitors": {"llm": llm}}, sort_keys=False))
    return path


def hour(h: int) -> Window:
    start = START + dt.timedelta(hours=h)
    return Window(start.strftime("%Y-%m-%d-%H:%M"), start, start + dt.timedelta(hours=1))


def sweep(data: Root, reports: Root, monitor, hours: range, stop_at_psi: bool = False):
    """Evaluate and store each hour in order; the first hour each check fails on output_length."""
    profile = fit_profile(read_reference(monitor, data.table(monitor.reference)), monitor.column_specs())
    types = expected_log_types(monitor)
    first: dict[str, int] = {}
    for h in hours:
        window = hour(h)
        batches = stream_window(
            data, monitor.log, window, timestamp_column=monitor.timestamp_column, types=types, derived=monitor.derived
        )
        ev = evaluate_window(monitor, profile, window, batches, data=data, reports=reports)
        record_drift(
            reports,
            monitor,
            window,
            ev.result,
            ev.summary,
            model_version=None,
            html_report=None,
            extra_checks=ev.extra_outcomes,
        )
        for o in ev.outcomes:
            if o.column == COLUMN and not o.passed:
                first.setdefault(o.name, h)
        if ev.extra.get(f"{COLUMN}_psi", 0.0) > 0.2:
            first.setdefault("raw_psi_above_0.2", h)
        if stop_at_psi and r.FEATURE_PSI_WARN in first:
            break
    return first


def test_the_gradual_check_warns_days_before_the_psi_check_on_the_output_length_trend(
    trend_data, tmp_path, record_property
):
    monitor = load_monitors(monitors_file(tmp_path / "monitors.yaml")).get("llm")
    assert r.NO_GRADUAL_DRIFT in [rule.name for rule in monitor.check_rules("drift_report")]
    data, reports = Root.open(str(trend_data)), Root.open(str(tmp_path / "reports"))
    first = sweep(data, reports, monitor, range(DAYS * 24 - 1), stop_at_psi=True)
    gradual, psi = first.get(r.NO_GRADUAL_DRIFT), first.get(r.FEATURE_PSI_WARN)
    record_property("first_failing_hour", json.dumps(first))
    print("first failing hour per check:", json.dumps(first))
    assert gradual is not None and psi is not None, first
    assert gradual + 24 * 5 < psi, first  # at least five days earlier
    # The WARN is stored with the CUSUM it continues from, in the window's own document.
    doc = json.loads((tmp_path / "reports" / "llm" / "drift" / f"{hour(gradual).key}.json").read_text())
    (check,) = [c for c in doc["checks"] if c["name"] == r.NO_GRADUAL_DRIFT and c["column"] == COLUMN]
    assert check["severity"] == "WARN" and check["value_kind"] == "cusum" and not check["passed"]
    assert check["value"] > check["threshold"] and check["cusum_upper"] == 0.0  # reset after the alarm
    assert r.NO_GRADUAL_DRIFT in doc["summary"]["failed_checks"]


def test_dagster_carries_the_partitioned_check_on_both_monitors_and_it_fails_on_the_trend(
    trend_data, tmp_path, monkeypatch
):
    import shutil

    from drift_assets.definitions import build_definitions

    data = tmp_path / "data"
    shutil.copytree(trend_data, data)
    monkeypatch.setenv("DRIFT_ASSETS_DATA_ROOT", str(data))
    monkeypatch.setenv("DRIFT_ASSETS_ASSETS_ROOT", str(tmp_path / "assets"))
    monkeypatch.setenv("DRIFT_ASSETS_REPORTS_ROOT", str(tmp_path / "reports"))
    monkeypatch.setenv("DRIFT_ASSETS_MONITORS", str(monitors_file(tmp_path / "monitors.yaml")))
    # Both demo monitors declare it (the project's own monitors file; the definitions snapshot has the
    # Dagster specs of both).
    for name in ("fraud", "llm"):
        rules = load_monitors(PROJECT_ROOT / "monitors.yaml").get(name).check_rules("drift_report")
        assert r.NO_GRADUAL_DRIFT in [rule.name for rule in rules]
    monitor = load_monitors(tmp_path / "monitors.yaml").get("llm")
    # Earlier hours evaluated (Dagster-free, same code) into the reports root Dagster reads: the
    # check reads their stored results. Then the hour the CUSUM crosses, and the one after, in Dagster.
    first = sweep(Root.open(str(data)), Root.open(str(tmp_path / "reports")), monitor, range(0, 72))
    alarm = first[r.NO_GRADUAL_DRIFT]
    assert alarm >= 1
    for h in range(alarm, 72):
        (tmp_path / "reports" / "llm" / "drift" / f"{hour(h).key}.json").unlink()
    defs = build_definitions()
    spec_names = {s.name for s in defs.resolve_assets_def(AssetKey(["llm", "drift_report"])).check_specs}
    assert r.NO_GRADUAL_DRIFT in spec_names
    with instance_for_test() as instance:
        assert defs.resolve_job_def("llm_reference_job").execute_in_process(instance=instance, run_config=QUIET).success
        before, at = hour(alarm - 1).key, hour(alarm).key
        for key in (at,):
            res = defs.resolve_job_def("llm_window_job").execute_in_process(
                partition_key=key, instance=instance, run_config=QUIET, raise_on_error=False
            )
            assert res.success  # a WARN never fails the run
        check_key = AssetCheckKey(AssetKey(["llm", "drift_report"]), r.NO_GRADUAL_DRIFT)
        history = {
            rec.partition: rec.evaluation
            for rec in instance.event_log_storage.get_asset_check_execution_history(check_key, limit=10)
        }
        assert not history[at].passed and history[at].severity.value == "WARN"
        assert history[at].metadata["failing_columns"].value == COLUMN
        assert history[at].metadata["value_kind"].value == "cusum"
        assert before not in history  # evaluated outside Dagster: read from the store, not rerun
