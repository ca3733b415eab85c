"""The drift report's materialisation metadata tells the numbers as they are: a KS p-value of 0 is
shown as 0 (not turned into 1), and ``failed_checks`` names the sudden-change checks too."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from scipy import stats as sps

from drift_assets.orchestration.monitor_assets import _drift_metadata
from drift_assets.stats import CheckOutcome, compare, fit_profile, infer_column_specs, summarize
from drift_assets.stats.checks import SUDDEN_RATE_CHANGE, SUDDEN_SHIFT


def _result(shift: float):
    rng = np.random.default_rng(7)
    n = 5000
    reference = pa.table({"x": rng.normal(size=n), "score": rng.uniform(size=n)})
    current = pa.table({"x": rng.normal(size=n), "score": rng.uniform(size=n) + shift})
    specs = infer_column_specs(reference.schema, prediction="score")
    profile = fit_profile(reference, specs)
    return compare(profile, summarize(profile, [current])), reference, current


def test_a_zero_prediction_pvalue_is_shown_as_zero(monkeypatch):
    monkeypatch.delenv("DRIFT_ASSETS_REPORTS_URL", raising=False)  # `make test` exports it
    result, reference, current = _result(shift=5.0)  # disjoint ranges: KS distance 1
    assert sps.ks_2samp(reference["score"], current["score"]).pvalue == 0.0  # the independent answer
    assert result.summary()["prediction_ks_pvalue"] == 0.0
    meta = _drift_metadata(result, {}, "/r/fraud/drift/w.json", "fraud/drift/w.json")
    assert meta["prediction_ks_pvalue"].value == 0.0
    assert meta["results_url"].value == "file:///r/fraud/drift/w.json"  # no base URL: the local file


def test_the_results_link_is_under_the_served_reports_url(monkeypatch):
    monkeypatch.setenv("DRIFT_ASSETS_REPORTS_URL", "http://127.0.0.1:8765/")
    result, _, _ = _result(shift=0.0)
    meta = _drift_metadata(result, {}, "/r/fraud/drift/2026-10-13-14:00.json", "fraud/drift/2026-10-13-14:00.json")
    assert meta["results_url"].value == "http://127.0.0.1:8765/fraud/drift/2026-10-13-14%3A00.json"


def test_sudden_change_failures_are_listed_in_failed_checks():
    result, _, _ = _result(shift=0.0)
    sudden = CheckOutcome(SUDDEN_SHIFT, "output_length", False, "ERROR", 0.6, 0.25)
    calm = CheckOutcome(SUDDEN_RATE_CHANGE, "refusal", True, "WARN", 0.01, 0.25)
    meta = _drift_metadata(result, {}, "/r/fraud/drift/w.json", "fraud/drift/w.json", (sudden, calm))
    listed = meta["failed_checks"].value
    assert f"{SUDDEN_SHIFT}[output_length]/ERROR" in listed
    assert SUDDEN_RATE_CHANGE not in listed
    assert _drift_metadata(result, {}, "/r/fraud/drift/w.json", "fraud/drift/w.json")["failed_checks"].value == "(none)"
