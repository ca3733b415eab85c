"""Prometheus metrics read from the results store on every scrape.

``DriftResultsCollector`` is a custom collector: each scrape lists the store and reads the
documents, so what Prometheus sees is always what the store holds (no background loop, no
cache). A store that cannot be read never fails the scrape: the readable part is exported,
``ml_results_store_up`` is 0 and ``ml_results_store_read_errors_total`` counts the errors (each
is logged with the file it concerns). A corrupt file is skipped, so one bad document does not
blank (and resolve the alerts of) the other models.

The exporter does not pass silence off as health:

* a root that does not exist (a mistyped reports root, or nothing evaluated yet) or holds no
  monitor is ``ml_results_store_up 0`` with ``ml_results_store_problem{reason="missing"|"empty"}
  1`` (and a log line naming the root), so ResultsStoreDown fires instead of nothing at all;
* ``ml_results_store_errors{model}`` is the number of that monitor's files this scrape could not
  read (0 when clean);
* when a monitor's newest drift file (by partition key) is unreadable, that monitor's window
  metrics are *withheld*, not taken from the previous window (which would present an old window
  as the latest): ``ml_results_store_problem{reason="corrupt_latest"}`` and the log name the file.

``ml_results_store_problem`` has one series per reason while ``ml_results_store_up`` is 0:
``missing``, ``empty``, ``not_a_directory``, ``unreadable`` (listing failed, e.g. S3 down),
``corrupt_files`` (some files skipped) and ``corrupt_latest``.

Segment label cardinality: only segments evaluated in the latest window are exported (at least
``min_segment_rows`` rows), and at most 20 values per segment column are ever kept
(``stats.segments.DEFAULT_MAX_SEGMENTS``, the most frequent in the reference), so a monitor with
``s`` segment columns and ``f`` features exports at most ``20 s`` segment values and ``20 s f``
``ml_segment_feature_psi`` series.

Cost: every scrape reads every document (latest window = greatest ``window_end``, which only the
contents tell). A year of hourly windows (8,760 files) takes ~0.7 s per scrape on a local disk;
on S3 that is two requests per file, so archive old windows or raise ``scrape_timeout``.

Metrics (label ``model`` is the monitor name):

=========================================  ==============================  ============================================
metric                                     labels                          value
=========================================  ==============================  ============================================
ml_feature_psi                             model, feature_name             PSI of each feature, latest window
ml_feature_drifted                         model, feature_name             1 if the feature was flagged drifted
ml_feature_missing_rate                    model, feature_name             missing rate (features and the prediction)
ml_drift_detected                          model                           1 if an ERROR-severity check failed
ml_prediction_drift_psi                    model                           PSI of the prediction column
ml_prediction_drift_ks_pvalue              model                           KS p-value of the prediction column
ml_share_drifted_features                  model                           share of features flagged drifted
ml_check_failed                            model, check, severity          1 if the check failed for any column
ml_window_rows                             model                           rows in the latest window
ml_monitor_window_seconds                  model                           window_end - window_start (latest window)
ml_window_end_timestamp_seconds            model                           end of the latest evaluated window
ml_last_evaluation_timestamp_seconds       model                           latest drift ``evaluated_at``
ml_model_auc                               model, model_version            latest AUC per model version
ml_model_performance                       model, metric, kind             roc_auc/precision/recall/f1/accuracy;
                                                                           kind="estimated" (latest evaluated window,
                                                                           from the scores) or "realized" (latest
                                                                           window with labels)
ml_model_performance_lower                 model, metric                   lower bound of the estimate's band
ml_model_performance_upper                 model, metric                   upper bound of the estimate's band
ml_model_performance_window_end_timestamp_seconds  model, kind             end of the window each kind describes
ml_model_champion_auc                      model                           the champion's reference AUC
ml_retraining_runs_total                   model                           retraining attempts (counter)
ml_model_promotions_total                  model                           promoted retrainings (counter)
ml_llm_<key>                               model                           each numeric ``extra`` entry (LLM monitor)
ml_multivariate_reconstruction_error       model                           mean PCA reconstruction error, latest window
ml_multivariate_reconstruction_threshold   model                           its threshold from the reference
ml_multivariate_domain_auc                 model                           domain classifier's cross-validated AUC
ml_segment_feature_psi                     model, segment, feature_name    PSI of each feature within each segment
ml_segment_rows                            model, segment                  rows of each evaluated segment
ml_check_explanation_info                  model, check, severity,         1 per failed check with a "what changed"
                                           what_changed                    text (<= 300 chars; alert annotations)
ml_results_store_up                        (none)                          1 if the whole store was read without error
ml_results_store_problem                   reason                          1 per reason while up is 0 (see above)
ml_results_store_errors                    model                           files of the monitor unreadable this scrape
ml_results_store_read_errors_total         (none)                          read errors since the exporter started
ml_results_store_monitors                  (none)                          monitors found in the store
ml_results_store_read_duration_seconds     (none)                          time this scrape spent reading the store
=========================================  ==============================  ============================================
"""

