"""Evidently HTML reports (new 0.7 API) for humans; the numbers that drive checks come from
``drift_assets.stats``. Evidently is slow on millions of rows, so the report is built on a seeded
sample of each table (``sample_source``, at most ~50,000 rows each).

The page opens with **this project's decision** (``decision_html``): the measures, thresholds,
drifted columns and failed checks exactly as the checks saw them (the window's result document), and
says which rule each side uses, so a reader who sees Evidently's own verdict below (its preset
stattests and dataset-drift share) knows why the two can differ; the columns where Evidently's
per-column verdict differs from this project's are listed with each side's rule and value.

Evidently is given the monitor's column roles (``DataDefinition``): the features as numerical /
categorical columns, the prediction (and the target, where the tables hold labels) as a
``BinaryClassification``. Its drift preset measures the features only (the share is comparable to
the checks' share of drifted features) and the prediction is one ``ValueDrift`` of its own.

Size: Evidently's standalone page inlines its 3.5 MB JavaScript bundle and a 95 kB icon font. With
``shared_assets`` the page references them under ``_assets/`` next to it instead (written once per
directory, named by Evidently's version and content hash, so an upgrade never breaks older pages).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from drift_assets.stats.profile import ColumnSpec
from drift_assets.storage.tables import TableSource

DEFAULT_MAX_ROWS = 50_000
REPORTS_URL_ENV = "DRIFT_ASSETS_REPORTS_URL"  # where the reports root is served (`make dev`: 127.0.0.1:8765)
SHARED_ASSETS_DIR = "_assets"  # next to the pages: <monitor>/html/_assets/


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


def _frame(table: pa.Table, numerical: Sequence[str]):
    import pandas as pd  # here: the report module is imported on the drift path, pandas only for Evidently

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


def decision_html(doc: Mapping, title: str = "", evidently: Mapping[str, Mapping] | None = None) -> str:
    """This project's verdict for the window, from its result document (``DriftResult.to_dict()``
    or the stored drift JSON): a self-contained HTML section put above Evidently's presets. With
    ``evidently`` (``evidently_verdicts`` of the same report) it lists where the two verdicts differ."""
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
{"<h2>Evidently's verdict</h2>" + _differences_html(doc, evidently) if evidently is not None else ""}
<p style="color:#555">Evidently's report follows.</p></section>"""


# Evidently's per-column rule: the stattests of evidently.legacy.calculations.stattests (0.7.23) call
# a distance drifted at or above its threshold, a p-value below it (``<=`` for KS and Cramer-von Mises).
_DISTANCE_RULES = {
    "Wasserstein distance (normed)": ">=",
    "Jensen-Shannon distance": ">=",
    "PSI": ">=",
    "Hellinger distance": ">=",
    "Kullback-Leibler divergence": ">=",
    "Energy-distance": ">",
}
_PVALUE_AT_MOST = {"K-S p_value", "Cramer-von Mises"}


def _evidently_rule(method: str) -> str:
    return _DISTANCE_RULES.get(method) or ("<=" if method in _PVALUE_AT_MOST else "<")


def evidently_verdicts(snapshot: Mapping) -> dict[str, dict]:
    """Evidently's verdict per column from ``snapshot.dict()``: each ``ValueDrift`` metric's method,
    threshold, value and whether that value is drift under the method's rule."""
    out: dict[str, dict] = {}
    for metric in snapshot.get("metrics") or []:
        config = metric.get("config") or {}
        if not str(config.get("type", "")).endswith(":ValueDrift") or metric.get("value") is None:
            continue
        method, threshold, value = str(config.get("method")), float(config["threshold"]), float(metric["value"])
        rule = _evidently_rule(method)
        drifted = {">=": value >= threshold, ">": value > threshold, "<=": value <= threshold}.get(
            rule, value < threshold
        )
        out[str(config["column"])] = {
            "method": method,
            "threshold": threshold,
            "value": value,
            "rule": f"{method} {rule} {threshold:g}",
            "drifted": bool(drifted),
        }
    return out


def verdict_differences(doc: Mapping, evidently: Mapping[str, Mapping]) -> list[tuple[str, Mapping, Mapping]]:
    """The columns both sides judged and judged differently: (name, this project's column, Evidently's)."""
    columns = doc.get("columns") or {}
    return [
        (name, columns[name], ev)
        for name, ev in sorted(evidently.items())
        if name in columns and columns[name].get("drifted") is not None
        if bool(columns[name]["drifted"]) != ev["drifted"]
    ]


def _project_rule(col: Mapping) -> str:
    test = "KS" if col.get("kind") == "numerical" else "chi-square"
    effect = "normed Wasserstein" if col.get("kind") == "numerical" else "largest category share change"
    adjusted = "Holm-adjusted " if col.get("role") == "feature" else ""
    return f"{adjusted}{test} p-value significant AND effect large (PSI or {effect} above its minimum)"


