"""The demo's "fraud retraining" phase (issue 16), timed per sub-step, optionally against another
checkout in the same run.

    python benchmarks/bench_retraining.py                                  # this checkout
    python benchmarks/bench_retraining.py --before /tmp/main-checkout      # before/after, interleaved
    python benchmarks/bench_retraining.py --before /tmp/main-checkout --repeat 3

Setup, once: a temporary project with the demo's fraud data (13 weeks x 20,000 rows, drift from week
9), its reference run and the 13 weekly windows, as ``make demo`` leaves them right before the phase.
Then each round copies that state for each checkout and runs ``cli/demo.py``'s ``demo_retraining`` in a
fresh process with ``PYTHONPATH`` at the checkout (its own ``training/`` template, the same DVC
virtualenv), after importing what the demo has imported by then (Dagster, the definitions,
scikit-learn: the simulator trained the champion). Sub-steps are timed by wrapping the functions the
phase calls; the DVC stages by the times their last output was written (``DRIFT_ASSETS_KEEP_WORKDIRS=1``):
``dvc start -> prepare`` includes DVC's start and its checks before the first stage, ``dvc after
evaluate`` its lock and cache writes at the end.

The two checkouts must give the same result: the challenger's bytes, its metrics, the new reference
and the re-scored log are compared after the first round. CPU seconds (the phase's process, and dvc with
its stages: ``RUSAGE_CHILDREN``) depend less on the load of a shared machine than wall seconds.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


# ----------------------------------------------------------------------------------------- workers
# Run inside a subprocess whose PYTHONPATH is the checkout under test; print one JSON line.


def _fraud(defs):
    from drift_assets.cli import demo
    from drift_assets.monitoring.config import load_monitors

    monitor = next(m for m in load_monitors() if m.name == "fraud")
    from drift_assets.orchestration.launch import relax_sqlite_sync

    relax_sqlite_sync(default="OFF")  # as the demo's instance runs
    instance = demo.local_instance()
    runs = demo.monitor_runs(defs, instance, "fraud", launched_by="drift-assets demo")
    return demo, monitor, instance, runs


def worker_setup() -> dict:
    from drift_assets.cli import demo
    from drift_assets.definitions import build_definitions

    demo.simulate_all(only="fraud", echo=lambda _: None)
    defs = build_definitions()
    demo, monitor, instance, runs = _fraud(defs)
    assert runs.run("reference", run_config=QUIET).success
    keys = defs.resolve_job_def(runs.job("window")).partitions_def.get_partition_keys()
    with runs.backfill(keys, title="bench_retraining setup") as batch:
        for key in keys:
            assert demo.run_window(defs, monitor, key, instance, batch).success
    return {"windows": len(keys)}


class Timer:
    def __init__(self):
        self.seconds: dict[str, list[float]] = {}
        self.spans: dict[str, list[tuple[float, float]]] = {}

    def wrap(self, owner, name: str, label: str) -> None:
        fn = getattr(owner, name, None)
        if fn is None:
            return

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            start, wall = time.perf_counter(), time.time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds.setdefault(label, []).append(time.perf_counter() - start)
                self.spans.setdefault(label, []).append((wall, time.time()))

        setattr(owner, name, timed)


def _stage_seconds(workdir: Path, start: float, end: float) -> dict[str, float]:
    def mtime(*paths: str) -> float:
        return max((workdir / p).stat().st_mtime for p in paths)

    prepared = mtime("prepared/train.parquet", "prepared/holdout.parquet", "prepared/summary.json")
    trained, evaluated = mtime("model/model.joblib"), mtime("metrics.json")
    return {
        "dvc start -> prepare": prepared - start,
        "train": trained - prepared,
        "evaluate": evaluated - trained,
        "dvc after evaluate": end - evaluated,
    }


def worker_phase() -> dict:
    import sklearn.compose  # noqa: F401  what the demo has imported before the phase
    import sklearn.ensemble  # noqa: F401
    import sklearn.pipeline  # noqa: F401

    from drift_assets.definitions import build_definitions

    defs = build_definitions()
    demo, monitor, instance, runs = _fraud(defs)
    import drift_assets.orchestration.sensors as sensors
    import drift_assets.retraining.attempt as attempt

    timer = Timer()
    timer.wrap(sensors, "evaluate_retraining", "sensor ticks (3)")
    timer.wrap(demo, "execute_run_request", "runs: retraining, reference refresh")
    timer.wrap(attempt, "run_dvc_repro", "dvc repro")
    timer.wrap(attempt.RetrainingAttempt, "_inputs", "inputs + champion copy")
    timer.wrap(attempt, "prepare_workdir", "work dir")
    timer.wrap(attempt.RetrainingAttempt, "_commit_version", "commit version")
    timer.wrap(attempt, "build_reference_table", "of which reference table")
    timer.wrap(attempt.RetrainingAttempt, "_promote", "promote")
    timer.wrap(demo, "serve_champion_from", "re-score log")
    timer.wrap(demo, "run_window", "4 windows")
    keys = defs.resolve_job_def(runs.job("window")).partitions_def.get_partition_keys()
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start, cpu = time.perf_counter(), time.process_time()
    ok = demo.demo_retraining(defs, monitor, defs.resources["storage"].storage(), instance, keys, runs)
    phase, phase_cpu = time.perf_counter() - start, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # dvc, its stages: every waited-for descendant
    dvc_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    seconds = {k: sum(v) for k, v in timer.seconds.items()}
    retrain_run, refresh_run = timer.seconds["runs: retraining, reference refresh"]
    seconds["retraining run"] = retrain_run
    seconds["reference refresh run"] = refresh_run
    seconds["retraining run outside attempt steps"] = retrain_run - sum(
        seconds.get(k, 0.0) for k in ("dvc repro", "inputs + champion copy", "commit version", "promote")
    )
    del seconds["runs: retraining, reference refresh"]
    (workdir,) = [p for p in (Path(os.environ["DRIFT_ASSETS_RETRAINING_DIR"]) / "fraud").iterdir() if p.is_dir()]
    dvc_start, dvc_end = timer.spans["dvc repro"][0]
    stages = _stage_seconds(workdir, dvc_start, dvc_end)
    return {"ok": ok, "phase": phase, "phase_cpu": phase_cpu, "dvc_cpu": dvc_cpu, "steps": seconds, "stages": stages}


WORKERS = {"setup": worker_setup, "phase": worker_phase}


# ------------------------------------------------------------------------------------------ driver


def project_env(state: Path, checkout: Path) -> dict[str, str]:
    drop = ("PYTHONDONTWRITEBYTECODE", "DRIFT_ASSETS_TRAINING_TEMPLATE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        {
            "PYTHONPATH": str(checkout),
            "DRIFT_ASSETS_ENV": "local",
            "DRIFT_ASSETS_DATA_ROOT": str(state / "data"),
            "DRIFT_ASSETS_ASSETS_ROOT": str(state / "data" / "assets"),
            "DRIFT_ASSETS_REPORTS_ROOT": str(state / "reports"),
            "DRIFT_ASSETS_RETRAINING_DIR": str(state / "retraining"),
            "DRIFT_ASSETS_KEEP_WORKDIRS": "1",
            "DRIFT_ASSETS_DVC": os.environ.get("DRIFT_ASSETS_DVC") or str(PROJECT / ".venv-dvc" / "bin" / "dvc"),
            "DAGSTER_HOME": str(state / "dagster_home"),
            "DVC_NO_ANALYTICS": "1",
            "DO_NOT_TRACK": "1",
            "DAGSTER_DISABLE_TELEMETRY": "1",
        }
    )
    return env


def run_worker(env: dict[str, str], mode: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", mode], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {mode} failed:\n{proc.stderr[-3000:]}\n{proc.stdout[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def outputs_digest(state: Path) -> dict[str, str]:
    """sha256 of what the phase wrote that must not depend on the code's speed."""
    data = state / "data" / "fraud"
    files = sorted((data / "models" / "versions" / "v0002").glob("*")) + sorted((data / "log").rglob("*.parquet"))
    (workdir,) = [p for p in (state / "retraining" / "fraud").iterdir() if p.is_dir()]
    files += [workdir / "prepared" / "train.parquet", workdir / "prepared" / "holdout.parquet"]
    # Times, run ids, absolute paths and the lock's hashes of the stage scripts differ by design.
    skip = {"metadata.json", "dvc.lock", "params.yaml"}
    out = {
        str(p.relative_to(state)).replace(workdir.name, "<run>"): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
        if p.name not in skip
    }
    metrics = json.loads((workdir / "metrics.json").read_text())
    out["metrics"] = json.dumps(metrics, sort_keys=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="another checkout (e.g. main) to measure in the same run")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker]()))
        return 0
    trees = ({"before": args.before.resolve()} if args.before else {}) | {"after": PROJECT}
    root = Path(tempfile.mkdtemp(prefix="drift-assets-retraining-"))
    try:
        state = root / "state"
        started = time.perf_counter()
        run_worker(project_env(state, PROJECT), "setup")
        print(f"setup (simulate, reference, 13 windows): {time.perf_counter() - started:.0f} s", flush=True)
        results: dict[str, list[dict]] = {label: [] for label in trees}
        digests: dict[str, dict[str, str]] = {}
        for i in range(args.repeat):
            for label, tree in trees.items():
                run = root / f"{label}-{i}"
                shutil.copytree(state, run)
                out = run_worker(project_env(run, tree), "phase")
                assert out["ok"], f"{label}: the retraining phase failed"
                results[label].append(out)
                if i == 0:
                    digests[label] = outputs_digest(run)
                shutil.rmtree(run)
                print(
                    f"  round {i + 1} {label}: phase {out['phase']:.1f} s (CPU: in process {out['phase_cpu']:.1f} s,"
                    f" dvc and its stages {out['dvc_cpu']:.1f} s), dvc repro {out['steps']['dvc repro']:.1f} s,"
                    f" load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (1 min); {os.cpu_count()} CPUs")
        if len(digests) == 2:
            before, after = digests["before"], digests["after"]
            differ = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
            print(
                f"outputs before == after ({len(after)} files: challenger, its reference, metrics, re-scored log, "
                f"prepared data): {'yes' if not differ else 'NO: ' + ', '.join(differ[:6])}"
            )
        metrics = json.loads(digests["after"]["metrics"])
        print(
            f"gate: challenger AUC {metrics['challenger_auc']:.4f} vs champion {metrics['champion_auc']:.4f} "
            f"on {metrics['holdout_rows']:,} holdout rows"
        )
        med = statistics.median
        rows = ["phase", "sensor ticks (3)", "retraining run", "  inputs + champion copy", "  work dir", "  dvc repro"]
        rows += [f"    dvc: {k}" for k in results["after"][0]["stages"]]
        rows += ["  commit version", "    of which reference table", "  promote"]
        rows += ["  retraining run outside attempt steps"]
        rows += ["reference refresh run", "re-score log", "4 windows"]

        rows += ["CPU s: phase, in process", "CPU s: dvc and its stages"]

        def value(out: dict, row: str) -> float | None:
            if row == "phase":
                return out["phase"]
            if row.startswith("CPU s: "):
                return out["phase_cpu"] if row.endswith("in process") else out["dvc_cpu"]
            if row.startswith("    dvc: "):
                return out["stages"].get(row[len("    dvc: ") :])
            return out["steps"].get(row) if row in out["steps"] else out["steps"].get(row.strip())

        print(f"median of {args.repeat} rounds, seconds:")
        print(f"  {'sub-step':<40}" + "".join(f"{label:>10}" for label in trees))
        for row in rows:
            cells = []
            for label in trees:
                values = [v for v in (value(o, row) for o in results[label]) if v is not None]
                cells.append(f"{med(values):>10.2f}" if values else f"{'-':>10}")
            print(f"  {row:<40}" + "".join(cells))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
