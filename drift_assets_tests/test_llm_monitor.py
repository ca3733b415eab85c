"""The LLM monitor (hourly): output length and refusal rate against a fixed reference and against
the trailing 24 hours. Sweeps every hour of a simulated log through the same evaluation the
drift_report asset runs, then checks a few hours through Dagster itself."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from dagster import AssetCheckKey, AssetKey, instance_for_test
from support import PROJECT_ROOT

from drift_assets.monitoring.config import load_monitors
from drift_assets.monitoring.evaluation import evaluate_window, read_reference
from drift_assets.monitoring.windows import Window, expected_log_types, stream_window
from drift_assets.stats import fit_profile
from drift_assets.stats import rules as r
from drift_assets.storage.root import Root

pytestmark = pytest.mark.slow  # servers, Dagster runs or long simulations

START = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)
DAYS = 4
SPIKE = (dt.datetime(2026, 10, 7, 14, tzinfo=dt.UTC), dt.datetime(2026, 10, 7, 17, tzinfo=dt.UTC))
VERSION_CHANGE = dt.datetime(2026, 10, 8, 9, tzinfo=dt.UTC)
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@pytest.fixture(scope="module")
def llm_data(tmp_path_factory):
    from drift_assets.simulate import simulate_llm

    root = tmp_path_factory.mktemp("llmdata")
    sim = simulate_llm(
        str(root / "llm"),
        start=START.date(),
        days=DAYS,
        reference_days=4,
        refusal_spike_day=3,
        refusal_spike_hours=(14, 17),
        version_change_day=4,
        version_change_hour=9,
    )
    assert str(sim.refusal_spike_start).startswith("2026-10-07T14:00")
    assert str(sim.version_change_at).startswith("2026-10-08T09:00")
    return root


def llm_monitors_file(path, **extra):
    config = yaml.safe_load((PROJECT_ROOT / "monitors.yaml").read_text())
    llm = config["monitors"]["llm"]
    llm["start"], llm["end"] = START.date().isoformat(), (START + dt.timedelta(days=DAYS)).date().isoformat()
    llm["extra"] = {"html_report": False, **extra}
    path.write_text(yaml.safe_dump({"monitors": {"llm": llm}}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def sweep(llm_data, tmp_path_factory):
    """Every hour of the log evaluated: {hour start: WindowEvaluation}."""
    monitor = load_monitors(llm_monitors_file(tmp_path_factory.mktemp("cfg") / "monitors.yaml")).get("llm")
    data = Root.open(str(llm_data))
    reference = read_reference(monitor, data.table(monitor.reference))
    profile = fit_profile(reference, monitor.column_specs())
    out = {}
    types = expected_log_types(monitor)
    for h in range(DAYS * 24):
        start = START + dt.timedelta(hours=h)
        window = Window(start.strftime("%Y-%m-%d-%H:%M"), start, start + dt.timedelta(hours=1))
        batches = stream_window(
            data, monitor.log, window, timestamp_column=monitor.timestamp_column, types=types, derived=monitor.derived
        )
        out[start] = evaluate_window(monitor, profile, window, batches, data=data)
    return out


def _errors(evaluation):
    return {(o.name, o.column) for o in evaluation.failed("ERROR")}


def is_incident_hour(hour: dt.datetime) -> bool:
    return SPIKE[0] <= hour < SPIKE[1] or hour >= VERSION_CHANGE


def test_no_error_on_stationary_hours_despite_daily_seasonality(sweep):
    stationary = {h: e for h, e in sweep.items() if not is_incident_hour(h)}
    rows = [e.summary.rows for e in stationary.values()]
    assert min(rows) < 80 and max(rows) > 250  # the log really has quiet nights and busy afternoons
    paged = {h.isoformat(): sorted(_errors(e)) for h, e in stationary.items() if _errors(e)}
    assert paged == {}


def test_refusal_spike_caught_in_every_spike_hour(sweep):
    for hour in (SPIKE[0] + dt.timedelta(hours=i) for i in range(3)):
        evaluation = sweep[hour]
        assert (r.SUDDEN_RATE_CHANGE, "refusal") in _errors(evaluation), hour
        assert evaluation.extra["refusal_rate"] > 0.25
    # The hour after the spike: refusals fall back; the baseline still holds the spike. Not a page.
    after = sweep[SPIKE[1]]
    assert after.extra["refusal_rate"] < 0.06 and not _errors(after)


def test_output_length_collapse_caught_from_the_version_change(sweep):
    first = sweep[VERSION_CHANGE]
    assert (r.SUDDEN_SHIFT, "output_length") in _errors(first)
    assert (
        first.extra["output_length_mean"]
        < 0.5 * sweep[VERSION_CHANGE - dt.timedelta(hours=1)].extra["output_length_mean"]
    )
    assert not _errors(sweep[VERSION_CHANGE - dt.timedelta(hours=1)])
    # Against the recent past the collapse is sudden only while the baseline is pre-change.
    sudden_hours = [
        h for h, e in sweep.items() if h >= VERSION_CHANGE and (r.SUDDEN_SHIFT, "output_length") in _errors(e)
    ]
    assert sudden_hours[0] == VERSION_CHANGE


def test_low_traffic_hours_are_not_flagged_on_noise(sweep):
    quiet = {h: e for h, e in sweep.items() if e.summary.rows < 60 and not is_incident_hour(h)}
    assert len(quiet) >= 5
    assert all(not _errors(e) for e in quiet.values())


def test_rate_rule_needs_significance_and_a_minimum_change():
    from drift_assets.stats.rates import rate_change

    one_in_forty = rate_change(1, 40, 100, 5000)  # 2.5% vs 2%
    assert not one_in_forty.is_incident()
    four_in_thirty = rate_change(4, 30, 100, 5000)  # 13% at thirty rows: noise at p < 0.001
    assert not four_in_thirty.is_incident()
    spike = rate_change(70, 200, 100, 5000)
    assert spike.is_incident() and spike.change == pytest.approx(0.35 - 0.02)
    # Independent check of the p-value: Fisher's exact test on the same 2x2 table.
    from scipy.stats import fisher_exact

    assert spike.pvalue == pytest.approx(fisher_exact([[70, 130], [100, 4900]])[1])


def test_trailing_baseline_uses_stored_counts_or_the_log_identically(llm_data, tmp_path):
    from drift_assets.monitoring.evaluation import baseline_summary, store_counts

    monitor = load_monitors(llm_monitors_file(tmp_path / "monitors.yaml")).get("llm")
    data = Root.open(str(llm_data))
    profile = fit_profile(read_reference(monitor, data.table(monitor.reference)), monitor.column_specs())
    counts = Root.open(str(tmp_path / "counts"))
    target = START + dt.timedelta(days=2, hours=3)
    types = expected_log_types(monitor)
    for i in range(1, 25):
        start = target - dt.timedelta(hours=i)
        window = Window(start.strftime("%Y-%m-%d-%H:%M"), start, start + dt.timedelta(hours=1))
        ev = evaluate_window(
            monitor,
            profile,
            window,
            stream_window(
                data, monitor.log, window, timestamp_column="timestamp", types=types, derived=monitor.derived
            ),
            data=data,
        )
        store_counts(counts, monitor, window.key, ev)
    window = Window(target.strftime("%Y-%m-%d-%H:%M"), target, target + dt.timedelta(hours=1))
    fp = profile.fingerprint()
    from_store = baseline_summary(monitor, window, profile, fp, data=data, counts_store=counts)
    from_log = baseline_summary(monitor, window, profile, fp, data=data, counts_store=None)
    assert from_store.rows == from_log.rows > 1000
    for name in from_log.columns:
        a, b = from_store.columns[name], from_log.columns[name]
        assert a.valid == b.valid and a.missing == b.missing
        assert a.to_dict()["kind"] == b.to_dict()["kind"]
        counts = "sketch_counts" if a.to_dict()["kind"] == "numerical" else "counts"
        assert a.to_dict()[counts] == b.to_dict()[counts]  # merged hourly counts == one pass over the day


def _llm_project(tmp_path, llm_data, monkeypatch):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(llm_data, data)
    monkeypatch.setenv("DRIFT_ASSETS_DATA_ROOT", str(data))
    monkeypatch.setenv("DRIFT_ASSETS_ASSETS_ROOT", str(tmp_path / "assets"))
    monkeypatch.setenv("DRIFT_ASSETS_REPORTS_ROOT", str(tmp_path / "reports"))
    monkeypatch.setenv("DRIFT_ASSETS_MONITORS", str(llm_monitors_file(tmp_path / "monitors.yaml")))
    return data


def _run_hours(defs, instance, hours):
    return {
        h: defs.resolve_job_def("llm_window_job").execute_in_process(
            partition_key=h, instance=instance, run_config=QUIET, raise_on_error=False
        )
        for h in hours
    }


def test_dagster_hourly_partitions_checks_and_metrics(llm_data, tmp_path, monkeypatch):
    from drift_assets.definitions import build_definitions

    _llm_project(tmp_path, llm_data, monkeypatch)
    defs = build_definitions()
    spike, normal = "2026-10-07-14:00", "2026-10-07-11:00"
    with instance_for_test() as instance:
        assert defs.resolve_job_def("llm_reference_job").execute_in_process(instance=instance, run_config=QUIET).success
        results = _run_hours(defs, instance, [normal, spike])
        assert all(res.success for res in results.values())
        key = AssetCheckKey(AssetKey(["llm", "drift_report"]), r.SUDDEN_RATE_CHANGE)
        history = {
            rec.partition: rec.evaluation
            for rec in instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
        }
        assert history[normal].passed
        assert not history[spike].passed and history[spike].severity.value == "ERROR"
        assert history[spike].metadata["failing_columns"].value == "refusal"
    record = json.loads((tmp_path / "reports" / "llm" / "drift" / f"{spike}.json").read_text())
    assert record["extra"]["refusal_rate"] > 0.25
    assert set(record["extra"]["by_model_version"]) == {"chat-v3"}
    # The exporter turns the extras into ml_derived_* gauges (units from the derived function).
    from drift_assets.alerting.exporter import DriftResultsCollector
    from drift_assets.monitoring.results_store import ResultsStore

    families = {f.name: f for f in DriftResultsCollector(ResultsStore(str(tmp_path / "reports"))).collect()}
    refusal = next(x for x in families["ml_derived_ratio"].samples if x.labels["column"] == "refusal")
    assert refusal.labels["model"] == "llm" and refusal.value == pytest.approx(record["extra"]["refusal_rate"])
    assert record["extra"]["units"] == {"output_length": "tokens", "output_chars": "chars"}
    tokens = families["ml_derived_mean_tokens"].samples[0]
    assert tokens.labels["column"] == "output_length"
    assert tokens.value == pytest.approx(record["extra"]["output_length_mean"])


def test_bad_llm_input_is_named_and_an_empty_hour_fails_clearly(llm_data, tmp_path, monkeypatch):
    from drift_assets.definitions import build_definitions

    data = _llm_project(tmp_path, llm_data, monkeypatch)
    day = next((data / "llm" / "log" / "date=2026-10-06").glob("*.parquet"))
    table = pq.read_table(day)
    hour_of = pa.compute.hour(table.column("timestamp"))
    # 02:00 loses its output text column entirely; 05:00 gets bytes that are not UTF-8; 07:00 has no rows.
    keep = pa.compute.invert(pa.compute.equal(hour_of, 7))
    table = table.filter(keep)
    outputs = table.column("output").to_pylist()
    hours = pa.compute.hour(table.column("timestamp")).to_pylist()
    raw = [(b"\xff\xfe broken " + o.encode()) if h == 5 else o.encode() for o, h in zip(outputs, hours, strict=True)]
    table = table.set_column(table.column_names.index("output"), "output", pa.array(raw, pa.binary()))
    pq.write_table(table, day)
    no_text = table.filter(pa.compute.equal(pa.compute.hour(table.column("timestamp")), 2)).drop_columns(["output"])
    rest = table.filter(pa.compute.not_equal(pa.compute.hour(table.column("timestamp")), 2))
    pq.write_table(rest, day)
    pq.write_table(no_text, day.parent / "part-1.parquet")
    defs = build_definitions()
    with instance_for_test() as instance:
        assert defs.resolve_job_def("llm_reference_job").execute_in_process(instance=instance, run_config=QUIET).success
        results = _run_hours(
            defs, instance, ["2026-10-06-02:00", "2026-10-06-05:00", "2026-10-06-07:00", "2026-10-06-08:00"]
        )
        schema_key = AssetCheckKey(AssetKey(["llm", "drift_report"]), r.SCHEMA_MATCHES)
        history = {
            rec.partition: rec.evaluation
            for rec in instance.event_log_storage.get_asset_check_execution_history(schema_key, limit=10)
        }
    assert results["2026-10-06-02:00"].success
    assert "output" in history["2026-10-06-02:00"].metadata["failing_columns"].value
    assert "missing" in history["2026-10-06-02:00"].metadata["worst_reason"].value
    assert "UTF-8" in history["2026-10-06-05:00"].metadata["worst_reason"].value
    empty = results["2026-10-06-07:00"]
    assert not empty.success
    assert "no rows" in " ".join(e.event_specific_data.error.message for e in empty.get_step_failure_events())
    assert results["2026-10-06-08:00"].success and history["2026-10-06-08:00"].passed
