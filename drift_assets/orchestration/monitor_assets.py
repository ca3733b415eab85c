"""Per-monitor assets, one small builder each: reference data -> profile; production window -> drift
report (+ checks); model performance once labels arrive; the champion model for lineage.

Every builder is thin: reading and writing go through Storage, numbers come from ``drift_assets.stats``
and ``drift_assets.monitoring``. Keys are ``<monitor>/<asset>`` and each monitor is its own asset group.
"""

# No `from __future__ import annotations`: Dagster reads the annotations of asset functions.

import itertools
import json
import os
from collections.abc import Iterator

import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetOut,
    AssetsDefinition,
    AutomationCondition,
    Failure,
    MaterializeResult,
    MetadataValue,
    Output,
    TableColumn,
    TableSchema,
    asset,
    multi_asset,
)

from drift_assets.monitoring.config import MonitorConfig
from drift_assets.monitoring.evaluation import (
    by_model_version,
    evaluate_window,
    store_counts,
    stream_reference,
)
from drift_assets.monitoring.joint import fit_joint, joint_columns
from drift_assets.monitoring.performance import (
    estimate_window,
    estimator_of,
    fit_estimator_record,
    model_versions_in,
    realized_performance,
    reconcile,
    stored_summary,
)
from drift_assets.monitoring.profile_cache import fit_profile_cached
from drift_assets.monitoring.registry import (
    RegistryError,
    reference_location,
    registry_of,
)
from drift_assets.monitoring.results import record_drift, record_performance
from drift_assets.monitoring.results_store import ResultsStore
from drift_assets.monitoring.sources import log_display, preflight_log, reference_table, stream_log
from drift_assets.monitoring.windows import (
    WindowScan,
    expected_log_types,
    parse_partition_key,
)
from drift_assets.orchestration import checks as chk
from drift_assets.orchestration.io_managers import BatchStream, StoredTable
from drift_assets.orchestration.keys import MonitorKeys
from drift_assets.orchestration.partitions import partitions_for
from drift_assets.orchestration.report_asset import evidently_report_asset, failed_error_checks
from drift_assets.orchestration.resources import ComputeResource, StorageResource
from drift_assets.stats import DriftInputError, ReferenceProfile, auc_check
from drift_assets.stats.checks import estimated_auc_check, target_prevalence_check
from drift_assets.stats.performance_estimation import PerformanceEstimate, PerformanceEstimator
from drift_assets.stats.rules import TARGET_PREVALENCE
from drift_assets.storage.root import sha256_of_files
from drift_assets.storage.tables import TableSource

WINDOW_PROBLEMS_KEY = "drift_assets.window_problems"


def _in(key: AssetKey) -> AssetIn:
    return AssetIn(key=key)


def _table_schema(schema: pa.Schema) -> TableSchema:
    return TableSchema(columns=[TableColumn(f.name, str(f.type)) for f in schema])


def build_monitor_assets(monitor: MonitorConfig) -> list[AssetsDefinition]:
    assets = [
        reference_data_asset(monitor),
        reference_profile_asset(monitor),
        production_window_asset(monitor),
        drift_report_asset(monitor),
        drift_alert_asset(monitor),
        evidently_report_asset(monitor),
    ]
    if monitor.model_registry:
        assets.append(champion_model_asset(monitor))
    if monitor.estimates_performance:
        assets.append(performance_estimator_asset(monitor))
    if monitor.labels and monitor.model_registry and monitor.prediction:
        assets.append(model_performance_asset(monitor))
    return assets


