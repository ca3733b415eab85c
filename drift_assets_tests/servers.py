"""Reusable test helpers: real Prometheus/Alertmanager/Pushgateway processes on loopback, a local
webhook receiver, bounded polling, and realistic results-store documents.

Everything binds 127.0.0.1 on a free port and is stopped by the context manager's exit, whatever
the test did. Binaries come from PATH (Debian names first) or PROMETHEUS_BIN / PROMTOOL_BIN /
ALERTMANAGER_BIN / AMTOOL_BIN / PUSHGATEWAY_BIN. A missing binary skips the test locally and
fails it in CI (CI=true), so a CI image without them cannot pass silently.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY = REPO_ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES_DIR = DEPLOY / "prometheus" / "rules"
ALERT_RULES = RULES_DIR / "drift_alerts.yml"
ALERT_RULES_TEST = RULES_DIR / "drift_alerts_test.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
GRAFANA_DASHBOARD = DEPLOY / "grafana" / "drift_dashboard.json"

STARTUP_TIMEOUT = 30.0

_BINARIES = {
    "prometheus": ("PROMETHEUS_BIN", ("prometheus",)),
    "promtool": ("PROMTOOL_BIN", ("promtool",)),
    "alertmanager": ("ALERTMANAGER_BIN", ("prometheus-alertmanager", "alertmanager")),
    "amtool": ("AMTOOL_BIN", ("amtool",)),
    "pushgateway": ("PUSHGATEWAY_BIN", ("prometheus-pushgateway", "pushgateway")),
}


def binary(kind: str) -> str:
    """Path of a Prometheus-family binary; skip (or fail under CI) when it is not installed."""
    env, names = _BINARIES[kind]
    if os.environ.get(env):
        return os.environ[env]
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    message = (
        f"{kind} not found (looked for {', '.join(names)}); enable with: sudo make system-deps "
        "(Debian: apt-get install prometheus prometheus-alertmanager prometheus-pushgateway)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2, message: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), at most ``timeout`` seconds.

    Exceptions raised by the predicate count as "not yet"; the last one is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}{detail}")
        time.sleep(interval)


# --------------------------------------------------------------------------- processes
@dataclass
class ServerProcess:
    """A started binary: ``url`` is its base URL, ``log`` its combined stdout/stderr file."""

    name: str
    process: subprocess.Popen
    port: int
    workdir: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(self.url + path, params=params or None, timeout=5)


def stop_process(process: subprocess.Popen) -> None:
    """Stop a process this test started, by its pid: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def _run_server(
    name: str, argv_for_port: Callable[[int], list[str]], workdir: Path, ready_path: str
) -> Iterator[ServerProcess]:
    """Start ``argv_for_port(port)``, wait for ``ready_path`` to answer 200, stop it on exit.

    A port taken between ``free_port()`` and the bind makes the process exit: retried on another.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    last = ""
    for attempt in range(3):
        port = free_port()
        log = workdir / f"{name}-{attempt}.log"
        with open(log, "wb") as log_fh:
            process = subprocess.Popen(
                argv_for_port(port), stdout=log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir
            )
        server = ServerProcess(name, process, port, workdir, log)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    if requests.get(server.url + ready_path, timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.1)
            if process.poll() is not None:
                last = server.log_tail()
                if "address already in use" in last:
                    continue
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{last}")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{name} not ready within {STARTUP_TIMEOUT:g}s:\n{server.log_tail()}")
            yield server
            return
        finally:
            stop_process(process)
    raise RuntimeError(f"{name} could not bind a free port:\n{last}")


@contextlib.contextmanager
def start_prometheus(
    config_text: str,
    rule_files: Sequence[Path | str] | Mapping[str, str] = (),
    tmp_path: Path | None = None,
) -> Iterator[ServerProcess]:
    """A real Prometheus on 127.0.0.1 with ``config_text``.

    ``rule_files`` (paths to copy, or a mapping name -> YAML text) are written next to the config
    and replace the config's ``rule_files``. TSDB and logs live under ``tmp_path``.
    """
    workdir = Path(tmp_path) / "prometheus"
    workdir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(config_text) or {}
    if rule_files:
        items = (
            rule_files.items()
            if isinstance(rule_files, Mapping)
            else ((Path(p).name, Path(p).read_text()) for p in rule_files)
        )
        names = []
        for name, text in items:
            (workdir / name).write_text(text)
            names.append(name)
        config["rule_files"] = names
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    prometheus = binary("prometheus")

    def argv(port: int) -> list[str]:
        return [
            prometheus,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=info",
        ]

    with _run_server("prometheus", argv, workdir, "/-/ready") as server:
        yield server


@contextlib.contextmanager
def start_alertmanager(config_text: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A real Alertmanager on 127.0.0.1 (clustering off, so nothing listens elsewhere)."""
    workdir = Path(tmp_path) / "alertmanager"
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(config_text)
    alertmanager = binary("alertmanager")

    def argv(port: int) -> list[str]:
        return [
            alertmanager,
            f"--config.file={config_path}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ]

    with _run_server("alertmanager", argv, workdir, "/-/ready") as server:
        yield server


@contextlib.contextmanager
def start_pushgateway(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real Pushgateway on 127.0.0.1 (in-memory only)."""
    workdir = Path(tmp_path) / "pushgateway"
    pushgateway = binary("pushgateway")

    def argv(port: int) -> list[str]:
        return [pushgateway, f"--web.listen-address=127.0.0.1:{port}"]

    with _run_server("pushgateway", argv, workdir, "/-/ready") as server:
        yield server


@contextlib.contextmanager
def running_exporter(store) -> Iterator[Any]:
    """``serve_metrics(store)`` on a free loopback port; the server is stopped on exit."""
    from drift_assets.alerting.exporter import serve_metrics, stop_server

    server = None
    for _ in range(3):
        try:
            server = serve_metrics(store, host="127.0.0.1", port=free_port())
            break
        except OSError:
            continue
    assert server is not None, "could not bind the exporter to a free port"
    try:
        yield server
    finally:
        stop_server(server)


def run(argv: Sequence[str], cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a CLI (promtool, amtool) and capture its output as text."""
    return subprocess.run(
        list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def alertmanager_test_config(receiver_url: str) -> str:
    """The committed alertmanager.yml with every receiver replaced by a webhook to
    ``<receiver_url>/<receiver name>``, its route tree and inhibit_rules kept, short group timings."""
    real = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    route = dict(real["route"], group_wait="1s", group_interval="1s", repeat_interval="1h")
    receivers = [
        {"name": r["name"], "webhook_configs": [{"url": f"{receiver_url}/{r['name']}", "send_resolved": False}]}
        for r in real["receivers"]
    ]
    return yaml.safe_dump(
        {"route": route, "inhibit_rules": real["inhibit_rules"], "receivers": receivers}, sort_keys=False
    )


# --------------------------------------------------------------------------- webhook receiver
@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class WebhookReceiver:
    """A threaded HTTP server on 127.0.0.1 recording every POST (path, headers, body).

    Use as a context manager. ``status`` is the HTTP status it answers (to test failures).
    """

    status: int = 200
    response_body: bytes = b"ok"
    requests: list[ReceivedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._lock:
                    receiver.requests.append(ReceivedRequest(self.path, dict(self.headers.items()), body))
                self.send_response(receiver.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(receiver.response_body)))
                self.end_headers()
                self.wfile.write(receiver.response_body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        assert self._server is not None, "receiver not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def received(self, path: str | None = None) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]


# --------------------------------------------------------------------------- metrics parsing
def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    """Prometheus text exposition -> {(sample name, frozenset(labels.items())): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(samples: Mapping[tuple[str, frozenset], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series_of(samples: Mapping[tuple[str, frozenset], float], name: str) -> dict[frozenset, float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


def scrape(url: str) -> tuple[int, dict[tuple[str, frozenset], float]]:
    response = requests.get(url, timeout=10)
    return response.status_code, parse_metrics(response.text) if response.status_code == 200 else {}


# --------------------------------------------------------------------------- sample documents
def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _column(
    kind: str, role: str, psi: float | None, *, missing: float = 0.0, drifted: bool = False, ks_p: float | None = None
) -> dict:
    numerical = kind == "numerical"
    return {
        "kind": kind,
        "role": role,
        "psi": psi,
        "ks_statistic": (0.05 if numerical else None),
        "ks_pvalue": (ks_p if numerical else None),
        "chi2_pvalue": (None if numerical else 0.01),
        "jensen_shannon": 0.02,
        "wasserstein_normed": (0.12 if numerical else None),
        "missing_rate": missing,
        "reference_missing_rate": 0.001,
        "unseen_share": (None if numerical else 0.0),
        "out_of_range_share": (0.003 if numerical else None),
        "drifted": drifted,
    }


def fraud_drift_doc(
    partition: str = "2026-09-28",
    *,
    window_start: datetime | None = None,
    days: int = 7,
    evaluated_at: datetime | None = None,
    txn_psi: float = 0.31,
    amount_psi: float = 0.08,
    prediction_psi: float = 0.27,
    prediction_p: float = 0.001,
    account_age_missing: float = 0.07,
    current_rows: int = 48_211,
    model_version: str = "v0001",
) -> dict:
    """A weekly fraud drift document shaped like the evaluation asset's output."""
    start = window_start or datetime.fromisoformat(partition).replace(tzinfo=UTC)
    end = start + timedelta(days=days)
    evaluated = evaluated_at or datetime.now(UTC).replace(microsecond=0)
    columns = {
        "txn_count_1h": _column("numerical", "feature", txn_psi, drifted=txn_psi > 0.2, ks_p=1e-12),
        "amount": _column("numerical", "feature", amount_psi, missing=0.002, ks_p=0.2),
        "account_age_days": _column("numerical", "feature", 0.02, missing=account_age_missing, ks_p=0.6),
        "merchant_category": _column("categorical", "feature", 0.05),
        "fraud_score": _column(
            "numerical", "prediction", prediction_psi, drifted=prediction_psi > 0.2, ks_p=prediction_p
        ),
        "is_fraud": _column("categorical", "target", 0.01, missing=0.85),
    }
    features = [c for c in columns.values() if c["role"] == "feature"]
    drifted = sum(1 for c in features if c["drifted"])
    checks = (
        [
            {
                "name": "feature_psi_below_warn_threshold",
                "column": name,
                "passed": col["psi"] <= 0.2,
                "severity": "WARN",
                "value": col["psi"],
                "threshold": 0.2,
            }
            for name, col in columns.items()
            if col["role"] == "feature"
        ]
        + [
            {
                "name": "feature_psi_below_retrain_threshold",
                "column": name,
                "passed": col["psi"] <= 0.25,
                "severity": "ERROR",
                "value": col["psi"],
                "threshold": 0.25,
            }
            for name, col in columns.items()
            if col["role"] == "feature"
        ]
        + [
            {
                "name": "share_of_drifted_features_below_threshold",
                "column": None,
                "passed": drifted / len(features) < 0.3,
                "severity": "ERROR",
                "value": drifted / len(features),
                "threshold": 0.3,
            },
            {
                "name": "prediction_has_no_drift",
                "column": "fraud_score",
                "passed": not (prediction_p < 0.05 and prediction_psi >= 0.1),
                "severity": "ERROR",
                "value": prediction_p,
                "threshold": 0.05,
            },
        ]
        + [
            {
                "name": "missing_rate_below_threshold",
                "column": name,
                "passed": col["missing_rate"] <= 0.05,
                "severity": "WARN",
                "value": col["missing_rate"],
                "threshold": 0.05,
            }
            for name, col in columns.items()
            if col["role"] in ("feature", "prediction")
        ]
    )
    error_failed = any(not c["passed"] and c["severity"] == "ERROR" for c in checks)
    feature_psis = [c["psi"] for c in features]
    return {
        "monitor": "fraud",
        "partition": partition,
        "window_start": iso(start),
        "window_end": iso(end),
        "evaluated_at": iso(evaluated),
        "model_version": model_version,
        "reference_rows": 200_000,
        "current_rows": current_rows,
        "columns": columns,
        "checks": checks,
        "summary": {
            "drifted_columns": drifted,
            "share_drifted": drifted / len(features),
            "all_passed": all(c["passed"] for c in checks),
            "drift_detected": error_failed,
            "max_feature_psi": max(feature_psis),
            "prediction_psi": prediction_psi,
            "prediction_ks_pvalue": prediction_p,
        },
    }


def llm_drift_doc(
    partition: str = "2026-10-13-14:00",
    *,
    evaluated_at: datetime | None = None,
    refusal_rate: float = 0.09,
    output_length_psi: float = 0.34,
) -> dict:
    """An hourly LLM drift document with the ``extra`` block of LLM-specific numbers."""
    start = datetime.strptime(partition, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
    evaluated = evaluated_at or datetime.now(UTC).replace(microsecond=0)
    columns = {
        "output_length": _column("numerical", "feature", output_length_psi, drifted=output_length_psi > 0.2, ks_p=1e-6),
        "prompt_tokens": _column("numerical", "feature", 0.03, ks_p=0.4),
        "is_refusal": _column("categorical", "feature", 0.12),
    }
    checks = [
        {
            "name": "feature_psi_below_warn_threshold",
            "column": "output_length",
            "passed": output_length_psi <= 0.2,
            "severity": "WARN",
            "value": output_length_psi,
            "threshold": 0.2,
        },
        {
            "name": "feature_psi_below_retrain_threshold",
            "column": "output_length",
            "passed": output_length_psi <= 0.25,
            "severity": "ERROR",
            "value": output_length_psi,
            "threshold": 0.25,
        },
    ]
    return {
        "monitor": "llm",
        "partition": partition,
        "window_start": iso(start),
        "window_end": iso(start + timedelta(hours=1)),
        "evaluated_at": iso(evaluated),
        "model_version": "gpt-small-2026-09",
        "reference_rows": 12_000,
        "current_rows": 812,
        "columns": columns,
        "checks": checks,
        "summary": {
            "drifted_columns": 1,
            "share_drifted": 1 / 3,
            "all_passed": False,
            "drift_detected": output_length_psi > 0.25,
            "max_feature_psi": output_length_psi,
            "prediction_psi": None,
            "prediction_ks_pvalue": None,
        },
        "extra": {
            "refusal_rate": refusal_rate,
            "output_length_psi": output_length_psi,
            "mean_output_tokens": 212.5,
            "empty_response_rate": 0.004,
            "output_length_mean": 48.5,
            "output_chars_mean": 231.0,
            "refusal_rate_baseline": 0.02,
            "output_length_psi_recent": 0.12,
            "units": {"output_length": "tokens", "output_chars": "chars"},
            "judge_model": "not-a-number",
            "flagged": True,
        },
    }


def performance_doc(
    monitor: str,
    partition: str,
    model_version: str,
    auc: float | None,
    *,
    status: str = "ok",
    evaluated_at: datetime | None = None,
) -> dict:
    evaluated = evaluated_at or datetime.now(UTC).replace(microsecond=0)
    return {
        "monitor": monitor,
        "partition": partition,
        "evaluated_at": iso(evaluated),
        "status": status,
        "model_version": model_version,
        "auc": auc,
        "labelled_rows": 0 if status != "ok" else 41_000,
        "positives": 0 if status != "ok" else 205,
    }


def retraining_doc(monitor: str, version: int, status: str, *, created_at: datetime | None = None) -> dict:
    created = created_at or datetime(2026, 10, 6, 3, 0, tzinfo=UTC) + timedelta(days=version)
    return {
        "monitor": monitor,
        "version": version,
        "name": f"v{version:04d}",
        "status": status,
        "created_at": iso(created),
        "challenger_auc": 0.91 if status != "failed" else None,
        "champion_auc": 0.89,
        "trigger": {"partition": "2026-09-28", "check": "feature_psi_below_retrain_threshold"},
    }


def estimated_performance_fields(realized_auc: float, estimated_auc: float = 0.905) -> dict:
    """The estimated/realized part of a performance document (``monitoring.performance.reconcile``)."""
    band = {"value": estimated_auc, "lower": estimated_auc - 0.03, "upper": estimated_auc + 0.025}
    bands = {"roc_auc": band, **{m: {"value": 0.5, "lower": 0.4, "upper": 0.6} for m in ("precision", "recall", "f1")}}
    bands["accuracy"] = {"value": 0.99, "lower": 0.985, "upper": 0.995}
    return {
        "champion_auc_reference": 0.9,
        "estimated": {"roc_auc": estimated_auc, "lower": band["lower"], "upper": band["upper"], "bands": bands},
        "realized": {"roc_auc": realized_auc, "precision": 0.55, "recall": 0.45, "f1": 0.5, "accuracy": 0.99},
    }


def write_drifted_store(store) -> None:
    """A store with a drifted fraud week, an hourly LLM window, AUCs and retraining attempts."""
    drifted = fraud_drift_doc("2026-09-28")
    # Issue 14 sections, so the dashboard's multivariate and segment panels have data.
    drifted["multivariate"] = {
        "reconstruction_error": 1.734,
        "threshold": 1.125,
        "domain_classifier_auc": 0.912,
        "drifted": True,
        "explained_by": ["txn_amount"],
    }
    drifted["segments"] = {"segments": {"channel=web": {"rows": 690, "columns": {"txn_amount": {"psi": 0.41}}}}}
    store.write_json(store.drift_path("fraud", "2026-09-28"), drifted)
    store.write_json(
        store.performance_path("fraud", "2026-09-21"), performance_doc("fraud", "2026-09-21", "v0001", 0.902)
    )
    store.write_json(
        store.performance_path("fraud", "2026-09-28"), performance_doc("fraud", "2026-09-28", "v0001", 0.874)
    )
    store.write_json(
        store.performance_path("fraud", "2026-10-05"),
        performance_doc("fraud", "2026-10-05", "v0001", None, status="labels_pending"),
    )
    store.write_json(
        store.performance_path("fraud", "2026-10-12"),
        {**performance_doc("fraud", "2026-10-12", "v0002", 0.915), **estimated_performance_fields(0.915)},
    )
    store.write_json(store.retraining_path("fraud", "v0002"), retraining_doc("fraud", 2, "promoted"))
    store.write_json(store.retraining_path("fraud", "v0003"), retraining_doc("fraud", 3, "rejected"))
    store.write_json(store.retraining_path("fraud", "v0004"), retraining_doc("fraud", 4, "failed"))
    store.write_json(store.drift_path("llm", "2026-10-13-14:00"), llm_drift_doc("2026-10-13-14:00"))
