"""Evaluate one window: the statistics core plus the monitor's extras (trailing baseline, derived
column headline numbers). Pure functions over Storage roots, no Dagster: the ``drift_report`` asset
calls ``evaluate_window`` and so can a test that sweeps hundreds of hours in seconds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from drift_assets.monitoring import gradual
from drift_assets.monitoring.config import MonitorConfig
from drift_assets.monitoring.derived import MEAN_UNITS, apply_derived
from drift_assets.monitoring.explanations import explain_evaluation
from drift_assets.monitoring.joint import JointObserver, JointResult, JointState
from drift_assets.monitoring.sources import stream_log
from drift_assets.monitoring.trailing_baseline import (
    SuddenChangeResult,
    evaluate_sudden_change,
)
from drift_assets.monitoring.windows import (
    CADENCE_LENGTH,
    Window,
    expected_log_types,
    partition_key,
)
from drift_assets.stats import (
    DriftResult,
    ReferenceProfile,
    WindowSummary,
    compare,
    summarize,
)
from drift_assets.stats import rules as r
from drift_assets.stats.binning import CategoricalBinning
from drift_assets.stats.errors import SchemaError
from drift_assets.stats.summary import CategoricalCounts, NumericalCounts
from drift_assets.stats.validation import require_reference_rows
from drift_assets.storage.root import Root
from drift_assets.storage.tables import TableSource

if TYPE_CHECKING:
    from drift_assets.stats.performance_estimation import PerformanceEstimator


@dataclass
class WindowEvaluation:
    window: Window
    summary: WindowSummary
    result: DriftResult
    sudden: SuddenChangeResult | None
    fingerprint: str
    extra: dict = field(default_factory=dict)
    joint: JointResult = field(default_factory=JointResult)
    # "What changed" (``monitoring.explanations``): window text and one text per failed check.
    explanation: dict = field(default_factory=dict)
    # ``no_gradual_drift``: one outcome per numerical top feature, from the stored earlier windows.
    gradual: list[r.CheckOutcome] = field(default_factory=list)
    gradual_skipped: str | None = None

    def what_changed(self, check: str) -> str | None:
        return self.explanation.get("by_check", {}).get(check)

    @property
    def extra_outcomes(self) -> list[r.CheckOutcome]:
        """Checks evaluated beside the core's: trailing baseline, multivariate, segments."""
        return (self.sudden.outcomes if self.sudden else []) + self.joint.outcomes + self.gradual

    @property
    def outcomes(self) -> list[r.CheckOutcome]:
        return list(self.result.checks) + self.extra_outcomes

    def skipped_reason(self, check: str) -> str | None:
        """Why ``check`` has no outcome in this window (None: nothing to say)."""
        if check in self.joint.skipped:
            return self.joint.skipped[check]
        if check == r.NO_GRADUAL_DRIFT:
            return self.gradual_skipped
        if check in (r.SUDDEN_SHIFT, r.SUDDEN_RATE_CHANGE) and self.sudden:
            return self.sudden.skipped
        return None

    def failed(self, severity: str | None = None) -> list[r.CheckOutcome]:
        return [o for o in self.outcomes if not o.passed and (severity is None or o.severity == severity)]


def evaluate_window(
    monitor: MonitorConfig,
    profile: ReferenceProfile,
    window: Window,
    batches: Iterable[pa.RecordBatch] | WindowSummary,
    *,
    data: Root,
    counts_store: Root | None = None,
    problems: dict[str, str] | None = None,
    fitted: Mapping | None = None,
    window_rows: int | None = None,
    reference_batches: Callable[[], Iterable[pa.RecordBatch]] | None = None,
    reports: Root | None = None,
    estimator: PerformanceEstimator | None = None,
) -> WindowEvaluation:
    """The window's measures and checks, from its record batches (summarised here) or from a ready
    ``WindowSummary`` (counted elsewhere, e.g. one task per row group on a Dask cluster: counts
    add, so the statistics that follow are the same). ``fitted``: the reference_profile document
    (its multivariate model and segment profiles); ``window_rows`` sizes the multivariate sample;
    ``reference_batches`` feeds the domain classifier; with ``estimator`` the same pass counts the
    scores for the performance estimate (``summary.performance``, stored with the drift counts).
    ``reports``: the results store, whose stored documents of earlier windows ``no_gradual_drift``
    continues from (no rescan of their rows)."""
    name = f"{monitor.name} window {window.key}"
    observer: JointObserver | None = None
    if isinstance(batches, WindowSummary):
        summary = replace(batches, problems=dict(batches.problems))  # problems are added below, not to the caller's
    else:
        observer = JointObserver(monitor, profile, JointState.from_profile_doc(fitted or {}), window_rows)
        summary = summarize(profile, observer.observe(batches, name), table_name=name, estimator=estimator)
    for column, reason in (problems or {}).items():
        summary.problems.setdefault(column, reason)
    result = compare_window(monitor, profile, summary, name)
    fingerprint = profile.fingerprint()
    sudden = None
    if monitor.sudden_change is not None:
        baseline = baseline_summary(monitor, window, profile, fingerprint, data=data, counts_store=counts_store)
        sudden = evaluate_sudden_change(
            profile, summary, baseline, monitor.sudden_change, monitor.rules, monitor.checks
        )
    extra = {**derived_measures(monitor, profile, summary, result), **(sudden.measures if sudden else {})}
    joint = (
        observer.finish(reference_batches)
        if observer is not None
        else JointResult.not_computed(
            monitor, "the window was counted elsewhere (a cluster): joint measures need its rows"
        )
    )
    evaluation = WindowEvaluation(window, summary, result, sudden, fingerprint, extra, joint)
    evaluation.gradual, evaluation.gradual_skipped = gradual_outcomes(monitor, window, result, reports)
    evaluation.explanation = explain_evaluation(profile, summary, result, evaluation.outcomes, joint)
    return evaluation