def reference_data_asset(monitor: MonitorConfig) -> AssetsDefinition:
    keys = MonitorKeys(monitor.name)

    @asset(
        key=keys.reference_data,
        group_name=monitor.name,
        io_manager_key="parquet_io_manager",
        description=f"Training reference of monitor '{monitor.name}': the distribution production windows are "
        "compared with.",
        kinds={"parquet"},
    )
    def reference_data(context: AssetExecutionContext, storage: StorageResource) -> Output:
        data = storage.storage().data
        location = reference_location(monitor, data)
        source = reference_table(monitor, data, location)  # parquet, or the PostgreSQL table/query
        seen: dict[str, pa.Schema] = {}

        def batches():
            # Streamed into the parquet output: the reference is never held whole in memory.
            for batch in stream_reference(monitor, source):
                seen.setdefault("schema", batch.schema)
                yield batch

        try:
            stream = batches()
            first = next(stream, None)  # bad input fails here, in the asset, with the file named
        except DriftInputError as exc:
            raise Failure(description=str(exc)) from exc
        if first is None:
            raise Failure(description=f"{source.display}: reference has no rows")
        fingerprint = (
            {"content_sha256": sha256_of_files(source.filesystem, source.files())}
            if isinstance(source, TableSource)
            else {}
        )

        def describe() -> dict:
            return {"dagster/column_schema": _table_schema(seen["schema"])}

        return Output(
            BatchStream(itertools.chain([first], stream), describe=describe),
            metadata={
                "source": MetadataValue.path(source.display),
                # Whose reference this is: a champion's own (after a promotion) or the configured one.
                "reference_version": _reference_owner(monitor, data, location),
                **fingerprint,
            },
        )

    return reference_data


def _reference_owner(monitor: MonitorConfig, data, location: str) -> str:
    registry = registry_of(monitor, data)
    if registry is None or location == monitor.reference:
        return "configured"
    try:
        return registry.champion().name
    except RegistryError:
        return "configured"


def reference_profile_asset(monitor: MonitorConfig) -> AssetsDefinition:
    keys = MonitorKeys(monitor.name)
    specs = monitor.column_specs()

    @asset(
        key=keys.reference_profile,
        ins={"reference_data": _in(keys.reference_data)},
        group_name=monitor.name,
        io_manager_key="json_io_manager",
        description="Bin edges, category vocabularies and reference counts, fitted once and reused by every window.",
        kinds={"json"},
    )
    def reference_profile(context: AssetExecutionContext, reference_data: StoredTable) -> Output:
        # One column at a time, streamed from the stored reference (bounded memory, same profile);
        # reused from the profile cache when the stored reference's bytes, roles and bins are unchanged.
        profile, cached = fit_profile_cached(
            reference_data,
            specs,
            psi_bins=monitor.psi_bins,
            metadata={"monitor": monitor.name},
            table_name=reference_data.display,
        )
        joint: dict = {}
        if monitor.multivariate.enabled or monitor.segments:
            # The multivariate model (PCA) and the segment profiles need the rows together; they are
            # stored with the profile.
            table = reference_data.read([s.name for s in specs] + joint_columns(monitor))
            try:
                joint = fit_joint(monitor, table, profile)
            except DriftInputError as exc:
                raise Failure(description=f"{reference_data.display}: {exc}") from exc
            del table
        bins = {
            n: (c.binning.effective_bins if c.spec.kind == "numerical" else len(c.binning.vocabulary) + 1)
            for n, c in profile.columns.items()
        }
        metadata = {
            "fingerprint": profile.fingerprint(),
            "reference_rows": profile.reference_rows,
            "effective_bins": MetadataValue.json(bins),
            "profile_cache": "hit" if cached.hit else "fitted",
        }
        fitted = joint.get("multivariate") or {}
        if fitted:
            metadata["multivariate"] = MetadataValue.text(
                fitted.get("skipped")
                or f"PCA keeps {fitted['kept_components']} of {len(fitted['centre'])} encoded dimensions"
            )
        if "segments" in joint:
            metadata["segments"] = MetadataValue.json(joint["segments"]["values_by_column"])
        return Output({**profile.to_dict(), **joint}, metadata=metadata)

    return reference_profile