def evidently_summary(doc: Mapping, evidently: Mapping[str, Mapping]) -> str:
    """Evidently's count, said as the checks say theirs: drifted features of all features, then the
    prediction's verdict apart (roles from the window's document)."""
    roles = {name: col.get("role") for name, col in (doc.get("columns") or {}).items()}
    features = sorted(n for n in evidently if roles.get(n, "feature") == "feature")
    drifted = [n for n in features if evidently[n]["drifted"]]
    text = f"{len(drifted)} of {len(features)} features drifted by its own rule"
    text += f": {', '.join(drifted)}" if drifted else ""
    for name in sorted(set(evidently) - set(features)):
        text += f"; {roles.get(name)} {name}: {'drifted' if evidently[name]['drifted'] else 'not drifted'}"
    return text


def _differences_html(doc: Mapping, evidently: Mapping[str, Mapping]) -> str:
    head = f"<p>Evidently: {html.escape(evidently_summary(doc, evidently))}.</p>"
    differences = verdict_differences(doc, evidently)
    if not differences:
        return head + "<p>Evidently's per-column verdicts agree with this project's on every column.</p>"
    rows = ""
    for name, col, ev in differences:
        effect = (
            col.get("wasserstein_normed") if col.get("kind") == "numerical" else col.get("max_category_share_change")
        )
        ours = (
            f"{'drifted' if col.get('drifted') else 'not drifted'}: PSI {_fmt(col.get('psi'))}, p-value "
            f"{_fmt(col.get('adjusted_pvalue'))}, effect {_fmt(effect)}<br><small>{_project_rule(col)}</small>"
        )
        theirs = (
            f"{'drifted' if ev['drifted'] else 'not drifted'}: {html.escape(ev['method'])} {_fmt(ev['value'])}"
            f"<br><small>drifted when {html.escape(ev['rule'])}</small>"
        )
        rows += f"<tr><td>{html.escape(name)}</td><td>{ours}</td><td>{theirs}</td></tr>"
    return (
        head
        + f"<p>Where the verdicts differ ({len(differences)} column(s)):</p>"
        + '<table id="verdict-differences" border="1" cellpadding="4" style="border-collapse:collapse">'
        + "<tr><th>column</th><th>this project (the checks)</th><th>Evidently</th></tr>"
        + rows
        + "</table>"
    )


def _insert_after_body(page: str, section: str) -> str:
    match = re.search(r"<body[^>]*>", page, re.IGNORECASE)
    if match is None:
        return section + page
    return page[: match.end()] + section + page[match.end() :]


@functools.lru_cache(maxsize=1)
def _static_files() -> tuple[Path, Path]:
    from evidently.legacy.utils.dashboard import STATIC_PATH

    return Path(STATIC_PATH) / "index.js", Path(STATIC_PATH) / "material-ui-icons.woff2"


@functools.lru_cache(maxsize=1)
def shared_asset_files() -> dict[str, Path]:
    """What a page written with shared assets references: file name under ``_assets/`` -> the
    installed Evidently file to copy there (named by version and content hash)."""
    import evidently

    js, font = _static_files()
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest()[:10] for p in (js, font)}
    return {
        f"evidently-{evidently.__version__}-{digest[js]}.js": js,
        f"material-ui-icons-{digest[font]}.woff2": font,
    }


@functools.lru_cache(maxsize=1)
def _inlined_assets() -> tuple[str, str]:
    """The bundle's ``<script>`` and the font's ``src`` exactly as Evidently 0.7 inlines them in a
    standalone page; built once per process (reading and decoding 3.5 MB costs ~40 ms a page)."""
    js, font = _static_files()
    return (
        f"<script>{js.read_text(encoding='utf-8')}</script>",
        f"url(data:font/ttf;base64,{base64.b64encode(font.read_bytes()).decode()}) format('woff2');",
    )


def _replace_once(page: str, old: str, new: str) -> str | None:
    """``page`` with its one occurrence of ``old`` replaced; None for none or several. One ``find``
    past the match instead of ``count`` + ``replace`` (two more scans of a 4 MB page)."""
    at = page.find(old)
    if at < 0 or page.find(old, at + len(old)) >= 0:
        return None
    return page[:at] + new + page[at + len(old) :]


def share_assets(page: str, prefix: str = SHARED_ASSETS_DIR + "/") -> tuple[str, bool]:
    """Replace the page's inlined Evidently bundle and icon font by references to ``shared_asset_files``
    under ``prefix``; unchanged (and False) when the page does not hold them inline as Evidently 0.7
    writes them, so a page is never left half-shared."""
    inline_js, inline_font = _inlined_assets()
    js_name, font_name = shared_asset_files()
    shared = _replace_once(page, inline_js, f'<script src="{prefix}{js_name}"></script>')
    shared = (
        None if shared is None else _replace_once(shared, inline_font, f"url({prefix}{font_name}) format('woff2');")
    )
    return (page, False) if shared is None else (shared, True)


