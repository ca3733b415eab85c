"""Retraining: a DVC pipeline (``training/``) run in a throw-away work dir per retraining run."""

from drift_assets.retrain.dvc_runner import (
    DvcReproError,
    DvcRunResult,
    default_dvc_executable,
    default_template_dir,
    prepare_workdir,
    raise_for_failure,
    run_dvc_repro,
)

__all__ = [
    "DvcReproError",
    "DvcRunResult",
    "default_dvc_executable",
    "default_template_dir",
    "prepare_workdir",
    "raise_for_failure",
    "run_dvc_repro",
]