def production_window_asset(monitor: MonitorConfig) -> AssetsDefinition:
    keys = MonitorKeys(monitor.name)

    @asset(
        key=keys.production_window,
        partitions_def=partitions_for(monitor),
        group_name=monitor.name,
        io_manager_key="parquet_io_manager",
        deps=[keys.champion_model] if monitor.model_registry else [],
        description=f"Production traffic of one {monitor.cadence} window (features and the champion's "
        "predictions), read from the log.",
        kinds={"parquet"},
    )
    def production_window(context: AssetExecutionContext, storage: StorageResource) -> Output:
        window = parse_partition_key(context.partition_key, monitor.cadence)
        root = storage.storage().data
        scan = WindowScan()
        try:
            files, rows = preflight_log(root, monitor, window)
        except DriftInputError as exc:
            raise Failure(description=f"{monitor.name} window {window.key}: {exc}") from exc
        if rows == 0:
            raise Failure(
                description=f"{monitor.name} window {window.key}: no rows in {log_display(root, monitor)} "
                f"between {window.start.isoformat()} and {window.end.isoformat()} "
                f"({len(files)} file(s) read); an empty window has no drift value"
            )
        batches = _failing_as_window(
            stream_log(
                root,
                monitor,
                window,
                types=expected_log_types(monitor),
                derived=monitor.derived,
                scan=scan,
            ),
            f"{monitor.name} window {window.key}",
        )

        def describe() -> dict:
            return {
                "window_start": window.start.isoformat(),
                "window_end": window.end.isoformat(),
                "first_timestamp": str(scan.first_timestamp),
                "last_timestamp": str(scan.last_timestamp),
                "files_read": len(scan.files),
                "files": MetadataValue.json([f.rsplit("/", 2)[-2] + "/" + f.rsplit("/", 1)[-1] for f in scan.files]),
                "problems": MetadataValue.json(scan.problems),
            }

        def footer() -> dict[str, str]:
            return {WINDOW_PROBLEMS_KEY: json.dumps(scan.problems)}

        return Output(BatchStream(batches, describe=describe, footer=footer))

    return production_window


def _failing_as_window(batches: Iterator[pa.RecordBatch], where: str) -> Iterator[pa.RecordBatch]:
    """The stream is consumed by the IO manager, after the asset returned: a read that breaks after
    the first batch (a statement timeout, the server gone) still fails the window with one line."""
    try:
        yield from batches
    except DriftInputError as exc:
        raise Failure(description=f"{where}: {exc}") from exc


def _drift_metadata(result, record: dict, results_uri: str, results_relative: str, extra_checks=()) -> dict:
    """The drift report's materialisation metadata. ``failed_checks`` lists every failing check of
    the window, the sudden-change checks (evaluated outside ``result``) included. The Evidently HTML
    is the ``evidently_report`` asset's (its metadata links the page)."""
    s = result.summary()
    failed = list(result.failed_checks()) + [o for o in extra_checks if not o.passed]
    metadata = {
        "rows": result.current_rows,
        "max_feature_psi": MetadataValue.float(float(s["max_feature_psi"] or 0.0)),
        "share_drifted": MetadataValue.float(float(s["share_drifted"])),
        "drifted_features": MetadataValue.text(", ".join(s["drifted_features"]) or "(none)"),
        "failed_checks": MetadataValue.text(
            ", ".join(f"{c.name}[{c.column or '-'}]/{c.severity}" for c in failed) or "(none)"
        ),
        "psi_table": MetadataValue.md(_psi_markdown(result)),
        "results_store": MetadataValue.path(results_uri),
    }
    url = _report_url(results_uri, results_relative)
    if url:
        metadata["results_url"] = MetadataValue.url(url)
    if s["prediction_psi"] is not None:
        metadata["prediction_psi"] = MetadataValue.float(float(s["prediction_psi"]))
    if s["prediction_ks_pvalue"] is not None:  # a p-value of 0 is the strongest evidence, not "no value"
        metadata["prediction_ks_pvalue"] = MetadataValue.float(float(s["prediction_ks_pvalue"]))
    if record.get("explanation"):
        metadata["what_changed"] = MetadataValue.md(record["explanation"]["text"])
    for name, value in (record.get("extra") or {}).items():
        if isinstance(value, int | float):
            metadata[name] = MetadataValue.float(float(value))
    return metadata


