"""Per-monitor retraining: ``<monitor>/retrained_model``, one weekly (per-window) partition per
triggering window.

One materialisation = one retraining attempt:

1. copy the DVC template (``training/``) into ``<DvcResource.work_root>/<monitor>/<run_id>`` with a
   merged ``params.yaml`` (absolute local paths of the training reference, production log, label
   feed and champion model; the monitor's columns; ``window.cutoff`` = end of the window;
   ``split.holdout_anchor: latest_label`` because labels arrive days after the traffic);
2. ``dvc repro`` (prepare -> train -> evaluate) from the DVC virtualenv; its output goes to the
   Dagster run log. A failing stage fails the run with the stderr tail in the ``Failure``; the
   registry is not touched, and a ``failed-<run_id>`` record goes to the results store;
3. on success: reserve a registry version, copy ``model.joblib`` and a reference table
   (``reference.parquet``, see :func:`build_reference_table`) and lineage files, then commit
   ``metadata.json`` (metrics, hashes, trigger, parent, gate decision);
4. the gate: promote only if ``challenger_auc > champion_auc + min_auc_gain`` (both AUCs on the
   same holdout). Promotion, an atomic rewrite of ``champion.json``, is the very last step.

After a promotion the monitor's reference assets (``reference_data``, ``reference_profile``,
``champion_model``) are re-materialised by the retraining sensor, which notices that the registry's
champion differs from the materialised ``champion_model`` and requests the monitor's reference job
(see ``drift_assets.orchestration.sensors``). This covers manual promotions and rollbacks
(``drift-assets models promote``) the same way. It cannot be done in this run: ``reference_data``
is upstream of this asset (lineage), so a same-run re-materialisation would be a cycle.
"""

import datetime as dt
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from drift_assets.orchestration.monitor_assets import MonitorKeys, registry_for
from drift_assets.monitoring.config import MonitorConfig
from drift_assets.orchestration.partitions import partitions_for
from drift_assets.monitoring.registry import ModelRegistry, ModelVersion, RegistryError
from drift_assets.orchestration.resources import DvcResource, StorageResource
from drift_assets.monitoring.results import now_iso, record_retraining
from drift_assets.retraining.dvc_runner import DvcRunResult, prepare_workdir, run_dvc_repro
from drift_assets.storage.root import Root
from drift_assets.monitoring.windows import Window, expected_log_types, parse_partition_key, stream_window

# Run tags. The sensor sets them; the retraining job carries RETRAINING_TAG too, so manual runs
# count for the one-retraining-per-monitor guard (and dagster.yaml's tag concurrency limit).
RETRAINING_TAG = "drift_assets/retraining"
TRIGGER_CHECK_TAG = "drift_assets/trigger_check"
TRIGGER_PARTITION_TAG = "drift_assets/trigger_partition"
TRIGGER_RUN_TAG = "drift_assets/trigger_run"
REFERENCE_REFRESH_TAG = "drift_assets/reference_refresh"

REFERENCE_FILE = "reference.parquet"
# Below this many unseen rows in the triggering window, the reference also takes the holdout.
MIN_REFERENCE_ROWS = 500
# Copied next to the model for lineage (what exactly produced this version).
LINEAGE_FILES = {"dvc.lock": "dvc.lock", "params.yaml": "params.yaml", "metrics.json": "metrics.json",
                 "prepared/summary.json": "training_summary.json"}
# Deterministic retraining: the same inputs give the same challenger.
RETRAINING_SEED = 42
KEEP_WORKDIRS_ENV = "DRIFT_ASSETS_KEEP_WORKDIRS"


def retraining_supported(monitor: MonitorConfig) -> bool:
    """Retraining needs labels (to train and evaluate), a registry (champion, versions) and a model
    that is a plain function of the configured features (no derived columns)."""
    return bool(
        monitor.retraining.enabled and monitor.labels and monitor.model_registry and not monitor.derived
    )


# --------------------------------------------------------------------------------------------
# Pure helpers (no Dagster): params, gate, reference table, records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """Absolute local paths handed to the DVC pipeline."""

    reference: str
    log: str
    labels: str
    champion_model: str


