"""The results store: one JSON document per evaluated window, read by the Prometheus exporter and
by ``drift-assets`` commands. Layout under the reports root::

    <monitor>/drift/<partition>.json
    <monitor>/performance/<partition>.json
    <monitor>/retraining/<version>.json
    <monitor>/html/<partition>.html
"""

from __future__ import annotations

import datetime as dt

from drift_assets.config import MonitorConfig
from drift_assets.stats import DriftResult, WindowSummary
from drift_assets.storage import Root
from drift_assets.windows import Window


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def record_drift(
    reports: Root,
    monitor: MonitorConfig,
    window: Window,
    result: DriftResult,
    summary: WindowSummary,
    *,
    model_version: str | None,
    html_report: str | None,
    extra: dict | None = None,
) -> dict:
    record = {
        "monitor": monitor.name,
        "partition": window.key,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "evaluated_at": now_iso(),
        "model_version": model_version,
        **result.to_dict(),
        "problems": summary.problems,
        "html_report": html_report,
        "extra": extra or {},
    }
    reports.write_json(f"{monitor.name}/drift/{window.key}.json", record)
    return record


def record_performance(reports: Root, monitor: MonitorConfig, window: Window, performance: dict) -> dict:
    record = {
        "monitor": monitor.name,
        "partition": window.key,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "evaluated_at": now_iso(),
        **performance,
    }
    reports.write_json(f"{monitor.name}/performance/{window.key}.json", record)
    return record