def _report_url(uri: str, relative: str) -> str | None:
    from drift_assets.monitoring.reports import report_url

    return report_url(uri, relative)


def drift_report_asset(monitor: MonitorConfig) -> AssetsDefinition:
    """With a performance estimator (a probability prediction and labels), the same pass over the
    window counts its scores for the estimate: they are stored with the drift counts and
    model_performance estimates from them without reading the window again."""
    keys = MonitorKeys(monitor.name)
    partitions_def = partitions_for(monitor)
    drift_checks = chk.drift_check_names(monitor)
    ins = {
        "reference_profile": _in(keys.reference_profile),
        "production_window": _in(keys.production_window),
        "reference_data": _in(keys.reference_data),
    }
    if monitor.estimates_performance:
        ins["performance_estimator"] = _in(keys.performance_estimator)
    # A multi-asset of one asset for can_subset=True, as model_performance: a check this window
    # cannot evaluate (no baseline yet, counted on a cluster) yields no result, so Dagster shows it
    # not evaluated (SKIPPED), never passed; the reason is in the materialisation's metadata.
    decorate = multi_asset(
        name=f"{monitor.name}__drift_report",
        outs={
            "drift_report": AssetOut(
                key=keys.drift_report,
                io_manager_key="json_io_manager",
                description="Data drift, prediction drift and data quality of the window against the reference "
                "(the Evidently HTML is the evidently_report asset).",
                kinds={"json"},
            )
        },
        partitions_def=partitions_def,
        ins=ins,
        group_name=monitor.name,
        check_specs=chk.check_specs(monitor, keys.drift_report, drift_checks, partitions_def),
        can_subset=True,
    )
    if monitor.estimates_performance:

        @decorate
        def drift_report(
            context: AssetExecutionContext,
            storage: StorageResource,
            compute: ComputeResource,
            reference_profile: dict,
            production_window: StoredTable,
            reference_data: StoredTable,
            performance_estimator: dict,
        ):  # yielded: with optional check outputs a returned MaterializeResult reads as one value per output
            inputs = (reference_profile, production_window, reference_data, estimator_of(performance_estimator))
            yield _evaluate_drift_report(monitor, context, storage, compute, *inputs)

        return drift_report

    @decorate
    def drift_report_without_estimate(
        context: AssetExecutionContext,
        storage: StorageResource,
        compute: ComputeResource,
        reference_profile: dict,
        production_window: StoredTable,
        reference_data: StoredTable,
    ):  # yielded, as above
        inputs = (reference_profile, production_window, reference_data, None)
        yield _evaluate_drift_report(monitor, context, storage, compute, *inputs)

    return drift_report_without_estimate


def _evaluate_drift_report(
    monitor: MonitorConfig,
    context: AssetExecutionContext,
    storage: StorageResource,
    compute: ComputeResource,
    reference_profile: dict,
    production_window: StoredTable,
    reference_data: StoredTable,
    estimator: PerformanceEstimator | None,
) -> MaterializeResult:
    keys = MonitorKeys(monitor.name)
    window = parse_partition_key(context.partition_key, monitor.cadence)
    profile = ReferenceProfile.from_dict(reference_profile)
    st = storage.storage()
    # Problems met while reading the log (a column missing or retyped in some file) are
    # reported by the schema check, with the file named.
    problems = json.loads(production_window.footer().get(WINDOW_PROBLEMS_KEY, "{}"))
    evaluation = evaluate_window(
        monitor,
        profile,
        window,
        _window_counts(context, compute, monitor, profile, window, st.data, production_window, estimator),
        data=st.data,
        counts_store=st.assets,
        problems=problems,
        fitted=reference_profile,
        window_rows=production_window.num_rows(),
        reference_batches=lambda: reference_data.batches(profile.column_names()),
        estimator=estimator,
        reports=st.reports,
    )
    record = record_drift(
        st.reports,
        monitor,
        window,
        evaluation.result,
        evaluation.summary,
        model_version=model_versions_in(production_window, monitor.model_version_column),
        extra={**evaluation.extra, **by_model_version(monitor, production_window)},
        extra_checks=evaluation.extra_outcomes,
        reference_version=_reference_version(context, keys),
        sections={**evaluation.joint.sections, "explanation": evaluation.explanation},
    )
    # The drift counts and (with an estimator) the score counts: model_performance reads the latter.
    store_counts(st.assets, monitor, window.key, evaluation)
    push_metrics_if_configured(context, st)
    results_relative = ResultsStore.drift_path(monitor.name, window.key)
    results_uri = st.reports.uri_of(results_relative)
    names = chk.drift_check_names(monitor)
    # A check with a stated reason and no outcome was not evaluated; one with neither found nothing
    # wrong (the schema check has outcomes only for problems) and passes.
    have_outcomes = {o.name for o in evaluation.outcomes}
    evaluated = {n for n in names if n in have_outcomes or evaluation.skipped_reason(n) is None}
    metadata = _drift_metadata(evaluation.result, record, results_uri, results_relative, evaluation.extra_outcomes)
    for name in names:
        if name not in evaluated:
            metadata[f"check {name}"] = f"not evaluated ({evaluation.skipped_reason(name)})"
    return MaterializeResult(
        asset_key=keys.drift_report,
        value=record,
        metadata=metadata,
        check_results=_drift_check_results(
            context, monitor, keys, [n for n in names if n in evaluated], evaluation, record
        ),
    )


