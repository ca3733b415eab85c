"""Results store (one JSON per evaluated window) and the Prometheus exporter that reads it.

No Dagster import here: the exporter runs as its own small process (``drift-assets
serve-metrics``) next to Prometheus.
"""

from drift_assets.metrics.exporter import (
    DriftResultsCollector,
    make_registry,
    push_once,
    serve_metrics,
    serve_metrics_forever,
    stop_server,
)
from drift_assets.metrics.results_store import (
    CorruptResultError,
    MonitorResults,
    ResultsStore,
    ResultsStoreError,
)

__all__ = [
    "CorruptResultError",
    "DriftResultsCollector",
    "MonitorResults",
    "ResultsStore",
    "ResultsStoreError",
    "make_registry",
    "push_once",
    "serve_metrics",
    "serve_metrics_forever",
    "stop_server",
]
