"""One retraining attempt, without Dagster (``<monitor>/retrained_model`` runs one per
materialisation):

1. copy the DVC template (``training/``) into ``<DvcResource.work_root>/<monitor>/<run_id>`` with a
   merged ``params.yaml`` (absolute local paths of the training reference, production log, label
   feed and champion model; the monitor's columns; ``window.cutoff`` = end of the window;
   ``split.holdout_anchor: latest_label`` because labels arrive days after the traffic); a log,
   reference or label feed in PostgreSQL is first streamed to parquet in the staging folder
   (``retraining/export.py``: the log up to the window's end; the DSN never reaches a file);
2. ``dvc repro`` (prepare -> train -> evaluate) from the DVC virtualenv; its output goes to the
   logger. A failing stage raises ``RetrainingFailed`` with the stderr tail; the
   registry is not touched, and a ``failed-<run_id>`` record goes to the results store;
3. on success: reserve a registry version, copy ``model.joblib`` and a reference table
   (``reference.parquet``, see :func:`build_reference_table`) and lineage files, then commit
   ``metadata.json`` (metrics, hashes, trigger, parent, gate decision);
4. the gate: promote only if ``challenger_auc > champion_auc + min_auc_gain`` (both AUCs on the
   same holdout). Promotion, an atomic rewrite of ``champion.json``, is the very last step.

What happens after a promotion (the reference assets follow the new champion) is the orchestration
layer's: see ``drift_assets.orchestration.retraining_assets``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow.fs as pafs

from drift_assets.monitoring.config import MonitorConfig
from drift_assets.monitoring.registry import (
    ModelRegistry,
    ModelVersion,
    RegistryError,
    registry_of,
)
from drift_assets.monitoring.results import now_iso, record_retraining
from drift_assets.monitoring.source_config import SourceSpec
from drift_assets.monitoring.windows import parse_partition_key
from drift_assets.retraining.dvc_runner import (
    DvcRunResult,
    prepare_workdir,
    run_dvc_repro,
)
from drift_assets.retraining.export import export_labels, export_log, export_reference
from drift_assets.retraining.gate import GateDecision, gate
from drift_assets.retraining.reference import build_reference_table, table_bytes
from drift_assets.storage.root import Root, Storage, sha256_file
from drift_assets.storage.sql import SqlSourceError

REFERENCE_FILE = "reference.parquet"
# Copied next to the model for lineage (what exactly produced this version).
LINEAGE_FILES = {
    "dvc.lock": "dvc.lock",
    "params.yaml": "params.yaml",
    "metrics.json": "metrics.json",
    "prepared/summary.json": "training_summary.json",
}
# Deterministic retraining: the same inputs give the same challenger.
RETRAINING_SEED = 42
KEEP_WORKDIRS_ENV = "DRIFT_ASSETS_KEEP_WORKDIRS"


class Logger(Protocol):
    def info(self, msg: str) -> object: ...
    def warning(self, msg: str) -> object: ...
    def error(self, msg: str) -> object: ...


@dataclass(frozen=True)
class DvcSettings:
    """Where DVC runs: its executable (own virtualenv), the pipeline template and the work dirs."""

    executable: str
    template_dir: str
    work_root: str
    timeout_seconds: float = 3600.0


class RetrainingFailed(RuntimeError):
    """An attempt that changed nothing in the registry; ``results_store`` names its failure record."""

    def __init__(self, message: str, *, results_store: str, champion: str):
        super().__init__(message)
        self.results_store, self.champion = results_store, champion


@dataclass(frozen=True)
class AttemptOutcome:
    record: dict
    version: ModelVersion
    decision: GateDecision
    metrics: dict
    dvc: DvcRunResult
    record_uri: str


def retraining_supported(monitor: MonitorConfig) -> bool:
    """Retraining needs labels (to train and evaluate), a registry (champion, versions) and a model
    that is a plain function of the configured features (no derived columns)."""
    return bool(monitor.retraining.enabled and monitor.labels and monitor.model_registry and not monitor.derived)


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


def local_path(root: Root, relative: str, staging: Path) -> str:
    """Absolute local path of ``relative``; objects on S3 are copied into ``staging`` first."""
    if root.is_local:
        return os.path.abspath(root.path_of(relative))
    dest = staging / relative
    dest.parent.mkdir(parents=True, exist_ok=True)
    info = root.filesystem.get_file_info(root.path_of(relative))
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(root.uri_of(relative))
    pafs.copy_files(
        root.path_of(relative),
        str(dest),
        source_filesystem=root.filesystem,
        destination_filesystem=pafs.LocalFileSystem(),
    )
    return str(dest)


class RetrainingAttempt:
    """One retraining attempt (kept as a class so the steps read top to bottom). Dagster-free: the
    orchestration layer passes its run id, partition, trigger and logger, and turns
    ``RetrainingFailed`` into a failed run."""

    def __init__(
        self,
        monitor: MonitorConfig,
        storage: Storage,
        dvc: DvcSettings,
        *,
        run_id: str,
        partition: str,
        trigger: dict,
        log: Logger,
    ):
        self.monitor, self.dvc, self.st, self.log = monitor, dvc, storage, log
        self.registry: ModelRegistry = registry_of(monitor, storage.data)  # type: ignore[assignment]
        self.run_id, self.partition, self.trigger = run_id, partition, trigger
        self.window = parse_partition_key(partition, monitor.cadence)

    # ---------------------------------------------------------------- steps
    def run(self) -> AttemptOutcome:
        log = self.log
        try:
            champion = self.registry.champion()
        except RegistryError as exc:
            self._fail(f"no champion to compare with: {exc}", parent=None)
        self.parent = champion
        workdir = Path(self.dvc.work_root) / self.monitor.name / self.run_id
        result = self._repro(champion, workdir)
        metrics = result.metrics
        decision = gate(
            metrics.get("challenger_auc"),
            metrics.get("champion_auc"),
            self.monitor.retraining.min_auc_gain,
            metrics.get("holdout_rows"),
        )
        current = self.registry.champion_pointer() or {}
        if decision.promote and int(current.get("version", -1)) != champion.number:
            decision = GateDecision(
                False,
                f"the champion changed during retraining ({champion.name} -> "
                f"{current.get('name')}): the comparison is stale",
            )
        log.info(f"gate: {decision.status.upper()}: {decision.reason}")
        try:
            version = self._commit_version(result, decision)
        except Exception as exc:  # noqa: BLE001 - an uncommitted version dir is never listed or served
            self._fail(f"could not commit the challenger: {type(exc).__name__}: {exc}", parent=champion.number)
        record = retraining_record(
            self.monitor,
            name=version.name,
            version=version.number,
            status=decision.status,
            trigger=self.trigger,
            run_id=self.run_id,
            parent=champion.number,
            metrics=metrics,
            reason=decision.reason,
            dvc_lock_sha256=result.lock_sha256,
            duration_s=result.duration_s,
        )
        record_uri = record_retraining(self.st.reports, self.monitor, version.name, record)
        if decision.promote:
            self._promote(version, decision, record)
        if os.environ.get(KEEP_WORKDIRS_ENV, "0") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
        return AttemptOutcome(record, version, decision, metrics, result, record_uri)

    def _repro(self, champion: ModelVersion, workdir: Path) -> DvcRunResult:
        log = self.log
        staging = workdir.parent / f"{self.run_id}-inputs"
        try:
            inputs = self._inputs(champion, staging)
            params = retraining_params(self.monitor, inputs, self.window.end)
            prepare_workdir(Path(self.dvc.template_dir), workdir, params)
        except SqlSourceError as exc:  # one line naming host, database and table, never the DSN
            shutil.rmtree(staging, ignore_errors=True)
            self._fail(
                f"cannot export the training inputs from PostgreSQL: {exc}; champion {champion.name} unchanged",
                parent=champion.number,
            )
        except RegistryError as exc:  # the champion's model does not match its recorded sha256
            self._fail(f"champion {champion.name} cannot be used: {exc}", parent=champion.number)
        except (OSError, KeyError) as exc:
            self._fail(
                f"cannot prepare the DVC work dir {workdir}: {type(exc).__name__}: {exc}", parent=champion.number
            )
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
                parent=champion.number,
                stderr_tail=tail,
                workdir=str(workdir),
            )
        shutil.rmtree(staging, ignore_errors=True)
        log.info(
            f"dvc repro finished in {result.duration_s:.1f}s: challenger AUC {result.metrics['challenger_auc']:.4f}, "
            f"champion AUC {result.metrics['champion_auc']:.4f} on {result.metrics.get('holdout_rows')} holdout rows"
        )
        return result

    def _inputs(self, champion: ModelVersion, staging: Path) -> Inputs:
        """Absolute local paths of the pipeline's inputs. Train on the configured training reference,
        not on the champion's reference: a promoted champion's reference is a sample of production
        rows, which the pipeline also reads from the log (duplicates, and holdout rows leaking into
        training). Sources in PostgreSQL are exported to parquet under ``staging`` (the log up to
        the window's end), files on S3 are copied there, local files are used in place."""
        monitor, data = self.monitor, self.st.data
        labels = monitor.labels
        assert labels is not None
        exported = []

        def pick(spec: SourceSpec | None, export: Callable[[SourceSpec], tuple[str, int]], fallback: str) -> str:
            if spec is None or spec.kind != "postgres":
                return local_path(data, fallback, staging)
            path, rows = export(spec)
            exported.append(f"{rows} rows to {path}")
            return path

        cutoff = self.window.end
        inputs = Inputs(
            reference=pick(
                monitor.reference_source,
                lambda spec: export_reference(monitor, spec, staging / "reference.parquet"),
                monitor.reference,
            ),
            log=pick(
                monitor.log_source,
                lambda spec: export_log(monitor, spec, cutoff, staging / "log"),
                monitor.log,
            ),
            labels=pick(labels.source, lambda spec: export_labels(monitor, spec, staging / "labels"), labels.location),
            champion_model=self._verified_champion(champion, staging),
        )
        if exported:
            self.log.info(f"exported from PostgreSQL: {'; '.join(exported)}")
        return inputs

    def _verified_champion(self, champion: ModelVersion, staging: Path) -> str:
        """A private copy of the champion's model, written from the sha256-verified bytes: the DVC
        ``evaluate`` stage unpickles this copy, never the registry path (which could change after
        the check)."""
        data = self.registry.verified_model_bytes(champion)
        dest = staging / "champion" / champion.name / "model.joblib"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        return str(dest)

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
        data.write_bytes(f"{path}/{REFERENCE_FILE}", table_bytes(reference))
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
            "training_data_sha256": sha256_file(workdir / "prepared" / "train.parquet"),
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
            "decision": {
                "promote": decision.promote,
                "reason": decision.reason,
                "min_auc_gain": self.monitor.retraining.min_auc_gain,
            },
            "reason": decision.reason,
            "parent": self.parent.number,
            "trigger": self.trigger,
            "retraining_run_id": self.run_id,
        }
        version = self.registry.commit(number, metadata)
        self.log.info(f"committed {self.registry.root.uri_of(version.path)} ({decision.status})")
        return version

    def _promote(self, version: ModelVersion, decision: GateDecision, record: dict) -> None:
        """The last step. If the champion moved while we trained, the comparison is stale: reject."""
        current = self.registry.champion_pointer() or {}
        if int(current.get("version", -1)) != self.parent.number:
            self.log.warning(
                f"champion changed during retraining ({self.parent.name} -> {current.get('name')}); "
                f"{version.name} is committed but not promoted"
            )
            return
        try:
            self.registry.promote(version.number, reason=f"retraining for {self.partition}: {decision.reason}")
        except Exception as exc:
            record_retraining(
                self.st.reports,
                self.monitor,
                version.name,
                {**record, "status": "failed", "reason": f"promotion failed: {exc}"},
            )
            raise
        self.log.info(f"promoted {version.name} (previous champion {self.parent.name})")

    def _fail(self, message: str, *, parent: int | None, **extra) -> None:
        name = f"failed-{self.run_id}"
        record = retraining_record(
            self.monitor,
            name=name,
            version=None,
            status="failed",
            trigger=self.trigger,
            run_id=self.run_id,
            parent=parent,
            reason=message.splitlines()[0],
            **extra,
        )
        uri = record_retraining(self.st.reports, self.monitor, name, record)
        raise RetrainingFailed(
            f"retraining of {self.monitor.name} for {self.partition} failed: {message}",
            results_store=uri,
            champion=self.parent.name if getattr(self, "parent", None) else "(none)",
        )