def drift_alert_asset(monitor: MonitorConfig) -> AssetsDefinition:
    """The window's verdict as a materialisation that fails when an ERROR check failed.

    Dagster colours a partition by its last materialisation attempt, not by its checks: a drifted
    week's drift_report stays green. This asset's failed attempt marks the week failed in its own
    Partitions view and makes the catalog's health "degraded" (any failed partition), until the
    week is re-evaluated and passes. It runs in its own job (``<monitor>_alert_job``), after the
    window job, so the window job still succeeds on a drifted week (its measures are stored);
    under the daemon it runs by declarative automation when the drift report updates.
    """
    keys = MonitorKeys(monitor.name)

    @asset(
        key=keys.drift_alert,
        partitions_def=partitions_for(monitor),
        ins={"drift_report": _in(keys.drift_report)},
        group_name=monitor.name,
        automation_condition=AutomationCondition.eager(),
        description="Fails for a window whose drift report failed an ERROR check (the partition shows as "
        "failed); materialised when none did.",
        kinds={"json"},
    )
    def drift_alert(context: AssetExecutionContext, drift_report: dict) -> MaterializeResult:
        failed = failed_error_checks(drift_report)
        if failed:
            names = ", ".join(f"{c['name']}[{c.get('column') or '-'}]" for c in failed)
            raise Failure(
                description=f"{monitor.name} window {context.partition_key}: {len(failed)} ERROR check(s) failed: "
                f"{names}",
                metadata={"failed_error_checks": MetadataValue.text(names), "partition": context.partition_key},
                allow_retries=False,
            )
        return MaterializeResult(
            metadata={"verdict": "no ERROR check failed", "checks_evaluated": len(drift_report.get("checks", []))}
        )

    return drift_alert


def _window_counts(
    context, compute: ComputeResource, monitor, profile, window, data, production_window, estimator=None
):
    """The window's batches to summarise here, or (compute=dask) its counts from the cluster, read
    from the log one task per parquet row group (with ``estimator``, the score counts too)."""
    if not compute.on_cluster:
        return production_window.batches(profile.column_names() + joint_columns(monitor))
    try:
        counts = compute.window_summary(monitor, profile, window, data, estimator)
    except (DriftInputError, ConnectionError) as exc:
        raise Failure(description=f"{monitor.name} window {window.key}: {exc}") from exc
    context.log.info(f"window counts from the Dask scheduler at {compute.dask_address}: {counts.rows:,} rows")
    return counts