from __future__ import annotations

import logging
import math
import re
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, push_to_gateway, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from drift_assets.monitoring.results_store import (
    MonitorResults,
    ResultsStore,
    parse_timestamp,
)

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
LLM_PREFIX = "ml_llm_"

# (name, help, labels) of every fixed family; ml_llm_* families are added per extra key.
_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ml_feature_psi": (
        "Population stability index of each feature in the latest evaluated window.",
        ("model", "feature_name"),
    ),
    "ml_feature_drifted": (
        "1 if the feature was flagged as drifted in the latest window, else 0.",
        ("model", "feature_name"),
    ),
    "ml_feature_missing_rate": (
        "Share of missing values per monitored column (features and prediction) in the latest window.",
        ("model", "feature_name"),
    ),
    "ml_drift_detected": ("1 if any ERROR-severity check failed in the latest window, else 0.", ("model",)),
    "ml_prediction_drift_psi": (
        "Population stability index of the prediction column in the latest window.",
        ("model",),
    ),
    "ml_prediction_drift_ks_pvalue": (
        "Kolmogorov-Smirnov p-value of the prediction column in the latest window.",
        ("model",),
    ),
    "ml_share_drifted_features": ("Share of features flagged as drifted in the latest window.", ("model",)),
    "ml_check_failed": (
        "1 if the check failed (for any column) in the latest window, else 0.",
        ("model", "check", "severity"),
    ),
    "ml_window_rows": ("Rows in the latest evaluated production window.", ("model",)),
    "ml_monitor_window_seconds": (
        "Length of the monitor's window (window_end - window_start of the latest window).",
        ("model",),
    ),
    "ml_window_end_timestamp_seconds": ("End of the latest evaluated window, Unix seconds.", ("model",)),
    "ml_last_evaluation_timestamp_seconds": (
        "When the monitor last evaluated a window (latest drift evaluated_at), Unix seconds.",
        ("model",),
    ),
    "ml_multivariate_reconstruction_error": (
        "Mean PCA reconstruction error of the latest window (no_multivariate_drift).",
        ("model",),
    ),
    "ml_multivariate_reconstruction_threshold": (
        "Reconstruction error above which the latest window is multivariate drift (from the reference).",
        ("model",),
    ),
    "ml_multivariate_domain_auc": (
        "Cross-validated AUC of the domain classifier (reference vs latest window; 0.5 = indistinguishable).",
        ("model",),
    ),
    "ml_segment_feature_psi": (
        "PSI of each feature within each evaluated segment of the latest window (segment = column=value).",
        ("model", "segment", "feature_name"),
    ),
    "ml_segment_rows": ("Rows of each evaluated segment in the latest window.", ("model", "segment")),
    "ml_check_explanation_info": (
        "What changed, for each failed check of the latest window (label what_changed; value always 1).",
        ("model", "check", "severity", "what_changed"),
    ),
    "ml_model_auc": (
        "AUC on labelled production rows of the latest window with labels, per model version.",
        ("model", "model_version"),
    ),
    "ml_model_performance": (
        "Model performance of the latest window: kind=estimated from the calibrated scores (before labels), "
        "kind=realized on the labels of the latest labelled window.",
        ("model", "metric", "kind"),
    ),
    "ml_model_performance_lower": (
        "Lower bound of the estimated metric's band (latest evaluated window).",
        ("model", "metric"),
    ),
    "ml_model_performance_upper": (
        "Upper bound of the estimated metric's band (latest evaluated window).",
        ("model", "metric"),
    ),
    "ml_model_performance_window_end_timestamp_seconds": (
        "End of the window that ml_model_performance{kind} describes, Unix seconds.",
        ("model", "kind"),
    ),
    "ml_model_champion_auc": (
        "Reference AUC of the champion model that the estimated and realized AUC are compared with.",
        ("model",),
    ),
}
PERFORMANCE_METRICS = ("roc_auc", "precision", "recall", "f1", "accuracy")
_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ml_retraining_runs": ("Retraining attempts recorded in the results store.", ("model",)),
    "ml_model_promotions": ("Retraining attempts whose challenger was promoted.", ("model",)),
}


