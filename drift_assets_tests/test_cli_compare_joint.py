"""`drift-assets compare` with the multivariate and segment checks: on by default with two or more
features, `--no-multivariate`, `--domain-classifier`, `--segments a,b`; the JSON's `multivariate`
and `segments` objects and the checks in `checks` (exit 1 on an ERROR); bad input as one line."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_cli_compare import run

SEGMENT_SHARES = {"a": 0.50, "b": 0.42, "c": 0.08}


def table(n: int, seed: int, rho: float = 0.6, shift_in_c: float = 0.0) -> pa.Table:
    """x, y bivariate normal (correlation rho, marginals N(0,1) whatever rho), z, a category and a
    segment column; ``shift_in_c`` moves x by that many sd in segment c only."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=n)
    channel = rng.choice(list(SEGMENT_SHARES), size=n, p=list(SEGMENT_SHARES.values()))
    x = x + shift_in_c * (channel == "c")
    return pa.table(
        {
            "x": x,
            "y": y,
            "z": rng.gamma(2.0, 1.0, n),
            "kind": rng.choice(["p", "q", "r"], size=n, p=[0.5, 0.3, 0.2]),
            "channel": channel,
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("joint")
    out = {
        "reference": table(20_000, 1),
        "stationary": table(5_000, 2),
        "flipped": table(5_000, 3, rho=-0.6),
        "segment_shift": table(50_000, 4, shift_in_c=1.0),
    }
    for name, t in out.items():
        pq.write_table(t, d / f"{name}.parquet")
    return {name: d / f"{name}.parquet" for name in out}


FEATURES = ["--numerical", "x,y,z", "--categorical", "kind"]


def compare_json(files, current, *extra):
    proc = run(files["reference"], files[current], *FEATURES, "--json", "-", *extra)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def checks_named(doc, name):
    return [c for c in doc["checks"] if c["name"] == name]


@pytest.mark.slow  # several CLI runs
def test_correlation_flip_fails_the_multivariate_check_while_every_column_passes(files):
    code, doc = compare_json(files, "flipped")
    m = doc["multivariate"]
    assert set(m) >= {"reconstruction_error", "threshold", "domain_classifier_auc", "drifted", "explained_by"}
    assert m["drifted"] and m["reconstruction_error"] > m["threshold"] and m["domain_classifier_auc"] is None
    assert set(m["explained_by"]) >= {"x", "y"}
    [check] = checks_named(doc, "no_multivariate_drift")
    assert not check["passed"] and check["severity"] == "ERROR" and check["value"] == m["reconstruction_error"]
    assert code == 1 and "no_multivariate_drift" in doc["summary"]["failed_checks"]
    assert doc["summary"]["drift_detected"] is True
    others = [c for c in doc["checks"] if c["name"] != "no_multivariate_drift"]
    assert others and all(c["passed"] for c in others)  # the marginals did not move

    code, off = compare_json(files, "flipped", "--no-multivariate")
    assert code == 0 and not checks_named(off, "no_multivariate_drift")
    assert "--no-multivariate" in off["multivariate"]["skipped"] and off["multivariate"]["drifted"] is False


@pytest.mark.slow  # several CLI runs
def test_stationary_window_passes_and_text_output_shows_the_scores(files):
    code, doc = compare_json(files, "stationary")
    assert code == 0
    m = doc["multivariate"]
    assert not m["drifted"] and m["reconstruction_error"] <= m["threshold"] and m["explained_by"] == []
    assert checks_named(doc, "no_multivariate_drift")[0]["passed"]
    proc = run(files["reference"], files["stationary"], *FEATURES)
    assert proc.returncode == 0 and "multivariate: reconstruction error" in proc.stdout and "no drift" in proc.stdout


@pytest.mark.slow  # several CLI runs
def test_domain_classifier_adds_its_auc(files):
    code, doc = compare_json(files, "flipped", "--domain-classifier")
    assert code == 1
    auc = doc["multivariate"]["domain_classifier_auc"]
    assert auc is not None and auc > 0.6
    [check] = checks_named(doc, "no_multivariate_drift")
    assert check["method"] == "reconstruction_error+domain_classifier" and check["domain_classifier_auc"] == auc
    code, stationary = compare_json(files, "stationary", "--domain-classifier")
    assert code == 0 and stationary["multivariate"]["domain_classifier_auc"] < 0.6


@pytest.mark.slow  # several CLI runs
def test_segment_shift_fails_no_segment_drift_naming_segment_and_feature(files):
    code, doc = compare_json(files, "segment_shift", "--segments", "channel")
    segments = doc["segments"]
    assert set(segments) == {"channel=a", "channel=b", "channel=c"}
    c = segments["channel=c"]
    shares = pq.read_table(files["segment_shift"], columns=["channel"]).column("channel").to_pylist()
    assert c["rows"] == shares.count("c")
    assert set(c["columns"]) == {"x", "y", "z", "kind"}
    assert set(c["columns"]["x"]) == set(doc["columns"]["x"])  # the same per-column keys
    assert doc["columns"]["x"]["psi"] < 0.1  # the global PSI hardly moves
    [check] = checks_named(doc, "no_segment_drift")
    assert not check["passed"] and check["severity"] == "WARN"
    assert check["segment"] == "channel=c" and check["column"] == "x"
    # x now depends on channel, a joint change the multivariate check (ERROR) may see too.
    assert code == (1 if any(not c["passed"] and c["severity"] == "ERROR" for c in doc["checks"]) else 0)
    proc = run(files["reference"], files["segment_shift"], *FEATURES, "--segments", "channel", "--no-multivariate")
    assert proc.returncode == 0  # no_segment_drift is a WARN: exit 0
    assert "no_segment_drift[x] in channel=c" in proc.stdout


def test_small_segment_is_reported_skipped_not_passing(files):
    code, doc = compare_json(files, "stationary", "--segments", "channel")  # c: ~400 rows < 500
    assert "channel=c" not in doc["segments"]
    assert "min_segment_rows=500" in doc["segments_skipped"]["channel=c"]
    assert code == 0


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--segments", "nope"], ["reference.parquet", "'nope'"]),
        (["--segments", "x"], ["'x'"]),  # numerical: not a segment column
    ],
)
def test_bad_segment_column_is_one_line_exit_2(files, args, fragments):
    proc = run(files["reference"], files["stationary"], *FEATURES, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_single_feature_skips_multivariate_with_a_reason(files):
    proc = run(files["reference"], files["flipped"], "--numerical", "x", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert "at least 2 feature columns" in doc["multivariate"]["skipped"]
    assert doc["multivariate"]["reconstruction_error"] is None and not checks_named(doc, "no_multivariate_drift")
