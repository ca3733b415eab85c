"""Run the retraining DVC pipeline (``training/``) in a throw-away work dir.

DVC and Dagster cannot share a virtualenv (antlr4-python3-runtime pins conflict), so DVC lives in
its own venv (``.venv-dvc``, ``make .venv-dvc``) and is driven here through its CLI as a
subprocess. This module has no Dagster import: stdlib + PyYAML only.

Typical use::

    workdir = prepare_workdir(default_template_dir(), run_dir, {
        "data": {"reference": "/abs/reference.parquet", "log": "/abs/log", "labels": "/abs/labels",
                 "champion_model": "/abs/champion.joblib"},
        "window": {"cutoff": "2024-03-01T00:00:00Z"},
    })
    result = run_dvc_repro(workdir, dvc_executable=default_dvc_executable())
    raise_for_failure(result)
    result.metrics["auc_delta"]
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import yaml

from drift_assets.storage.root import sha256_file

__all__ = [
    "DvcReproError",
    "DvcRunResult",
    "TEMPLATE_FILES",
    "default_dvc_executable",
    "default_template_dir",
    "deep_update",
    "load_template_params",
    "prepare_workdir",
    "raise_for_failure",
    "resolve_dvc_executable",
    "run_dvc_repro",
]

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Files/dirs copied from the template into each work dir (params.yaml is written merged).
TEMPLATE_FILES: tuple[str, ...] = ("dvc.yaml", "src", ".dvc/config", ".dvc/.gitignore", ".dvcignore")
_COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")

METRICS_FILE = "metrics.json"
LOCK_FILE = "dvc.lock"
MODEL_FILE = "model/model.joblib"
STDERR_TAIL_LINES = 40


class DvcReproError(RuntimeError):
    """``dvc repro`` failed; the message carries the tail of its stderr."""

    def __init__(self, message: str, result: DvcRunResult | None = None):
        super().__init__(message)
        self.result = result


@dataclass
class DvcRunResult:
    returncode: int
    stdout: str
    stderr: str
    stderr_tail: str
    duration_s: float
    lock_sha256: str | None
    metrics: dict[str, Any] | None
    workdir: Path | None = None
    command: list[str] = field(default_factory=list)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def model_path(self) -> Path | None:
        if self.workdir is None:
            return None
        path = self.workdir / MODEL_FILE
        return path if self.ok and path.exists() else None


# --------------------------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------------------------


def default_template_dir() -> Path:
    """``$DRIFT_ASSETS_TRAINING_TEMPLATE`` or ``<repo>/training``."""
    env = os.environ.get("DRIFT_ASSETS_TRAINING_TEMPLATE")
    return Path(env) if env else REPO_ROOT / "training"


def default_dvc_executable() -> str:
    """``$DRIFT_ASSETS_DVC`` or ``<repo>/.venv-dvc/bin/dvc``."""
    return os.environ.get("DRIFT_ASSETS_DVC") or str(REPO_ROOT / ".venv-dvc" / "bin" / "dvc")


def resolve_dvc_executable(dvc_executable: str | os.PathLike[str]) -> Path:
    """Absolute path of the DVC CLI; a bare name (``"dvc"``) is looked up on PATH.

    Raises FileNotFoundError naming the path and how to create the DVC virtualenv.
    """
    raw = os.fspath(dvc_executable)
    hint = (
        "DVC runs from its own virtualenv because it conflicts with Dagster "
        "(antlr4-python3-runtime). Create it with `make .venv-dvc` "
        "or point DRIFT_ASSETS_DVC at an existing dvc executable."
    )
    if os.sep in raw or (os.altsep and os.altsep in raw):
        path = Path(raw).expanduser().absolute()
        if not path.is_file():
            raise FileNotFoundError(f"DVC executable not found: {path}. {hint}")
        if not os.access(path, os.X_OK):
            raise FileNotFoundError(f"DVC executable is not executable: {path}. {hint}")
        return path
    found = shutil.which(raw)
    if not found:
        raise FileNotFoundError(f"DVC executable {raw!r} not found on PATH. {hint}")
    return Path(found).absolute()


# --------------------------------------------------------------------------------------------
# Work dir
# --------------------------------------------------------------------------------------------


def deep_update(base: Mapping[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``base`` with ``updates`` merged in recursively (lists are replaced)."""
    out = copy.deepcopy(dict(base))
    for key, value in updates.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _unknown_keys(base: Mapping[str, Any], updates: Mapping[str, Any], prefix: str = "") -> list[str]:
    unknown = []
    for key, value in updates.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            unknown.append(dotted)
        elif isinstance(value, Mapping) and isinstance(base[key], Mapping):
            unknown.extend(_unknown_keys(base[key], value, dotted + "."))
    return unknown