def _number(value: Any, where: str) -> float | None:
    """A finite float, None for null/NaN; anything else is a content error naming ``where``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a number or null, got {value!r}")
    value = float(value)
    return value if math.isfinite(value) else None


def _flag(value: Any) -> float:
    return 1.0 if value is True or value == 1 else 0.0


def llm_metric_name(key: str) -> str:
    """``extra`` key -> metric name, e.g. ``refusal_rate`` -> ``ml_llm_refusal_rate``."""
    cleaned = re.sub(r"[^a-zA-Z0-9_]", "_", str(key)).strip("_").lower()
    return LLM_PREFIX + (cleaned or "value")


class _Families:
    """Metric families of one scrape, created on first use so empty families are not emitted."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}

    def gauge(
        self,
        name: str,
        labels: Iterable[str],
        value: float | None,
        help_text: str | None = None,
        label_names: tuple[str, ...] | None = None,
    ) -> None:
        if value is None:
            return
        if name not in self._families:
            doc, names = _GAUGES.get(name, (help_text or name, label_names or ()))
            self._families[name] = GaugeMetricFamily(name, doc, labels=names)
        self._families[name].add_metric(list(labels), value)

    def counter(self, name: str, labels: Iterable[str], value: float) -> None:
        if name not in self._families:
            doc, names = _COUNTERS[name]
            self._families[name] = CounterMetricFamily(name, doc, labels=names)
        self._families[name].add_metric(list(labels), value)

    def __iter__(self):
        return iter(self._families.values())


