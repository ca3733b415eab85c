"""``<monitor>/evidently_report``: the Evidently HTML of a window, an asset of its own downstream of
``drift_report`` so the drift evaluation never waits for Evidently (seconds per window).

When it is written (the op's ``when`` config, default ``auto``):
- ``auto``: in a run that also evaluates the window (the ``<monitor>_window_job``, or any run whose
  selection holds ``drift_report``: a backfill, "Materialize all") the monitor's policy,
  ``extra.html_report`` in monitors.yaml:
  - ``on_failure`` (the default): every window that failed an ERROR check;
  - ``on_new_failure``: the first window of each incident: a window that failed an ERROR check
    (name and column) which did not fail in the previous window (the previous partition by cadence),
    or whose previous window was never evaluated (or is before the monitor's start). The next windows
    of the same incident get none (the log says which checks have been failing since which window);
    for an hourly monitor a four-day incident is then one page, not ninety-odd ~1 MB pages at
    ~2.5 s of Evidently each. The previous window's verdicts are read from its stored drift report
    (the same JSON this asset reads for its own window), not from Dagster's event log;
  - ``true`` (always) or ``false`` (never).
  ``DRIFT_ASSETS_HTML_REPORTS=0`` turns the policy off. An unknown setting fails loading the
  monitors file (monitoring/config.py), naming the monitor and the allowed values. In a run that
  materialises only this asset (the UI's Materialize on a partition) the report is what was asked
  for: always, whatever the verdict, so any skipped window's page is one click away.
- ``always`` / ``on_failure`` / ``on_new_failure`` / ``never``: as named, whatever the run (the
  launchpad can set it).

The output is optional (``output_required=False``): a window the policy skips has no
materialisation of this asset, its step costs milliseconds and logs why. A written report is kept
per evaluation (the run id in its name) and linked from the materialisation as a URL; its ``reason``
metadata says why it was written.
"""

# No `from __future__ import annotations`: Dagster reads the annotations of asset functions.

import os
import tempfile

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Enum,
    EnumValue,
    Failure,
    Field,
    MetadataValue,
    Output,
    asset,
)

from drift_assets.monitoring.config import DEFAULT_HTML_REPORT, HTML_REPORT_POLICIES, MonitorConfig
from drift_assets.monitoring.windows import CADENCE_LENGTH, parse_partition_key, partition_key
from drift_assets.orchestration.io_managers import StoredTable, asset_path
from drift_assets.orchestration.keys import MonitorKeys
from drift_assets.orchestration.partitions import partitions_for
from drift_assets.orchestration.resources import StorageResource

HTML_REPORTS_ENV = "DRIFT_ASSETS_HTML_REPORTS"  # "0": the policy writes no report (on-demand runs still do)
# How far back ``on_new_failure`` looks for the window an incident started in (for its log line only).
INCIDENT_LOOKBACK = 168
WHEN = Enum(
    "EvidentlyReportWhen",
    [
        EnumValue("auto", description="The monitor's policy when the run evaluates the window; always otherwise."),
        EnumValue("always", description="Write the report whatever the window's verdict."),
        EnumValue("on_failure", description="Only for a window whose drift report failed an ERROR check."),
        EnumValue(
            "on_new_failure",
            description="Only for a window failing an ERROR check that did not fail in the previous window "
            "(the first window of an incident), or whose previous window was never evaluated.",
        ),
        EnumValue("never", description="Write no report."),
    ],
)
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".woff2": "font/woff2"}


def configured_policy(monitor: MonitorConfig) -> str | None:
    """``always``, ``on_failure``, ``on_new_failure`` or ``never``: monitors.yaml's
    ``extra.html_report`` (default ``on_failure``), ``never`` with DRIFT_ASSETS_HTML_REPORTS=0; None
    for a setting it does not know (loading monitors.yaml refuses one; a MonitorConfig built in code
    may still hold one)."""
    setting = monitor.extra.get("html_report", DEFAULT_HTML_REPORT)
    if not isinstance(setting, bool | str) or setting not in HTML_REPORT_POLICIES:
        return None
    return "never" if os.environ.get(HTML_REPORTS_ENV, "1") == "0" else HTML_REPORT_POLICIES[setting]


def monitor_policy(monitor: MonitorConfig) -> str:
    """``configured_policy`` at run time: an unknown setting fails the step with one line."""
    policy = configured_policy(monitor)
    if policy is None:
        setting = monitor.extra.get("html_report")
        raise Failure(
            description=f"monitor {monitor.name}: extra.html_report must be true, false, on_failure or "
            f"on_new_failure, not {setting!r}"
        )
    return policy


def resolve_when(when: str, monitor: MonitorConfig, job_name: str, run_selection) -> str:
    """``auto`` -> the monitor's policy in a run that evaluates the window, else ``always``."""
    if when != "auto":
        return when
    keys = MonitorKeys(monitor.name)
    evaluates_window = job_name == keys.window_job or keys.drift_report in (run_selection or ())
    return monitor_policy(monitor) if evaluates_window else "always"


