"""`drift-assets compare --prediction p --target t`: the ``performance`` object (estimated with its
band, realized when the current table has the target), the table printout, and bad input that
leaves the drift comparison running."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import precision_score, recall_score, roc_auc_score
from test_cli_compare import run

from drift_assets.simulate.calibrated_scores import FRAUD_2_PERCENT

pytestmark = pytest.mark.slow  # CLI subprocesses (~10 s each)

ARGS = ["--numerical", "x", "--prediction", "s", "--target", "y", "--json", "-"]


def scored(rows: int, seed: int, mean=None, scale=None) -> pa.Table:
    rng = np.random.default_rng(seed)
    scores, target = FRAUD_2_PERCENT.sample(rng, rows, mean, scale)
    return pa.table({"x": rng.normal(size=rows), "s": scores, "y": target})


@pytest.fixture
def files(tmp_path):
    pq.write_table(scored(60_000, 1), tmp_path / "ref.parquet")
    # Covariate shift that costs AUC: the features' spread shrinks, the scores separate less.
    current = scored(20_000, 2, np.zeros(3), np.full(3, 0.6))
    pq.write_table(current, tmp_path / "current.parquet")
    pq.write_table(current.drop(["y"]), tmp_path / "unlabelled.parquet")
    return tmp_path


def test_performance_object_has_estimate_band_and_realized(files):
    out = run(files / "ref.parquet", files / "current.parquet", *ARGS, "--threshold", "0.1")
    assert out.returncode in (0, 1), out.stderr
    perf = json.loads(out.stdout)["performance"]
    est, real = perf["estimated"], perf["realized"]
    assert set(est) >= {"roc_auc", "lower", "upper", "precision", "recall", "f1", "accuracy", "threshold", "method"}
    assert est["lower"] < est["roc_auc"] < est["upper"] and est["threshold"] == 0.1
    current = pq.read_table(files / "current.parquet")
    y, s = current.column("y").to_numpy(), current.column("s").to_numpy()
    # Realized from the same streamed counts (ties inside a score bin only): sklearn's values.
    assert real["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-4)
    assert real["recall"] == pytest.approx(recall_score(y, s >= 0.1))
    assert real["precision"] == pytest.approx(precision_score(y, s >= 0.1))
    assert 0.0 < real["recall"] < 1.0
    # The shift lowered the AUC below the reference's, and the estimate saw it from the scores.
    assert real["roc_auc"] < perf["reference_roc_auc"] - 0.03
    assert abs(est["roc_auc"] - real["roc_auc"]) < 0.03 and est["lower"] <= real["roc_auc"] <= est["upper"]
    assert perf["check"]["name"] == "estimated_auc_not_below_champion"
    assert out.returncode == (0 if perf["check"]["passed"] else 1)


def test_without_the_target_realized_is_null_and_the_table_shows_both(files):
    out = run(files / "ref.parquet", files / "unlabelled.parquet", *ARGS)
    assert out.returncode in (0, 1), out.stderr
    doc = json.loads(out.stdout)
    assert doc["performance"]["realized"] is None and doc["performance"]["estimated"]["roc_auc"] > 0.5
    assert "y" not in doc["columns"]  # the target is not compared when the current table lacks it
    text = run(files / "ref.parquet", files / "current.parquet", *ARGS[:-2]).stdout
    line = next(line for line in text.splitlines() if line.strip().startswith("roc_auc"))
    estimated, realized = line.split()[1], line.split()[-1]
    assert "[" in line and float(estimated) > 0.5 and float(realized) > 0.5
    assert "(no target)" in run(files / "ref.parquet", files / "unlabelled.parquet", *ARGS[:-2]).stdout


@pytest.mark.parametrize(
    ("column", "values", "fragment"),
    [
        ("s", lambda s, y: s * 3.0, "'s' (prediction) has"),
        ("y", lambda s, y: y * 2, "'y' (target) must be binary"),
        ("s", lambda s, y: np.full_like(s, 0.3), "'s' (prediction) is constant"),
    ],
)
def test_bad_reference_names_the_column_and_drift_still_runs(files, column, values, fragment):
    reference = pq.read_table(files / "ref.parquet")
    s, y = reference.column("s").to_numpy(), reference.column("y").to_numpy()
    bad = reference.set_column(reference.schema.get_field_index(column), column, [values(s, y)])
    pq.write_table(bad, files / "bad.parquet")
    out = run(files / "bad.parquet", files / "current.parquet", *ARGS)
    assert out.returncode in (0, 1) and "Traceback" not in out.stderr, out.stderr
    doc = json.loads(out.stdout)
    assert doc["performance"]["estimated"] is None and fragment in doc["performance"]["error"]
    assert "bad.parquet" in doc["performance"]["error"] or "reference" in doc["performance"]["error"]
    assert "x" in doc["columns"]  # the drift comparison ran


@pytest.mark.parametrize(
    ("column", "values", "fragment"),
    [
        ("s", lambda s, y: s * 3.0 + 0.5, "column 's' (prediction) has"),
        ("y", lambda s, y: y * 2, "column 'y' (target) must be binary"),
    ],
)
def test_bad_current_names_the_column_and_drift_still_runs(files, column, values, fragment):
    current = pq.read_table(files / "current.parquet")
    s, y = current.column("s").to_numpy(), current.column("y").to_numpy()
    bad = current.set_column(current.schema.get_field_index(column), column, [values(s, y)])
    pq.write_table(bad, files / "bad-current.parquet", row_group_size=5000)
    out = run(files / "ref.parquet", files / "bad-current.parquet", *ARGS)
    assert out.returncode in (0, 1) and "Traceback" not in out.stderr, out.stderr
    doc = json.loads(out.stdout)
    error = doc["performance"]["error"]
    assert doc["performance"]["estimated"] is None and fragment in error and "\n" not in error
    assert "bad-current.parquet" in error  # the file is named
    assert {"x", "s"} <= set(doc["columns"])  # the drift comparison ran, the score's drift included