def retraining_params(monitor: MonitorConfig, inputs: Inputs, cutoff: dt.datetime) -> dict:
    """The params.yaml overrides of one retraining run (merged into ``training/params.yaml``)."""
    labels = monitor.labels
    return {
        "data": {
            "reference": inputs.reference,
            "log": inputs.log,
            "labels": inputs.labels,
            "champion_model": inputs.champion_model,
        },
        "columns": {
            "id": labels.id_column,
            "timestamp": monitor.timestamp_column,
            "target": labels.column,
            "numerical": list(monitor.numerical),
            "categorical": list(monitor.categorical),
        },
        # Every label that has arrived by now counts (labels_as_of: null); traffic after the
        # window's end does not.
        "window": {"cutoff": cutoff, "labels_as_of": None},
        # With a label delay of days, the weeks just before the cutoff have no labels yet: anchor
        # the holdout at the newest labelled row instead of the cutoff.
        "split": {"holdout_weeks": monitor.retraining.holdout_weeks, "holdout_anchor": "latest_label"},
        "seed": RETRAINING_SEED,
    }


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str

    @property
    def status(self) -> str:
        return "promoted" if self.promote else "rejected"


def gate(challenger_auc: float | None, champion_auc: float | None, min_auc_gain: float, holdout_rows: int | None = None) -> GateDecision:
    """Promote only if the challenger beats the champion on the same holdout by more than
    ``min_auc_gain`` (0: strictly better). Missing or NaN AUCs never promote."""
    on = f" on the same holdout ({holdout_rows:,} rows)" if holdout_rows else " on the same holdout"
    if challenger_auc is None or champion_auc is None or not np.isfinite(challenger_auc) or not np.isfinite(champion_auc):
        return GateDecision(False, f"AUC undefined (challenger {challenger_auc}, champion {champion_auc}){on}")
    delta = challenger_auc - champion_auc
    if delta > min_auc_gain:
        return GateDecision(
            True,
            f"challenger AUC {challenger_auc:.4f} > champion AUC {champion_auc:.4f} + min gain {min_auc_gain:.4f}"
            f" (delta {delta:+.4f}){on}",
        )
    return GateDecision(
        False,
        f"challenger AUC {challenger_auc:.4f} does not beat champion AUC {champion_auc:.4f} + min gain "
        f"{min_auc_gain:.4f} (delta {delta:+.4f}){on}",
    )


def build_reference_table(data: Root, monitor: MonitorConfig, window: Window, workdir: Path, model) -> tuple[pa.Table, dict]:
    """The new champion's reference: the triggering window's production rows that the challenger
    was not fitted on, scored by the challenger. Returns the table and a description of its rows.

    Why these rows. A reference is what later windows are compared with, so

    * its features should be the traffic the challenger was retrained for: the failing window is
      the new normal (the configured training reference is the pre-drift world, and comparing
      every later window with it would keep the drift checks failing after the model adapted);
    * its prediction column must look like the scores the model will produce in production.
      Gradient-boosted trees score their own training rows more confidently than unseen rows, so
      scoring the training data (in-sample) would make every later window look like prediction
      drift. Rows of the window that ``prepare`` did not put in the training set are either in the
      holdout or have no label yet; either way the challenger never saw them, so their scores are
      out-of-sample, like production scores. The window is read through ``stream_window`` with the
      production window's schema, so reference and windows have the same column types.

    If fewer than ``MIN_REFERENCE_ROWS`` such rows exist (e.g. a window whose rows are all
    labelled and mostly used for training), the rest of the holdout (also unseen, the most recent
    labelled traffic) is added. The label column holds the label where one has arrived, else null.
    """
    labels = monitor.labels
    id_col, ts_col, target = labels.id_column, monitor.timestamp_column, labels.column
    features = list(monitor.numerical) + list(monitor.categorical)
    types = expected_log_types(monitor)
    keep = [id_col, ts_col, *features]
    schema = pa.schema([(c, types[c]) for c in keep])
    batches = [b.select(keep) for b in stream_window(data, monitor.log, window, timestamp_column=ts_col, types=types)]
    rows = pa.Table.from_batches(batches, schema=schema)
    trained = pq.read_table(workdir / "prepared" / "train.parquet", columns=[id_col]).column(id_col).cast(pa.string())
    unseen = rows.filter(pc.invert(pc.is_in(rows.column(id_col), value_set=trained.combine_chunks())))
    holdout = pq.read_table(workdir / "prepared" / "holdout.parquet", columns=[*keep, target])
    holdout = pa.table({c: holdout.column(c).cast(types[c] if c in types else pa.int8()) for c in holdout.column_names})
    described = {"window": window.key, "window_rows": rows.num_rows, "window_rows_unseen": unseen.num_rows,
                 "holdout_rows_added": 0}
    table = unseen
    if unseen.num_rows < MIN_REFERENCE_ROWS:
        seen_ids = unseen.column(id_col).combine_chunks()
        extra = holdout.select(keep).filter(pc.invert(pc.is_in(holdout.column(id_col), value_set=seen_ids)))
        table = pa.concat_tables([unseen, extra.cast(schema)])
        described["holdout_rows_added"] = extra.num_rows
    table = table.join(holdout.select([id_col, target]), keys=id_col, join_type="left outer")
    table = table.sort_by([(ts_col, "ascending"), (id_col, "ascending")])
    frame = table.select(features).to_pandas()
    for c in monitor.categorical:  # as the pipeline's stages see them (missing = NaN)
        frame[c] = frame[c].astype(object).where(frame[c].notna(), np.nan)
    classes = list(getattr(model, "classes_", [0, 1]))
    scores = model.predict_proba(frame)[:, classes.index(1)].astype(np.float64) if len(frame) else np.array([], np.float64)
    columns = {c: table.column(c) for c in keep}
    if monitor.prediction:
        columns[monitor.prediction] = pa.array(scores, pa.float64())
    columns[target] = table.column(target).cast(pa.int8())
    out = pa.table(columns)
    described["rows"] = out.num_rows
    described["labelled_rows"] = out.num_rows - out.column(target).null_count
    return out, described