def _drift_check_results(context, monitor: MonitorConfig, keys: MonitorKeys, names, evaluation, record: dict):
    """One result per drift check; each carries the window's lineage (``served_by``: the
    retraining sensor drops failures of windows the current champion did not serve)."""
    lineage = {"served_by": record.get("model_version") or "", **record.get("reference_lineage", {})}
    if lineage.get("note"):
        context.log.warning(lineage["note"])
    return [
        chk.fold_outcomes(
            monitor.checks[name],
            evaluation.outcomes,
            keys.drift_report,
            skipped_reason=evaluation.skipped_reason(name),
            lineage=lineage,
            what_changed=evaluation.what_changed(name),
        )
        for name in names
    ]


def _reference_version(context: AssetExecutionContext, keys: MonitorKeys) -> str | None:
    """Whose reference the profile was fitted on: the ``reference_version`` recorded by the latest
    ``reference_data`` materialisation (the one this run reads)."""
    event = context.instance.get_latest_materialization_event(keys.reference_data)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("reference_version")
    return getattr(value, "value", value)


def champion_model_asset(monitor: MonitorConfig) -> AssetsDefinition:
    keys = MonitorKeys(monitor.name)

    @asset(
        key=keys.champion_model,
        group_name=monitor.name,
        io_manager_key="json_io_manager",
        description="The model currently serving (the registry's champion pointer): which model produced the scores.",
        kinds={"scikitlearn"},
    )
    def champion_model(context: AssetExecutionContext, storage: StorageResource) -> Output:
        data = storage.storage().data
        registry = registry_of(monitor, data)
        try:
            champion = registry.champion()
        except RegistryError as exc:
            raise Failure(description=str(exc)) from exc
        record = {
            "version": champion.number,
            "name": champion.name,
            "path": champion.path,
            "metadata": champion.metadata,
        }
        return Output(
            record,
            metadata={
                "version": champion.name,
                "auc_reference": MetadataValue.float(float(champion.metadata.get("auc_reference") or float("nan"))),
                "model_file": MetadataValue.path(data.uri_of(champion.model_file)),
            },
        )

    return champion_model


def performance_estimator_asset(monitor: MonitorConfig) -> AssetsDefinition:
    keys = MonitorKeys(monitor.name)
    assert monitor.labels is not None and monitor.prediction is not None

    @asset(
        key=keys.performance_estimator,
        ins={"reference_data": _in(keys.reference_data)},
        group_name=monitor.name,
        io_manager_key="json_io_manager",
        description="Calibration of the champion's scores on the labelled reference (centred isotonic), fitted "
        "once: model_performance estimates every window's AUC, precision, recall, F1 and accuracy from it before "
        "labels arrive.",
        kinds={"json"},
    )
    def performance_estimator(context: AssetExecutionContext, reference_data: StoredTable) -> Output:
        table = reference_data.read([monitor.prediction, monitor.labels.column])
        record = fit_estimator_record(monitor, table)
        if "error" in record:
            context.log.warning(f"performance estimation unavailable for {monitor.name}: {record['error']}")
            return Output(record, metadata={"error": MetadataValue.text(record["error"])})
        quality = record["quality"]
        return Output(
            record,
            metadata={
                "reference_rows": quality["reference_rows"],
                "reference_positives": quality["reference_positives"],
                "reference_roc_auc": MetadataValue.float(quality["reference_roc_auc"]),
                "brier_score_raw": MetadataValue.float(quality["brier_score_raw"]),
                "brier_score_calibrated": MetadataValue.float(quality["brier_score_calibrated"]),
                "score_bins": len(record["edges"]) - 1,
                "threshold": MetadataValue.float(record["threshold"]),
                "reliability_by_decile": MetadataValue.json(quality["reliability_by_decile"]),
            },
        )

    return performance_estimator