def _yaml_safe(value: Any) -> Any:
    """Paths -> str, datetimes -> ISO-8601 UTC strings (naive = UTC), tuples -> lists."""
    if isinstance(value, Mapping):
        return {str(k): _yaml_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_yaml_safe(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    return value


def load_template_params(template_dir: Path) -> dict[str, Any]:
    with (Path(template_dir) / "params.yaml").open() as fh:
        return yaml.safe_load(fh) or {}


def prepare_workdir(template_dir: Path, workdir: Path, params: Mapping[str, Any], *, strict: bool = True) -> Path:
    """Copy the DVC project template into a fresh, empty ``workdir`` and write params.yaml.

    ``params`` is deep-merged into the template's params.yaml defaults. Paths may be ``Path``
    objects and datetimes ``datetime`` objects (written as ISO-8601 UTC). Input paths should be
    absolute; relative ones are resolved by the stages against the work dir. With
    ``strict=True`` keys not present in the template defaults raise ``KeyError`` (typo guard).
    Returns the absolute work dir.
    """
    template_dir = Path(template_dir)
    workdir = Path(workdir).absolute()
    if not (template_dir / "dvc.yaml").is_file():
        raise FileNotFoundError(f"not a DVC pipeline template (no dvc.yaml): {template_dir}")
    if workdir.exists():
        if not workdir.is_dir():
            raise NotADirectoryError(f"work dir is not a directory: {workdir}")
        if any(workdir.iterdir()):
            raise FileExistsError(f"work dir must be empty (one fresh dir per run): {workdir}")
    defaults = load_template_params(template_dir)
    if strict:
        unknown = _unknown_keys(defaults, params)
        if unknown:
            raise KeyError(f"unknown retraining parameter(s) {unknown}; known: see {template_dir / 'params.yaml'}")
    merged = deep_update(defaults, _yaml_safe(params))

    workdir.mkdir(parents=True, exist_ok=True)
    for rel in TEMPLATE_FILES:
        src = template_dir / rel
        dst = workdir / rel
        if src.is_dir():
            shutil.copytree(src, dst, ignore=_COPY_IGNORE)
        elif src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        elif rel in ("dvc.yaml", ".dvc/config"):
            raise FileNotFoundError(f"template file missing: {src}")
    with (workdir / "params.yaml").open("w") as fh:
        yaml.safe_dump(merged, fh, sort_keys=False, default_flow_style=False)
    return workdir


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def _tail(text: str, n: int = STDERR_TAIL_LINES) -> str:
    lines = text.rstrip("\n").splitlines()
    return "\n".join(lines[-n:])


def _build_env(dvc_path: Path, workdir: Path, extra_env: Mapping[str, str | None] | None) -> dict[str, str]:
    env = dict(os.environ)
    # The stages must run on the DVC venv's interpreter and packages only.
    for var in ("PYTHONPATH", "PYTHONHOME"):
        env.pop(var, None)
    bin_dir = dvc_path.parent
    venv_root = bin_dir.parent
    if (venv_root / "pyvenv.cfg").is_file():
        env["VIRTUAL_ENV"] = str(venv_root)
    else:
        env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", os.defpath)])
    env["DVC_NO_ANALYTICS"] = "1"
    env["DO_NOT_TRACK"] = "1"
    # The stages' OpenMP threads (scikit-learn's HistGradientBoosting, one per core) sleep when they
    # wait instead of spinning (libgomp's default): on a busy machine the spinning threads take the
    # cores from the one doing the work, and `train` took 16-30 s instead of 5-7 s at load 5. Same
    # thread count, so the same model, byte for byte. A value the caller set wins.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # DVC keeps per-repo state/index DBs in a machine-wide site cache dir (/var/tmp/dvc/repo/<hash>)
    # keyed by the repo path; with one fresh work dir per run that would grow forever, so keep
    # it inside the work dir unless the caller chose one.
    env.setdefault("DVC_SITE_CACHE_DIR", str(workdir / ".dvc" / "tmp" / "site_cache"))
    for key, value in (extra_env or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


GUARD_SCRIPT = Path(__file__).with_name("process_guard.py")


def guarded_command(cmd: list[str]) -> list[str]:
    """``cmd`` wrapped in ``process_guard.py`` (see its docstring): the process group it starts ends
    when this process dies (even by ``kill -9``: Linux parent-death signal), when the run worker
    that started this step process dies (the step runs in a multiprocessing child of it), and on
    SIGTERM/SIGINT/SIGHUP of the guard (what ``_kill_group`` sends on timeout or exception)."""
    import multiprocessing

    from drift_assets.retraining.process_guard import process_identity

    guard = [sys.executable, "-I", str(GUARD_SCRIPT), "--parent", str(os.getpid())]
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid:
        guard += ["--watch", process_identity(parent.pid)]
    return [*guard, "--", *cmd]


def run_dvc_repro(
    workdir: Path,
    *,
    dvc_executable: str,
    timeout_s: float = 1800,
    extra_env: Mapping[str, str | None] | None = None,
) -> DvcRunResult:
    """Run ``dvc repro`` in ``workdir``; never raises for pipeline failures (see ``raise_for_failure``).

    ``extra_env`` is applied last; a ``None`` value unsets a variable. ``dvc repro`` runs under
    ``process_guard.py`` in a process group of its own (guard, dvc, the running stage). The group is
    ended on timeout (``timed_out`` is set), on any exception here (KeyboardInterrupt: a cancelled
    Dagster run), and by the guard itself when this process or its run worker dies, so no
    ``dvc``/``train.py`` outlives the run that started it.
    """
    dvc_path = resolve_dvc_executable(dvc_executable)
    workdir = Path(workdir).absolute()
    if not (workdir / "dvc.yaml").is_file():
        raise FileNotFoundError(f"no dvc.yaml in work dir {workdir} (use prepare_workdir first)")
    cmd = [str(dvc_path), "repro"]
    env = _build_env(dvc_path, workdir, extra_env)
    guarded = guarded_command(cmd)

    start = time.monotonic()
    timed_out = False
    proc = subprocess.Popen(
        guarded,
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,  # own process group: the guard, dvc and the running stage
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        stdout, stderr = proc.communicate()
        stderr = (stderr or "") + f"\nERROR: dvc repro timed out after {timeout_s:.0f}s and was killed\n"
    except BaseException:
        _kill_group(proc)
        raise
    duration = time.monotonic() - start
    returncode = proc.returncode if not timed_out else (proc.returncode or -signal.SIGKILL)
    if timed_out and returncode == 0:
        returncode = -signal.SIGKILL

    lock = workdir / LOCK_FILE
    lock_sha256 = sha256_file(lock) if lock.is_file() else None
    metrics = None
    metrics_path = workdir / METRICS_FILE
    if returncode == 0 and metrics_path.is_file():
        try:
            metrics = json.loads(metrics_path.read_text())
        except json.JSONDecodeError as exc:
            stderr += f"\nERROR: {metrics_path} is not valid JSON: {exc}\n"
            returncode = 1

    return DvcRunResult(
        returncode=returncode,
        stdout=stdout or "",
        stderr=stderr or "",
        stderr_tail=_tail(stderr or ""),
        duration_s=round(duration, 3),
        lock_sha256=lock_sha256,
        metrics=metrics,
        workdir=workdir,
        command=cmd,
        timed_out=timed_out,
    )


def raise_for_failure(result: DvcRunResult) -> DvcRunResult:
    """Raise ``DvcReproError`` (message includes the stderr tail) unless the run succeeded."""
    if result.returncode == 0 and result.metrics is not None:
        return result
    reason = "timed out" if result.timed_out else f"exited with {result.returncode}"
    if result.returncode == 0:
        reason = f"succeeded but produced no {METRICS_FILE}"
    tail = result.stderr_tail or _tail(result.stdout) or "(no output)"
    raise DvcReproError(f"dvc repro in {result.workdir} {reason} after {result.duration_s:.1f}s:\n{tail}", result)
