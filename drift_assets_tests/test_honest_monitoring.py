"""Monitoring that does not lie about itself (issue 12, item 7), the parts below the exporter:

* an all-null prediction column fails ``prediction_has_no_drift`` (ERROR) with a reason, instead
  of the check silently disappearing (exit 0);
* a reference below ``min_reference_rows`` (default 100) is refused, naming the file: by the
  monitor's ``reference_data`` (``read_reference``) and by ``drift-assets compare``;
* a label file with 0 rows is a day without labels: ``model_performance`` says pending.

The exporter's part (missing/empty root, corrupt newest window) is in test_exporter.py; backfills
after a promotion in test_retraining_sensor.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import PROJECT_ROOT

from drift_assets.monitoring.config import ConfigError, load_monitors, parse_monitors
from drift_assets.monitoring.evaluation import read_reference
from drift_assets.monitoring.performance import labels_since, realized_performance
from drift_assets.monitoring.windows import Window
from drift_assets.stats import ColumnSpec, ProfileError, compare, fit_profile, summarize
from drift_assets.stats import rules as r
from drift_assets.storage.root import Root
from drift_assets.storage.tables import TableSource

CLI = os.path.join(os.path.dirname(sys.executable), "drift-assets")
SPECS = [
    ColumnSpec("amount", "numerical"),
    ColumnSpec("segment", "categorical"),
    ColumnSpec("score", "numerical", "prediction"),
]


def _table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "amount": rng.lognormal(3, 1, n),
            "segment": rng.choice(["a", "b", "c"], n).tolist(),
            "score": rng.beta(2, 8, n),
        }
    )


@pytest.fixture(scope="module")
def fraud():
    return load_monitors(PROJECT_ROOT / "monitors.yaml").get("fraud")


# --------------------------------------------------------------------------- all-null prediction
NULL_PREDICTIONS = {
    "arrow nulls": lambda n: pa.nulls(n, pa.float64()),
    "all NaN": lambda n: pa.array(np.full(n, np.nan)),
    "null type column": lambda n: pa.nulls(n),
}


@pytest.mark.parametrize("make", NULL_PREDICTIONS.values(), ids=NULL_PREDICTIONS.keys())
def test_an_all_null_prediction_fails_the_prediction_check_as_error(make):
    profile = fit_profile(_table(5_000, 0), SPECS)
    window = _table(2_000, 1)
    window = window.set_column(window.schema.get_field_index("score"), "score", make(window.num_rows))
    result = compare(profile, summarize(profile, [window]))
    [check] = [c for c in result.checks if c.name == r.PREDICTION_NO_DRIFT]
    assert check.column == "score" and not check.passed and check.severity == "ERROR"
    assert "no non-missing values" in check.details["reason"]
    # A healthy window still passes it (the failure above is about the nulls).
    healthy = compare(profile, summarize(profile, [_table(2_000, 2)]))
    assert [c.passed for c in healthy.checks if c.name == r.PREDICTION_NO_DRIFT] == [True]


@pytest.mark.slow  # CLI subprocess
def test_compare_exits_1_on_an_all_null_prediction(tmp_path):
    pq.write_table(_table(5_000, 0), tmp_path / "ref.parquet")
    window = _table(2_000, 1)
    pq.write_table(window.set_column(2, "score", pa.nulls(2_000, pa.float64())), tmp_path / "cur.parquet")
    args = ["--numerical", "amount", "--categorical", "segment", "--prediction", "score"]
    out = subprocess.run(
        [CLI, "compare", str(tmp_path / "ref.parquet"), str(tmp_path / "cur.parquet"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr  # 1: an ERROR check failed
    assert "prediction_has_no_drift" in out.stdout


# --------------------------------------------------------------------------- minimum reference rows
@pytest.mark.parametrize(
    ("rows", "minimum", "refused"), [(1, 100, True), (99, 100, True), (100, 100, False), (5, 5, False)]
)
def test_read_reference_refuses_a_reference_below_min_reference_rows(tmp_path, fraud, rows, minimum, refused):
    rng = np.random.default_rng(3)
    columns = {c: rng.random(rows) for c in fraud.numerical}
    columns |= {c: rng.choice(["x", "y"], rows).tolist() for c in fraud.categorical}
    columns |= {fraud.prediction: rng.random(rows), fraud.labels.column: rng.integers(0, 2, rows)}
    path = tmp_path / "small.parquet"
    pq.write_table(pa.table(columns), path)
    monitor = dataclasses.replace(fraud, min_reference_rows=minimum)
    if not refused:
        assert read_reference(monitor, TableSource.open(str(path))).num_rows == rows
        return
    with pytest.raises(ProfileError) as info:
        read_reference(monitor, TableSource.open(str(path)))
    assert (
        str(path) in str(info.value) and f"{rows} row(s)" in str(info.value) and "min_reference_rows" in str(info.value)
    )


def test_the_default_minimum_is_100_and_bad_values_fail_at_load(fraud):
    assert fraud.min_reference_rows == 100
    import yaml

    config = yaml.safe_load((PROJECT_ROOT / "monitors.yaml").read_text())
    for bad in (0, 1.5, -3):
        config["monitors"]["fraud"]["min_reference_rows"] = bad
        with pytest.raises(ConfigError, match="monitors.fraud.min_reference_rows"):
            parse_monitors(config, PROJECT_ROOT / "monitors.yaml")
    config["monitors"]["fraud"]["min_reference_rows"] = 20
    assert parse_monitors(config, PROJECT_ROOT / "monitors.yaml").get("fraud").min_reference_rows == 20


@pytest.mark.slow  # CLI subprocess
def test_compare_refuses_a_tiny_reference_with_one_line_naming_the_file(tmp_path):
    pq.write_table(_table(40, 0), tmp_path / "tiny.parquet")
    pq.write_table(_table(2_000, 1), tmp_path / "cur.parquet")
    base = [CLI, "compare", str(tmp_path / "tiny.parquet"), str(tmp_path / "cur.parquet"), "--numerical", "amount"]
    out = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "tiny.parquet" in out.stderr and "40 row(s)" in out.stderr and "Traceback" not in out.stderr
    allowed = subprocess.run([*base, "--min-reference-rows", "10"], capture_output=True, text=True, timeout=120)
    assert allowed.returncode in (0, 1), allowed.stderr


# --------------------------------------------------------------------------- empty label files
def _labels(root: Root, day: str, ids: list[str], values: list[int] | None = None) -> None:
    table = pa.table(
        {"transaction_id": pa.array(ids, pa.string()), "is_fraud": pa.array(values or [0] * len(ids), pa.int8())}
    )
    path = root.path_of(f"labels/arrived={day}")
    os.makedirs(path, exist_ok=True)
    pq.write_table(table, f"{path}/part-0.parquet")


def test_an_empty_label_file_counts_as_no_labels(tmp_path, fraud):
    root = Root.open(str(tmp_path))
    n = 400
    ids = [f"t{i}" for i in range(n)]
    rng = np.random.default_rng(4)
    y = (rng.random(n) < 0.3).astype(int).tolist()
    _labels(root, "2026-08-20", [])  # a day with a 0-row label file
    window = Window("2026-08-17", dt.datetime(2026, 8, 17, tzinfo=dt.UTC), dt.datetime(2026, 8, 24, tzinfo=dt.UTC))
    pq.write_table(
        pa.table({"transaction_id": ids, "fraud_score": rng.random(n), "model_version": ["v0001"] * n}),
        tmp_path / "window.parquet",
    )
    monitor = dataclasses.replace(fraud, labels=dataclasses.replace(fraud.labels, location="labels"))
    production = TableSource.open(str(tmp_path / "window.parquet"))
    only_empty = realized_performance(root, monitor, window, production)
    assert only_empty["status"] == "labels_pending" and only_empty["labelled_rows"] == 0

    _labels(root, "2026-09-01", ids, y)  # the labels arrive later: the empty day does not spoil them
    assert labels_since(root, "labels", window.start, monitor.labels, pa.chunked_array([ids])).num_rows == n
    done = realized_performance(root, monitor, window, production)
    assert done["status"] == "ok" and done["labelled_rows"] == n and done["positives"] == sum(y)


# --------------------------------------------------------------------------- backfills after a promotion
# (who served the window, whose reference it was measured against, whether the document warns)
LINEAGE = {
    "backfill of an old week": ("v0001", "v0002", True),
    "served by the champion": ("v0002", "v0002", False),
    "mixed week, champion among them": ("v0001,v0002", "v0002", False),
    "configured reference": ("v0001", "configured", False),
    "no model_version column": (None, "v0002", False),
}


@pytest.mark.parametrize(("served", "reference", "warns"), LINEAGE.values(), ids=LINEAGE.keys())
def test_a_drift_document_says_which_reference_a_window_was_measured_against(served, reference, warns):
    from drift_assets.monitoring.results import reference_lineage

    lineage = reference_lineage(served, reference)
    assert lineage["reference_version"] == reference
    assert ("note" in lineage) == warns
    if warns:
        assert f"served by {served}" in lineage["note"] and f"reference of {reference}" in lineage["note"]
