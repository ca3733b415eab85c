"""The HTML report states this project's decision above Evidently's presets, gives Evidently the
column roles, lists where the two verdicts differ, shares Evidently's JS bundle, one file per
evaluation, linked as a URL (issue 15 item 2, the part inside monitoring/reports.py)."""

from __future__ import annotations

import base64

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import wasserstein_distance

from drift_assets.monitoring.reports import (
    decision_html,
    evidently_verdicts,
    render_evidently_report,
    report_file_name,
    report_url,
    share_assets,
    shared_asset_files,
    verdict_differences,
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


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Two renders shared by the tests (Evidently takes ~2 s each): the window's page as a standalone
    file, and with shared assets for a document whose verdict on "stable" is made to disagree."""
    ref, cur, specs = _tables()
    doc = _result_doc(ref, cur, specs)
    path = tmp_path_factory.mktemp("report") / "r.html"
    standalone = write_evidently_report(ref, cur, specs, path, decision=doc, title="fraud 2026-09-28")
    disagreeing = {**doc, "columns": {**doc["columns"], "stable": {**doc["columns"]["stable"], "drifted": True}}}
    shared = render_evidently_report(ref, cur, specs, decision=disagreeing, shared_assets=True)
    return ref, cur, doc, standalone.read_text(encoding="utf-8"), disagreeing, shared


def test_decision_section_states_the_checks_verdict(pages):
    ref, cur, doc, page, _, _ = pages
    assert doc["summary"]["drifted_features"] == ["amount"]  # a 1-sd shift; "stable" is not
    section = decision_html(doc, title="fraud 2026-09-28")
    assert section.startswith('<section id="drift-assets-decision"')
    assert "DRIFT: an ERROR check failed" in section
    assert "Drifted features: 1 of 2" in section and "share 0.500" in section
    assert f"{doc['columns']['amount']['psi']:.3f}" in section
    assert "feature_psi_below_retrain_threshold[amount]" in section
    assert "Wasserstein" in section and "Holm" in section  # which rule each side uses

    body = page.lower().index("<body")
    # The section is the first thing in the body, before Evidently's widgets (their data is in the head).
    assert page.index('<section id="drift-assets-decision"') == page.index(">", body) + 1
    assert page.index("</section>") < page.index('<div id="root_metric_')
    # Evidently has the roles: the drift preset measures the two features, the prediction is a
    # ValueDrift of its own, and the dataset table names the prediction and target columns.
    evidently = page[:body]
    assert '["prediction column", "score", "score"]' in evidently
    assert '["target column", "label", "label"]' in evidently


def test_evidently_judges_features_and_prediction_and_its_verdicts_are_read_back(pages):
    ref, cur, doc, page, disagreeing, shared = pages
    # The label is not a column Evidently judges drift on: features and the prediction only.
    assert set(shared.verdicts) == {"amount", "stable", "score"}
    amount = shared.verdicts["amount"]
    # 3,000 reference rows (> 1,000): Evidently's auto stattest is the normed Wasserstein at 0.1.
    assert amount["method"] == "Wasserstein distance (normed)" and amount["threshold"] == 0.1
    expected = wasserstein_distance(ref["amount"].to_numpy(), cur["amount"].to_numpy()) / np.std(ref["amount"])
    assert amount["value"] == pytest.approx(expected, rel=1e-9)
    assert amount["drifted"] and not shared.verdicts["stable"]["drifted"]
    # On the real document the two sides agree, and the page says so.
    assert verdict_differences(doc, shared.verdicts) == []
    assert "agree with this project's on every column" in page
    assert "Evidently: 1 of 2 features drifted by its own rule: amount; prediction score: not drifted." in page


def test_evidently_rules_per_method_and_a_listed_difference(pages):
    def metric(column, method, threshold, value):
        config = {"type": "evidently:metric_v2:ValueDrift", "column": column, "method": method, "threshold": threshold}
        return {"config": config, "value": value}

    snapshot = {
        "metrics": [
            metric("ks", "K-S p_value", 0.05, 0.05),  # p <= threshold: drift
            metric("chi", "chi-square p_value", 0.05, 0.05),  # p < threshold: no drift at equality
            metric("wd", "Wasserstein distance (normed)", 0.1, 0.1),  # distance >= threshold: drift
            metric("energy", "Energy-distance", 0.1, 0.1),  # distance > threshold: no drift at equality
            {"config": {"type": "evidently:metric_v2:MeanValue", "column": "x"}, "value": 1.0},
        ]
    }
    verdicts = evidently_verdicts(snapshot)
    assert {k: v["drifted"] for k, v in verdicts.items()} == {"ks": True, "chi": False, "wd": True, "energy": False}
    assert verdicts["wd"]["rule"] == "Wasserstein distance (normed) >= 0.1"

    _, _, _, _, disagreeing, shared = pages
    [(name, ours, theirs)] = verdict_differences(disagreeing, shared.verdicts)
    assert name == "stable" and ours["drifted"] and not theirs["drifted"]
    table = shared.html[shared.html.index('<table id="verdict-differences"') :]
    table = table[: table.index("</table>")]
    assert "<td>stable</td>" in table and "<td>amount</td>" not in table
    assert "Holm-adjusted KS p-value significant" in table
    assert "drifted when Wasserstein distance (normed) &gt;= 0.1" in table
    assert f"{shared.verdicts['stable']['value']:.3f}" in table


def test_the_bundle_is_shared_not_inlined(pages):
    _, _, _, standalone, _, page = pages
    assert page.shared
    js_name, font_name = shared_asset_files()
    assert f'<script src="_assets/{js_name}"></script>' in page.html
    assert f"url(_assets/{font_name})" in page.html
    bundle = shared_asset_files()[js_name].read_text(encoding="utf-8")
    assert bundle[:2000] in standalone and bundle[:2000] not in page.html
    assert len(page.html) < 0.15 * len(standalone)  # measured: 0.36 MB against 4.0 MB
    # A page that does not hold the bundle inline is left as it is.
    assert share_assets(page.html) == (page.html, False)
    # On Evidently's own page: exactly the two substitutions str.replace makes, nothing else; a page
    # holding the bundle twice is left whole rather than half-shared.
    js, font = shared_asset_files().values()
    inline_font = f"url(data:font/ttf;base64,{base64.b64encode(font.read_bytes()).decode()}) format('woff2');"
    expected = standalone.replace(
        f"<script>{js.read_text(encoding='utf-8')}</script>", f'<script src="x/{js_name}"></script>'
    )
    expected = expected.replace(inline_font, f"url(x/{font_name}) format('woff2');")
    assert expected != standalone and share_assets(standalone, prefix="x/") == (expected, True)
    assert share_assets(standalone + standalone) == (standalone + standalone, False)


def test_one_file_per_evaluation_and_a_url():
    assert report_file_name("2026-10-13-14:00", "abcdef1234567890") == "2026-10-13-1400-abcdef12.html"
    assert report_file_name("2026-09-28", None) == "2026-09-28.html"
    rel = "fraud/html/2026-09-28-abcdef12.html"
    assert report_url("/x/reports/" + rel, rel, "http://127.0.0.1:8765/") == "http://127.0.0.1:8765/" + rel
    assert report_url("/x/reports/" + rel, rel, "") == "file:///x/reports/" + rel
    assert report_url("s3://b/p/reports/" + rel, rel, "") is None
