"""Evidently HTML reports (new 0.7 API) for humans; the numbers that drive checks come from
``drift_assets.stats``. Evidently is slow on millions of rows, so the report is built on a seeded
sample of each table (``sample_source``, at most ~50,000 rows each).

The page opens with **this project's decision** (``decision_html``): the measures, thresholds,
drifted columns and failed checks exactly as the checks saw them (the window's result document), and
says which rule each side uses, so a reader who sees Evidently's own verdict below (its preset
stattests and dataset-drift share) knows why the two can differ. The label (target role) is not
given to Evidently's drift preset: labels arrive late, and the checks do not count it as a feature.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from drift_assets.stats.profile import ColumnSpec
from drift_assets.storage.tables import TableSource

DEFAULT_MAX_ROWS = 50_000
REPORTS_URL_ENV = "DRIFT_ASSETS_REPORTS_URL"  # where the reports root is served (`make dev`: 127.0.0.1:8765)


def report_file_name(key: str, run_id: str | None) -> str:
    """One file per evaluation: the window key (no ':') and the run id's first 8 characters, so a
    re-evaluation never overwrites the report the first (failing) run saw."""
    stem = key.replace(":", "")
    return f"{stem}-{run_id[:8]}.html" if run_id else f"{stem}.html"


def report_url(uri: str, relative: str, base_url: str | None = None) -> str | None:
    """A URL the Dagster UI can open: ``base_url`` (default $DRIFT_ASSETS_REPORTS_URL) + the path under
    the reports root; else ``file://`` for a local file; None for object storage without a base URL."""
    import os
    from urllib.parse import quote

    base = base_url if base_url is not None else os.environ.get(REPORTS_URL_ENV, "")
    if base:
        return base.rstrip("/") + "/" + quote(relative.lstrip("/"))
    if uri.startswith("/"):
        return "file://" + quote(uri)
    return None


def sample_source(
    source: TableSource, columns: Sequence[str], max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0
) -> pa.Table:
    """A seeded sample of about ``max_rows`` rows, drawn batch by batch while streaming: a week of
    millions of rows is never loaded whole just to draw a report from it."""
    batches = source.batches(columns)
    total = source.num_rows()
    if total is None or total <= max_rows:
        return pa.Table.from_batches(list(batches))
    rng = np.random.default_rng(seed)
    keep = max_rows / total
    return pa.Table.from_batches([b.filter(pa.array(rng.random(b.num_rows) < keep)) for b in batches])


def _frame(table: pa.Table, numerical: Sequence[str]) -> pd.DataFrame:
    frame = table.to_pandas()
    for col in numerical:  # Evidently wants floats; arrow ints with nulls arrive as objects.
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) >= 0.001 or value == 0 else f"{value:.1e}"
    return html.escape(str(value))


def _column_row(name: str, col: Mapping) -> str:
    pvalue = col.get(
        "adjusted_pvalue", col.get("ks_pvalue") if col.get("kind") == "numerical" else col.get("chi2_pvalue")
    )
    cells = [name, col.get("role"), col.get("kind"), col.get("psi"), pvalue, col.get("missing_rate")]
    return (
        "<tr>"
        + "".join(f"<td>{_fmt(c)}</td>" for c in cells)
        + f"<td>{'YES' if col.get('drifted') else 'no'}</td></tr>"
    )


