"""pyarrow's pandas probe in a Dagster process (storage/pandas_probe.py, issue 16):

- loading the definitions and converting Python values to a given arrow type imports no pandas
  (inferring a type from Python values still does: pyarrow's C++ side imports it then, as usual);
- once pandas is imported, pyarrow converts pandas objects exactly as in a process without the
  deferral (nulls from NaN/None/NaT/NA, categoricals, tz-aware timestamps): compared against a plain
  interpreter;
- (slow) the fraud drift week's production_window + drift_report (what the benchmark's fresh
  ``dagster asset materialize`` runs) and its alert job, in a fresh process, import no pandas and
  store the same documents, check results and metadata as a process that imported pandas first
  (so pyarrow's probe ran as usual); the last week's whole window job (labels pending) then imports
  neither scikit-learn nor pandas.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import SMALL, START, write_monitors_file

CONVERSIONS = """
import datetime as dt, json, sys
import numpy as np, pyarrow as pa, pyarrow.compute as pc
pa.scalar(dt.datetime(2026, 8, 17, tzinfo=dt.timezone.utc), type=pa.timestamp("us", tz="UTC"))
pc.greater(pa.array(np.arange(3)), pa.scalar(1, type=pa.int64()))
pa.array([1.5, None], type=pa.float64())
before = "pandas" in sys.modules
pa.array([1.5, None])  # inferring a type: pyarrow's C++ side imports pandas (the hook restores the probe)
inferred = "pandas" in sys.modules
import pandas as pd
out = {
    "pandas_before": before,
    "inferred": inferred,
    "series_nulls": pa.array(pd.Series([1.5, None, np.nan])).null_count,
    "object_nulls": pa.array(pd.Series(["a", None, pd.NA], dtype=object)).null_count,
    # pyarrow's C++ side recognises pandas's NA, NaT and Timestamp once it has imported pandas
    "na_nulls": pa.array([1.0, pd.NA, None, float("nan")], from_pandas=True).null_count,
    "nat_nulls": pa.array([pd.Timestamp("2026-08-17"), pd.NaT], from_pandas=True).null_count,
    "timedelta": str(pa.array([pd.Timedelta("1s"), pd.NaT], from_pandas=True).to_pylist()),
    "categorical": str(pa.array(pd.Categorical(["a", "b", "a"])).type),
    "tz": str(pa.array(pd.Series(pd.to_datetime(["2026-08-17"]).tz_localize("UTC"))).type),
    "table": pa.table(pd.DataFrame({"x": [1.0, None]})).column("x").null_count,
    "from_pandas": pa.Table.from_pandas(pd.DataFrame({"x": [1.0, None]})).column("x").null_count,
    "to_pandas": pa.table({"x": [1, 2]}).to_pandas()["x"].tolist(),
}
print(json.dumps(out, sort_keys=True))
"""


def _run(code: str, env: dict | None = None) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env or os.environ, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_definitions_defer_the_probe_and_pandas_conversions_are_unchanged():
    deferred = _run("import drift_assets.definitions\n" + CONVERSIONS)
    plain = _run(CONVERSIONS)
    assert deferred.pop("pandas_before") is False  # pa.scalar/pa.array of Python values imported none
    assert plain.pop("pandas_before") is True  # without the deferral pyarrow imports it at once
    assert deferred.pop("inferred") is True and plain.pop("inferred") is True
    assert deferred == plain
    assert (plain["series_nulls"], plain["object_nulls"], plain["na_nulls"], plain["nat_nulls"]) == (2, 2, 3, 1)


def test_deferring_is_a_no_op_once_pandas_is_imported():
    code = (
        "import sys, pandas, pyarrow as pa\n"
        "from drift_assets.storage.pandas_probe import defer_pandas_probe\n"
        "print(int(defer_pandas_probe()), int(pa.lib._pandas_api.have_pandas), int(len(sys.meta_path)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    deferred, have, _ = proc.stdout.split()
    assert (deferred, have) == ("0", "1")


REFERENCE_RUN = """
from dagster import DagsterInstance
from drift_assets.definitions import build_definitions
quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
job = build_definitions().resolve_job_def("fraud_reference_job")
assert job.execute_in_process(instance=DagsterInstance.get(), run_config=quiet).success
"""

# What `dagster asset materialize --select fraud/production_window,fraud/drift_report` runs, then
# the alert job, then the whole window job of the last week (labels pending).
WEEK_RUN = """
import json, sys
if sys.argv[1] == "pandas_first":
    import pandas  # noqa: F401  (pyarrow's probe finds it: the usual behaviour)
