"""``html_report: on_new_failure`` through real incidents: the LLM monitor's hourly window job on an
on-disk Dagster instance over a simulated log with a refusal spike (three hours) and an output-length
collapse (from a model version change on). The Evidently page is written for the first failing hour
of each incident, not for the next ones, and for a failing hour whose previous hour was never
evaluated; a skipped hour's page is still one on-demand run away."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
import yaml
from dagster import AssetKey, AssetRecordsFilter, instance_for_test
from support import PROJECT_ROOT, project_dagster_home

pytestmark = pytest.mark.slow  # Dagster runs and four Evidently reports (~30 s)

START = dt.date(2026, 10, 5)
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
REPORT = AssetKey(["llm", "evidently_report"])


def simulated_log(root, **incidents):
    from drift_assets.simulate import simulate_llm

    simulate_llm(str(root / "llm"), start=START, days=3, reference_days=3, **incidents)
    return root


@pytest.fixture(scope="module")
def apart(tmp_path_factory):
    """A refusal spike 2026-10-06 14:00-17:00, then the output-length collapse from 10-07 09:00."""
    incidents = {"refusal_spike_day": 2, "refusal_spike_hours": (14, 17), "version_change_day": 3}
    return simulated_log(tmp_path_factory.mktemp("apart"), **incidents, version_change_hour=9)


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory):
    """The output-length collapse from 2026-10-07 09:00 and a refusal spike 11:00-14:00 during it."""
    incidents = {"refusal_spike_day": 3, "refusal_spike_hours": (11, 14), "version_change_day": 3}
    return simulated_log(tmp_path_factory.mktemp("overlapping"), **incidents, version_change_hour=9)


def make_project(log, tmp_path, monkeypatch):
    shutil.copytree(log, tmp_path / "data")
    config = yaml.safe_load((PROJECT_ROOT / "monitors.yaml").read_text())
    llm = config["monitors"]["llm"]
    assert llm["extra"]["html_report"] == "on_new_failure"  # the project's setting for this monitor
    llm["start"], llm["end"] = START.isoformat(), (START + dt.timedelta(days=3)).isoformat()
    (tmp_path / "monitors.yaml").write_text(yaml.safe_dump({"monitors": {"llm": llm}}, sort_keys=False))
    for name, value in {
        "DRIFT_ASSETS_DATA_ROOT": tmp_path / "data",
        "DRIFT_ASSETS_ASSETS_ROOT": tmp_path / "assets",
        "DRIFT_ASSETS_REPORTS_ROOT": tmp_path / "reports",
        "DRIFT_ASSETS_MONITORS": tmp_path / "monitors.yaml",
    }.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("DRIFT_ASSETS_HTML_REPORTS", raising=False)
    monkeypatch.delenv("DRIFT_ASSETS_REPORTS_URL", raising=False)
    project_dagster_home(tmp_path, monkeypatch)
    return tmp_path


class Hours:
    """The llm window job, one hour at a time, on an on-disk instance with the reference built."""

    def __init__(self, instance):
        from drift_assets.definitions import build_definitions

        self.defs, self.instance = build_definitions(), instance
        self.job = self.defs.resolve_job_def("llm_window_job")
        assert self.defs.resolve_job_def("llm_reference_job").execute_in_process(instance=instance, run_config=QUIET)

    def run(self, key: str) -> tuple[bool, str]:
        """Whether the hour's run wrote the page, and the report step's reason (metadata or log)."""
        result = self.job.execute_in_process(partition_key=key, instance=self.instance, run_config=QUIET)
        written = [e for e in result.get_asset_materialization_events() if e.asset_key == REPORT]
        if written:
            return True, written[0].materialization.metadata["reason"].value
        logs = [
            e.user_message for e in self.instance.all_logs(result.run_id) if "no Evidently report" in e.user_message
        ]
        assert len(logs) == 1, logs
        return False, logs[0]

    def pages(self) -> list[str]:
        records = self.instance.fetch_materializations(AssetRecordsFilter(asset_key=REPORT), limit=50).records
        return sorted(r.partition_key for r in records)


def failing(project, key: str) -> set[str]:
    """The ERROR checks the stored record of ``key`` failed, as name[column]."""
    record = json.loads((project / "reports" / "llm" / "drift" / f"{key}.json").read_text())
    return {
        f"{c['name']}[{c.get('column') or '-'}]"
        for c in record["checks"]
        if not c["passed"] and c["severity"] == "ERROR"
    }


def test_on_new_failure_writes_the_first_hour_of_each_incident(apart, tmp_path, monkeypatch):
    project = make_project(apart, tmp_path, monkeypatch)
    with instance_for_test() as instance:
        h = Hours(instance)
        run = h.run
        hours = ["2026-10-06-13:00", "2026-10-06-14:00", "2026-10-06-15:00", "2026-10-06-16:00", "2026-10-06-17:00"]
        outcome = {key: run(key) for key in hours}
        refusal = "no_sudden_rate_change_vs_recent_windows[refusal]"
        assert not failing(project, "2026-10-06-13:00") and not outcome["2026-10-06-13:00"][0]
        assert all(refusal in failing(project, k) for k in hours[1:4])
        written, reason = outcome["2026-10-06-14:00"]
        assert written and reason.startswith("on_new_failure: newly failing ERROR check(s): ")
        assert refusal in reason and "not failing in the previous window 2026-10-06-13:00" in reason
        for key in ("2026-10-06-15:00", "2026-10-06-16:00"):
            assert failing(project, key) <= failing(project, "2026-10-06-14:00")  # nothing new in the spike
            written, reason = outcome[key]
            assert not written and "already failing since 2026-10-06-14:00: report on demand" in reason, reason
        assert not failing(project, "2026-10-06-17:00") and not outcome["2026-10-06-17:00"][0]

        # The second incident, after a passing hour: its first hour gets a page.
        assert not run("2026-10-07-08:00")[0] and not failing(project, "2026-10-07-08:00")
        written, reason = run("2026-10-07-09:00")
        assert written and "output_length]" in reason and "previous window 2026-10-07-08:00" in reason
        # The next hour fails the same two checks on output_length: no page.
        written, reason = run("2026-10-07-10:00")
        assert failing(project, "2026-10-07-10:00") == failing(project, "2026-10-07-09:00")
        assert not written and "already failing since 2026-10-07-09:00: report on demand" in reason, reason
        # An hour whose previous hour was never evaluated: a page, whatever the hour before held.
        written, reason = run("2026-10-07-12:00")
        assert failing(project, "2026-10-07-12:00") <= failing(project, "2026-10-07-10:00")  # nothing new
        assert written and "previous window 2026-10-07-11:00 never evaluated" in reason, reason

        assert h.pages() == ["2026-10-06-14:00", "2026-10-07-09:00", "2026-10-07-12:00"]
        assert len(list((project / "reports" / "llm" / "html").glob("*.html"))) == 3

        # A skipped hour's page on demand (the UI's Materialize on the asset alone): written.
        result = h.defs.resolve_implicit_global_asset_job_def().execute_in_process(
            asset_selection=[REPORT], partition_key="2026-10-06-15:00", instance=instance, run_config=QUIET
        )
        [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == REPORT]
        assert event.materialization.metadata["reason"].value == "always: always"


def test_another_error_check_failing_during_an_incident_writes_a_page(overlapping, tmp_path, monkeypatch):
    project = make_project(overlapping, tmp_path, monkeypatch)
    refusal = "no_sudden_rate_change_vs_recent_windows[refusal]"
    with instance_for_test() as instance:
        h = Hours(instance)
        outcome = {key: h.run(key) for key in ("2026-10-07-08:00", "2026-10-07-09:00", "2026-10-07-10:00")}
        assert [w for w, _ in outcome.values()] == [False, True, False]
        assert refusal not in failing(project, "2026-10-07-10:00")
        # The refusal spike starts while output_length is still failing: a page for the new check.
        written, reason = h.run("2026-10-07-11:00")
        assert failing(project, "2026-10-07-10:00") & failing(project, "2026-10-07-11:00")  # still failing
        new = sorted(failing(project, "2026-10-07-11:00") - failing(project, "2026-10-07-10:00"))
        assert refusal in new and not any("output_length" in n for n in new)
        assert written and reason == (
            f"on_new_failure: newly failing ERROR check(s): {', '.join(new)} (not failing in the previous window "
            "2026-10-07-10:00)"
        )
        written, reason = h.run("2026-10-07-12:00")
        assert failing(project, "2026-10-07-12:00") <= failing(project, "2026-10-07-11:00")
        assert not written and f"{refusal}" in reason and "already failing since 2026-10-07-" in reason, reason
        assert h.pages() == ["2026-10-07-09:00", "2026-10-07-11:00"]
