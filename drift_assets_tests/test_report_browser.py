"""The Evidently report as an operator opens it, in a real browser: from ``fraud/evidently_report``'s
metadata in the Dagster UI, the link to the page served on loopback (as ``make dev`` serves the
reports root with ``python -m http.server``), and on that page this project's decision and
Evidently's widgets rendered from the shared bundle under ``_assets/``, with no console error and no
failed request.

Headless Debian ``chromium`` driven by Playwright's Python package (never ``playwright install``),
against the real dagster-webserver on a free loopback port and an on-disk instance. Skipped, with the
reason, where Chromium or Playwright is absent (``make system-deps`` installs Chromium).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from browser import CHROMIUM, CHROMIUM_ARGS, browser_or_skip, dismiss_newsletter
from dagster import AssetKey, DagsterInstance
from servers import free_port, stop_process, wait_until
from support import project_dagster_home, write_monitors_file

from drift_assets.definitions import build_definitions

pytestmark = pytest.mark.slow  # a webserver, Dagster runs and a browser

PROJECT_ROOT = Path(__file__).resolve().parent.parent
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
DRIFTED = "2026-08-17"
EVIDENTLY_REPORT = AssetKey(["fraud", "evidently_report"])
LOADED_QUERY = '{ assetNodeOrError(assetKey: {path: ["fraud", "evidently_report"]}) { ... on AssetNode { id } } }'


def _start(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            argv, cwd=cwd, env=os.environ.copy(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def test_report_link_from_the_asset_metadata_opens_a_rendered_report(project, monkeypatch, tmp_path):
    sync_playwright = browser_or_skip()
    project_dagster_home(tmp_path, monkeypatch)
    write_monitors_file(project / "monitors.yaml", html="on_failure")
    reports = project / "reports"
    reports.mkdir(exist_ok=True)
    # The reports root on loopback, as `make dev` serves it; the assets link under this base URL.
    reports_port = free_port()
    monkeypatch.setenv("DRIFT_ASSETS_REPORTS_URL", f"http://127.0.0.1:{reports_port}")
    files = _start(
        [sys.executable, "-m", "http.server", str(reports_port), "--bind", "127.0.0.1", "--directory", str(reports)],
        tmp_path / "http.log",
        tmp_path,
    )
    web = None
    try:
        defs = build_definitions()
        with DagsterInstance.get() as instance:
            assert defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET)
            window = defs.resolve_job_def("fraud_window_job")
            assert window.execute_in_process(partition_key=DRIFTED, instance=instance, run_config=QUIET).success
            event = instance.get_latest_materialization_event(EVIDENTLY_REPORT)
            url = event.asset_materialization.metadata["evidently_report_url"].value
        assert url.startswith(f"http://127.0.0.1:{reports_port}/fraud/html/{DRIFTED}-")

        web_port = free_port()
        webserver = os.path.join(os.path.dirname(sys.executable), "dagster-webserver")
        argv = [webserver, "-h", "127.0.0.1", "-p", str(web_port), "-w", str(PROJECT_ROOT / "workspace.yaml")]
        web = _start(argv, tmp_path / "webserver.log", PROJECT_ROOT)
        base = f"http://127.0.0.1:{web_port}"

        def loaded():
            response = requests.post(f"{base}/graphql", json={"query": LOADED_QUERY}, timeout=30)
            return response.ok and response.json()["data"]["assetNodeOrError"].get("id")

        wait_until(loaded, timeout=120, message="webserver to load the code location")

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"{base}/assets/fraud/evidently_report?view=partitions&partition={DRIFTED}", timeout=60_000)
                link = page.locator(f'a[href="{url}"]').first
                link.wait_for(timeout=60_000)  # the URL metadata entry, rendered as a link
                dismiss_newsletter(page)
                page.screenshot(path=str(tmp_path / "evidently_report_asset.png"))
                href = link.get_attribute("href")
                assert href == url

                errors: list[str] = []
                failed: list[str] = []
                loaded_scripts: list[str] = []
                report = browser.new_page(viewport={"width": 1400, "height": 900})
                # The browser's own /favicon.ico request (404 from http.server) is no error of the page.
                report.on(
                    "console",
                    lambda m: (
                        errors.append(f"{m.text} ({m.location.get('url')})")
                        if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico")
                        else None
                    ),
                )
                report.on("pageerror", lambda e: errors.append(str(e)))
                report.on("requestfailed", lambda r: failed.append(r.url))
                report.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
                report.on(
                    "response", lambda r: loaded_scripts.append(r.url) if r.url.endswith(".js") and r.ok else None
                )
                report.goto(href, timeout=60_000)
                decision = report.locator("#drift-assets-decision")
                decision.wait_for(timeout=30_000)
                assert "DRIFT: an ERROR check failed" in decision.inner_text()
                # Evidently's widgets are drawn by the shared bundle (not inlined in the page).
                assert [s.rsplit("/", 2)[-2] for s in loaded_scripts] == ["_assets"]
                evidently = report.locator('[id^="root_metric_"]')  # Evidently's widgets, below the section
                evidently.get_by_text("Dataset Drift").first.wait_for(timeout=60_000)
                evidently.get_by_text("fraud_score").first.wait_for(timeout=30_000)
                assert evidently.evaluate("e => e.querySelectorAll('*').length") > 100
                evidently.get_by_text("Dataset Drift").first.scroll_into_view_if_needed()
                report.screenshot(path=str(tmp_path / "evidently_report.png"))
                assert errors == [] and failed == [], (errors, failed)
                # The icon font the page references is served too (drawn only where an icon is used).
                font = report.evaluate("() => document.head.innerHTML.match(/url\\((_assets\\/[^)]+)\\)/)[1]")
                assert requests.get(href.rsplit("/", 1)[0] + "/" + font, timeout=30).status_code == 200
            finally:
                browser.close()
        assert (tmp_path / "evidently_report.png").stat().st_size > 10_000
    finally:
        if web is not None:
            stop_process(web)
        stop_process(files)