def _performance_metadata(record: dict) -> dict:
    """Realized and estimated side by side, the estimate with its band (what the UI shows)."""
    metadata: dict = {k: v for k, v in record.items() if isinstance(v, int | float | str) and not isinstance(v, bool)}
    estimated = record.get("estimated")
    if estimated:
        for name in ("roc_auc", "precision", "recall", "f1", "accuracy"):
            band = estimated["bands"][name]
            if band["value"] is not None:
                metadata[f"estimated_{name}"] = MetadataValue.float(float(band["value"]))
        if estimated["lower"] is not None and estimated["upper"] is not None:
            metadata["estimated_auc_lower"] = MetadataValue.float(float(estimated["lower"]))
            metadata["estimated_auc_upper"] = MetadataValue.float(float(estimated["upper"]))
            metadata["estimated_auc"] = MetadataValue.text(
                f"{estimated['roc_auc']:.3f} [{estimated['lower']:.3f}, {estimated['upper']:.3f}]"
            )
    realized = record.get("realized") or {}
    for name, value in realized.items():
        if value is not None:
            metadata[f"realized_{name}"] = MetadataValue.float(float(value))
    error = record.get("estimate_error") or {}
    if error.get("roc_auc") is not None:
        metadata["estimate_error_auc"] = MetadataValue.float(float(error["roc_auc"]))
        metadata["realized_auc_within_band"] = MetadataValue.bool(bool(error["roc_auc_within_band"]))
    if record.get("estimate_problem"):
        metadata["estimate_problem"] = MetadataValue.text(record["estimate_problem"])
    return metadata


def _performance_outcomes(
    monitor: MonitorConfig, perf: dict, estimate: PerformanceEstimate | None, champion_auc: float | None
) -> list:
    outcomes = []
    if perf["status"] == "ok" and champion_auc is not None:
        outcomes.append(auc_check(perf["auc"], champion_auc, monitor.rules, monitor.checks))
    if perf["status"] == "ok" and perf.get("reference_labels") and monitor.labels is not None:
        ref = perf["reference_labels"]
        outcomes.append(
            target_prevalence_check(
                monitor.labels.column,
                perf["positives"],
                perf["labelled_rows"],
                ref["positives"],
                ref["rows"],
                monitor.rules,
                monitor.checks,
            )
        )
    if estimate is not None and champion_auc is not None:
        outcomes.append(estimated_auc_check(estimate, champion_auc, monitor.rules, monitor.checks))
    return outcomes


def _evaluate_performance(
    monitor: MonitorConfig,
    context: AssetExecutionContext,
    storage: StorageResource,
    production_window: StoredTable,
    champion_model: dict,
    performance_estimator: dict | None,
) -> MaterializeResult:
    keys = MonitorKeys(monitor.name)
    window = parse_partition_key(context.partition_key, monitor.cadence)
    st = storage.storage()
    perf = realized_performance(st.data, monitor, window, production_window)
    estimate, problem = (None, None)
    if performance_estimator is not None:
        # From the score counts drift_report stored in its pass over the window (read again only
        # when they were not counted with this estimator).
        counted = stored_summary(st.assets, monitor, window.key)
        estimate, problem = estimate_window(monitor, performance_estimator, production_window, counted)
    champion_auc = champion_model["metadata"].get("auc_reference")
    champion_auc = float(champion_auc) if champion_auc is not None else None
    outcomes = _performance_outcomes(monitor, perf, estimate, champion_auc)
    perf["champion_auc_reference"] = champion_auc
    record = record_performance(st.reports, monitor, window, reconcile(perf, estimate, problem))
    reasons = {chk.ESTIMATED_AUC_VS_CHAMPION: problem or "no champion AUC to compare with"}
    if perf["status"] != "ok":
        pending = f"labels pending: {perf['labelled_rows']} of {perf['rows']} rows labelled"
        reasons[chk.AUC_VS_CHAMPION] = reasons[TARGET_PREVALENCE] = pending
    elif not perf.get("reference_labels"):
        reasons[TARGET_PREVALENCE] = perf.get("reference_labels_problem") or "no labels in the reference"
    metadata = _performance_metadata(record)
    evaluated = {o.name for o in outcomes}
    for rule in monitor.check_rules("model_performance"):
        if rule.name not in evaluated:
            reason = reasons.get(rule.name, "no champion AUC to compare with")
            metadata[f"check {rule.name}"] = f"not evaluated ({reason})"
    return MaterializeResult(
        asset_key=keys.model_performance,
        value=record,
        metadata=metadata,
        check_results=[
            chk.fold_outcomes(
                monitor.checks[name],
                outcomes,
                keys.model_performance,
                lineage={"served_by": perf.get("model_version") or ""},
            )
            for name in [rule.name for rule in monitor.check_rules("model_performance")]
            if name in evaluated
        ],
    )