def _table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def retraining_record(
    monitor: MonitorConfig,
    *,
    name: str,
    version: int | None,
    status: str,
    trigger: dict,
    run_id: str,
    parent: int | None,
    metrics: dict | None = None,
    reason: str = "",
    **extra,
) -> dict:
    """The results-store document of one attempt (``<monitor>/retraining/<name>.json``)."""
    metrics = metrics or {}
    return {
        "monitor": monitor.name,
        "version": version,
        "name": name,
        "status": status,
        "created_at": now_iso(),
        "challenger_auc": metrics.get("challenger_auc"),
        "champion_auc": metrics.get("champion_auc"),
        "auc_delta": metrics.get("auc_delta"),
        "holdout_rows": metrics.get("holdout_rows"),
        "trigger": trigger,
        "parent": parent,
        "reason": reason,
        "run_id": run_id,
        **extra,
    }


# --------------------------------------------------------------------------------------------
# Inputs on local disk (DVC reads local paths)
# --------------------------------------------------------------------------------------------


def _local_path(root: Root, relative: str, staging: Path) -> str:
    """Absolute local path of ``relative``; objects on S3 are copied into ``staging`` first."""
    if root.is_local:
        return os.path.abspath(root.path_of(relative))
    dest = staging / relative
    dest.parent.mkdir(parents=True, exist_ok=True)
    info = root.filesystem.get_file_info(root.path_of(relative))
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(root.uri_of(relative))
    pafs.copy_files(root.path_of(relative), str(dest), source_filesystem=root.filesystem,
                    destination_filesystem=pafs.LocalFileSystem())
    return str(dest)


# --------------------------------------------------------------------------------------------
# The asset
# --------------------------------------------------------------------------------------------


def build_retraining_assets(monitor: MonitorConfig) -> list:
    """``<monitor>/retrained_model`` (empty list when the monitor cannot be retrained)."""
    if not retraining_supported(monitor):
        return []
    keys = MonitorKeys(monitor.name)
    deps = [keys.reference_data, keys.drift_report]
    if monitor.prediction:
        deps.append(keys.model_performance)

    @asset(
        key=keys.retrained_model,
        partitions_def=partitions_for(monitor),
        group_name=monitor.name,
        deps=deps,
        io_manager_key="json_io_manager",
        description=(
            f"A challenger retrained with DVC (training/) on data up to the end of the window, evaluated against "
            f"the champion on the same holdout; promoted if its AUC is better by more than "
            f"{monitor.retraining.min_auc_gain:g}. Triggered by the retraining sensor when an ERROR check fails."
        ),
        kinds={"dvc", "scikitlearn"},
    )
    def retrained_model(context: AssetExecutionContext, storage: StorageResource, dvc: DvcResource) -> Output:
        return Retraining(context, monitor, storage, dvc).run()

    return [retrained_model]


