"""Retraining end to end: a failed ERROR check -> the sensor's request -> ``<monitor>/retrained_model``
(real ``dvc repro`` from the DVC virtualenv) -> the evaluation gate -> registry versions, and the
``drift-assets models`` commands.

Setting: the shared 6-week simulation (drift from week 3, 2026-08-17): only that week is evaluated,
so each monitor has exactly one trigger.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import shutil
from pathlib import Path

import joblib
import pyarrow.parquet as pq
import pytest
import yaml
from dagster import instance_for_test
from support import write_monitors_file

from drift_assets import cli
from drift_assets.cli.demo import (
    evaluate_sensor,
    execute_run_request,
    serve_champion_from,
)
from drift_assets.definitions import build_definitions
from drift_assets.monitoring.registry import ModelRegistry
from drift_assets.orchestration.resources import DvcResource
from drift_assets.retraining import attempt as retraining_module
from drift_assets.storage.root import Root

DVC = os.environ.get("DRIFT_ASSETS_DVC") or DvcResource().executable
pytestmark = [
    pytest.mark.skipif(not Path(DVC).is_file(), reason=f"DVC executable {DVC} not found (make .venv-dvc)"),
    pytest.mark.slow,
]  # slow: servers, Dagster runs or long simulations

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
FAILING, NEXT = "2026-08-17", "2026-08-24"
ON_CHECKS = ["feature_psi_below_retrain_threshold", "prediction_has_no_drift"]


@pytest.fixture
def setting(project, monkeypatch):
    """Env for retraining runs: work dirs under tmp, one thread for the shared cores."""
    monkeypatch.setenv("DRIFT_ASSETS_RETRAINING_DIR", str(project / "retraining"))
    monkeypatch.setenv("DRIFT_ASSETS_DVC", DVC)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return project


def two_monitors(tmp: Path) -> Path:
    """``fraud`` (strictly-better gate) and ``fraud_strict`` (gain > 0.5 required: always rejects),
    over the same log and labels, each with its own registry."""
    data = tmp / "data"
    shutil.copytree(data / "fraud" / "models", data / "fraud_strict" / "models")
    retraining = {"enabled": True, "on_checks": ON_CHECKS, "cooldown_hours": 0, "holdout_weeks": 1}
    path = write_monitors_file(tmp / "monitors-two.yaml", retraining={**retraining, "min_auc_gain": 0.0})
    config = yaml.safe_load(path.read_text())
    strict = copy.deepcopy(config["monitors"]["fraud"])
    strict["model"]["registry"] = "fraud_strict/models"
    strict["retraining"]["min_auc_gain"] = 0.5
    config["monitors"]["fraud_strict"] = strict
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def evaluate_week(defs, instance, monitor: str, key: str):
    assert (
        defs.resolve_job_def(f"{monitor}_reference_job").execute_in_process(instance=instance, run_config=QUIET).success
    )
    result = defs.resolve_job_def(f"{monitor}_window_job").execute_in_process(
        partition_key=key, instance=instance, run_config=QUIET
    )
    assert result.success
    return result


def materialization_metadata(result, name: str) -> dict:
    for event in result.get_asset_materialization_events():
        m = event.event_specific_data.materialization
        if m.asset_key.path[-1] == name:
            return {k: v.value for k, v in m.metadata.items()}
    raise AssertionError(f"no materialisation of {name}")


def test_two_monitors_retrain_independently_the_gate_promotes_one_and_rejects_the_other(setting):
    tmp = setting
    path = two_monitors(tmp)
    defs = build_definitions(monitors_file=path)
    data = Root.open(str(tmp / "data"))
    strict_pointer = (tmp / "data" / "fraud_strict" / "models" / "champion.json").read_bytes()
    with instance_for_test() as instance:
        evaluate_week(defs, instance, "fraud", FAILING)
        # Only `fraud` has failed so far: the other monitor's sensor sees nothing.
        assert evaluate_sensor(defs, "fraud_strict_retraining_sensor", instance, None).run_requests == []
        evaluate_week(defs, instance, "fraud_strict", FAILING)

        results, cursors = {}, {}
        for monitor in ("fraud", "fraud_strict"):
            tick = evaluate_sensor(defs, f"{monitor}_retraining_sensor", instance, None)
            cursors[monitor] = tick.cursor
            [request] = tick.run_requests
            assert request.partition_key == FAILING and request.tags["drift_assets/retraining"] == monitor
            results[monitor] = execute_run_request(defs, f"{monitor}_retraining_sensor", request, instance)
            assert results[monitor].success

        # fraud: the challenger beats the champion on the same holdout -> v0002 promoted.
        meta = materialization_metadata(results["fraud"], "retrained_model")
        assert meta["version"] == "v0002" and meta["decision"] == "promoted"
        assert meta["challenger_auc"] > meta["champion_auc"]
        assert "challenger AUC" in meta["reason"]
        registry = ModelRegistry(data, "fraud/models")
        champion = registry.champion()
        assert champion.name == "v0002"
        pointer = registry.champion_pointer()
        assert pointer["previous"] == 1
        m = champion.metadata
        assert m["status"] == "promoted" and m["parent"] == 1 and m["model_file"] == "model.joblib"
        assert m["trigger"]["partition"] == FAILING and m["trigger"]["check"] == ",".join(ON_CHECKS)
        assert (
            m["metrics"]["challenger_auc"] == meta["challenger_auc"]
            and m["metrics"]["champion_auc"] == meta["champion_auc"]
        )
        assert len(m["training_data_sha256"]) == 64 and len(m["dvc_lock_sha256"]) == 64 and m["created_at"]
        assert m["decision"]["promote"] is True and m["auc_reference"] == m["metrics"]["challenger_auc"]
        # Its reference: rows of the failing week unseen in training, scored by the challenger.
        assert m["reference_file"] == "reference.parquet"
        reference = pq.read_table(tmp / "data" / champion.reference_file).to_pandas()
        assert len(reference) == m["reference"]["rows"] >= 500
        assert reference["timestamp"].min().isoformat()[:10] >= FAILING
        assert reference["fraud_score"].between(0, 1).all()
        assert m["reference"]["window"] == FAILING
        model = joblib.load(tmp / "data" / champion.model_file)
        features = m["features"]["numerical"] + m["features"]["categorical"]
        assert abs(model.predict_proba(reference[features])[:, 1] - reference["fraud_score"]).max() < 1e-12
        for lineage in ("dvc.lock", "params.yaml", "metrics.json", "training_summary.json"):
            assert (tmp / "data" / champion.path / lineage).is_file()
        record = json.loads((tmp / "reports" / "fraud" / "retraining" / "v0002.json").read_text())
        assert {k: record[k] for k in ("monitor", "version", "name", "status")} == {
            "monitor": "fraud",
            "version": 2,
            "name": "v0002",
            "status": "promoted",
        }
        assert record["trigger"]["partition"] == FAILING and record["challenger_auc"] > record["champion_auc"]

        # fraud_strict: same data, but a gain of 0.5 is required -> committed as rejected, champion untouched.
        meta = materialization_metadata(results["fraud_strict"], "retrained_model")
        assert meta["version"] == "v0002" and meta["decision"] == "rejected" and "min gain 0.5000" in meta["reason"]
        strict = ModelRegistry(data, "fraud_strict/models")
        assert (tmp / "data" / "fraud_strict" / "models" / "champion.json").read_bytes() == strict_pointer
        assert strict.get(2).metadata["status"] == "rejected" and strict.champion().name == "v0001"
        record = json.loads((tmp / "reports" / "fraud_strict" / "retraining" / "v0002.json").read_text())
        assert record["status"] == "rejected"

        # After the promotion the sensor re-materialises fraud's reference assets (not fraud_strict's).
        assert (
            evaluate_sensor(defs, "fraud_strict_retraining_sensor", instance, cursors["fraud_strict"]).run_requests
            == []
        )
        tick = evaluate_sensor(defs, "fraud_retraining_sensor", instance, cursors["fraud"])
        [refresh] = tick.run_requests
        assert refresh.partition_key is None
        refreshed = execute_run_request(defs, "fraud_retraining_sensor", refresh, instance)
        assert refreshed.success
        assert materialization_metadata(refreshed, "reference_data")["source"].endswith(
            "versions/v0002/reference.parquet"
        )
        assert materialization_metadata(refreshed, "champion_model")["version"] == "v0002"

        # The next week is measured against the new reference and champion (production now serves
        # v0002: the simulated log is re-scored from that week on). The drift is the new normal.
        from drift_assets.monitoring.config import load_monitors

        serve_champion_from(
            defs.resources["storage"].storage(), load_monitors(path).get("fraud"), dt.date.fromisoformat(NEXT)
        )
        week = defs.resolve_job_def("fraud_window_job").execute_in_process(
            partition_key=NEXT, instance=instance, run_config=QUIET
        )
        failed = {(e.check_name, e.severity.value) for e in week.get_asset_check_evaluations() if not e.passed}
        assert not {name for name, sev in failed if sev == "ERROR" and name in ON_CHECKS}, failed
        drift = json.loads((tmp / "reports" / "fraud" / "drift" / f"{NEXT}.json").read_text())
        assert drift["summary"]["max_feature_psi"] < 0.25 and drift["model_version"] == "v0002"


def test_a_failing_dvc_stage_fails_the_run_with_the_stderr_tail_and_leaves_the_champion(setting, monkeypatch):
    tmp = setting
    original = retraining_module.retraining_params

    def broken(monitor, inputs, cutoff):  # a column the data does not have
        params = original(monitor, inputs, cutoff)
        params["columns"]["numerical"] = [*params["columns"]["numerical"], "no_such_column"]
        return params

    monkeypatch.setattr(retraining_module, "retraining_params", broken)
    path = write_monitors_file(
        tmp / "monitors-fail.yaml", retraining={"enabled": True, "on_checks": ON_CHECKS, "holdout_weeks": 1}
    )
    defs = build_definitions(monitors_file=path)
    models = tmp / "data" / "fraud" / "models"
    pointer = (models / "champion.json").read_bytes()
    with instance_for_test() as instance:
        evaluate_week(defs, instance, "fraud", FAILING)
        [request] = evaluate_sensor(defs, "fraud_retraining_sensor", instance, None).run_requests
        result = execute_run_request(defs, "fraud_retraining_sensor", request, instance)
        assert not result.success
        [failure] = result.get_step_failure_events()
        message = failure.event_specific_data.error.message
        assert "ERROR [prepare]" in message and "no_such_column" in message  # the stderr tail
        assert "champion v0001 unchanged" in message
    assert (models / "champion.json").read_bytes() == pointer
    assert sorted(os.listdir(models / "versions")) == ["v0001"]  # nothing reserved, nothing committed
    [name] = os.listdir(tmp / "reports" / "fraud" / "retraining")
    record = json.loads((tmp / "reports" / "fraud" / "retraining" / name).read_text())
    assert name == f"failed-{result.run_id}.json"
    assert record["status"] == "failed" and record["version"] is None and record["trigger"]["partition"] == FAILING
    assert "no_such_column" in record["stderr_tail"]
    assert Path(record["workdir"]).is_dir()  # kept for debugging


def test_models_list_and_promote_rollback_refuses_uncommitted_versions(project, monkeypatch, capsys):
    data = Root.open(str(project / "data"))
    registry = ModelRegistry(data, "fraud/models")
    number, path = registry.reserve()
    data.write_bytes(f"{path}/model.joblib", data.read_bytes(registry.champion().model_file))
    registry.commit(
        number,
        {
            "status": "promoted",
            "parent": 1,
            "metrics": {"challenger_auc": 0.91, "champion_auc": 0.85},
            "trigger": {"partition": FAILING, "check": "prediction_has_no_drift"},
            "reason": "test",
        },
    )
    registry.promote(number, reason="retraining")
    uncommitted, _ = registry.reserve()  # an aborted attempt: no metadata.json

    assert cli.main(["models", "list", "--monitor", "fraud"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(line.strip().startswith("* v0002") and "0.9100" in line and FAILING in line for line in lines), out
    assert any(line.strip().startswith("v0001") for line in lines) and "v0003" not in out

    pointer = data.read_bytes("fraud/models/champion.json")
    assert cli.main(["models", "promote", "--monitor", "fraud", "--version", str(uncommitted)]) == 2
    assert "no committed model version v0003" in capsys.readouterr().err
    assert data.read_bytes("fraud/models/champion.json") == pointer

    assert cli.main(["models", "promote", "--monitor", "fraud", "--version", "v0001"]) == 0  # rollback
    assert "v0002 -> v0001" in capsys.readouterr().out
    assert registry.champion().name == "v0001" and registry.champion_pointer()["previous"] == 2
    assert cli.main(["models", "promote", "--monitor", "fraud", "--version", "2"]) == 0  # and forward again
    assert registry.champion().name == "v0002"
