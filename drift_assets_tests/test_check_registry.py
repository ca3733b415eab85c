"""One record per check: a check added in a test-only table reaches the Dagster check specs, the
check results, the results store and the Prometheus exporter with no other edit; descriptions show
the monitor's own thresholds."""

from __future__ import annotations

import pytest
from dagster import AssetCheckKey, AssetKey, instance_for_test
from prometheus_client import generate_latest

from drift_assets.alerting.exporter import DriftResultsCollector
from drift_assets.definitions import build_definitions
from drift_assets.monitoring.config import load_monitors
from drift_assets.monitoring.results_store import ResultsStore
from drift_assets.orchestration.checks import check_specs
from drift_assets.stats import rules as r
from drift_assets.stats.checks import DEFAULT_CHECKS, CheckRule, WindowFacts

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
PROBE = "every_feature_psi_below_a_tenth"
STATIONARY, DRIFTED = "2026-08-03", "2026-08-17"


def strict_psi_check(rule: CheckRule, facts: WindowFacts):
    """Test-only check: stricter than the design matrix, any feature PSI above 0.1 fails."""
    return [rule.outcome(c.name, c.psi <= 0.1, c.psi, 0.1) for c in facts.features if c.psi is not None]


PROBE_RULE = CheckRule(PROBE, "ERROR", "psi", "higher", "No feature PSI above 0.1", evaluate=strict_psi_check)


def test_descriptions_render_the_monitor_thresholds():
    monitors = load_monitors()
    llm, fraud = monitors.get("llm"), monitors.get("fraud")
    describe = DEFAULT_CHECKS[r.FEATURE_PSI_ERROR].describe
    assert f"({llm.rules.defaults.psi_error:g})" in describe(llm.rules)
    assert f"({fraud.rules.defaults.psi_error:g})" in describe(fraud.rules)
    assert llm.rules.defaults.psi_error != fraud.rules.defaults.psi_error
    spec = check_specs(llm, AssetKey(["llm", "drift_report"]), [r.FEATURE_PSI_ERROR], None)[0]
    assert f"({llm.rules.defaults.psi_error:g})" in spec.description and spec.description.startswith("[ERROR]")


def test_every_rule_is_complete():
    for rule in DEFAULT_CHECKS:
        assert rule.severity in ("WARN", "ERROR") and rule.worse in ("higher", "lower")
        assert rule.describe(load_monitors().get("fraud").rules)  # the template renders
    assert DEFAULT_CHECKS[r.PREDICTION_NO_DRIFT].worse == "lower"


@pytest.mark.slow
def test_a_new_check_reaches_specs_results_store_and_exporter(project, tmp_path):
    table = DEFAULT_CHECKS.extended(PROBE_RULE)
    defs = build_definitions(check_table=table)
    drift_report = AssetKey(["fraud", "drift_report"])
    assert AssetCheckKey(drift_report, PROBE) in defs.resolve_asset_graph().asset_check_keys
    with instance_for_test() as instance:
        assert (
            defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET).success
        )
        job = defs.resolve_job_def("fraud_window_job")
        for week in (STATIONARY, DRIFTED):
            assert job.execute_in_process(partition_key=week, instance=instance, run_config=QUIET).success
        history = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(drift_report, PROBE), limit=5
        )
        by_week = {rec.partition: rec.evaluation for rec in history}
        assert by_week[STATIONARY].passed
        assert not by_week[DRIFTED].passed and by_week[DRIFTED].severity.value == "ERROR"

    store = ResultsStore(str(tmp_path / "reports"))
    [doc] = [d for d in store.drift_records("fraud") if d["partition"] == DRIFTED]
    assert any(c["name"] == PROBE and not c["passed"] for c in doc["checks"])
    assert PROBE in doc["summary"]["failed_checks"]

    text = generate_latest(_registry(store)).decode()
    assert f'ml_check_failed{{check="{PROBE}",model="fraud",severity="ERROR"}} 1.0' in text


def _registry(store):
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(DriftResultsCollector(store))
    return registry
