"""The monitors file: the project's own file loads; a malformed one fails at load naming the entry
and the field; adding a model is one more entry."""

from __future__ import annotations

import copy

import pytest
import yaml
from support import PROJECT_ROOT

from drift_assets.monitoring.config import ConfigError, load_monitors


def _base() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "monitors.yaml").read_text())


def _write(tmp_path, config) -> str:
    path = tmp_path / "monitors.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def test_project_monitors_file_loads():
    monitors = load_monitors(PROJECT_ROOT / "monitors.yaml")
    fraud, llm = monitors.get("fraud"), monitors.get("llm")
    assert fraud.cadence == "weekly" and llm.cadence == "hourly"
    assert "txn_count_1h" in fraud.top_features and fraud.prediction == "fraud_score"
    assert fraud.rules.defaults.psi_error == 0.25 and llm.rules.defaults.psi_error == 1.0
    assert llm.sudden_change.baseline_windows == 24 and "refusal" in llm.sudden_change.rates


def test_a_probability_prediction_carries_the_estimated_auc_check():
    monitors = load_monitors(PROJECT_ROOT / "monitors.yaml")
    fraud, llm = monitors.get("fraud"), monitors.get("llm")
    assert fraud.prediction_kind == "probability" and fraud.decision_threshold == 0.5
    assert "probability_prediction" in fraud.capabilities()
    names = [rule.name for rule in fraud.check_rules("model_performance")]
    assert names == ["auc_not_below_champion", "estimated_auc_not_below_champion", "target_prevalence_unchanged"]
    # Profiled as a numerical column: the drift checks see the same prediction as before.
    assert [s.kind for s in fraud.column_specs() if s.role == "prediction"] == ["numerical"]
    assert fraud.retraining.require_performance_impact is False  # the design document's matrix
    assert "probability_prediction" not in llm.capabilities()


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (lambda m: m.update(cadence="monthly"), ["monitors.fraud.cadence", "monthly"]),
        (lambda m: m.update(start="2026-08-04"), ["monitors.fraud.start", "Monday"]),
        (lambda m: m["features"].update(numerical="txn_amount"), ["monitors.fraud.features.numerical", "list"]),
        (lambda m: m["features"].update(top=["not_a_feature"]), ["monitors.fraud.features.top", "not_a_feature"]),
        (lambda m: m["thresholds"].update(psi_eror=0.3), ["monitors.fraud.thresholds", "psi_eror"]),
        (lambda m: m["thresholds"].update(psi_warn="high"), ["monitors.fraud.thresholds.psi_warn", "number"]),
        (lambda m: m.pop("reference"), ["monitors.fraud.reference", "required"]),
        (lambda m: m.update(colour="blue"), ["monitors.fraud", "colour"]),
        (lambda m: m["retraining"].update(on_checks="feature_psi"), ["monitors.fraud.retraining.on_checks"]),
        (lambda m: m.update(prediction_kind="score"), ["monitors.fraud.prediction_kind", "probability"]),
        (lambda m: m["model"].update(threshold=1.5), ["monitors.fraud.model.threshold", "1.5"]),
        (
            lambda m: m["retraining"].update(require_performance_impact="maybe"),
            ["monitors.fraud.retraining.require_performance_impact"],
        ),
        (
            lambda m: m["thresholds"].update(columns={"txn_amount": {"psi_warn": "x"}}),
            ["monitors.fraud.thresholds.columns.txn_amount.psi_warn"],
        ),
    ],
)
def test_malformed_entries_fail_naming_entry_and_field(tmp_path, mutate, fragments):
    config = _base()
    mutate(config["monitors"]["fraud"])
    with pytest.raises(ConfigError) as excinfo:
        load_monitors(_write(tmp_path, config))
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, message