def gradual_outcomes(
    monitor: MonitorConfig, window: Window, result: DriftResult, reports: Root | None
) -> tuple[list[r.CheckOutcome], str | None]:
    """``no_gradual_drift`` of this window (outcomes, or why there are none)."""
    if r.NO_GRADUAL_DRIFT not in [rule.name for rule in monitor.check_rules("drift_report")]:
        return [], None
    if reports is None:
        return [], "no results store to read earlier windows from"
    rule = monitor.checks[r.NO_GRADUAL_DRIFT]
    columns = list(monitor.gradual_columns)
    current = {"columns": {name: col.to_dict() for name, col in result.columns.items() if name in columns}}
    previous, state = gradual.read_earlier_windows(reports, monitor.name, monitor.cadence, window, rule.name, columns)
    outcomes = gradual.evaluate_gradual_drift(previous, current, columns, state=state)
    return [
        rule.outcome(o.column, o.passed, o.statistic, o.threshold, **o.details()) for o in outcomes
    ], None if outcomes else "no numerical top feature measured in this window"


def compare_window(monitor: MonitorConfig, profile: ReferenceProfile, summary: WindowSummary, name: str) -> DriftResult:
    """The statistics core's checks of a window's counts, with the monitor's rules and check table."""
    return compare(
        profile,
        summary,
        monitor.rules,
        top_features=set(monitor.top_features),
        table_name=name,
        check_table=monitor.checks,
    )


def gradual_documents(
    monitor: MonitorConfig, profile: ReferenceProfile, data: Root, reports: Root, keys: Iterable[str]
) -> dict[str, dict]:
    """What ``no_gradual_drift`` reads of the windows ``keys`` (in order) once they are evaluated: each
    one's gradual columns and its CUSUM outcomes, computed here from the log alone (no trailing
    baseline, no other check), as ``evaluate_window`` and the results store would give them. The
    CUSUM of a window depends on every earlier one: the demo's hour worker that starts at hour ``s``
    computes the hours before ``s`` this way (``gradual.remember_windows``) while another process
    evaluates them. The column means are sums of the window's values over its row count: for an
    integer-valued column (token counts) they are exact whatever the batches, so the answer is the
    stored one bit for bit; for others they may differ in the last bits."""
    import json

    from drift_assets.monitoring.windows import WindowScan, parse_partition_key
    from drift_assets.storage.root import json_dumps

    types = expected_log_types(monitor)
    columns = list(monitor.gradual_columns)
    out: dict[str, dict] = {}
    for key in keys:
        window = parse_partition_key(key, monitor.cadence)
        name = f"{monitor.name} window {window.key}"
        scan = WindowScan()
        batches = stream_log(data, monitor, window, types=types, derived=monitor.derived, scan=scan)
        summary = summarize(profile, batches, table_name=name)
        for column, reason in scan.problems.items():
            summary.problems.setdefault(column, reason)
        result = compare_window(monitor, profile, summary, name)
        outcomes, _ = gradual_outcomes(monitor, window, result, reports)
        stored = result.to_dict()["columns"]
        doc = {
            "partition": key,
            "columns": {c: stored[c] for c in columns if c in stored},
            "checks": [o.to_dict() for o in outcomes],
        }
        out[key] = json.loads(json_dumps(doc))  # as the store gives it back
        gradual.remember_windows(monitor.name, {key: out[key]})
    return out


def stream_reference(monitor: MonitorConfig, source: TableSource) -> Iterator[pa.RecordBatch]:
    """The reference's batches with the monitor's columns (derived ones computed, label kept for
    retraining), streamed: the whole reference is never held in memory. Columns are checked
    against the unified schema first: a missing one raises ``SchemaError`` naming the table."""
    specs = monitor.column_specs()
    wanted = [s.name for s in specs] + ([monitor.labels.column] if monitor.labels else [])
    wanted += [c for c in monitor.segments if c not in wanted]
    derived = {d.name for d in monitor.derived}
    read = list(dict.fromkeys([c for c in wanted if c not in derived] + [d.source for d in monitor.derived]))
    present = source.schema().names
    missing = [c for c in read if c not in present]
    if missing:
        raise SchemaError(f"{source.display}: reference is missing column(s) {', '.join(map(repr, missing))}")
    rows = source.num_rows()
    if rows is not None:  # parquet: counted from the footers before anything is read
        require_reference_rows(rows, monitor.min_reference_rows, source.display)
    for batch in source.batches(read):
        yield apply_derived(batch, monitor.derived, source.display) if monitor.derived else batch


