"""What an operator sees in the Dagster UI, in a real browser: the week that failed an ERROR check is
marked failed in ``fraud/drift_alert``'s Partitions view and counted failed in the catalog.

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
from dagster import DagsterInstance
from servers import free_port, stop_process, wait_until
from support import project_dagster_home

from drift_assets.definitions import build_definitions
from drift_assets.monitoring.config import load_monitors

pytestmark = pytest.mark.slow  # a webserver, Dagster runs and a browser

PROJECT_ROOT = Path(__file__).resolve().parent.parent
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
STATIONARY, DRIFTED = "2026-08-03", "2026-08-17"
PARTITIONS_QUERY = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode { assetPartitionStatuses { ... on TimePartitionStatuses { ranges { status startKey endKey } } } }
  }
}
"""


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
    sync_playwright = browser_or_skip()
    from drift_assets.cli.demo import run_window

    project_dagster_home(tmp_path, monkeypatch)
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
                dismiss_newsletter(page)
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
        stop_process(proc)


# ----------------------------------------------------------------------------- runs the UI can see
WORKSPACE_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries { name
    locationOrLoadError { ... on RepositoryLocation { name repositories { name } } } } } } }
"""
JOB_RUNS_QUERY = """
query ($job: String!) {
  pipelineOrError(
    params: {repositoryLocationName: "drift_assets", repositoryName: "__repository__", pipelineName: $job}
  ) {
    ... on Pipeline { runs { runId status } }
  }
}
"""
BACKFILLS_QUERY = """
{ partitionBackfillsOrError { ... on PartitionBackfills { results {
    id status title partitionSetName numPartitions
    partitionSet { name }
    partitionStatuses { results { partitionName runStatus runId } } } } } }
