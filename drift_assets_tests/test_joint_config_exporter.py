"""Issue 14 wiring that needs no Dagster run: the ``segments`` / ``multivariate`` config keys are
validated at load naming the entry and field, capabilities decide which checks a monitor carries,
and the exporter turns the results store's ``multivariate`` and ``segments`` sections into gauges."""

from __future__ import annotations

import copy

import pytest
import yaml
from servers import fraud_drift_doc, running_exporter, sample, scrape, series_of
from support import PROJECT_ROOT

from drift_assets.monitoring.config import ConfigError, MultivariateConfig, load_monitors
from drift_assets.monitoring.results_store import ResultsStore


def _write(tmp_path, mutate) -> str:
    config = yaml.safe_load((PROJECT_ROOT / "monitors.yaml").read_text())
    mutate(config["monitors"]["fraud"])
    path = tmp_path / "monitors.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (lambda m: m.update(segments=["txn_amount"]), ["monitors.fraud.segments", "'txn_amount'", "categorical"]),
        (lambda m: m.update(segments=["no_such_column"]), ["monitors.fraud.segments", "'no_such_column'"]),
        (lambda m: m.update(segments="channel"), ["monitors.fraud.segments", "list"]),
        (lambda m: m.update(segments=["channel", "channel"]), ["monitors.fraud.segments", "twice"]),
        (lambda m: m.update(min_segment_rows=0), ["monitors.fraud.min_segment_rows", ">= 1"]),
        (lambda m: m.update(min_segment_rows=2.5), ["monitors.fraud.min_segment_rows", "whole number"]),
        (lambda m: m.update(multivariate={"enable": True}), ["monitors.fraud.multivariate", "enable"]),
        (lambda m: m.update(multivariate={"enabled": "yes"}), ["monitors.fraud.multivariate.enabled", "true or"]),
        (lambda m: m.update(multivariate={"sample_rows": 10}), ["monitors.fraud.multivariate.sample_rows", "200"]),
        (lambda m: m.update(multivariate=[1]), ["monitors.fraud.multivariate", "mapping"]),
    ],
)
def test_bad_joint_config_fails_at_load_naming_entry_and_field(tmp_path, mutate, fragments):
    with pytest.raises(ConfigError) as err:
        load_monitors(_write(tmp_path, mutate))
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_capabilities_decide_the_multivariate_and_segment_checks(tmp_path):
    def segments(m):
        m.update(segments=["channel", "model_version"], min_segment_rows=300)
        m["multivariate"] = {"domain_classifier": True, "sample_rows": 20_000}

    fraud = load_monitors(_write(tmp_path, segments)).get("fraud")
    assert fraud.segments == ("channel", "model_version") and fraud.min_segment_rows == 300
    assert fraud.multivariate == MultivariateConfig(enabled=True, domain_classifier=True, sample_rows=20_000)
    names = [rule.name for rule in fraud.check_rules("drift_report")]
    assert "no_multivariate_drift" in names and "no_segment_drift" in names
    assert fraud.checks["no_multivariate_drift"].severity == "ERROR"
    assert fraud.checks["no_segment_drift"].severity == "WARN"

    default = load_monitors(PROJECT_ROOT / "monitors.yaml").get("fraud")
    names = [rule.name for rule in default.check_rules("drift_report")]
    assert "no_multivariate_drift" in names and "no_segment_drift" not in names  # no segments configured

    off = load_monitors(_write(tmp_path, lambda m: m.update(multivariate={"enabled": False}))).get("fraud")
    assert "no_multivariate_drift" not in [rule.name for rule in off.check_rules("drift_report")]

    def one_feature(m):
        m["features"] = {"numerical": ["txn_amount"]}

    single = load_monitors(_write(tmp_path, one_feature)).get("fraud")
    assert "multivariate" not in single.capabilities()
    assert "no_multivariate_drift" not in [rule.name for rule in single.check_rules("drift_report")]