def test_invalid_yaml_and_missing_file_are_clear(tmp_path):
    bad = tmp_path / "monitors.yaml"
    bad.write_text("monitors:\n  fraud: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_monitors(bad)
    with pytest.raises(ConfigError, match="cannot read monitors file"):
        load_monitors(tmp_path / "nope.yaml")


def test_adding_a_model_is_a_config_entry(tmp_path):
    from dagster import AssetKey

    from drift_assets.definitions import build_definitions

    config = _base()
    churn = copy.deepcopy(config["monitors"]["fraud"])
    churn["description"] = "A second scoring model, same log layout"
    churn["model"] = {"registry": "churn/models"}
    config["monitors"]["churn"] = churn
    defs = build_definitions(_write(tmp_path, config))
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"churn/reference_data", "churn/drift_report", "churn/model_performance", "churn/retrained_model"} <= keys
    assert defs.resolve_job_def("churn_window_job") and defs.resolve_schedule_def("churn_weekly_schedule")
    groups = {
        defs.resolve_assets_def(AssetKey(["churn", "drift_report"])).group_names_by_key[
            AssetKey(["churn", "drift_report"])
        ]
    }
    assert groups == {"churn"}


def _llm_derived(m: dict) -> dict:
    return next(d for d in m["derived"] if d["name"] == "refusal")


# Silently accepted before issue 12: each now fails at load naming the entry and the field.
RANGE_CASES = [
    ("fraud", lambda m: m["thresholds"].update(psi_error=-1), ["fraud.thresholds.psi_error", "> 0"]),
    ("fraud", lambda m: m["thresholds"].update(psi_warn=0), ["fraud.thresholds.psi_warn", "> 0"]),
    ("fraud", lambda m: m["thresholds"].update(psi_warn=0.5), ["fraud.thresholds.psi_warn", "psi_error"]),
    ("fraud", lambda m: m["thresholds"].update(feature_alpha=5), ["fraud.thresholds.feature_alpha", "< 1"]),
    ("fraud", lambda m: m["thresholds"].update(feature_alpha=0), ["fraud.thresholds.feature_alpha", "> 0"]),
    ("fraud", lambda m: m["thresholds"].update(prediction_alpha=1), ["fraud.thresholds.prediction_alpha"]),
    ("fraud", lambda m: m["thresholds"].update(missing_rate_warn=1.5), ["fraud.thresholds.missing_rate_warn"]),
    ("fraud", lambda m: m["thresholds"].update(drifted_share_error=-0.1), ["thresholds.drifted_share_error"]),
    ("fraud", lambda m: m["thresholds"].update(auc_drop_error=2), ["fraud.thresholds.auc_drop_error"]),
    ("fraud", lambda m: m["thresholds"].update(psi_epsilon=0), ["fraud.thresholds.psi_epsilon"]),
    ("fraud", lambda m: m["thresholds"].update(min_category_share_change=3), ["min_category_share_change"]),
    ("fraud", lambda m: m["thresholds"].update(min_wasserstein_normed=-1), ["min_wasserstein_normed"]),
    ("fraud", lambda m: m["thresholds"].update(psi_error=float("inf")), ["fraud.thresholds.psi_error", "finite"]),
    (
        "fraud",
        lambda m: m["thresholds"].update(columns={"txn_amount": {"psi_error": -2}}),
        ["fraud.thresholds.columns.txn_amount.psi_error", "> 0"],
    ),
    (
        "fraud",
        lambda m: m["thresholds"].update(columns={"no_such_column": {"psi_error": 0.4}}),
        ["fraud.thresholds.columns.no_such_column", "not a monitored column"],
    ),
    ("fraud", lambda m: m["retraining"].update(holdout_weeks=1.5), ["fraud.retraining.holdout_weeks", "whole"]),
    ("fraud", lambda m: m["retraining"].update(holdout_weeks=0), ["fraud.retraining.holdout_weeks", "at least 1"]),
    ("fraud", lambda m: m["retraining"].update(cooldown_hours=-1), ["fraud.retraining.cooldown_hours"]),
    ("fraud", lambda m: m["retraining"].update(min_auc_gain=2), ["fraud.retraining.min_auc_gain"]),
    ("fraud", lambda m: m["target"].update(delay_days=-3), ["fraud.target.delay_days"]),
    ("fraud", lambda m: m.update(psi_bins=1), ["fraud.psi_bins", "at least 2"]),
    ("fraud", lambda m: m.update(psi_bins=7), ["fraud.psi_bins", "divide 1000"]),
    ("fraud", lambda m: m.update(psi_bins=2.5), ["fraud.psi_bins", "whole"]),
    ("llm", lambda m: m["sudden_change"].update(rate_alpha=2), ["llm.sudden_change.rate_alpha"]),
    ("llm", lambda m: m["sudden_change"].update(psi=0), ["llm.sudden_change.psi", "> 0"]),
    ("llm", lambda m: m["sudden_change"].update(min_rows=0.5), ["llm.sudden_change.min_rows", "whole"]),
    ("llm", lambda m: m["sudden_change"].update(baseline_windows=0), ["llm.sudden_change.baseline_windows"]),
    ("llm", lambda m: m["sudden_change"].update(min_rate_change=1.5), ["llm.sudden_change.min_rate_change"]),
    (
        "llm",
        lambda m: _llm_derived(m)["options"].update(patterns=["fine", "(unclosed"]),
        ["llm.derived[3].options.patterns[1]", "(unclosed", "invalid regular expression"],
    ),
    (
        "llm",
        lambda m: _llm_derived(m)["options"].update(patterns="I can't"),
        ["llm.derived[3].options.patterns", "list of regular expressions"],
    ),
]