class DriftResultsCollector:
    """Prometheus collector over a ``ResultsStore``; reads the store on every ``collect()``."""

    def __init__(self, store: ResultsStore):
        self.store = store
        self._lock = threading.Lock()
        self._errors_total = 0
        self._last_error_messages: tuple[str, ...] = ()

    @property
    def errors_total(self) -> int:
        return self._errors_total

    @property
    def last_errors(self) -> tuple[str, ...]:
        """Messages of the errors (and notices: empty root, withheld window) of the latest scrape."""
        return self._last_error_messages

    def collect(self) -> Iterable[Metric]:
        started = time.perf_counter()
        errors: list[str] = []  # counted in ml_results_store_read_errors_total
        notices: list[str] = []  # logged, not counted (nothing failed to read)
        problems: set[str] = set()
        per_monitor: dict[str, int] = {}
        families = _Families()
        monitors: list[str] = []
        try:
            monitors = self.store.monitors()
        except Exception as exc:  # noqa: BLE001 - a broken store must never fail the scrape
            errors.append(f"results store {self.store.uri}: {exc}")
            problems.add("unreadable")
        if not errors and not monitors:
            problems.add(self._empty_root_reason(errors, notices))
        for monitor in monitors:
            before = len(errors)
            self._collect_monitor(families, monitor, errors, notices, problems)
            per_monitor[monitor] = len(errors) - before
        duration = time.perf_counter() - started
        if any(per_monitor.values()):
            problems.add("corrupt_files")

        with self._lock:
            self._errors_total += len(errors)
            errors_total = self._errors_total
            new = [e for e in errors + notices if e not in self._last_error_messages]
            self._last_error_messages = tuple(errors + notices)
        for message in new:
            log.warning("results store read error: %s", message)

        yield from families
        yield from self._health(problems, per_monitor, errors_total, len(monitors), duration)

    def _empty_root_reason(self, errors: list[str], notices: list[str]) -> str:
        try:
            reason = self.store.root_problem() or "empty"
        except Exception as exc:  # noqa: BLE001
            errors.append(f"results store {self.store.uri}: {exc}")
            return "unreadable"
        what = {"missing": "does not exist", "not_a_directory": "is not a directory"}.get(reason, "holds no monitor")
        notices.append(
            f"results store {self.store.uri} {what} (ml_results_store_up 0, reason {reason}): check the "
            "exporter's --root / DRIFT_ASSETS_REPORTS_ROOT, or evaluate a window first"
        )
        return reason

    def _collect_monitor(
        self, families: _Families, monitor: str, errors: list[str], notices: list[str], problems: set[str]
    ) -> None:
        try:
            results = self.store.monitor_results(monitor, on_error=lambda e: errors.append(str(e)))
        except Exception as exc:  # noqa: BLE001
            errors.append(f"monitor {monitor}: {exc}")
            return
        if results.newer_unreadable_drift:
            problems.add("corrupt_latest")
            notices.append(
                f"monitor {monitor}: the newest drift result {results.newer_unreadable_drift} is unreadable; "
                "its window metrics are withheld (not replaced by the previous window's)"
            )
        self._add_monitor(families, results, errors)

    @staticmethod
    def _health(
        problems: set[str], per_monitor: dict[str, int], errors_total: int, monitors: int, duration: float
    ) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "ml_results_store_up",
            "1 if the last scrape read a non-empty results store without error, else 0.",
        )
        up.add_metric([], 0.0 if problems else 1.0)
        yield up
        problem = GaugeMetricFamily(
            "ml_results_store_problem",
            "1 per reason the results store is not up (missing, empty, not_a_directory, unreadable, corrupt_files, "
            "corrupt_latest).",
            labels=["reason"],
        )
        for reason in sorted(problems):
            problem.add_metric([reason], 1.0)
        yield problem
        per = GaugeMetricFamily(
            "ml_results_store_errors", "Files of the monitor the last scrape could not read.", labels=["model"]
        )
        for model, count in sorted(per_monitor.items()):
            per.add_metric([model], float(count))
        yield per
        counter = CounterMetricFamily(
            "ml_results_store_read_errors", "Errors met reading the results store since the exporter started."
        )
        counter.add_metric([], float(errors_total))
        yield counter
        count = GaugeMetricFamily("ml_results_store_monitors", "Monitors found in the results store.")
        count.add_metric([], float(monitors))
        yield count
        took = GaugeMetricFamily(
            "ml_results_store_read_duration_seconds", "Time the last scrape spent reading the results store."
        )
        took.add_metric([], duration)
        yield took

    # -------------------------------------------------------------- per monitor
    def _add_monitor(self, families: _Families, results: MonitorResults, errors: list[str]) -> None:
        model = results.monitor
        sections = (
            (self._add_drift, "drift"),
            (self._add_performance, "performance"),
            (self._add_retraining, "retraining"),
        )
        for add, name in sections:
            if name == "drift" and results.newer_unreadable_drift:
                continue  # withheld: the previous window is not the latest
            try:
                add(families, model, results)
            except Exception as exc:  # noqa: BLE001 - bad content in one section keeps the others
                errors.append(f"monitor {model}: {name} results: {exc}")

    @staticmethod
    def _add_drift(families: _Families, model: str, results: MonitorResults) -> None:
        doc = results.latest_drift
        if doc is None:
            return
        where = f"{model}/drift/{doc.get('partition', '?')}"
        # Collect into a scratch list first: a content error leaves no half-exported window.
        columns = doc.get("columns") or {}
        if not isinstance(columns, Mapping):
            raise ValueError(f"{where}: 'columns' should be an object")
        gauges = _column_gauges(model, where, columns) + _check_gauges(model, where, doc)
        gauges += _window_gauges(model, where, doc, columns, results)
        gauges += _joint_gauges(model, where, doc) + _explanation_gauges(model, where, doc)
        llm = _extra_gauges(where, doc)
        for name, labels, value in gauges:
            families.gauge(name, labels, value)
        for name, value in llm:
            families.gauge(
                name,
                [model],
                value,
                help_text=f"LLM monitor metric '{name[len(LLM_PREFIX) :]}' of the latest window (drift JSON extra).",
                label_names=("model",),
            )

    @staticmethod
    def _add_performance(families: _Families, model: str, results: MonitorResults) -> None:
        values = []
        for version, doc in results.performance_by_version.items():
            auc = _number(doc.get("auc"), f"{model}/performance/{doc.get('partition', '?')}: auc")
            values.append((version, auc))
        for version, auc in values:
            families.gauge("ml_model_auc", [model, version], auc)
        for name, labels, value in _performance_gauges(model, results):
            families.gauge(name, labels, value)

    @staticmethod
    def _add_retraining(families: _Families, model: str, results: MonitorResults) -> None:
        runs = len(results.retraining)
        promotions = sum(1 for doc in results.retraining if doc.get("status") == "promoted")
        families.counter("ml_retraining_runs", [model], float(runs))
        families.counter("ml_model_promotions", [model], float(promotions))