def failed_error_checks(record: dict) -> list[dict]:
    """The ERROR checks a drift report's record failed (the sudden-change checks included)."""
    return [c for c in record.get("checks", []) if not c["passed"] and c["severity"] == "ERROR"]


def _check_names(checks) -> list[str]:
    """``name[column]`` (``-`` for a table-level check): how the log, metadata and alerts name a check."""
    return sorted({f"{c['name']}[{c.get('column') or '-'}]" for c in checks})


def previous_partition(monitor: MonitorConfig, key: str) -> str | None:
    """The window before ``key`` by the monitor's cadence; None before the monitor's first window."""
    start = parse_partition_key(key, monitor.cadence).start - CADENCE_LENGTH[monitor.cadence]
    return None if start < monitor.start else partition_key(start, monitor.cadence)


class WindowHistory:
    """The stored drift records of one monitor's windows, read as ``on_new_failure`` asks for them:
    ``key`` is the window decided; ``load(partition)`` returns a record or None (never evaluated)."""

    def __init__(self, monitor: MonitorConfig, key: str, load) -> None:
        self.monitor, self.key, self._load = monitor, key, load

    def previous(self, key: str) -> tuple[str | None, dict | None]:
        before = previous_partition(self.monitor, key)
        return before, (None if before is None else self._load(before))


def wants_report(mode: str, record: dict, history: WindowHistory | None = None) -> tuple[bool, str]:
    """Whether to write the report under ``mode``, and why (for the log and the metadata).
    ``on_new_failure`` needs ``history``: the monitor's stored drift records by window."""
    if mode == "never":
        return False, "policy: never"
    if mode == "always":
        return True, "always"
    failed = _check_names(failed_error_checks(record))
    if not failed:
        return False, f"policy {mode}: no ERROR check failed"
    if mode == "on_failure":
        return True, f"failed ERROR check(s): {', '.join(failed)}"
    if history is None:
        raise ValueError("on_new_failure needs the window history")
    return new_failure(failed, history)


def new_failure(failed: list[str], history: WindowHistory) -> tuple[bool, str]:
    """``on_new_failure`` for a window failing ``failed``: write unless every one of them also
    failed in the previous window; when skipping, say since which window they have all been failing
    (going back at most ``INCIDENT_LOOKBACK`` windows)."""
    names = ", ".join(failed)
    before, record = history.previous(history.key)
    if before is None:
        return True, f"failed ERROR check(s): {names} (the monitor's first window)"
    if record is None:
        return True, f"failed ERROR check(s): {names} (previous window {before} never evaluated)"
    new = sorted(set(failed) - set(_check_names(failed_error_checks(record))))
    if new:
        return True, f"newly failing ERROR check(s): {', '.join(new)} (not failing in the previous window {before})"
    since = before
    for _ in range(INCIDENT_LOOKBACK):
        earlier, earlier_record = history.previous(since)
        if earlier is None or earlier_record is None:
            break
        if not set(failed) <= set(_check_names(failed_error_checks(earlier_record))):
            break
        since = earlier
    else:
        since = f"before {since}"
    return False, (
        f"ERROR check(s) {names} already failing since {since}: report on demand "
        "(materialise evidently_report for this window)"
    )


def _store_shared_assets(storage: StorageResource, directory: str) -> None:
    """Evidently's JS bundle and font under ``<directory>/_assets/``, once (named by content hash)."""
    from drift_assets.monitoring.reports import SHARED_ASSETS_DIR, shared_asset_files

    reports = storage.storage().reports
    for name, source in shared_asset_files().items():
        relative = f"{directory}/{SHARED_ASSETS_DIR}/{name}"
        if not reports.exists(relative):
            storage.put_file("reports", relative, source, content_type=CONTENT_TYPES.get(source.suffix))