@functools.lru_cache(maxsize=1)
def _summary_preset():
    """Evidently's DataSummaryPreset renders its dataset table with no classification task, so the
    page says prediction column "None" whatever the DataDefinition; this one renders it with the
    definition's task (``default``), so the table names the prediction and target columns."""
    from evidently.core.report import _default_input_data_generator
    from evidently.legacy.metrics import DatasetSummaryMetric
    from evidently.legacy.model.widget import link_metric
    from evidently.presets import DataSummaryPreset

    class RolesDataSummaryPreset(DataSummaryPreset):
        def render(self, context, child_widgets=None):
            task = "default" if context.data_definition.classification else None
            _, render = context.get_legacy_metric(DatasetSummaryMetric(), _default_input_data_generator, task)
            for metric in self.list_metrics(context):
                link_metric(render, metric)
            return render

    return RolesDataSummaryPreset


def _classification(specs: Sequence[ColumnSpec], prediction_kind: str | None, target: str | None):
    """The prediction as a BinaryClassification (a probability or a label); None for another kind
    (a regression's number, a multiclass label), which Evidently then sees as a plain column."""
    from evidently import BinaryClassification

    prediction = next((s for s in specs if s.role == "prediction"), None)
    if prediction is None:
        return None
    kind = prediction_kind or ("probability" if prediction.kind == "numerical" else "categorical")
    # BinaryClassification needs a target name: a column absent from both tables is allowed.
    label = target or next((s.name for s in specs if s.role == "target"), "target")
    if kind == "probability":
        return BinaryClassification(target=label, prediction_probas=prediction.name)
    if kind == "categorical":
        return BinaryClassification(target=label, prediction_labels=prediction.name)
    return None


def _has_labels(specs: Sequence[ColumnSpec], reference: pa.Table, current: pa.Table) -> str | None:
    """The target column when both tables hold it with every row labelled (Evidently refuses a
    column present in only one table)."""
    target = next((s.name for s in specs if s.role == "target"), None)
    tables = (reference, current)
    if target and all(target in t.schema.names and t.num_rows and t.column(target).null_count == 0 for t in tables):
        return target
    return None


@dataclass(frozen=True)
class EvidentlyPage:
    html: str
    verdicts: dict[str, dict]  # Evidently's verdict per column (``evidently_verdicts``)
    shared: bool  # the page references ``shared_asset_files`` under ``_assets/``


def render_evidently_report(
    reference: pa.Table,
    current: pa.Table,
    specs: Sequence[ColumnSpec],
    decision: Mapping | None = None,
    title: str = "",
    *,
    prediction_kind: str | None = None,
    shared_assets: bool = False,
) -> EvidentlyPage:
    """Data drift + data summary report of the two (sampled) tables; with ``decision`` (the window's
    result document) the page opens with ``decision_html`` and lists the columns where Evidently's
    verdict differs. ``shared_assets``: reference Evidently's bundle under ``_assets/`` (see
    ``shared_asset_files``; the caller stores them) instead of inlining it."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import ClassificationPreset, DataDriftPreset

    present = [s for s in specs if s.name in current.schema.names and s.role != "target"]
    features = [s.name for s in present if s.role == "feature"]
    target = _has_labels(specs, reference, current)
    classification = _classification(present, prediction_kind, target)
    numerical = [s.name for s in present if s.kind == "numerical"]
    categorical = [s.name for s in present if s.kind == "categorical"]
    definition = DataDefinition(
        numerical_columns=numerical,
        categorical_columns=categorical,
        classification=[classification] if classification else None,
    )
    names = [s.name for s in present] + ([target] if target and classification else [])
    ref_df = _frame(reference.select(names), numerical)
    cur_df = _frame(current.select(names), numerical)
    # Drift over the features only (its share is comparable to the checks'); the prediction apart.
    presets: list = [DataDriftPreset(columns=features)]
    presets += [ValueDrift(column=s.name) for s in present if s.role == "prediction"]
    presets.append(_summary_preset()())
    if classification and target:
        presets.append(ClassificationPreset())
    snapshot = Report(presets).run(
        current_data=Dataset.from_pandas(cur_df, data_definition=definition),
        reference_data=Dataset.from_pandas(ref_df, data_definition=definition),
    )
    page = snapshot.get_html_str(as_iframe=False)
    shared = False
    if shared_assets:
        page, shared = share_assets(page)
    verdicts = evidently_verdicts(snapshot.dict())
    if decision is not None:
        page = _insert_after_body(page, decision_html(decision, title, evidently=verdicts))
    return EvidentlyPage(page, verdicts, shared)


def write_evidently_report(
    reference: pa.Table,
    current: pa.Table,
    specs: Sequence[ColumnSpec],
    path: str | Path,
    decision: Mapping | None = None,
    title: str = "",
    *,
    prediction_kind: str | None = None,
    shared_assets: bool = False,
) -> Path:
    """``render_evidently_report`` saved to ``path`` (standalone unless ``shared_assets``)."""
    page = render_evidently_report(
        reference, current, specs, decision, title, prediction_kind=prediction_kind, shared_assets=shared_assets
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page.html, encoding="utf-8")
    return path