def _performance_gauges(model: str, results: MonitorResults) -> list[tuple[str, list[str], float | None]]:
    """Estimated (with its band) and realized metrics under one name, ``kind`` telling them apart."""
    out: list[tuple[str, list[str], float | None]] = []
    for kind, doc in (("estimated", results.latest_estimated), ("realized", results.latest_realized)):
        if doc is None:
            continue
        where = f"{model}/performance/{doc.get('partition', '?')}"
        values = (doc.get("estimated") or {}).get("bands", {}) if kind == "estimated" else doc.get("realized") or {}
        if not isinstance(values, Mapping):
            raise ValueError(f"{where}: {kind} metrics should be an object")
        for metric in PERFORMANCE_METRICS:
            entry = values.get(metric)
            if kind == "estimated":
                entry = entry if isinstance(entry, Mapping) else {}
                out.append(("ml_model_performance", [model, metric, kind], _number(entry.get("value"), where)))
                out.append(("ml_model_performance_lower", [model, metric], _number(entry.get("lower"), where)))
                out.append(("ml_model_performance_upper", [model, metric], _number(entry.get("upper"), where)))
            else:
                out.append(("ml_model_performance", [model, metric, kind], _number(entry, where)))
        champion = _number(doc.get("champion_auc_reference"), f"{where}: champion_auc_reference")
        if kind == "estimated" and champion is not None:
            out.append(("ml_model_champion_auc", [model], champion))
        if doc.get("window_end"):
            ended = parse_timestamp(doc["window_end"], where=f"{where}: window_end").timestamp()
            out.append(("ml_model_performance_window_end_timestamp_seconds", [model, kind], ended))
    return out


# ---------------------------------------------------------------------- serving
def _as_store(store: ResultsStore | str) -> ResultsStore:
    return store if isinstance(store, ResultsStore) else ResultsStore(str(store))


def make_registry(store: ResultsStore | str | DriftResultsCollector) -> CollectorRegistry:
    """A dedicated registry holding only the results collector (no process/platform/GC metrics)."""
    collector = store if isinstance(store, DriftResultsCollector) else DriftResultsCollector(_as_store(store))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def serve_metrics(store: ResultsStore | str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT):
    """Serve ``/metrics`` for ``store`` from a daemon thread; returns the server.

    Stop it with ``stop_server(server)`` (or ``server.shutdown(); server.server_close()``).
    ``server.collector`` is the collector, ``server.url`` the metrics URL.
    """
    collector = DriftResultsCollector(_as_store(store))
    server, thread = start_http_server(port, addr=host, registry=make_registry(collector))
    server.thread = thread
    server.collector = collector
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    server.url = f"http://{shown}:{bound_port}/metrics"
    return server


