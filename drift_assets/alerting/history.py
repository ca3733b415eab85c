"""Every window's measures as OpenMetrics samples stamped with the window's own time.

Prometheus scrapes only "now": the live exporter shows the latest window, so the weeks evaluated
by a backfill (or the demo) never reach its TSDB. This module writes the whole results store as an
OpenMetrics file with one sample per window and series, timestamped at the window's **end** (the
moment the live exporter would first have shown it; ``ml_window_end_timestamp_seconds`` says the
same). Load it into Prometheus's storage with::

    drift-assets export-history --out history.om
    promtool tsdb create-blocks-from openmetrics history.om /path/to/prometheus-data

then start (or restart) Prometheus on that storage path with a retention that covers the windows
(``--storage.tsdb.retention.time=400d``). ``max_over_time(ml_feature_psi[90d])`` and Grafana's
panels then see every window at its time.

Metric names and labels are the exporter's (``drift_assets.alerting.exporter``), so one dashboard
and one set of rules serve both. Per window: the feature, check and window gauges and the numeric
``extra`` entries of each drift document; ``ml_model_auc`` of each labelled window; the retraining
counters at each attempt's ``created_at``. The store's own health gauges (``ml_results_store_*``)
describe a scrape and are not history. A document that cannot be read is reported and skipped.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from drift_assets.alerting.exporter import (
    _COUNTERS,
    _GAUGES,
    _check_gauges,
    _column_gauges,
    _extra_gauges,
    _number,
    _window_gauges,
)
from drift_assets.monitoring.results_store import MonitorResults, ResultsStore, parse_timestamp

Labels = tuple[tuple[str, str], ...]


@dataclass
class _Family:
    name: str
    kind: str  # "gauge" | "counter"
    help: str
    samples: dict[Labels, dict[float, float]] = field(default_factory=dict)  # labels -> {timestamp: value}


@dataclass
class History:
    """Samples by family; ``errors`` lists the documents that were skipped, and why."""

    families: dict[str, _Family] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(
        self,
        name: str,
        labels: Labels,
        timestamp: float,
        value: float | None,
        kind: str = "gauge",
        help_text: str | None = None,
    ) -> None:
        if value is None or not math.isfinite(value):
            return
        family = self.families.get(name)
        if family is None:
            help_text = (_GAUGES.get(name) or _COUNTERS.get(name) or (help_text or name,))[0]
            family = self.families[name] = _Family(name, kind, help_text)
        family.samples.setdefault(labels, {})[timestamp] = value

    @property
    def sample_count(self) -> int:
        return sum(len(points) for f in self.families.values() for points in f.samples.values())

    def openmetrics(self) -> str:
        """The OpenMetrics text: families in name order, each series' samples in time order, ``# EOF``."""
        lines: list[str] = []
        for name in sorted(self.families):
            family = self.families[name]
            lines.append(f"# HELP {name} {_escape_help(family.help)}")
            lines.append(f"# TYPE {name} {family.kind}")
            sample_name = f"{name}_total" if family.kind == "counter" else name
            for labels in sorted(family.samples):
                rendered = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
                for timestamp, value in sorted(family.samples[labels].items()):
                    lines.append(f"{sample_name}{{{rendered}}} {_number_text(value)} {timestamp:.3f}")
        lines.append("# EOF")
        return "\n".join(lines) + "\n"


def _escape_label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _number_text(value: float) -> str:
    return repr(float(value))


_LABELS = {name: labels for name, (_, labels) in {**_GAUGES, **_COUNTERS}.items()}


def _labelled(name: str, values: Iterable[str]) -> Labels:
    return tuple(zip(_LABELS.get(name, ("model",)), values, strict=True))


def _add_drift_document(history: History, model: str, doc: Mapping) -> None:
    where = f"{model}/drift/{doc.get('partition', '?')}"
    start, end = parse_timestamp(doc["window_start"]), parse_timestamp(doc["window_end"])
    columns = doc.get("columns") or {}
    if not isinstance(columns, Mapping):
        raise ValueError(f"{where}: 'columns' should be an object")
    single = MonitorResults(
        monitor=model,
        latest_drift=dict(doc),
        window_seconds=(end - start).total_seconds(),
        last_evaluated_at=parse_timestamp(doc["evaluated_at"]),
        performance_by_version={},
        retraining=[],
    )
    # Collected first, as the exporter does: a content error leaves no half-exported window.
    gauges = _column_gauges(model, where, columns) + _check_gauges(model, where, doc)
    gauges += _window_gauges(model, where, doc, columns, single)
    extras = _extra_gauges(model, where, doc)
    at = end.timestamp()
    for name, values, value in gauges:
        history.add(name, _labelled(name, values), at, value)
    for name, values, value, help_text in extras:
        history.add(name, _labelled(name, values), at, value, help_text=help_text)


def _add_performance(history: History, model: str, doc: Mapping) -> None:
    if doc.get("status") != "ok" or not doc.get("window_end"):
        return  # labels pending (no AUC yet) or a record without its window
    where = f"{model}/performance/{doc.get('partition', '?')}"
    auc = _number(doc.get("auc"), f"{where}: auc")
    version = str(doc.get("model_version") or "unknown")
    history.add("ml_model_auc", (("model", model), ("model_version", version)), _window_end(doc), auc)


def _window_end(doc: Mapping) -> float:
    return parse_timestamp(doc["window_end"]).timestamp()


def _add_retraining(history: History, model: str, attempts: list[dict]) -> None:
    runs = promotions = 0
    for attempt in attempts:  # oldest first
        if not attempt.get("created_at"):
            continue
        at = parse_timestamp(attempt["created_at"]).timestamp()
        runs += 1
        promotions += attempt.get("status") == "promoted"
        history.add("ml_retraining_runs", (("model", model),), at, float(runs), kind="counter")
        history.add("ml_model_promotions", (("model", model),), at, float(promotions), kind="counter")


def collect_history(store: ResultsStore) -> History:
    """Every monitor's windows in ``store`` as timestamped samples."""
    history = History()
    errors: list[str] = []
    on_error: Callable[[Exception], None] = lambda exc: errors.append(str(exc))  # noqa: E731
    for model in store.monitors():
        for doc in store.drift_records(model, on_error=on_error):
            try:
                _add_drift_document(history, model, doc)
            except (ValueError, KeyError, TypeError) as exc:
                errors.append(f"{model}/drift/{doc.get('partition', '?')}: {exc}")
        for doc in store.performance_records(model, on_error=on_error):
            try:
                _add_performance(history, model, doc)
            except (ValueError, KeyError, TypeError) as exc:
                errors.append(f"{model}/performance/{doc.get('partition', '?')}: {exc}")
        _add_retraining(history, model, store.retraining_records(model, on_error=on_error))
    history.errors = errors
    return history


def windows_by_model(history: History) -> dict[str, int]:
    """How many windows each model has in the history (distinct ``ml_drift_detected`` timestamps)."""
    counts: dict[str, set[float]] = defaultdict(set)
    family = history.families.get("ml_drift_detected")
    for labels, points in family.samples.items() if family else ():
        counts[dict(labels)["model"]].update(points)
    return {model: len(stamps) for model, stamps in sorted(counts.items())}


__all__ = ["History", "collect_history", "windows_by_model"]