from dagster import AssetKey, DagsterInstance
from drift_assets.definitions import build_definitions
defs, instance = build_definitions(), DagsterInstance.get()
quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
selection = [AssetKey(["fraud", "production_window"]), AssetKey(["fraud", "drift_report"])]
window = defs.resolve_job_def("fraud_window_job").execute_in_process(
    partition_key="2026-08-17", instance=instance, run_config=quiet, asset_selection=selection)
alert = defs.resolve_job_def("fraud_alert_job").execute_in_process(
    partition_key="2026-08-17", instance=instance, run_config=quiet, raise_on_error=False)
checks = sorted(
    [e.asset_key.to_user_string(), e.check_name, e.passed, str(e.severity), repr(sorted(e.metadata.items()))]
    for e in window.get_asset_check_evaluations()
)
materialised = sorted(
    [m.asset_key.to_user_string(), repr(sorted(m.metadata.items()))]
    for m in (e.event_specific_data.materialization for e in window.get_asset_materialization_events())
)
pandas_imported = "pandas" in sys.modules
# The last week, whole window job: its labels are pending, so scikit-learn is not imported.
last = defs.resolve_job_def("fraud_window_job").execute_in_process(
    partition_key=sys.argv[2], instance=instance, run_config=quiet)
performance = [e.event_specific_data.materialization for e in last.get_asset_materialization_events()
               if e.asset_key == AssetKey(["fraud", "model_performance"])][0]
print(json.dumps({"pandas": pandas_imported, "window": window.success, "alert_failed": not alert.success,
                  "checks": checks, "materialised": materialised, "sklearn": "sklearn" in sys.modules,
                  "pandas_at_the_end": "pandas" in sys.modules,
                  "last_status": performance.metadata["status"].value, "last": last.success}))
"""


LAST_WEEK = (START + dt.timedelta(weeks=SMALL["weeks"] - 1)).isoformat()


def _week_in_fresh_process(tmp_path: Path, data: Path, mode: str) -> tuple[dict, dict[str, str]]:
    state = tmp_path / mode
    (state / "dagster_home").mkdir(parents=True)
    (state / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = dict(os.environ)
    env.update(
        {
            "DAGSTER_HOME": str(state / "dagster_home"),
            "DRIFT_ASSETS_ENV": "local",
            "DRIFT_ASSETS_DATA_ROOT": str(data),
            "DRIFT_ASSETS_ASSETS_ROOT": str(state / "assets"),
            "DRIFT_ASSETS_REPORTS_ROOT": str(state / "reports"),
            "DRIFT_ASSETS_HTML_REPORTS": "0",
            "DRIFT_ASSETS_MONITORS": str(write_monitors_file(tmp_path / "monitors.yaml")),
        }
    )
    subprocess.run([sys.executable, "-c", REFERENCE_RUN], capture_output=True, text=True, env=env, check=True)
    proc = subprocess.run(
        [sys.executable, "-c", WEEK_RUN, mode, LAST_WEEK], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1].replace(str(state), "<state>"))
    documents = {}
    for path in sorted((state / "assets").rglob("*.json")) + sorted((state / "reports").rglob("*.json")):
        doc = json.loads(path.read_text().replace(str(state), "<state>"))
        if isinstance(doc, dict):
            doc.pop("evaluated_at", None)  # the wall-clock time of the evaluation
        documents[str(path.relative_to(state))] = json.dumps(doc, sort_keys=True)
    return out, documents


@pytest.mark.slow
def test_a_drift_week_in_a_fresh_process_imports_no_pandas_and_stores_the_same(tmp_path, fraud_data):
    fresh, fresh_docs = _week_in_fresh_process(tmp_path, fraud_data, "fresh")
    usual, usual_docs = _week_in_fresh_process(tmp_path, fraud_data, "pandas_first")
    assert fresh.pop("pandas") is False
    assert usual.pop("pandas") is True
    assert fresh["window"] and fresh["alert_failed"]  # the drift week fails an ERROR check
    assert any(not passed for _, _, passed, _, _ in fresh["checks"])
    assert fresh["last"] and fresh["last_status"] == "labels_pending"
    assert fresh.pop("sklearn") is False and usual.pop("sklearn") is False  # imported only to score labels
    # nor pandas: the label join and max-per-id do without pyarrow's acero (which imports it)
    assert fresh.pop("pandas_at_the_end") is False and usual.pop("pandas_at_the_end") is True
    assert fresh == usual
    assert {"reports/fraud/drift/2026-08-17.json", "assets/fraud/window_counts/2026-08-17.json"} <= set(fresh_docs)
    assert fresh_docs == usual_docs
