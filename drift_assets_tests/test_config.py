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
    assert names == ["auc_not_below_champion", "estimated_auc_not_below_champion"]
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
