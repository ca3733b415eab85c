"""Per-monitor assets, one small builder each: reference data -> profile; production window -> drift
report (+ checks); model performance once labels arrive; the champion model for lineage.

Every builder is thin: reading and writing go through Storage, numbers come from ``drift_assets.stats``
and ``drift_assets.monitoring``. Keys are ``<monitor>/<asset>`` and each monitor is its own asset group.
"""

# No `from __future__ import annotations`: Dagster reads the annotations of asset functions.

import json
import os
import tempfile

import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    Output,
    TableColumn,
    TableSchema,
    asset,
)

from drift_assets.alerting.exporter import push_once
from drift_assets.monitoring.config import MonitorConfig
from drift_assets.monitoring.evaluation import (
    by_model_version,
    evaluate_window,
    read_reference,
    store_counts,
)
from drift_assets.monitoring.joint import fit_joint, joint_columns
from drift_assets.monitoring.performance import model_versions_in, realized_performance
from drift_assets.monitoring.registry import (
    RegistryError,
    reference_location,
    registry_of,
)
from drift_assets.monitoring.results import record_drift, record_performance
from drift_assets.monitoring.results_store import ResultsStore
from drift_assets.monitoring.windows import (
    WindowScan,
    expected_log_types,
    parse_partition_key,
    preflight,
    stream_window,
)
from drift_assets.orchestration import checks as chk
from drift_assets.orchestration.io_managers import BatchStream, StoredTable
from drift_assets.orchestration.keys import MonitorKeys
from drift_assets.orchestration.partitions import partitions_for
from drift_assets.orchestration.resources import StorageResource
from drift_assets.stats import DriftInputError, ReferenceProfile, auc_check, fit_profile
from drift_assets.storage.root import sha256_of_files

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
    ]
    if monitor.model_registry:
        assets.append(champion_model_asset(monitor))
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
        source = data.table(reference_location(monitor, data))
        try:
            table = read_reference(monitor, source)
        except DriftInputError as exc:
            raise Failure(description=str(exc)) from exc
        return Output(
            table,
            metadata={
                "rows": table.num_rows,
                "source": MetadataValue.path(source.display),
                "content_sha256": sha256_of_files(source.filesystem, source.files()),
                "dagster/column_schema": _table_schema(table.schema),
            },
        )

    return reference_data


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
        table = reference_data.read([s.name for s in specs] + joint_columns(monitor))
        profile = fit_profile(table, specs, psi_bins=monitor.psi_bins, metadata={"monitor": monitor.name})
        try:
            # The multivariate model and the segment profiles are stored with the profile.
            joint = fit_joint(monitor, table, profile)
        except DriftInputError as exc:
            raise Failure(description=f"{reference_data.display}: {exc}") from exc
        bins = {
            n: (c.binning.effective_bins if c.spec.kind == "numerical" else len(c.binning.vocabulary) + 1)
            for n, c in profile.columns.items()
        }
        metadata = {
            "fingerprint": profile.fingerprint(),
            "reference_rows": profile.reference_rows,
            "effective_bins": MetadataValue.json(bins),
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
            files, rows = preflight(root, monitor.log, window, monitor.timestamp_column)
        except DriftInputError as exc:
            raise Failure(description=f"{monitor.name} window {window.key}: {exc}") from exc
        if rows == 0:
            raise Failure(
                description=f"{monitor.name} window {window.key}: no rows in {root.uri_of(monitor.log)} "
                f"between {window.start.isoformat()} and {window.end.isoformat()} "
                f"({len(files)} file(s) read); an empty window has no drift value"
            )
        batches = stream_window(
            root,
            monitor.log,
            window,
            timestamp_column=monitor.timestamp_column,
            types=expected_log_types(monitor),
            derived=monitor.derived,
            scan=scan,
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


def _wants_html(monitor: MonitorConfig, evaluation) -> bool:
    setting = monitor.extra.get("html_report", True)  # true | false | "on_failure"
    if os.environ.get("DRIFT_ASSETS_HTML_REPORTS", "1") == "0" or setting is False:
        return False
    if setting == "on_failure":
        return bool(evaluation.result.failed_checks("ERROR") or any(not o.passed for o in evaluation.extra_outcomes))
    return setting is True


def _drift_metadata(result, record: dict, results_uri: str, html_uri: str | None) -> dict:
    s = result.summary()
    failed = result.failed_checks()
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
    if s["prediction_psi"] is not None:
        metadata["prediction_psi"] = MetadataValue.float(float(s["prediction_psi"]))
        metadata["prediction_ks_pvalue"] = MetadataValue.float(float(s["prediction_ks_pvalue"] or 1.0))
    if html_uri:
        metadata["evidently_report"] = MetadataValue.path(html_uri)
    if record.get("explanation"):
        metadata["what_changed"] = MetadataValue.md(record["explanation"]["text"])
    for name, value in (record.get("extra") or {}).items():
        if isinstance(value, int | float):
            metadata[name] = MetadataValue.float(float(value))
    return metadata


def drift_report_asset(monitor: MonitorConfig) -> AssetsDefinition:
    keys = MonitorKeys(monitor.name)
    partitions_def = partitions_for(monitor)
    specs = monitor.column_specs()
    drift_checks = chk.drift_check_names(monitor)

    @asset(
        key=keys.drift_report,
        partitions_def=partitions_def,
        ins={
            "reference_profile": _in(keys.reference_profile),
            "production_window": _in(keys.production_window),
            "reference_data": _in(keys.reference_data),
        },
        group_name=monitor.name,
        io_manager_key="json_io_manager",
        check_specs=chk.check_specs(monitor, keys.drift_report, drift_checks, partitions_def),
        description="Data drift, prediction drift and data quality of the window against the reference, with an "
        "Evidently HTML report.",
        kinds={"evidently", "json"},
    )
    def drift_report(
        context: AssetExecutionContext,
        storage: StorageResource,
        reference_profile: dict,
        production_window: StoredTable,
        reference_data: StoredTable,
    ):  # MaterializeResult with a value (an annotation would declare a Nothing output)
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
            production_window.batches(profile.column_names() + joint_columns(monitor)),
            data=st.data,
            counts_store=st.assets,
            problems=problems,
            fitted=reference_profile,
            window_rows=production_window.num_rows(),
            reference_batches=lambda: reference_data.batches(profile.column_names()),
        )
        html_uri = None
        if _wants_html(monitor, evaluation):
            html_uri = _write_html(storage, monitor, window.key, reference_data, production_window, specs)
        record = record_drift(
            st.reports,
            monitor,
            window,
            evaluation.result,
            evaluation.summary,
            model_version=model_versions_in(production_window, monitor.model_version_column),
            html_report=html_uri,
            extra={**evaluation.extra, **by_model_version(monitor, production_window)},
            extra_checks=evaluation.extra_outcomes,
            sections={**evaluation.joint.sections, "explanation": evaluation.explanation},
        )
        store_counts(st.assets, monitor, window.key, evaluation)
        push_metrics_if_configured(context, st)
        results_uri = st.reports.uri_of(ResultsStore.drift_path(monitor.name, window.key))
        return MaterializeResult(
            value=record,
            metadata=_drift_metadata(evaluation.result, record, results_uri, html_uri),
            check_results=[
                chk.fold_outcomes(
                    monitor.checks[name],
                    evaluation.outcomes,
                    keys.drift_report,
                    skipped_reason=evaluation.skipped_reason(name),
                    what_changed=evaluation.what_changed(name),
                )
                for name in drift_checks
            ],
        )

    return drift_report


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


def model_performance_asset(monitor: MonitorConfig) -> AssetsDefinition:
    keys = MonitorKeys(monitor.name)
    partitions_def = partitions_for(monitor)
    performance_checks = [rule.name for rule in monitor.check_rules("model_performance")]

    @asset(
        key=keys.model_performance,
        partitions_def=partitions_def,
        ins={"production_window": _in(keys.production_window), "champion_model": _in(keys.champion_model)},
        group_name=monitor.name,
        io_manager_key="json_io_manager",
        check_specs=chk.check_specs(monitor, keys.model_performance, performance_checks, partitions_def),
        description="AUC of the window's predictions once labels arrived (label delay "
        f"~{monitor.labels.delay_days:g} days).",
        kinds={"scikitlearn"},
    )
    def model_performance(
        context: AssetExecutionContext, storage: StorageResource, production_window: StoredTable, champion_model: dict
    ):  # MaterializeResult with a value
        window = parse_partition_key(context.partition_key, monitor.cadence)
        st = storage.storage()
        perf = realized_performance(st.data, monitor, window, production_window)
        champion_auc = champion_model["metadata"].get("auc_reference")
        outcomes = []
        if perf["status"] == "ok" and champion_auc is not None:
            outcomes.append(auc_check(perf["auc"], float(champion_auc), monitor.rules, monitor.checks))
        perf["champion_auc_reference"] = champion_auc
        record = record_performance(st.reports, monitor, window, perf)
        metadata = {k: v for k, v in perf.items() if isinstance(v, int | float | str) and v is not None}
        pending = None
        if perf["status"] != "ok":
            pending = f"labels pending: {perf['labelled_rows']} of {perf['rows']} rows labelled"
        return MaterializeResult(
            value=record,
            metadata=metadata,
            check_results=[
                chk.fold_outcomes(monitor.checks[name], outcomes, keys.model_performance, skipped_reason=pending)
                for name in performance_checks
            ],
        )

    return model_performance


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
    try:
        push_once(ResultsStore(st.reports.path, filesystem=st.reports.filesystem), gateway)
        context.log.info(f"pushed metrics to the Pushgateway at {gateway}")
    except OSError as exc:
        context.log.warning(f"could not push metrics to the Pushgateway at {gateway}: {exc}")


def _write_html(
    storage: StorageResource, monitor: MonitorConfig, key: str, reference: StoredTable, window: StoredTable, specs
) -> str | None:
    # Imported here: pandas (and Evidently, inside) cost seconds that definitions loading need not pay.
    from drift_assets.monitoring.reports import sample_source, write_evidently_report

    names = [s.name for s in specs]
    present = [n for n in names if n in window.schema().names]
    relative = f"{monitor.name}/html/{key.replace(':', '')}.html"
    with tempfile.TemporaryDirectory() as tmp:
        path = write_evidently_report(
            sample_source(reference, present),
            sample_source(window, present, seed=1),
            [s for s in specs if s.name in present],
            f"{tmp}/report.html",
        )
        return storage.put_file("reports", relative, path, content_type="text/html; charset=utf-8")
