"""History in Prometheus: every window's measures at the window's own time.

``drift-assets export-history`` writes the results store as OpenMetrics with per-window timestamps;
``promtool tsdb create-blocks-from openmetrics`` turns it into TSDB blocks; a real Prometheus started
on that storage answers PromQL over the 13 demo-like weeks with one sample per window, the drifted
week visible; the Grafana dashboard's PromQL runs against it; promtool's rule unit test over a
demo-like timeline shows the drifted week firing.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from servers import (
    GRAFANA_DASHBOARD,
    REPO_ROOT,
    RULES_DIR,
    _run_server,
    binary,
    fraud_drift_doc,
    llm_drift_doc,
    performance_doc,
    retraining_doc,
    run,
)
from test_prometheus_e2e import dashboard_expressions

from drift_assets.alerting.history import collect_history
from drift_assets.monitoring.results_store import ResultsStore

FIRST_WEEK = datetime(2026, 8, 3, tzinfo=UTC)  # the simulator's first Monday
WEEKS = 13
DRIFTED = "2026-09-28"  # the demo's headline incident
HISTORY_TEST = RULES_DIR / "drift_history_test.yml"


def _week(i: int) -> str:
    return (FIRST_WEEK + timedelta(weeks=i)).date().isoformat()


def _end_of(partition: str, days: int = 7) -> float:
    return (datetime.fromisoformat(partition).replace(tzinfo=UTC) + timedelta(days=days)).timestamp()


def demo_like_store(root: Path) -> ResultsStore:
    """13 weekly fraud windows (only 2026-09-28 drifted), labelled AUCs, two retrainings, 3 LLM hours."""
    store = ResultsStore(str(root))
    for i in range(WEEKS):
        key = _week(i)
        drifted = key == DRIFTED
        evaluated = datetime.fromtimestamp(_end_of(key), UTC) + timedelta(hours=6)
        doc = fraud_drift_doc(
            key,
            evaluated_at=evaluated,
            txn_psi=0.31 if drifted else 0.03 + 0.001 * i,
            prediction_psi=0.27 if drifted else 0.02,
            prediction_p=0.0 if drifted else 0.4,
            account_age_missing=0.01,
        )
        store.write_json(store.drift_path("fraud", key), doc)
        if i < WEEKS - 2:  # labels arrive two weeks late
            perf = performance_doc("fraud", key, "v0001", 0.87 if drifted else 0.90, evaluated_at=evaluated)
            perf.update(window_start=doc["window_start"], window_end=doc["window_end"])
            store.write_json(store.performance_path("fraud", key), perf)
    for version, status in ((2, "promoted"), (3, "rejected")):
        created = datetime(2026, 10, 5, 7, tzinfo=UTC) + timedelta(days=version)
        store.write_json(
            store.retraining_path("fraud", f"v{version:04d}"),
            retraining_doc("fraud", version, status, created_at=created),
        )
    for hour in ("2026-10-13-13:00", "2026-10-13-14:00", "2026-10-13-15:00"):
        store.write_json(
            store.drift_path("llm", hour), llm_drift_doc(hour, refusal_rate=0.2 if hour.endswith("14:00") else 0.02)
        )
    return store


@pytest.fixture
def history_file(tmp_path) -> tuple[Path, ResultsStore]:
    store = demo_like_store(tmp_path / "results")
    out = tmp_path / "history.om"
    done = subprocess.run(
        [sys.executable, "-m", "drift_assets", "export-history", "--out", str(out), "--reports-root", store.uri],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "fraud: 13" in done.stdout and "llm: 3" in done.stdout, done.stdout
    return out, store


def test_history_file_has_one_sample_per_window_at_the_window_end(history_file):
    out, store = history_file
    text = out.read_text()
    assert text.endswith("# EOF\n")
    lines = [line for line in text.splitlines() if line.startswith('ml_drift_detected{model="fraud"}')]
    assert len(lines) == WEEKS
    stamps = {float(line.split()[-1]): float(line.split()[-2]) for line in lines}
    assert stamps[_end_of(DRIFTED)] == 1.0 and sum(stamps.values()) == 1.0
    # The prediction's KS p-value of 0 is exported as 0 (not dropped, not 1).
    p_line = next(
        x for x in text.splitlines() if x.startswith("ml_prediction_drift_ks_pvalue") and str(_end_of(DRIFTED)) in x
    )
    assert float(p_line.split()[-2]) == 0.0
    # Counters carry _total and are cumulative at each attempt's time.
    assert [line.split()[-2] for line in text.splitlines() if line.startswith("ml_retraining_runs_total")] == [
        "1.0",
        "2.0",
    ]
    history = collect_history(store)
    assert not history.errors
    assert len(history.families["ml_model_auc"].samples[(("model", "fraud"), ("model_version", "v0001"))]) == WEEKS - 2


@pytest.mark.slow
def test_prometheus_loaded_from_the_history_sees_every_window(history_file, tmp_path):
    out, _ = history_file
    data = tmp_path / "prometheus-data"
    blocks = run([binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(out), str(data)], timeout=300)
    assert blocks.returncode == 0, blocks.stderr + blocks.stdout
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n")
    prometheus = binary("prometheus")

    def argv(port: int) -> list[str]:
        return [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=3650d",
        ]

    last_end = _end_of(_week(WEEKS - 1))
    with _run_server("prometheus-history", argv, tmp_path / "prom", "/-/ready") as server:

        def instant(expr: str, at: float = last_end + 60) -> list[dict]:
            body = requests.get(f"{server.url}/api/v1/query", params={"query": expr, "time": at}, timeout=30).json()
            assert body["status"] == "success", (expr, body)
            return body["data"]["result"]

        def _loaded():
            return instant('count_over_time(ml_drift_detected{model="fraud"}[91d])')

        from servers import wait_until

        counted = wait_until(_loaded, timeout=30, message="blocks loaded")
        assert float(counted[0]["value"][1]) == WEEKS  # one sample per window
        samples = instant('ml_drift_detected{model="fraud"}[91d]')[0]["values"]
        assert [t for t, v in samples if v == "1"] == [_end_of(DRIFTED)]
        psi = instant('max_over_time(ml_feature_psi{model="fraud",feature_name="txn_count_1h"}[91d])')
        assert math.isclose(float(psi[0]["value"][1]), 0.31)
        assert float(instant('min_over_time(ml_prediction_drift_ks_pvalue{model="fraud"}[91d])')[0]["value"][1]) == 0.0

        # Every dashboard expression that plots over time, as Grafana would ask (a range query).
        start, end, step = _end_of(_week(0)) - 3600, last_end + 3600, 3600
        checked = 0
        for where, expr in dashboard_expressions(json.loads(GRAFANA_DASHBOARD.read_text())):
            if "$__interval" not in expr:
                continue  # instant "latest window" panels and store-health panels are the live exporter's
            query = expr.replace("$__interval", "1h").replace('"$model"', '"fraud|llm"')
            body = requests.get(
                f"{server.url}/api/v1/query_range",
                params={"query": query, "start": start, "end": end, "step": step},
                timeout=30,
            ).json()
            assert body["status"] == "success", (where, body)
            assert body["data"]["result"], (where, query)
            checked += 1
            if "ml_feature_psi" in expr:
                series = next(r for r in body["data"]["result"] if r["metric"].get("feature_name") == "txn_count_1h")
                # One run of points per window, starting at the window's end (Prometheus 2.x ranges
                # include both ends, so a sample at T also shows in the step at T + step).
                times = [t for t, _ in series["values"]]
                starts = [t for t in times if t - step not in times]
                assert starts == [_end_of(_week(i)) for i in range(WEEKS)]
                peak = max(series["values"], key=lambda tv: float(tv[1]))
                assert _end_of(DRIFTED) <= peak[0] < _end_of(DRIFTED) + step
        assert checked >= 10


@pytest.mark.slow  # promtool evaluates three weeks of 5-minute samples (~4 s a run)
def test_promtool_rule_test_shows_the_drifted_week_firing(tmp_path):
    promtool = binary("promtool")
    passed = run([promtool, "test", "rules", HISTORY_TEST.name], cwd=RULES_DIR)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    # Not vacuous: without the drifted week the expected alert is missing and the test fails.
    calm = tmp_path / HISTORY_TEST.name
    calm.write_text(HISTORY_TEST.read_text().replace("'0x2015 1x2015 0x2015'", "'0x2015 0x2015 0x2015'"))
    (tmp_path / "drift_alerts.yml").write_text((RULES_DIR / "drift_alerts.yml").read_text())
    failed = run([promtool, "test", "rules", calm.name], cwd=tmp_path)
    assert failed.returncode != 0 and "DriftRetrainingTrigger" in failed.stdout + failed.stderr


def test_grafana_provisioning_points_at_the_dashboard():
    import yaml

    grafana = GRAFANA_DASHBOARD.parent
    datasources = yaml.safe_load((grafana / "provisioning" / "datasources" / "drift_assets.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] and source["url"] == "${PROMETHEUS_URL}"
    providers = yaml.safe_load((grafana / "provisioning" / "dashboards" / "drift_assets.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "${DRIFT_ASSETS_GRAFANA_DIR}"
    assert [p.name for p in grafana.glob("*.json")] == ["drift_dashboard.json"]  # what the provider loads
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text())
    assert dashboard["time"]["from"] == "now-90d"