def write_report(
    context: AssetExecutionContext,
    storage: StorageResource,
    monitor: MonitorConfig,
    record: dict,
    window: StoredTable,
    reference: StoredTable,
) -> tuple[dict, dict]:
    """Render the page (this project's decision first, then Evidently's presets on samples of both
    tables) and store it with its shared assets. Returns (the asset's value, its metadata)."""
    # Imported here: pandas and Evidently cost seconds that loading the definitions need not pay.
    from drift_assets.monitoring.reports import (
        evidently_summary,
        render_evidently_report,
        report_file_name,
        report_url,
        sample_source,
        verdict_differences,
    )

    key = context.partition_key
    specs = monitor.column_specs()
    present = [s for s in specs if s.name in window.schema().names]
    names = [s.name for s in present]
    page = render_evidently_report(
        sample_source(reference, names),
        sample_source(window, names, seed=1),
        present,
        decision=record,
        title=f"{monitor.name} {key}",
        prediction_kind=monitor.prediction_kind,
        shared_assets=True,
    )
    directory = f"{monitor.name}/html"
    relative = f"{directory}/{report_file_name(key, context.run_id)}"
    if page.shared:
        _store_shared_assets(storage, directory)
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "report.html")
        with open(local, "w", encoding="utf-8") as f:
            f.write(page.html)
        size = os.path.getsize(local)
        uri = storage.put_file("reports", relative, local, content_type="text/html; charset=utf-8")
    differences = verdict_differences(record, page.verdicts)
    drifted = sorted(n for n, v in page.verdicts.items() if v["drifted"])
    value = {
        "partition": key,
        "path": uri,
        "relative_path": relative,
        "shared_assets": page.shared,
        "evidently_drifted": drifted,
        "evidently_columns": len(page.verdicts),
        "verdict_differences": [name for name, _, _ in differences],
    }
    metadata = {
        "evidently_report": MetadataValue.path(uri),
        "size_bytes": size,
        "shared_assets": MetadataValue.bool(page.shared),
        "evidently_verdict": MetadataValue.text(evidently_summary(record, page.verdicts)),
        "verdict_differences": MetadataValue.text(
            ", ".join(
                f"{name} (checks: {'drifted' if ours.get('drifted') else 'not'}; Evidently: "
                f"{'drifted' if theirs['drifted'] else 'not'})"
                for name, ours, theirs in differences
            )
            or "(none)"
        ),
    }
    url = report_url(uri, relative)
    if url:
        metadata["evidently_report_url"] = MetadataValue.url(url)
        value["url"] = url
    return value, metadata


def _stored_inputs(storage: StorageResource, keys: MonitorKeys, partition: str):
    """The window's drift record, production window and reference, where the IO managers stored them."""
    assets = storage.storage().assets
    record_path = asset_path(keys.drift_report.path, partition, "json")
    if not assets.exists(record_path):
        raise Failure(
            description=f"{keys.monitor} window {partition}: no drift_report at {assets.uri_of(record_path)}; "
            "materialise drift_report for this window first"
        )
    window = StoredTable(assets, asset_path(keys.production_window.path, partition, "parquet"))
    reference = StoredTable(assets, asset_path(keys.reference_data.path, None, "parquet"))
    return assets.read_json(record_path), window, reference


def stored_history(storage: StorageResource, monitor: MonitorConfig, key: str) -> WindowHistory:
    """The monitor's drift records where drift_report's IO manager stores them (read lazily)."""
    assets = storage.storage().assets
    path = MonitorKeys(monitor.name).drift_report.path

    def load(partition: str) -> dict | None:
        relative = asset_path(path, partition, "json")
        if assets.exists(relative):
            return assets.read_json(relative)
        return _RECORDS_ELSEWHERE.get((monitor.name, partition))

    return WindowHistory(monitor, key, load)


# (monitor, window) -> the checks of a drift record another process is evaluating at the same time
# (the demo's hour workers, cli/hours.py), for ``on_new_failure`` until the record is stored.
_RECORDS_ELSEWHERE: dict[tuple[str, str], dict] = {}


def remember_record(monitor: str, key: str, record: dict) -> None:
    """Make ``record`` (``{"checks": [...]}`` as a drift record has them) the window's until it is stored."""
    _RECORDS_ELSEWHERE[(monitor, key)] = record


def evidently_report_asset(monitor: MonitorConfig) -> AssetsDefinition:
    keys = MonitorKeys(monitor.name)

    @asset(
        key=keys.evidently_report,
        partitions_def=partitions_for(monitor),
        # Dependencies, not inputs: a skipped report then costs its step's start and end events only
        # (no input loads), the outputs are opened here when the page is written.
        deps=[keys.drift_report, keys.production_window, keys.reference_data],
        group_name=monitor.name,
        io_manager_key="json_io_manager",
        output_required=False,
        config_schema={
            "when": Field(
                WHEN,
                default_value="auto",
                description="auto: the monitor's policy (extra.html_report) in a run that evaluates the window, "
                "always in a run that materialises only this report.",
            )
        },
        description="The window's Evidently HTML report, opening with this project's decision (and where "
        "Evidently's verdict differs); written for windows that fail an ERROR check (or as monitors.yaml's "
        "extra.html_report says), and always when materialised on its own from the UI.",
        kinds={"evidently", "html"},
    )
    def evidently_report(context: AssetExecutionContext, storage: StorageResource):
        mode = resolve_when(context.op_config["when"], monitor, context.job_name, context.run.asset_selection)
        if mode == "never":
            context.log.info(f"{monitor.name} window {context.partition_key}: no Evidently report (policy: never)")
            return
        record, window, reference = _stored_inputs(storage, keys, context.partition_key)
        write, reason = wants_report(mode, record, stored_history(storage, monitor, context.partition_key))
        if not write:
            context.log.info(f"{monitor.name} window {context.partition_key}: no Evidently report ({reason})")
            return
        value, metadata = write_report(context, storage, monitor, record, window, reference)
        yield Output(value, metadata={**metadata, "reason": MetadataValue.text(f"{mode}: {reason}")})

    return evidently_report