def decision_html(doc: Mapping, title: str = "") -> str:
    """This project's verdict for the window, from its result document (``DriftResult.to_dict()``
    or the stored drift JSON): a self-contained HTML section put above Evidently's presets."""
    summary = doc.get("summary") or {}
    checks = doc.get("checks") or []
    failed = [c for c in checks if not c.get("passed", True)]
    thresholds: dict[str, float] = {}
    for c in checks:
        if c.get("threshold") is not None:
            thresholds.setdefault(str(c.get("name")), c["threshold"])
    verdict = (
        "DRIFT: an ERROR check failed" if any(c.get("severity") == "ERROR" for c in failed) else "no ERROR check failed"
    )
    rows = "".join(_column_row(name, col) for name, col in sorted((doc.get("columns") or {}).items()))
    failed_items = "".join(
        f"<li>{_fmt(c.get('severity'))} {html.escape(str(c.get('name')))}"
        f"{'[' + html.escape(str(c['column'])) + ']' if c.get('column') else ''}: value {_fmt(c.get('value'))} "
        f"vs threshold {_fmt(c.get('threshold'))}</li>"
        for c in failed
    )
    threshold_items = "".join(f"<li>{html.escape(k)}: {_fmt(v)}</li>" for k, v in sorted(thresholds.items()))
    drifted = ", ".join(map(html.escape, summary.get("drifted_features") or [])) or "(none)"
    features = sum(1 for c in (doc.get("columns") or {}).values() if c.get("role") == "feature")
    return f"""<section id="drift-assets-decision" style="font-family:sans-serif;margin:16px;padding:16px;
border:2px solid #333;border-radius:6px;background:#fafafa">
<h1>drift_assets decision{(": " + html.escape(title)) if title else ""}</h1>
<p><b>{verdict}</b>. Drifted features: {len(summary.get("drifted_features") or [])} of {features}
(share {_fmt(summary.get("share_drifted"))}): {drifted}.</p>
<p>Rule (this project, what the Dagster checks and alerts use): PSI per feature on bins fitted on the
reference (thresholds below); a feature is drifted when its KS (numerical) / chi-square (categorical)
test is significant after Holm's multiple-testing adjustment AND its effect is large enough; the window
drifts when an ERROR check fails. The label is not a
feature. Below, Evidently's presets use <i>their own</i> rule (auto stattest: KS/chi-square at p &lt; 0.05
for a reference of at most 1000 rows, else normed Wasserstein / Jensen-Shannon at 0.1; dataset drift at
a drifted share of 0.5), on a sample of each table: where its verdict differs, this section is the
project's answer.</p>
<h2>Failed checks</h2><ul>{failed_items or "<li>(none)</li>"}</ul>
<h2>Thresholds</h2><ul>{threshold_items or "<li>(none)</li>"}</ul>
<h2>Measures</h2><table border="1" cellpadding="4" style="border-collapse:collapse">
<tr><th>column</th><th>role</th><th>kind</th><th>PSI</th><th>p-value (adjusted)</th><th>missing</th>
<th>drifted</th></tr>
{rows}</table>
<p style="color:#555">Evidently's report follows.</p></section>"""


def _insert_after_body(page: str, section: str) -> str:
    match = re.search(r"<body[^>]*>", page, re.IGNORECASE)
    if match is None:
        return section + page
    return page[: match.end()] + section + page[match.end() :]


def write_evidently_report(
    reference: pa.Table,
    current: pa.Table,
    specs: Sequence[ColumnSpec],
    path: str | Path,
    decision: Mapping | None = None,
    title: str = "",
) -> Path:
    """Data drift + data summary report of the two (sampled) tables, saved as standalone HTML;
    with ``decision`` (the window's result document) the page opens with ``decision_html``."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    names = [s.name for s in specs if s.name in current.schema.names and s.role != "target"]
    numerical = [s.name for s in specs if s.kind == "numerical" and s.name in names]
    categorical = [s.name for s in specs if s.kind == "categorical" and s.name in names]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    ref_df = _frame(reference.select(names), numerical)
    cur_df = _frame(current.select(names), numerical)
    report = Report([DataDriftPreset(), DataSummaryPreset()])
    snapshot = report.run(
        current_data=Dataset.from_pandas(cur_df, data_definition=definition),
        reference_data=Dataset.from_pandas(ref_df, data_definition=definition),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    if decision is not None:
        path.write_text(_insert_after_body(path.read_text(encoding="utf-8"), decision_html(decision, title)), "utf-8")
    return path