def read_reference(monitor: MonitorConfig, source: TableSource) -> pa.Table:
    """``stream_reference`` as one table. Raises ``DriftInputError`` naming the file and the column."""
    batches = list(stream_reference(monitor, source))
    if not batches:
        raise SchemaError(f"{source.display}: reference has no rows")
    table = pa.Table.from_batches(batches)
    require_reference_rows(table.num_rows, monitor.min_reference_rows, source.display)
    return table


def counts_path(monitor: MonitorConfig, key: str) -> str:
    return f"{monitor.name}/window_counts/{key.replace(':', '')}.json"


def store_counts(root: Root, monitor: MonitorConfig, key: str, evaluation: WindowEvaluation) -> None:
    """Keep the window's counts (tagged with the profile they were counted in) for later baselines."""
    root.write_json(
        counts_path(monitor, key), {"profile": evaluation.fingerprint, "summary": evaluation.summary.to_dict()}
    )


def baseline_summary(
    monitor: MonitorConfig,
    window: Window,
    profile: ReferenceProfile,
    fingerprint: str,
    *,
    data: Root,
    counts_store: Root | None,
) -> WindowSummary:
    """The previous N windows merged: from their stored counts when every one is there (and was
    counted with this profile), else streamed from the log. Counts add, so both give the same."""
    assert monitor.sudden_change is not None  # only monitors with sudden_change keep a baseline
    n, length = monitor.sudden_change.baseline_windows, CADENCE_LENGTH[monitor.cadence]
    stored: list[WindowSummary] = []
    if counts_store is not None:
        for i in range(1, n + 1):
            path = counts_path(monitor, partition_key(window.start - i * length, monitor.cadence))
            doc = counts_store.read_json(path) if counts_store.exists(path) else None
            if doc is None or doc.get("profile") != fingerprint:
                break
            # Drift counts only: a baseline never estimates performance (its windows' score counts may
            # come from different estimators).
            stored.append(WindowSummary.from_dict(doc["summary"]).without_performance())
    if stored and len(stored) == n:
        total = stored[0]
        for part in stored[1:]:
            total = total + part
        return total
    baseline = Window("baseline", window.start - n * length, window.start)
    batches = stream_log(
        data,
        monitor,
        baseline,
        types=expected_log_types(monitor),
        derived=monitor.derived,
    )
    return summarize(profile, batches, table_name=f"{monitor.name} baseline before {window.key}")


def derived_measures(
    monitor: MonitorConfig, profile: ReferenceProfile, summary: WindowSummary, result: DriftResult
) -> dict:
    """Headline numbers of derived columns (e.g. the LLM refusal rate, mean output length), and
    ``units``: the unit of each mean (from its function), which the exporter puts in the metric name."""
    extra: dict[str, float | dict[str, str]] = {}
    units: dict[str, str] = {}
    for d in monitor.derived:
        counts = summary.columns.get(d.name)
        if counts is None or counts.valid == 0:
            continue
        if isinstance(counts, CategoricalCounts):
            binning = profile.columns[d.name].binning
            assert isinstance(binning, CategoricalBinning)  # categorical counts are counted in a vocabulary
            vocab = binning.vocabulary
            yes = counts.counts[vocab.index("yes")] if "yes" in vocab else counts.unseen_values.get("yes", 0)
            extra[f"{d.name}_rate"] = float(yes) / counts.valid
        elif isinstance(counts, NumericalCounts):
            extra[f"{d.name}_mean"] = float(counts.sketch_sums.sum()) / counts.valid
            if d.function in MEAN_UNITS:
                units[d.name] = MEAN_UNITS[d.function]
            column = result.columns.get(d.name)
            if column is not None and column.psi is not None:
                extra[f"{d.name}_psi"] = column.psi
    if units:
        extra["units"] = units
    return extra


def by_model_version(monitor: MonitorConfig, window) -> dict:
    """Per-model-version breakdown of the window (rows, rates, means): a version change shows here."""
    column = monitor.model_version_column
    if not column or not monitor.derived:
        return {}
    table = window.read([column, *[d.name for d in monitor.derived]])
    aggregations, names = [], []
    for d in monitor.derived:
        if d.name not in table.column_names:
            continue
        if d.function in ("matches_any", "is_empty"):
            is_yes = pc.cast(pc.equal(table.column(d.name), "yes"), pa.float64())
            table = table.set_column(table.column_names.index(d.name), d.name, is_yes)
            names.append(f"{d.name}_rate")
        else:
            names.append(f"{d.name}_mean")
        aggregations.append((d.name, "mean"))
    grouped = table.group_by(column).aggregate([(column, "count"), *aggregations])
    out = {}
    for row in grouped.to_pylist():
        out[str(row[column])] = {
            "rows": row[f"{column}_count"],
            **{n: row[f"{a[0]}_mean"] for n, a in zip(names, aggregations, strict=True)},
        }
    return {"by_model_version": out}