@pytest.mark.parametrize(("monitor", "mutate", "fragments"), RANGE_CASES, ids=[c[2][0] for c in RANGE_CASES])
def test_out_of_range_and_unknown_settings_fail_at_load(tmp_path, monitor, mutate, fragments):
    config = _base()
    mutate(config["monitors"][monitor])
    with pytest.raises(ConfigError) as excinfo:
        load_monitors(_write(tmp_path, config))
    for fragment in fragments:
        assert fragment in str(excinfo.value), str(excinfo.value)


def test_duplicate_yaml_keys_fail_naming_key_and_lines(tmp_path):
    text = (PROJECT_ROOT / "monitors.yaml").read_text()
    doubled = text.replace("      psi_error: 0.25", "      psi_error: 0.25\n      psi_error: 0.9", 1)
    assert doubled != text
    path = tmp_path / "monitors.yaml"
    path.write_text(doubled)
    with pytest.raises(ConfigError) as excinfo:
        load_monitors(path)
    message = str(excinfo.value)
    assert "monitors.yaml" in message and "'psi_error' appears twice" in message and "line" in message, message


def test_missing_reference_fails_definitions_load_for_local_roots(tmp_path, monkeypatch):
    from drift_assets.definitions import build_definitions

    config = _base()
    config["monitors"] = {"fraud": config["monitors"]["fraud"]}
    monitors = _write(tmp_path, config)
    data = tmp_path / "data"
    (data / "fraud" / "log").mkdir(parents=True)  # the monitor has data, but no reference
    monkeypatch.setenv("DRIFT_ASSETS_DATA_ROOT", str(data))
    monkeypatch.delenv("DRIFT_ASSETS_ENV", raising=False)
    with pytest.raises(ConfigError) as excinfo:
        build_definitions(monitors)
    message = str(excinfo.value)
    assert "monitors.fraud.reference" in message and "fraud/reference/reference.parquet" in message, message
    reference = data / "fraud" / "reference" / "reference.parquet"
    reference.parent.mkdir(parents=True)
    reference.write_bytes(b"")
    assert build_definitions(monitors).resolve_job_def("fraud_reference_job")
    # a fresh checkout (no data yet) still loads, so `simulate` can run first
    monkeypatch.setenv("DRIFT_ASSETS_DATA_ROOT", str(tmp_path / "empty"))
    assert build_definitions(monitors).resolve_job_def("fraud_window_job")