class Retraining:
    """One retraining attempt (kept as a class so the steps read top to bottom)."""

    def __init__(self, context: AssetExecutionContext, monitor: MonitorConfig, storage: StorageResource, dvc: DvcResource):
        self.context, self.monitor, self.dvc = context, monitor, dvc
        self.st = storage.storage()
        self.registry: ModelRegistry = registry_for(monitor, storage)
        self.run_id = context.run.run_id
        self.partition = context.partition_key
        self.window = parse_partition_key(self.partition, monitor.cadence)
        tags = context.run.tags
        self.trigger = {
            "partition": self.partition,
            "check": tags.get(TRIGGER_CHECK_TAG, "manual"),
            "run_id": tags.get(TRIGGER_RUN_TAG),
        }

    # ---------------------------------------------------------------- steps
    def run(self) -> Output:
        log = self.context.log
        try:
            champion = self.registry.champion()
        except RegistryError as exc:
            self._fail(f"no champion to compare with: {exc}", parent=None)
        self.parent = champion
        workdir = Path(self.dvc.work_root) / self.monitor.name / self.run_id
        result = self._repro(champion, workdir)
        metrics = result.metrics
        decision = gate(metrics.get("challenger_auc"), metrics.get("champion_auc"),
                        self.monitor.retraining.min_auc_gain, metrics.get("holdout_rows"))
        current = self.registry.champion_pointer() or {}
        if decision.promote and int(current.get("version", -1)) != champion.number:
            decision = GateDecision(False, f"the champion changed during retraining ({champion.name} -> "
                                           f"{current.get('name')}): the comparison is stale")
        log.info(f"gate: {decision.status.upper()}: {decision.reason}")
        try:
            version = self._commit_version(result, decision)
        except Exception as exc:  # noqa: BLE001 - an uncommitted version dir is never listed or served
            self._fail(f"could not commit the challenger: {type(exc).__name__}: {exc}", parent=champion.number)
        record = retraining_record(
            self.monitor, name=version.name, version=version.number, status=decision.status, trigger=self.trigger,
            run_id=self.run_id, parent=champion.number, metrics=metrics, reason=decision.reason,
            dvc_lock_sha256=result.lock_sha256, duration_s=result.duration_s,
        )
        record_uri = record_retraining(self.st.reports, self.monitor, version.name, record)
        if decision.promote:
            self._promote(version, decision, record)
        if os.environ.get(KEEP_WORKDIRS_ENV, "0") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
        return Output(
            record,
            metadata={
                "version": version.name,
                "decision": decision.status,
                "challenger_auc": MetadataValue.float(float(metrics["challenger_auc"])),
                "champion_auc": MetadataValue.float(float(metrics["champion_auc"])),
                "auc_delta": MetadataValue.float(float(metrics["auc_delta"])),
                "holdout_rows": int(metrics.get("holdout_rows") or 0),
                "train_rows": int(metrics.get("train_rows") or 0),
                "reason": MetadataValue.text(decision.reason),
                "parent": champion.name,
                "trigger_check": self.trigger["check"],
                "dvc_lock_sha256": result.lock_sha256 or "",
                "dvc_seconds": MetadataValue.float(float(result.duration_s)),
                "model_file": MetadataValue.path(self.st.data.uri_of(version.model_file)),
                "results_store": MetadataValue.path(record_uri),
            },
        )

    def _repro(self, champion: ModelVersion, workdir: Path) -> DvcRunResult:
        log, data = self.context.log, self.st.data
        labels = self.monitor.labels
        staging = workdir.parent / f"{self.run_id}-inputs"
        try:
            # Train on the configured training reference, not on the champion's reference: a
            # promoted champion's reference is a sample of production rows, which the pipeline
            # also reads from the log (duplicates, and holdout rows leaking into training).
            inputs = Inputs(
                reference=_local_path(data, self.monitor.reference, staging),
                log=_local_path(data, self.monitor.log, staging),
                labels=_local_path(data, labels.location, staging),
                champion_model=_local_path(data, champion.model_file, staging),
            )
            params = retraining_params(self.monitor, inputs, self.window.end)
            prepare_workdir(Path(self.dvc.template_dir), workdir, params)
        except (OSError, KeyError) as exc:
            self._fail(f"cannot prepare the DVC work dir {workdir}: {type(exc).__name__}: {exc}", parent=champion.number)
        log.info(
            f"retraining {self.monitor.name} for window {self.partition} (cutoff {self.window.end.isoformat()}, "
            f"trigger {self.trigger['check']}): dvc repro in {workdir}"
        )
        try:
            result = run_dvc_repro(workdir, dvc_executable=self.dvc.executable, timeout_s=self.dvc.timeout_seconds)
        except FileNotFoundError as exc:  # no DVC executable
            self._fail(str(exc), parent=champion.number)
        for line in (result.stdout or "").splitlines():
            if line.strip():
                log.info(f"dvc: {line}")
        if result.stderr_tail:
            (log.info if result.ok else log.error)(f"dvc stderr (last lines):\n{result.stderr_tail}")
        if not result.ok or result.metrics is None:
            reason = "timed out" if result.timed_out else f"exited with {result.returncode}"
            if result.ok:
                reason = "produced no metrics.json"
            tail = result.stderr_tail or "(no output)"
            self._fail(
                f"dvc repro {reason} after {result.duration_s:.1f}s in {workdir}; champion {champion.name} unchanged.\n"
                f"stderr tail:\n{tail}",
                parent=champion.number, stderr_tail=tail, workdir=str(workdir),
            )
        shutil.rmtree(staging, ignore_errors=True)
        log.info(
            f"dvc repro finished in {result.duration_s:.1f}s: challenger AUC {result.metrics['challenger_auc']:.4f}, "
            f"champion AUC {result.metrics['champion_auc']:.4f} on {result.metrics.get('holdout_rows')} holdout rows"
        )
        return result

    def _commit_version(self, result: DvcRunResult, decision: GateDecision) -> ModelVersion:
        """Write the version's files, then metadata.json (the commit)."""
        import joblib

        workdir = result.workdir
        data = self.st.data
        number, path = self.registry.reserve()
        model_path = workdir / "model" / "model.joblib"
        model = joblib.load(model_path)
        reference, described = build_reference_table(data, self.monitor, self.window, workdir, model)
        labels = self.monitor.labels
        data.write_bytes(f"{path}/{REFERENCE_FILE}", _table_bytes(reference))
        for src, dst in LINEAGE_FILES.items():
            if (workdir / src).is_file():
                data.write_bytes(f"{path}/{dst}", (workdir / src).read_bytes())
        data.write_bytes(f"{path}/model.joblib", model_path.read_bytes())  # commit() requires it
        summary = {}
        if (workdir / "prepared" / "summary.json").is_file():
            import json

            summary = json.loads((workdir / "prepared" / "summary.json").read_text())
        metadata = {
            "created_at": now_iso(),
            "model_file": "model.joblib",
            "reference_file": REFERENCE_FILE,
            "reference_rows": reference.num_rows,
            "reference": described,
            # AUC on held-out data at training time (v0001's is on its held-out reference sample).
            "auc_reference": result.metrics.get("challenger_auc"),
            "metrics": result.metrics,
            "training_data_sha256": _sha256_file(workdir / "prepared" / "train.parquet"),
            "training_rows": result.metrics.get("train_rows"),
            "dvc_lock_sha256": result.lock_sha256,
            "cutoff": self.window.end.isoformat(),
            "holdout": summary.get("holdout"),
            "features": {
                "numerical": list(self.monitor.numerical),
                "categorical": list(self.monitor.categorical),
                "top_features": list(self.monitor.top_features),
            },
            "label_column": labels.column,
            "prediction_column": self.monitor.prediction,
            "seed": RETRAINING_SEED,
            "status": decision.status,
            "decision": {"promote": decision.promote, "reason": decision.reason,
                         "min_auc_gain": self.monitor.retraining.min_auc_gain},
            "reason": decision.reason,
            "parent": self.parent.number,
            "trigger": self.trigger,
            "retraining_run_id": self.run_id,
        }
        version = self.registry.commit(number, metadata)
        self.context.log.info(f"committed {self.registry.root.uri_of(version.path)} ({decision.status})")
        return version

    def _promote(self, version: ModelVersion, decision: GateDecision, record: dict) -> None:
        """The last step. If the champion moved while we trained, the comparison is stale: reject."""
        current = self.registry.champion_pointer() or {}
        if int(current.get("version", -1)) != self.parent.number:
            self.context.log.warning(
                f"champion changed during retraining ({self.parent.name} -> {current.get('name')}); "
                f"{version.name} is committed but not promoted"
            )
            return
        try:
            self.registry.promote(version.number, reason=f"retraining for {self.partition}: {decision.reason}")
        except Exception as exc:
            record_retraining(self.st.reports, self.monitor, version.name,
                              {**record, "status": "failed", "reason": f"promotion failed: {exc}"})
            raise
        self.context.log.info(f"promoted {version.name} (previous champion {self.parent.name})")

    def _fail(self, message: str, *, parent: int | None, **extra) -> None:
        name = f"failed-{self.run_id}"
        record = retraining_record(
            self.monitor, name=name, version=None, status="failed", trigger=self.trigger, run_id=self.run_id,
            parent=parent, reason=message.splitlines()[0], **extra,
        )
        uri = record_retraining(self.st.reports, self.monitor, name, record)
        raise Failure(
            description=f"retraining of {self.monitor.name} for {self.partition} failed: {message}",
            metadata={"results_store": MetadataValue.path(uri), "champion": MetadataValue.text(
                self.parent.name if getattr(self, "parent", None) else "(none)")},
        )
