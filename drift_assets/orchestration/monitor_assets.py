"""Per-monitor assets: reference data -> profile; production window -> drift report (+ checks);
model performance once labels arrive; the champion model for lineage.

Every function here is thin: reading and writing go through Storage, numbers come from
``drift_assets.stats``. Keys are ``<monitor>/<asset>`` and each monitor is its own asset group.
"""


import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    Output,
    TableColumn,
    TableSchema,
    asset,
)

from drift_assets.orchestration import checks as chk
from drift_assets.monitoring.config import MonitorConfig
from drift_assets.monitoring.evaluation import (
    by_model_version,
    evaluate_window,
    read_reference,
    store_counts,
)
from drift_assets.orchestration.io_managers import BatchStream, StoredTable
from drift_assets.monitoring.results_store import ResultsStore
from drift_assets.orchestration.partitions import partitions_for
from drift_assets.monitoring.registry import ModelRegistry, RegistryError
from drift_assets.orchestration.resources import StorageResource
from drift_assets.monitoring.results import record_drift, record_performance
from drift_assets.stats import DriftInputError, ReferenceProfile, auc_check, fit_profile
from drift_assets.stats import rules as r
from drift_assets.monitoring.windows import (
    WindowScan,
    expected_log_types,
    parse_partition_key,
    preflight,
    stream_window,
)

# A week is "labelled" once this share of its rows has a label; before that AUC would describe a
# biased subset (labels for fraud often arrive faster than for legitimate traffic).
MIN_LABEL_COVERAGE = 0.5
WINDOW_PROBLEMS_KEY = "drift_assets.window_problems"


@dataclass(frozen=True)
class MonitorKeys:
    monitor: str

    def key(self, name: str) -> AssetKey:
        return AssetKey([self.monitor, name])

    @property
    def reference_data(self) -> AssetKey:
        return self.key("reference_data")

    @property
    def reference_profile(self) -> AssetKey:
        return self.key("reference_profile")

    @property
    def production_window(self) -> AssetKey:
        return self.key("production_window")

    @property
    def drift_report(self) -> AssetKey:
        return self.key("drift_report")

    @property
    def model_performance(self) -> AssetKey:
        return self.key("model_performance")

    @property
    def champion_model(self) -> AssetKey:
        return self.key("champion_model")

    @property
    def retrained_model(self) -> AssetKey:
        return self.key("retrained_model")


def registry_for(monitor: MonitorConfig, storage: StorageResource) -> ModelRegistry | None:
    if not monitor.model_registry:
        return None
    return ModelRegistry(storage.storage().data, monitor.model_registry)


def reference_location(monitor: MonitorConfig, storage: StorageResource) -> str:
    """The champion's own reference once a retrained model was promoted, else the configured one."""
    registry = registry_for(monitor, storage)
    if registry is not None:
        try:
            ref = registry.champion().reference_file
        except RegistryError:
            ref = None
        if ref:
            return ref
    return monitor.reference


def _sha256_of(source: StoredTable | object) -> str:
    digest = hashlib.sha256()
    for path in source.files():  # type: ignore[attr-defined]
        with source.filesystem.open_input_stream(path) as fh:  # type: ignore[attr-defined]
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _table_schema(schema: pa.Schema) -> TableSchema:
    return TableSchema(columns=[TableColumn(f.name, str(f.type)) for f in schema])


def _psi_markdown(result) -> str:
    lines = ["| column | role | PSI | bins | p-value | effect | missing | drifted |", "|---|---|---|---|---|---|---|---|"]
    for c in sorted(result.columns.values(), key=lambda c: -(c.psi or 0)):
        effect = c.wasserstein_normed if c.kind == "numerical" else c.max_category_share_change
        fmt = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
        lines.append(
            f"| {c.name} | {c.role} | {fmt(c.psi)} | {c.psi_bins or '-'} | {fmt(c.test_pvalue)} | {fmt(effect)} | {c.missing_rate:.3f} | {'**yes**' if c.drifted else 'no'} |"
        )
    return "\n".join(lines)