def model_performance_asset(monitor: MonitorConfig) -> AssetsDefinition:
    """A multi-asset of one asset only for ``can_subset=True``: its check results are optional, so a
    window where a check cannot be evaluated (labels pending, no estimator) yields none for it and
    Dagster shows it as not evaluated (status SKIPPED), never as passed."""
    keys = MonitorKeys(monitor.name)
    partitions_def = partitions_for(monitor)
    performance_checks = [rule.name for rule in monitor.check_rules("model_performance")]
    ins = {"production_window": _in(keys.production_window), "champion_model": _in(keys.champion_model)}
    if monitor.estimates_performance:
        ins["performance_estimator"] = _in(keys.performance_estimator)
    decorate = multi_asset(
        name=f"{monitor.name}__model_performance",
        outs={
            "model_performance": AssetOut(
                key=keys.model_performance,
                io_manager_key="json_io_manager",
                description="Performance of the window's predictions: estimated from the calibrated scores (with a "
                "band) from the moment the window is evaluated, realized once labels arrived (label delay "
                f"~{monitor.labels.delay_days:g} days), and the estimate's error.",
                kinds={"scikitlearn"},
            )
        },
        partitions_def=partitions_def,
        ins=ins,
        # The estimate comes from the score counts drift_report stores: it runs first.
        deps=[keys.drift_report] if monitor.estimates_performance else [],
        group_name=monitor.name,
        check_specs=chk.check_specs(monitor, keys.model_performance, performance_checks, partitions_def),
        can_subset=True,
    )
    # Results are yielded: with optional check outputs the op has several outputs, and a returned
    # MaterializeResult (a tuple) would be read as one value per output.
    if monitor.estimates_performance:

        @decorate
        def model_performance(
            context: AssetExecutionContext,
            storage: StorageResource,
            production_window: StoredTable,
            champion_model: dict,
            performance_estimator: dict,
        ):
            yield _evaluate_performance(
                monitor, context, storage, production_window, champion_model, performance_estimator
            )

        return model_performance

    @decorate
    def model_performance_realized_only(
        context: AssetExecutionContext, storage: StorageResource, production_window: StoredTable, champion_model: dict
    ):
        yield _evaluate_performance(monitor, context, storage, production_window, champion_model, None)

    return model_performance_realized_only


def _psi_markdown(result) -> str:
    lines = [
        "| column | role | PSI | bins | p-value | effect | missing | drifted |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in sorted(result.columns.values(), key=lambda c: -(c.psi or 0)):
        effect = c.wasserstein_normed if c.kind == "numerical" else c.max_category_share_change
        fmt = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
        lines.append(
            f"| {c.name} | {c.role} | {fmt(c.psi)} | {c.psi_bins or '-'} | {fmt(c.test_pvalue)} | {fmt(effect)} "
            f"| {c.missing_rate:.3f} | {'**yes**' if c.drifted else 'no'} |"
        )
    return "\n".join(lines)


def push_metrics_if_configured(context, st) -> None:
    """With DRIFT_ASSETS_PUSHGATEWAY set (short-lived setups with no exporter to scrape), push the
    same metrics the exporter serves after each window. A push failure is logged, not fatal: the
    window's result is already stored and the next push carries it."""
    gateway = os.environ.get("DRIFT_ASSETS_PUSHGATEWAY")
    if not gateway:
        return
    from drift_assets.alerting.exporter import push_once  # prometheus_client: only when pushing

    try:
        push_once(ResultsStore(st.reports.path, filesystem=st.reports.filesystem), gateway)
        context.log.info(f"pushed metrics to the Pushgateway at {gateway}")
    except OSError as exc:
        context.log.warning(f"could not push metrics to the Pushgateway at {gateway}: {exc}")