def stop_server(server) -> None:
    """Stop a server returned by ``serve_metrics`` and release its port."""
    server.shutdown()
    server.server_close()
    thread = getattr(server, "thread", None)
    if thread is not None:
        thread.join(timeout=5)


def serve_metrics_forever(store: ResultsStore | str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> int:
    """Blocking form for the CLI: serve until Ctrl-C or SIGTERM, then stop cleanly. Returns 0."""
    resolved = _as_store(store)
    server = serve_metrics(resolved, host=host, port=port)
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(
        f"drift-assets: serving metrics of {resolved.uri} at {server.url} (Ctrl-C to stop)", file=sys.stderr, flush=True
    )
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(server)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def push_once(
    store: ResultsStore | str,
    gateway_url: str,
    job: str = "drift_assets",
    grouping_key: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> None:
    """Push the same metrics once to a Pushgateway (for setups without a long-running exporter).

    Uses PUT, so the job's previous metrics are replaced (series of removed features disappear).
    Prometheus must scrape the Pushgateway with ``honor_labels: true``.
    """
    push_to_gateway(
        gateway_url, job=job, registry=make_registry(store), grouping_key=dict(grouping_key or {}), timeout=timeout
    )


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DriftResultsCollector",
    "llm_metric_name",
    "make_registry",
    "push_once",
    "serve_metrics",
    "serve_metrics_forever",
    "stop_server",
]


Gauges = list[tuple[str, list[str], float | None]]


def _column_gauges(model: str, where: str, columns: Mapping) -> Gauges:
    gauges: Gauges = []
    for name, col in sorted(columns.items()):
        if not isinstance(col, Mapping):
            raise ValueError(f"{where}: columns.{name} should be an object")
        role = col.get("role", "feature")
        if role == "feature":
            gauges.append(("ml_feature_psi", [model, name], _number(col.get("psi"), f"{where}: columns.{name}.psi")))
            gauges.append(("ml_feature_drifted", [model, name], _flag(col.get("drifted"))))
        if role in ("feature", "prediction"):
            missing = _number(col.get("missing_rate"), f"{where}: columns.{name}.missing_rate")
            gauges.append(("ml_feature_missing_rate", [model, name], missing))
    return gauges


def _check_gauges(model: str, where: str, doc: Mapping) -> Gauges:
    checks = doc.get("checks") or []
    if not isinstance(checks, list):
        raise ValueError(f"{where}: 'checks' should be a list")
    failed: dict[tuple[str, str], float] = {}
    for check in checks:
        if not isinstance(check, Mapping) or "name" not in check:
            raise ValueError(f"{where}: every check needs a name, got {check!r}")
        key = (str(check["name"]), str(check.get("severity", "WARN")))
        failed[key] = max(failed.get(key, 0.0), 0.0 if check.get("passed", True) else 1.0)
    gauges: Gauges = [
        ("ml_check_failed", [model, name, severity], value) for (name, severity), value in sorted(failed.items())
    ]
    if checks:
        drift_detected = max((v for (_, sev), v in failed.items() if sev == "ERROR"), default=0.0)
    else:  # no checks recorded: fall back to the writer's own verdict
        drift_detected = _flag((doc.get("summary") or {}).get("drift_detected"))
    gauges.append(("ml_drift_detected", [model], drift_detected))
    return gauges


def _window_gauges(model: str, where: str, doc: Mapping, columns: Mapping, results: MonitorResults) -> Gauges:
    summary = doc.get("summary") or {}
    prediction = next((c for c in columns.values() if isinstance(c, Mapping) and c.get("role") == "prediction"), {})
    pred_psi = summary.get("prediction_psi", prediction.get("psi"))
    pred_p = summary.get("prediction_ks_pvalue", prediction.get("ks_pvalue"))
    gauges: Gauges = [
        ("ml_prediction_drift_psi", [model], _number(pred_psi, f"{where}: summary.prediction_psi")),
        ("ml_prediction_drift_ks_pvalue", [model], _number(pred_p, f"{where}: summary.prediction_ks_pvalue")),
        (
            "ml_share_drifted_features",
            [model],
            _number(summary.get("share_drifted"), f"{where}: summary.share_drifted"),
        ),
        ("ml_window_rows", [model], _number(doc.get("current_rows"), f"{where}: current_rows")),
        # Timestamps were validated by the store when it read the file.
        ("ml_window_end_timestamp_seconds", [model], parse_timestamp(doc["window_end"]).timestamp()),
    ]
    if results.window_seconds and results.window_seconds > 0:
        gauges.append(("ml_monitor_window_seconds", [model], results.window_seconds))
    if results.last_evaluated_at is not None:
        gauges.append(("ml_last_evaluation_timestamp_seconds", [model], results.last_evaluated_at.timestamp()))
    return gauges


def _extra_gauges(where: str, doc: Mapping) -> list[tuple[str, float]]:
    extra = doc.get("extra") or {}
    llm: list[tuple[str, float]] = []
    if isinstance(extra, Mapping):
        for key, value in sorted(extra.items()):
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue  # only numeric entries become metrics
            number = _number(value, f"{where}: extra.{key}")
            if number is not None:
                llm.append((llm_metric_name(key), number))
    return llm


def _joint_gauges(model: str, where: str, doc: Mapping) -> Gauges:
    """Multivariate scores and per-segment PSI (``multivariate`` / ``segments`` sections, issue 14)."""
    gauges: Gauges = []
    mv = doc.get("multivariate") or {}
    if not isinstance(mv, Mapping):
        raise ValueError(f"{where}: 'multivariate' should be an object")
    for key, metric in (
        ("reconstruction_error", "ml_multivariate_reconstruction_error"),
        ("threshold", "ml_multivariate_reconstruction_threshold"),
        ("domain_classifier_auc", "ml_multivariate_domain_auc"),
    ):
        gauges.append((metric, [model], _number(mv.get(key), f"{where}: multivariate.{key}")))
    segments = (doc.get("segments") or {}).get("segments") or {}
    if not isinstance(segments, Mapping):
        raise ValueError(f"{where}: 'segments.segments' should be an object")
    for segment, body in sorted(segments.items()):
        if not isinstance(body, Mapping):
            raise ValueError(f"{where}: segments.segments.{segment} should be an object")
        gauges.append(("ml_segment_rows", [model, segment], _number(body.get("rows"), f"{where}: segments.{segment}")))
        for feature, col in sorted((body.get("columns") or {}).items()):
            psi = _number((col or {}).get("psi"), f"{where}: segments.{segment}.columns.{feature}.psi")
            gauges.append(("ml_segment_feature_psi", [model, segment, feature], psi))
    return gauges


EXPLANATION_LABEL_MAX = 300


def _explanation_gauges(model: str, where: str, doc: Mapping) -> Gauges:
    """One info series per failed check that has an explanation: at most one per check (cardinality
    = the monitor's checks), replaced when the next window is evaluated."""
    by_check = (doc.get("explanation") or {}).get("by_check") or {}
    if not isinstance(by_check, Mapping):
        raise ValueError(f"{where}: 'explanation.by_check' should be an object")
    severity = {
        str(c.get("name")): str(c.get("severity", "WARN")) for c in doc.get("checks") or [] if not c.get("passed", True)
    }
    gauges: Gauges = []
    for check, text in sorted(by_check.items()):
        if check not in severity:
            continue
        label = " ".join(str(text).split())
        if len(label) > EXPLANATION_LABEL_MAX:
            label = label[: EXPLANATION_LABEL_MAX - 1] + "…"
        gauges.append(("ml_check_explanation_info", [model, check, severity[check], label], 1.0))
    return gauges
