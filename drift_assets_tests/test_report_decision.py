"""The HTML report states this project's decision above Evidently's presets, one file per evaluation,
linked as a URL (issue 15 item 2, the part inside monitoring/reports.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from drift_assets.monitoring.reports import (
    decision_html,
    report_file_name,
    report_url,
    write_evidently_report,
)
from drift_assets.stats import DecisionRules, compare, fit_profile, summarize
from drift_assets.stats.profile import ColumnSpec


def _tables():
    rng = np.random.default_rng(5)
    n = 3000
    ref = pa.table(
        {
            "amount": rng.normal(0, 1, n),
            "stable": rng.normal(0, 1, n),
            "score": rng.uniform(0, 1, n),
            "label": (rng.uniform(0, 1, n) < 0.1).astype("int64"),
        }
    )
    cur = pa.table(
        {
            "amount": rng.normal(1.0, 1, n),
            "stable": rng.normal(0, 1, n),
            "score": rng.uniform(0, 1, n),
            "label": (rng.uniform(0, 1, n) < 0.1).astype("int64"),
        }
    )
    specs = [
        ColumnSpec("amount", "numerical"),
        ColumnSpec("stable", "numerical"),
        ColumnSpec("score", "numerical", "prediction"),
        ColumnSpec("label", "numerical", "target"),
    ]
    return ref, cur, specs


def _result_doc(ref, cur, specs):
    profile = fit_profile(ref, specs)
    window = summarize(profile, cur.to_batches())
    return compare(profile, window, DecisionRules()).to_dict()


def test_decision_section_states_the_checks_verdict(tmp_path):
    ref, cur, specs = _tables()
    doc = _result_doc(ref, cur, specs)
    assert doc["summary"]["drifted_features"] == ["amount"]  # a 1-sd shift; "stable" is not
    section = decision_html(doc, title="fraud 2026-09-28")
    assert section.startswith('<section id="drift-assets-decision"')
    assert "DRIFT: an ERROR check failed" in section
    assert "Drifted features: 1 of 2" in section and "share 0.500" in section
    assert f"{doc['columns']['amount']['psi']:.3f}" in section
    assert "feature_psi_below_retrain_threshold[amount]" in section
    assert "Wasserstein" in section and "Holm" in section  # which rule each side uses

    path = write_evidently_report(ref, cur, specs, tmp_path / "r.html", decision=doc, title="fraud 2026-09-28")
    page = path.read_text(encoding="utf-8")
    body = page.lower().index("<body")
    # The section is the first thing in the body, before Evidently's widgets (their data is in the head).
    assert page.index('<section id="drift-assets-decision"') == page.index(">", body) + 1
    assert page.index("</section>") < page.index('<div id="root_metric_')
    # The label is not a feature to Evidently's drift preset either: 3 columns, not 4.
    evidently = page[:body]
    assert '"column_name": "amount"' in evidently and '"column_name": "label"' not in evidently
    assert '{"value": "3", "label": "Columns"}' in evidently


def test_one_file_per_evaluation_and_a_url():
    assert report_file_name("2026-10-13-14:00", "abcdef1234567890") == "2026-10-13-1400-abcdef12.html"
    assert report_file_name("2026-09-28", None) == "2026-09-28.html"
    rel = "fraud/html/2026-09-28-abcdef12.html"
    assert report_url("/x/reports/" + rel, rel, "http://127.0.0.1:8765/") == "http://127.0.0.1:8765/" + rel
    assert report_url("/x/reports/" + rel, rel, "") == "file:///x/reports/" + rel
    assert report_url("s3://b/p/reports/" + rel, rel, "") is None