def test_exporter_serves_multivariate_scores_and_segment_psi(tmp_path):
    store = ResultsStore(str(tmp_path / "results"))
    doc = fraud_drift_doc("2026-09-28")
    doc["multivariate"] = {
        "reconstruction_error": 1.734,
        "threshold": 1.125,
        "domain_classifier_auc": 0.912,
        "drifted": True,
        "explained_by": ["avg_txn_amount_7d", "txn_amount"],
    }
    doc["segments"] = {
        "segments": {
            "channel=web": {
                "rows": 690,
                "columns": {"merchant_risk_score": {"psi": 0.41}, "txn_amount": {"psi": 0.02}},
            },
            "channel=pos": {
                "rows": 1530,
                "columns": {"merchant_risk_score": {"psi": 0.01}, "txn_amount": {"psi": None}},
            },
        },
        "findings": [],
        "skipped": {"channel=mobile": "fewer than min_segment_rows"},
    }
    store.write_json(store.drift_path("fraud", "2026-09-28"), doc)
    with running_exporter(store) as server:
        status, m = scrape(server.url)
    assert status == 200 and sample(m, "ml_results_store_up") == 1.0
    assert sample(m, "ml_multivariate_reconstruction_error", model="fraud") == 1.734
    assert sample(m, "ml_multivariate_reconstruction_threshold", model="fraud") == 1.125
    assert sample(m, "ml_multivariate_domain_auc", model="fraud") == 0.912
    psi = lambda seg, f: sample(m, "ml_segment_feature_psi", model="fraud", segment=seg, feature_name=f)  # noqa: E731
    assert psi("channel=web", "merchant_risk_score") == 0.41 and psi("channel=web", "txn_amount") == 0.02
    assert psi("channel=pos", "merchant_risk_score") == 0.01
    assert psi("channel=pos", "txn_amount") is None  # null PSI: no series, not 0
    assert len(series_of(m, "ml_segment_feature_psi")) == 3  # skipped segments export nothing
    assert sample(m, "ml_segment_rows", model="fraud", segment="channel=web") == 690
    # The existing families are unchanged (additive).
    assert sample(m, "ml_feature_psi", model="fraud", feature_name="txn_count_1h") == 0.31


def test_bad_multivariate_section_marks_the_store_down_and_keeps_the_rest(tmp_path):
    store = ResultsStore(str(tmp_path / "results"))
    doc = fraud_drift_doc("2026-09-28")
    doc["multivariate"] = copy.deepcopy({"reconstruction_error": "high"})
    store.write_json(store.drift_path("fraud", "2026-09-28"), doc)
    with running_exporter(store) as server:
        status, m = scrape(server.url)
    assert status == 200 and sample(m, "ml_results_store_up") == 0.0
    assert sample(m, "ml_multivariate_reconstruction_error", model="fraud") is None
    assert sample(m, "ml_retraining_runs_total", model="fraud") == 0


def test_webhook_message_carries_what_changed_escaped_one_bullet_per_line():
    from drift_assets.alerting.notify import slack_message_for_check_failure

    what = "txn_amount: 31% of rows above the reference's 90th percentile (812), expected 10%; mean 95 | in segment <b>"
    message = slack_message_for_check_failure(
        "fraud", "2026-08-10", "no_multivariate_drift", "ERROR", 1.7, 1.1, None, what_changed=what
    )
    section = next(
        b["text"]["text"] for b in message["blocks"] if b.get("text", {}).get("text", "").startswith("*What")
    )
    assert section.split("\n")[1:] == [
        "• txn_amount: 31% of rows above the reference's 90th percentile (812), expected 10%; mean 95",
        "• in segment &lt;b&gt;",
    ]
    assert message["text"].endswith("What changed: " + what.replace("<", "&lt;").replace(">", "&gt;"))
    plain = slack_message_for_check_failure("fraud", "2026-08-10", "x", "ERROR", 1.0, 0.5, None)
    assert "What changed" not in plain["text"] and len(plain["blocks"]) == len(message["blocks"]) - 1
