"""The results store: one JSON document per evaluated window, read by the Prometheus exporter and
by ``drift-assets`` commands. Layout under the reports root::

    <monitor>/drift/<partition>.json
    <monitor>/performance/<partition>.json
    <monitor>/retraining/<version>.json
    <monitor>/html/<partition>-<run id>.html   (the evidently_report asset)
    <monitor>/html/_assets/                     (Evidently's JS bundle and font, once)
"""

from __future__ import annotations

import datetime as dt

from drift_assets.monitoring.config import MonitorConfig
from drift_assets.monitoring.results_store import (
    ResultsStore,  # one definition of the layout
)
from drift_assets.monitoring.windows import Window
from drift_assets.stats import DriftResult, WindowSummary
from drift_assets.storage.root import Root


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _header(monitor: MonitorConfig, window: Window) -> dict:
    return {
        "monitor": monitor.name,
        "partition": window.key,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "evaluated_at": now_iso(),
    }


def record_drift(
    reports: Root,
    monitor: MonitorConfig,
    window: Window,
    result: DriftResult,
    summary: WindowSummary,
    *,
    model_version: str | None,
    html_report: str | None = None,
    extra: dict | None = None,
    extra_checks=(),
    reference_version: str | None = None,
    sections: dict | None = None,
) -> dict:
    """The window's document; ``extra_checks`` (sudden-change, multivariate, segment checks) join the
    core's checks; ``sections`` (``multivariate``, ``segments``) are top-level objects of their own.

    ``reference_lineage`` says which reference the window was measured against
    (``reference_version``: a champion's name, or ``configured``) and, when the window was served
    by another model than that reference's (a backfill of a week evaluated before the current
    champion), a ``note`` saying so: its drift is then relative to a model that did not serve it."""
    result_doc = result.to_dict()
    if extra_checks:
        result_doc["checks"] += [c.to_dict() for c in extra_checks]
        failed = [c for c in extra_checks if not c.passed]
        result_doc["summary"]["all_passed"] = result_doc["summary"]["all_passed"] and not failed
        result_doc["summary"]["drift_detected"] = result_doc["summary"]["drift_detected"] or any(
            c.severity == "ERROR" for c in failed
        )
        result_doc["summary"]["failed_checks"] = sorted(
            set(result_doc["summary"]["failed_checks"]) | {c.name for c in failed}
        )
    record = {
        **_header(monitor, window),
        "model_version": model_version,
        "reference_lineage": reference_lineage(model_version, reference_version),
        **result_doc,
        "problems": summary.problems,
        "html_report": html_report,
        "extra": extra or {},
        **(sections or {}),
    }
    reports.write_json(ResultsStore.drift_path(monitor.name, window.key), record)
    return record


def reference_lineage(served_by: str | None, reference_version: str | None) -> dict[str, str]:
    out = {"reference_version": reference_version or "unknown"}
    served = {v for v in (served_by or "").split(",") if v}
    owner = reference_version if reference_version not in (None, "configured") else None
    if owner and served and owner not in served:
        out["note"] = (
            f"window served by {', '.join(sorted(served))}, measured against the reference of {owner} (the champion "
            "since): its drift is relative to a model that did not serve it; no retraining is requested for it"
        )
    return out


def record_performance(reports: Root, monitor: MonitorConfig, window: Window, performance: dict) -> dict:
    record = {**_header(monitor, window), **performance}
    reports.write_json(ResultsStore.performance_path(monitor.name, window.key), record)
    return record


def record_retraining(reports: Root, monitor: MonitorConfig, name: str, record: dict) -> str:
    """One retraining attempt: ``name`` is the version (``v0002``) or ``failed-<run id>``."""
    return reports.write_json(ResultsStore.retraining_path(monitor.name, name), record)
