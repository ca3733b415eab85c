"""What an operator sees in the Dagster UI, in a real browser: the week that failed an ERROR check is
marked failed in ``fraud/drift_alert``'s Partitions view and counted failed in the catalog.

Headless Debian ``chromium`` driven by Playwright's Python package (never ``playwright install``),
against the real dagster-webserver on a free loopback port and an on-disk instance. Skipped, with the
reason, where Chromium or Playwright is absent (``make system-deps`` installs Chromium).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from dagster import DagsterInstance
from servers import free_port, wait_until

from drift_assets.definitions import build_definitions
from drift_assets.monitoring.config import load_monitors

pytestmark = pytest.mark.slow  # a webserver, Dagster runs and a browser

PROJECT_ROOT = Path(__file__).resolve().parent.parent
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
STATIONARY, DRIFTED = "2026-08-03", "2026-08-17"
CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PARTITIONS_QUERY = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode { assetPartitionStatuses { ... on TimePartitionStatuses { ranges { status startKey endKey } } } }
  }
}
"""


def _browser_or_skip():
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip(f"Chromium not found at {CHROMIUM}; enable with: sudo make system-deps (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright's Python package is not installed (pip install -e '.[dev]')")
    return sync_playwright


def _webserver(tmp_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    webserver = os.path.join(os.path.dirname(sys.executable), "dagster-webserver")
    with open(tmp_path / "webserver.log", "w") as log:
        proc = subprocess.Popen(
            [webserver, "-h", "127.0.0.1", "-p", str(port), "-w", str(PROJECT_ROOT / "workspace.yaml")],
            cwd=PROJECT_ROOT,
            env=os.environ.copy(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return proc, f"http://127.0.0.1:{port}"


def _graphql(base: str, query: str, **variables) -> dict:
    response = requests.post(f"{base}/graphql", json={"query": query, "variables": variables}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


def _dismiss_newsletter(page) -> None:
    """A fresh instance shows a "Join the Dagster community" modal once; skip it if it comes."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):  # no modal on this instance: nothing to dismiss
        page.get_by_role("button", name="Skip").click(timeout=10_000)


# From an asset's link in the catalog: the failed-partitions count next to the red failure icon.
FAILED_COUNT_JS = """e => { let r = e; while (r && !(r.innerText || '').includes('partitions')) r = r.parentElement;
  const icon = r && r.querySelector('[aria-label="partition_failure"]');
  return icon ? icon.parentElement.innerText.trim() : null; }"""


def _status_dot(page, week: str) -> str:
    """The inline style of the status dot next to ``week`` in the partition list."""
    label = page.locator(f'[data-tooltip="{week}"]').first
    label.wait_for(timeout=30_000)
    return label.evaluate("e => e.parentElement.lastElementChild.getAttribute('style') || ''")


def test_failing_week_is_marked_failed_in_the_partitions_view_and_catalog(project, monkeypatch, tmp_path):
    sync_playwright = _browser_or_skip()
    from drift_assets.cli.demo import run_window

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DRIFT_ASSETS_HTML_REPORTS", "0")
    defs = build_definitions()
    fraud = load_monitors().get("fraud")
    with DagsterInstance.get() as instance:
        assert defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET)
        for week in (STATIONARY, DRIFTED):
            assert run_window(defs, fraud, week, instance).success  # the window job; then drift_alert

    proc, base = _webserver(tmp_path)
    try:
        wait_until(
            lambda: _graphql(base, PARTITIONS_QUERY, key={"path": ["fraud", "drift_alert"]})["assetNodeOrError"],
            timeout=120,
            message="webserver to load the code location",
        )
        ranges = _graphql(base, PARTITIONS_QUERY, key={"path": ["fraud", "drift_alert"]})["assetNodeOrError"][
            "assetPartitionStatuses"
        ]["ranges"]
        assert {"status": "FAILED", "startKey": DRIFTED, "endKey": DRIFTED} in ranges, ranges
        assert {"status": "MATERIALIZED", "startKey": STATIONARY, "endKey": STATIONARY} in ranges, ranges

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"{base}/assets/fraud/drift_alert?view=partitions", timeout=60_000)
                _dismiss_newsletter(page)
                assert "accent-red" in _status_dot(page, DRIFTED)
                assert "accent-green" in _status_dot(page, STATIONARY)
                assert page.get_by_text("Failed (1)", exact=True).count() == 1
                page.locator(f'[data-tooltip="{DRIFTED}"]').first.click()
                page.get_by_text("failed, and did not materialize this asset").wait_for(timeout=30_000)
                page.screenshot(path=str(tmp_path / "drift_alert_partitions.png"))

                page.goto(f"{base}/assets", timeout=60_000)
                link = page.get_by_role("link", name="fraud / drift_alert").first
                link.wait_for(timeout=30_000)
                page.wait_for_timeout(3000)
                # The status column: materialised / missing / failed / in-progress partition counts.
                assert link.evaluate(FAILED_COUNT_JS) == "1"
                report = page.get_by_role("link", name="fraud / drift_report").first
                assert report.evaluate(FAILED_COUNT_JS) == "0"  # checks do not colour drift_report itself
                page.screenshot(path=str(tmp_path / "catalog.png"))
            finally:
                browser.close()
        assert (tmp_path / "drift_alert_partitions.png").stat().st_size > 10_000
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