def build_monitor_assets(monitor: MonitorConfig) -> list:
    keys = MonitorKeys(monitor.name)
    partitions_def = partitions_for(monitor)
    group = monitor.name
    specs = monitor.column_specs()
    has_registry = monitor.model_registry is not None

    @asset(
        key=keys.reference_data,
        group_name=group,
        io_manager_key="parquet_io_manager",
        description=f"Training reference of monitor '{monitor.name}': the distribution production windows are compared with.",
        kinds={"parquet"},
    )
    def reference_data(context: AssetExecutionContext, storage: StorageResource) -> Output:
        source = storage.storage().data.table(reference_location(monitor, storage))
        try:
            table = read_reference(monitor, source)
        except DriftInputError as exc:
            raise Failure(description=str(exc)) from exc
        return Output(
            table,
            metadata={
                "rows": table.num_rows,
                "source": MetadataValue.path(source.display),
                "content_sha256": _sha256_of(source),
                "dagster/column_schema": _table_schema(table.schema),
            },
        )

    @asset(
        key=keys.reference_profile,
        ins={"reference_data": _in(keys.reference_data)},
        group_name=group,
        io_manager_key="json_io_manager",
        description="Bin edges, category vocabularies and reference counts, fitted once and reused by every window.",
        kinds={"json"},
    )
    def reference_profile(context: AssetExecutionContext, reference_data: StoredTable) -> Output:
        table = reference_data.read([s.name for s in specs])
        profile = fit_profile(table, specs, psi_bins=monitor.psi_bins, metadata={"monitor": monitor.name})
        bins = {n: (c.binning.effective_bins if c.spec.kind == "numerical" else len(c.binning.vocabulary) + 1) for n, c in profile.columns.items()}
        return Output(
            profile.to_dict(),
            metadata={
                "fingerprint": profile.fingerprint(),
                "reference_rows": profile.reference_rows,
                "effective_bins": MetadataValue.json(bins),
            },
        )

    champion_deps = [keys.champion_model] if has_registry else []

    @asset(
        key=keys.production_window,
        partitions_def=partitions_def,
        group_name=group,
        io_manager_key="parquet_io_manager",
        deps=champion_deps,
        description=f"Production traffic of one {monitor.cadence} window (features and the champion's predictions), read from the log.",
        kinds={"parquet"},
    )
    def production_window(context: AssetExecutionContext, storage: StorageResource) -> Output:
        window = parse_partition_key(context.partition_key, monitor.cadence)
        root = storage.storage().data
        scan = WindowScan()
        types = expected_log_types(monitor)
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

        def batches():
            yield from stream_window(
                root, monitor.log, window, timestamp_column=monitor.timestamp_column,
                types=types, derived=monitor.derived, scan=scan,
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

        return Output(BatchStream(batches(), describe=describe, footer=footer))

    drift_checks = chk.drift_check_names(monitor)

    @asset(
        key=keys.drift_report,
        partitions_def=partitions_def,
        ins={
            "reference_profile": _in(keys.reference_profile),
            "production_window": _in(keys.production_window),
            "reference_data": _in(keys.reference_data),
        },
        group_name=group,
        io_manager_key="json_io_manager",
        check_specs=chk.check_specs(keys.drift_report, drift_checks, partitions_def),
        description="Data drift, prediction drift and data quality of the window against the reference, with an Evidently HTML report.",
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
            monitor, profile, window, production_window.batches(profile.column_names()),
            data=st.data, counts_store=st.assets, problems=problems,
        )
        result, summary, sudden_result = evaluation.result, evaluation.summary, evaluation.sudden
        html_uri = None
        html_setting = monitor.extra.get("html_report", True)  # true | false | "on_failure"
        wants_html = html_setting is True or (html_setting == "on_failure" and (
            result.failed_checks("ERROR") or any(not o.passed for o in (sudden_result.outcomes if sudden_result else []))))
        if wants_html and os.environ.get("DRIFT_ASSETS_HTML_REPORTS", "1") != "0":
            html_uri = _write_html(storage, monitor, window.key, reference_data, production_window, specs)
        record = record_drift(
            st.reports, monitor, window, result, summary,
            model_version=_model_version(production_window, monitor.model_version_column), html_report=html_uri,
            extra={**evaluation.extra, **by_model_version(monitor, production_window)},
            extra_checks=sudden_result.outcomes if sudden_result else (),
        )
        store_counts(st.assets, monitor, window.key, evaluation)
        push_metrics_if_configured(context, st)
        s = result.summary()
        failed = result.failed_checks()
        metadata = {
            "rows": result.current_rows,
            "max_feature_psi": MetadataValue.float(float(s["max_feature_psi"] or 0.0)),
            "share_drifted": MetadataValue.float(float(s["share_drifted"])),
            "drifted_features": MetadataValue.text(", ".join(s["drifted_features"]) or "(none)"),
            "failed_checks": MetadataValue.text(", ".join(f"{c.name}[{c.column or '-'}]/{c.severity}" for c in failed) or "(none)"),
            "psi_table": MetadataValue.md(_psi_markdown(result)),
            "results_store": MetadataValue.path(st.reports.uri_of(ResultsStore.drift_path(monitor.name, window.key))),
        }
        if s["prediction_psi"] is not None:
            metadata["prediction_psi"] = MetadataValue.float(float(s["prediction_psi"]))
            metadata["prediction_ks_pvalue"] = MetadataValue.float(float(s["prediction_ks_pvalue"] or 1.0))
        if html_uri:
            metadata["evidently_report"] = MetadataValue.path(html_uri)
        for name, value in (record.get("extra") or {}).items():
            if isinstance(value, (int, float)):
                metadata[name] = MetadataValue.float(float(value))
        skipped = sudden_result.skipped if sudden_result else None
        return MaterializeResult(
            value=record,
            metadata=metadata,
            check_results=[chk.fold_outcomes(name, evaluation.outcomes, keys.drift_report, skipped_reason=skipped) for name in drift_checks],
        )

    assets = [reference_data, reference_profile, production_window, drift_report]

    if has_registry:

        @asset(
            key=keys.champion_model,
            group_name=group,
            io_manager_key="json_io_manager",
            description="The model currently serving (the registry's champion pointer): which model produced the scores.",
            kinds={"scikitlearn"},
        )
        def champion_model(context: AssetExecutionContext, storage: StorageResource) -> Output:
            registry = registry_for(monitor, storage)
            try:
                champion = registry.champion()
            except RegistryError as exc:
                raise Failure(description=str(exc)) from exc
            record = {"version": champion.number, "name": champion.name, "path": champion.path, "metadata": champion.metadata}
            return Output(
                record,
                metadata={
                    "version": champion.name,
                    "auc_reference": MetadataValue.float(float(champion.metadata.get("auc_reference") or float("nan"))),
                    "model_file": MetadataValue.path(storage.storage().data.uri_of(champion.model_file)),
                },
            )

        assets.append(champion_model)

    if monitor.labels and has_registry and monitor.prediction:
        labels = monitor.labels

        @asset(
            key=keys.model_performance,
            partitions_def=partitions_def,
            ins={"production_window": _in(keys.production_window), "champion_model": _in(keys.champion_model)},
            group_name=group,
            io_manager_key="json_io_manager",
            check_specs=chk.check_specs(keys.model_performance, [r.AUC_VS_CHAMPION], partitions_def),
            description=f"AUC of the window's predictions once labels arrived (label delay ~{labels.delay_days:g} days).",
            kinds={"scikitlearn"},
        )
        def model_performance(
            context: AssetExecutionContext, storage: StorageResource, production_window: StoredTable, champion_model: dict
        ):  # MaterializeResult with a value
            window = parse_partition_key(context.partition_key, monitor.cadence)
            st = storage.storage()
            perf = _performance(st.data, monitor, window, production_window)
            champion_auc = champion_model["metadata"].get("auc_reference")
            outcomes = []
            if perf["status"] == "ok" and champion_auc is not None:
                outcomes.append(auc_check(perf["auc"], float(champion_auc), monitor.rules))
            perf["champion_auc_reference"] = champion_auc
            record = record_performance(st.reports, monitor, window, perf)
            metadata = {k: v for k, v in perf.items() if isinstance(v, (int, float, str)) and v is not None}
            pending = f"labels pending: {perf['labelled_rows']} of {perf['rows']} rows labelled" if perf["status"] != "ok" else None
            return MaterializeResult(
                value=record,
                metadata=metadata,
                check_results=[chk.fold_outcomes(r.AUC_VS_CHAMPION, outcomes, keys.model_performance, skipped_reason=pending)],
            )

        assets.append(model_performance)
    return assets


def _in(key: AssetKey):
    from dagster import AssetIn

    return AssetIn(key=key)


def _model_version(window: StoredTable, column: str | None) -> str | None:
    """The model version(s) that scored the window, from the log's own column."""
    if not column:
        return None
    try:
        if column not in window.schema().names:
            return None
        values = set()
        for batch in window.batches([column]):
            values |= set(pc.unique(batch.column(column)).to_pylist())
        values.discard(None)
        return ",".join(sorted(values)) or None
    except DriftInputError:
        return None


def push_metrics_if_configured(context, st) -> None:
    """With DRIFT_ASSETS_PUSHGATEWAY set (short-lived setups with no exporter to scrape), push the
    same metrics the exporter serves after each window. A push failure is logged, not fatal: the
    window's result is already stored and the next push carries it."""
    gateway = os.environ.get("DRIFT_ASSETS_PUSHGATEWAY")
    if not gateway:
        return
    from drift_assets.alerting.exporter import push_once

    try:
        push_once(ResultsStore(st.reports.path, filesystem=st.reports.filesystem), gateway)
        context.log.info(f"pushed metrics to the Pushgateway at {gateway}")
    except OSError as exc:
        context.log.warning(f"could not push metrics to the Pushgateway at {gateway}: {exc}")


def _write_html(storage: StorageResource, monitor: MonitorConfig, key: str, reference: StoredTable, window: StoredTable, specs) -> str | None:
    import tempfile

    from drift_assets.monitoring.reports import sample_source, write_evidently_report

    names = [s.name for s in specs]
    present = [n for n in names if n in window.schema().names]
    relative = f"{monitor.name}/html/{key.replace(':', '')}.html"
    with tempfile.TemporaryDirectory() as tmp:
        path = write_evidently_report(
            sample_source(reference, present), sample_source(window, present, seed=1),
            [s for s in specs if s.name in present], f"{tmp}/report.html",
        )
        return storage.put_file("reports", relative, path, content_type="text/html; charset=utf-8")


def _performance(data_root, monitor: MonitorConfig, window, production_window: StoredTable) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = monitor.labels
    id_col, pred = labels.id_column, monitor.prediction
    scored = production_window.read([id_col, pred])
    label_table = _labels_since(data_root, labels.location, window.start, labels, scored.column(id_col))
    rows = scored.num_rows
    joined = scored.join(label_table, keys=id_col, join_type="inner")
    y = joined.column(labels.column).to_numpy(zero_copy_only=False).astype(np.int64) if joined.num_rows else np.array([], dtype=np.int64)
    s = joined.column(pred).to_numpy(zero_copy_only=False) if joined.num_rows else np.array([])
    out = {
        "rows": rows,
        "labelled_rows": int(joined.num_rows),
        "label_coverage": joined.num_rows / rows if rows else 0.0,
        "positives": int(y.sum()) if len(y) else 0,
        "model_version": _model_version(production_window, monitor.model_version_column),
    }
    if out["label_coverage"] < MIN_LABEL_COVERAGE or len(np.unique(y)) < 2:
        return {**out, "status": "labels_pending", "auc": None}
    return {
        **out,
        "status": "ok",
        "auc": float(roc_auc_score(y, s)),
        "average_precision": float(average_precision_score(y, s)),
        "positive_rate": float(y.mean()),
    }


def _labels_since(data_root, location: str, since: dt.datetime, labels, ids: pa.ChunkedArray) -> pa.Table:
    """Labels that arrived on/after the window start (none can arrive before the transaction)."""
    wanted = pa.chunked_array(ids).combine_chunks()
    parts = []
    for name in data_root.list_dir(location):
        if name.startswith("arrived=") and name[len("arrived="):] >= since.date().isoformat():
            table = data_root.table(f"{location}/{name}").read([labels.id_column, labels.column])
            parts.append(table.filter(pc.is_in(table.column(labels.id_column), value_set=wanted)))
    if not parts:
        return pa.table({labels.id_column: pa.array([], wanted.type), labels.column: pa.array([], pa.int8())})
    # A transaction relabelled later (chargeback after review) counts as positive if ever positive.
    agg = pa.concat_tables(parts).group_by(labels.id_column).aggregate([(labels.column, "max")])
    return pa.table({labels.id_column: agg.column(labels.id_column), labels.column: agg.column(f"{labels.column}_max")})