"""
BACKFILL_WEEKS = ["2026-08-03", "2026-08-10", "2026-08-17"]  # the last one drifted


def _cli_backfill(first: str, last: str) -> str:
    cli = os.path.join(os.path.dirname(sys.executable), "drift-assets")
    out = subprocess.run(
        [cli, "backfill", "--monitor", "fraud", "--from", first, "--to", last],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_cli_backfill_runs_are_a_backfill_of_the_code_location_in_the_ui(project, monkeypatch, tmp_path):
    """``drift-assets backfill`` (no daemon, no webserver) leaves a Dagster backfill whose runs carry the
    origin of workspace.yaml's code location and the monitor tag: the webserver lists them under the
    job and on the Backfills page. A run executed with plain ``execute_in_process`` (the old path) is
    the control: the webserver does not show it under the job."""
    from dagster import RunsFilter

    from drift_assets.orchestration.keys import MONITOR_TAG

    project_dagster_home(tmp_path, monkeypatch)
    monkeypatch.setenv("DRIFT_ASSETS_HTML_REPORTS", "0")
    defs = build_definitions()
    with DagsterInstance.get() as instance:
        assert defs.resolve_job_def("fraud_reference_job").execute_in_process(instance=instance, run_config=QUIET)
        control = defs.resolve_job_def("fraud_window_job").execute_in_process(
            partition_key="2026-08-24", instance=instance, run_config=QUIET
        )
    stdout = _cli_backfill(BACKFILL_WEEKS[0], BACKFILL_WEEKS[-1])
    assert "3 window(s), 0 failed run(s)" in stdout

    with DagsterInstance.get() as instance:
        backfills = {b.partition_set_origin.partition_set_name: b for b in instance.get_backfills()}
        assert set(backfills) == {"fraud_window_job_partition_set", "fraud_alert_job_partition_set"}
        window, verdicts = backfills["fraud_window_job_partition_set"], backfills["fraud_alert_job_partition_set"]
        assert f"Dagster backfills {window.backfill_id} (fraud_window_job) and {verdicts.backfill_id}" in stdout
        assert list(window.partition_names) == BACKFILL_WEEKS == list(verdicts.partition_names)
        assert (window.status.value, verdicts.status.value) == ("COMPLETED_SUCCESS", "COMPLETED_FAILED")
        assert window.backfill_end_timestamp and window.title.startswith("drift-assets backfill: fraud")
        runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": window.backfill_id}))
        alert_runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": verdicts.backfill_id}))
        # The stored label the UI filters a job's runs by (the control run has none).
        label = {".dagster/repository": "__repository__@drift_assets"}
        labelled = {r.run_id for r in instance.get_runs(RunsFilter(tags=label))}
    assert sorted(r.tags["dagster/partition"] for r in runs) == BACKFILL_WEEKS
    assert {r.tags["dagster/partition"]: r.status.value for r in alert_runs} == {
        "2026-08-03": "SUCCESS",
        "2026-08-10": "SUCCESS",
        "2026-08-17": "FAILURE",  # the drift_alert verdict on the drifted week
    }
    for run in [*runs, *alert_runs]:
        origin = run.remote_job_origin.repository_origin
        assert run.status.value in ("SUCCESS", "FAILURE") and run.tags[MONITOR_TAG] == "fraud"
        assert origin.get_label() == "__repository__@drift_assets"
        assert run.job_code_origin.repository_origin.code_pointer.module == "drift_assets.definitions"
        assert run.tags["drift_assets/launched_by"] == "drift-assets backfill"
    assert {r.run_id for r in [*runs, *alert_runs]} == labelled and control.run_id not in labelled
    locations = {
        (o.repository_origin.code_location_origin.location_name, o.repository_origin.repository_name)
        for o in (r.remote_job_origin for r in [*runs, *alert_runs])
    }

    proc, base = _webserver(tmp_path)
    try:
        wait_until(
            lambda: _graphql(base, JOB_RUNS_QUERY, job="fraud_window_job")["pipelineOrError"].get("runs") is not None,
            timeout=120,
            message="webserver to load the code location",
        )
        entries = _graphql(base, WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
        loaded = {(e["name"], r["name"]) for e in entries for r in e["locationOrLoadError"]["repositories"]}
        assert locations == loaded == {("drift_assets", "__repository__")}
        listed = {r["runId"] for r in _graphql(base, JOB_RUNS_QUERY, job="fraud_window_job")["pipelineOrError"]["runs"]}
        assert listed == {r.run_id for r in runs}  # the backfill's runs; not the execute_in_process control
        assert control.run_id not in listed
        listed_alerts = _graphql(base, JOB_RUNS_QUERY, job="fraud_alert_job")["pipelineOrError"]["runs"]
        assert {r["runId"] for r in listed_alerts} == {r.run_id for r in alert_runs}

        shown = {b["id"]: b for b in _graphql(base, BACKFILLS_QUERY)["partitionBackfillsOrError"]["results"]}
        assert set(shown) == {window.backfill_id, verdicts.backfill_id}
        assert shown[window.backfill_id]["partitionSet"] == {"name": "fraud_window_job_partition_set"}
        assert shown[window.backfill_id]["numPartitions"] == 3
        statuses = {
            p["partitionName"]: p["runStatus"] for p in shown[verdicts.backfill_id]["partitionStatuses"]["results"]
        }
        assert statuses == {"2026-08-03": "SUCCESS", "2026-08-10": "SUCCESS", "2026-08-17": "FAILURE"}

        with browser_or_skip()() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"{base}/runs?view=backfills", timeout=60_000)
                dismiss_newsletter(page)
                for backfill in (window, verdicts):
                    page.get_by_text(backfill.backfill_id, exact=True).first.wait_for(timeout=30_000)
                page.screenshot(path=str(tmp_path / "backfills.png"))

                page.goto(f"{base}/runs/b/{verdicts.backfill_id}", timeout=60_000)
                row = page.locator("tr", has_text="fraud_alert_job_partition_set").first
                row.wait_for(timeout=30_000)
                # Partitions targeted, in progress, succeeded, failed: the drifted week's verdict failed.
                assert [c.strip() for c in row.locator("td").all_inner_texts()][1:5] == ["3", "0", "2", "1"]
                page.screenshot(path=str(tmp_path / "backfill_partitions.png"))

                page.goto(f"{base}/overview/activity/timeline", timeout=60_000)
                page.get_by_text("fraud_window_job").first.wait_for(timeout=30_000)  # a row with run bars
                page.screenshot(path=str(tmp_path / "timeline.png"))

                page.goto(f"{base}/locations/drift_assets/jobs/fraud_window_job/runs", timeout=60_000)
                for run in runs:
                    page.get_by_text(run.run_id[:8]).first.wait_for(timeout=30_000)
                assert page.get_by_text(control.run_id[:8]).count() == 0
                page.screenshot(path=str(tmp_path / "job_runs.png"))
            finally:
                browser.close()
        assert (tmp_path / "backfills.png").stat().st_size > 10_000
    finally:
        stop_process(proc)
