"""``make demo``: simulate, then run the monitoring loop through Dagster on the local instance and
print what it found. Everything goes through the same jobs a scheduled deployment runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from drift_assets.cli.progress import Phases, Progress
from drift_assets.monitoring.config import PROJECT_ROOT, load_monitors
from drift_assets.monitoring.results_store import ResultsStore


def _data_root(target: str | None) -> str:
    if target:
        return target
    from drift_assets.orchestration.environment import resources_for_environment

    return resources_for_environment()["storage"].data_root


def simulate_all(
    *,
    target: str | None = None,
    only: str | None = None,
    rows_per_week: int = 20_000,
    weeks: int = 13,
    drift_week: int = 9,
    llm_days: int = 16,
    seed: int | None = None,
    echo: Callable[[str], None] = print,
    story: str = "card_testing",
) -> dict:
    """Write the demo data for the configured monitors under the data root; returns the simulations."""
    from drift_assets.simulate import simulate_fraud, simulate_llm
    from drift_assets.storage.tables import resolve

    root = _data_root(target).rstrip("/")
    fs, base = resolve(root)
    out = {}
    if only in (None, "fraud"):
        kwargs = {"seed": seed} if seed is not None else {}
        fraud_days = Progress("   simulating fraud", 7 * weeks + 1, unit="steps (reference + days)", echo=echo)
        echo(f"   simulating fraud: training the champion and scoring the reference, then {7 * weeks} days of log")
        sim = simulate_fraud(
            f"{base}/fraud",
            progress=lambda done, total: fraud_days.update(done),
            rows_per_week=rows_per_week,
            weeks=weeks,
            drift_week=drift_week,
            filesystem=fs,
            story=story,
            **kwargs,
        )
        echo(
            f"fraud: {weeks} weeks x {rows_per_week:,} transactions from {sim.start} under {root}/fraud; drift "
            f"({story}) injected from {sim.drift_start} (week {drift_week})"
        )
        out["fraud"] = sim
    if only in (None, "llm"):
        kwargs = {"seed": seed} if seed is not None else {}
        llm_days_done = Progress("   simulating llm", llm_days + 1, unit="steps (reference + days)", echo=echo)
        sim = simulate_llm(
            f"{base}/llm",
            days=llm_days,
            filesystem=fs,
            progress=lambda done, total: llm_days_done.update(done),
            **kwargs,
        )
        incidents = (
            "; ".join(f"{i.kind} {i.start}..{i.end}" for i in sim.incidents) if hasattr(sim, "incidents") else ""
        )
        echo(f"llm: {llm_days} days of responses under {root}/llm; incidents: {incidents}")
        out["llm"] = sim
    return out


def local_instance():
    """The instance in $DAGSTER_HOME (default .dagster_home), created with the project's dagster.yaml."""
    from dagster import DagsterInstance

    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home"))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    return DagsterInstance.get()


# Runs are recorded on the instance (see them in the UI); the console only gets warnings.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def monitor_runs(defs, instance, monitor_name: str, launched_by: str = "drift-assets"):
    """Runs of one monitor through the instance, tied to workspace.yaml's code location (the UI's
    Overview, Jobs and Backfills show them) and executed in this process (orchestration/launch.py)."""
    from drift_assets.orchestration.launch import InProcessLauncher, MonitorRuns

    return MonitorRuns(InProcessLauncher(defs, instance, launched_by=launched_by), monitor_name)


def run_window(defs, monitor, partition_key: str, instance, runs=None):
    """The window run and then, where it applies, its verdict; inside ``runs.backfill`` both are
    runs of the monitor's window and verdict backfills."""
    runs = runs or monitor_runs(defs, instance, monitor.name)
    result = runs.run("window", partition_key, run_config=QUIET)
    # drift_alert marks the window failed in the UI. Hourly monitors run it only for the windows
    # that failed an ERROR check (a run costs ~0.3 s here, and the demo evaluates 216 hours):
    # their passing hours stay "missing" in drift_alert, and the daemon's sensor covers new hours.
    failed_error = any(not e.passed and e.severity.value == "ERROR" for e in result.get_asset_check_evaluations())
    if result.success and (monitor.cadence != "hourly" or failed_error):
        run_alert(defs, monitor.name, partition_key, instance, runs)
    return result


def run_alert(defs, monitor_name: str, partition_key: str, instance, runs=None) -> bool:
    """The window's verdict (``<monitor>/drift_alert``): its run fails, and the week shows failed in the
    UI, when an ERROR check failed. Returns whether the window passed (the daemon does this by
    automation under ``make dev``; the CLI runs it itself, there may be no daemon)."""
    runs = runs or monitor_runs(defs, instance, monitor_name)
    # Its failure is the expected verdict on a drifted window, not an error to print a traceback for.
    silent = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    return runs.run("alert", partition_key, run_config=silent).success


def backfill_line(runs) -> str:
    """Where the UI shows a monitor's backfill (inside ``runs.backfill``)."""
    window, alert = runs.backfill_ids
    return (
        f"   Dagster backfills {window} ({runs.job('window')}) and {alert} (verdicts, {runs.job('alert')}), code "
        f"location {runs.launcher.location.label}: see Backfills, Jobs and Overview in the UI"
    )


def failed_checks_of(result) -> list[tuple[str, str, str]]:
    """(check name, severity, description) of the failed checks in an in-process run result."""
    out = []
    for ev in result.get_asset_check_evaluations():
        if not ev.passed:
            out.append((ev.check_name, ev.severity.value, ev.description or ""))
    return out


def run_demo(
    *,
    rows_per_week: int = 20_000,
    fresh: bool = False,
    html: bool = True,
    story: str = "card_testing",
    one_at_a_time: bool = False,
    hour_workers: int | None = None,
) -> int:
    from drift_assets.cli import hours
    from drift_assets.definitions import build_definitions

    # The hourly windows' processes (cli/hours.py): the flag, else the env, else 1 under
    # --one-at-a-time (one process for everything) and 2 on a multi-core machine otherwise.
    if hour_workers is not None:
        os.environ[hours.HOUR_WORKERS_ENV] = str(hour_workers)
    elif one_at_a_time:
        os.environ.setdefault(hours.HOUR_WORKERS_ENV, "1")
    try:
        hours.hour_workers()
    except ValueError as exc:
        print(f"drift-assets demo: {exc}")
        return 2
    os.environ.setdefault("DRIFT_ASSETS_ENV", "local")
    # The demo's two processes share 2 cores with scikit-learn's OpenMP threads (the champion's
    # fit, scoring): spinning idle threads starve the busy ones (retraining/dvc_runner.py).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not html:
        os.environ["DRIFT_ASSETS_HTML_REPORTS"] = "0"
    monitors = load_monitors()
    defs = build_definitions()
    storage = defs.resources["storage"].storage()
    if not fresh and _retrained_before(monitors, storage):
        print("== a previous demo retrained a model (registry and log changed): re-simulating for a clean start")
        fresh = True
    if not fresh and _simulated_story(storage) not in (None, story):
        print(f"== the demo data tell the {_simulated_story(storage)} story: re-simulating for {story}")
        fresh = True
    phases = Phases()
    if fresh or not storage.data.exists("fraud/manifest.json"):
        print("== simulating demo data")
        phases.start("simulate")
        simulate_all(rows_per_week=rows_per_week, story=story)
        for monitor in monitors:
            storage.reports.delete_dir(f"{monitor.name}/retraining")  # attempts on the old registry
    sync, instance = _demo_instance()
    print(
        f"== Dagster instance: {os.environ['DAGSTER_HOME']} (SQLite, synchronous={sync}; "
        "DRIFT_ASSETS_SQLITE_SYNCHRONOUS=FULL to wait for the disk on every event)"
    )
    # The first monitor here, the others in a second process at the same time (cli/alongside.py).
    later = [m.name for m in list(monitors)[1:]] if not one_at_a_time and (os.cpu_count() or 1) > 1 else []
    second = None
    if later:
        from drift_assets.cli import alongside

        second = alongside.start(later)
    summary_ok = True
    try:
        summary_ok &= _demo_monitors(defs, instance, storage, [m for m in monitors if m.name not in later], phases)
        if second is not None:
            phases.end()
            ok, took = second.finish()
            summary_ok &= ok
            phases.times.append((f"{', '.join(later)} (alongside)", took))
    finally:
        if second is not None:
            second.stop()
    print(phases.summary())
    print("\nReports:")
    print(f"   results store (JSON per window): {storage.reports.uri_of('')}")
    print(f"   Evidently HTML reports:          {storage.reports.uri_of('<monitor>/html/')}")
    print("Open the Dagster UI with `make dev` (http://127.0.0.1:3000): asset groups per monitor, checks per week.")
    return 0 if summary_ok else 1


def _demo_instance():
    """The demo's instance, SQLite's fsync per event off (a throwaway: see launch.relax_sqlite_sync)."""
    from drift_assets.orchestration.launch import relax_sqlite_sync

    sync = relax_sqlite_sync(default="OFF")
    return sync or "FULL", local_instance()


def demo_monitors(names: set[str]) -> int:
    """The demo's loop for the monitors ``names`` alone, on data and an instance already prepared
    (the second process of ``run_demo``)."""
    from drift_assets.definitions import build_definitions

    defs = build_definitions()
    storage = defs.resources["storage"].storage()
    _, instance = _demo_instance()
    phases = Phases()
    ok = _demo_monitors(defs, instance, storage, [m for m in load_monitors() if m.name in names], phases)
    print(phases.summary())
    return 0 if ok else 1


def _demo_monitors(defs, instance, storage, monitors, phases) -> bool:
    """The demo's loop over ``monitors`` in this process; whether every one ran clean."""
    ok = True
    for monitor in monitors:
        runs = monitor_runs(defs, instance, monitor.name, launched_by="drift-assets demo")
        ok &= _demo_monitor(defs, monitor, storage, runs, phases)
    return ok


def _demo_monitor(defs, monitor, storage, runs, phases) -> bool:
    """One monitor: its reference run, its windows as a Dagster backfill, then its retraining loop."""
    from drift_assets.retraining.attempt import retraining_supported

    instance = runs.launcher.instance
    phases.start(f"{monitor.name} reference")
    print(f"\n== monitor '{monitor.name}' ({monitor.cadence}): reference assets")
    if not runs.run("reference", run_config=QUIET).success:
        print("   reference job FAILED; see the Dagster UI for the step error")
        return False
    keys = defs.resolve_job_def(runs.job("window")).partitions_def.get_partition_keys()
    phases.start(f"{monitor.name} windows")
    if monitor.cadence == "hourly":
        return demo_hourly(defs, monitor, storage, instance, keys, runs)
    print(f"== {len(keys)} {monitor.cadence} windows")
    with runs.backfill(keys, title=f"drift-assets demo: {monitor.name} windows") as batch:
        print(backfill_line(batch))
        print(f"   {'window':<17} {'rows':>8} {'max PSI':>8} {'pred PSI':>8} {'pred drift':>10}  failed checks")
        progress = Progress(f"   {monitor.name}", len(keys))
        for key in keys:
            print_window(storage, monitor, key, run_window(defs, monitor, key, instance, batch))
            progress.step()
    if not retraining_supported(monitor):
        return True
    phases.start(f"{monitor.name} retraining")
    return demo_retraining(defs, monitor, storage, instance, keys, runs)


# The hourly demo evaluates the log's last days (both incidents are there); the earlier days are the
# trailing baseline's history. The UI or `drift-assets backfill` evaluates the rest.
HOURLY_DEMO_DAYS = 9


def demo_hourly(defs, monitor, storage, instance, keys: list[str], runs=None) -> bool:
    """Run the hourly windows, print one line per day and the incident hours found (runs of
    consecutive hours failing an ERROR check), next to the incidents the simulator documented.
    The hours run in ``hours.hour_workers()`` processes at once (cli/hours.py), printed in order."""
    from drift_assets.cli.hours import WorkerFailed

    print(hourly_range_note(monitor, keys, keys[-HOURLY_DEMO_DAYS * 24 :]))
    keys = keys[-HOURLY_DEMO_DAYS * 24 :]
    print(f"== {len(keys)} hourly windows ({keys[0]} .. {keys[-1]}); one line per day")
    runs = runs or monitor_runs(defs, instance, monitor.name)
    try:
        with runs.backfill(keys, title=f"drift-assets demo: {monitor.name} hours") as batch:
            print(backfill_line(batch))
            errors = _hourly_rows(defs, monitor, storage, instance, keys, batch)
    except WorkerFailed as exc:
        print(f"   {exc}; the backfills are marked failed")
        return False
    print("   incident hours found (consecutive hours failing an ERROR check):")
    for start, end, checks in _runs_of_hours(errors):
        print(f"     {start} .. {end}: {', '.join(checks)}")
    manifest = (
        storage.data.read_json(f"{monitor.name}/manifest.json")
        if storage.data.exists(f"{monitor.name}/manifest.json")
        else {}
    )
    for incident in manifest.get("incidents", []):
        print(
            f"   documented: {incident.get('name', incident.get('kind'))}: {incident.get('start')} .. "
            f"{incident.get('end')}"
        )
    return True


def _hourly_rows(defs, monitor, storage, instance, keys: list[str], runs) -> dict[str, list[str]]:
    """Run the hours in ``hours.hour_workers()`` processes (this one and workers, cli/hours.py), print
    a line per day in order; the ERROR checks failed per hour that failed one. A worker that fails:
    ``WorkerFailed`` (the others are stopped)."""
    import tempfile

    from drift_assets.cli import hours

    parts = hours.chunks(keys, hours.hour_workers())
    workers: list[hours.HourWorker] = []
    days = _DayRows(storage, monitor, keys)
    handle, claims_path = tempfile.mkstemp(prefix="drift-assets-hours-", suffix=".claims")
    os.close(handle)
    claims = hours.Claims.create(Path(claims_path), parts)
    with hours.interrupt_on_sigterm():
        try:
            workers = [hours.start(monitor.name, keys, i, claims, runs.backfill_ids) for i in range(1, len(parts))]
            for worker in workers:
                print(f"   {worker.label}: started, {len(parts[worker.number])} hours from {parts[worker.number][0]}")
            print(f"   {'day':<11} {'rows':>7} {'refusal':>8} {'tokens':>7} {'WARN h':>7} {'ERROR h':>8}")
            progress = Progress(f"   {monitor.name}{' (this process)' if workers else ''}", len(parts[0]))
            run = lambda key: run_hour(defs, monitor, key, instance, runs)  # noqa: E731
            hours.run_claimed(
                storage,
                monitor,
                keys,
                claims,
                0,
                run,
                lambda o: (days.add(o), progress.step()),
                check=lambda: hours.check_all(workers),
            )
            _merge_workers(workers, runs, days, keys)
        finally:
            for worker in workers:
                worker.stop()
            Path(claims_path).unlink(missing_ok=True)
    return days.errors


def _merge_workers(workers, runs, days: _DayRows, keys: list[str]) -> None:
    """Wait for the workers; add their runs to the backfill records and their hours to the rows."""
    from drift_assets.cli.hours import WorkerFailed

    window, alert = runs.batches
    outcomes = []
    for worker in workers:
        if worker.process.poll() is None:
            print(f"   {worker.label}: waiting for it")
        got, error = worker.wait()
        if got is None:
            raise WorkerFailed(error)
        outcomes += got
    window.add_runs([o["key"] for o in outcomes], sum(not o["window_ok"] for o in outcomes))
    verdicts = [o for o in outcomes if o["verdict"] is not None]
    alert.add_runs([o["key"] for o in verdicts], sum(not o["verdict"] for o in verdicts), order=keys)
    for outcome in outcomes:
        days.add(outcome)
    missing = [k for k in keys if k not in days.outcomes]
    if missing:
        raise WorkerFailed(f"hour workers: no outcome for {len(missing)} hour(s) from {missing[0]}")


def run_hour(defs, monitor, key: str, instance, runs) -> dict:
    """The hour's window run and, when it failed an ERROR check, its verdict run (``run_window``'s
    rule for hourly monitors); what the demo prints of it (JSON: a worker's answer, cli/hours.py)."""
    result = runs.run("window", key, run_config=QUIET)
    failed = [[name, severity] for name, severity, _ in failed_checks_of(result)]
    verdict = None
    if result.success and any(severity == "ERROR" for _, severity in failed):
        verdict = run_alert(defs, monitor.name, key, instance, runs)
    return {"key": key, "window_ok": bool(result.success), "failed": failed, "verdict": verdict}


def hour_worker(argv: list[str]) -> int:
    """An hour worker (cli/hours.py): claims and runs hours until none is left, writes ``--out``."""
    import json

    from drift_assets.cli import hours
    from drift_assets.definitions import build_definitions

    args = hours.worker_arguments(argv)
    defs = build_definitions()
    storage = defs.resources["storage"].storage()
    _, instance = _demo_instance()
    monitor = next(m for m in load_monitors() if m.name == args.monitor)
    runs = monitor_runs(defs, instance, monitor.name, launched_by="drift-assets demo")
    every = defs.resolve_job_def(runs.job("window")).partitions_def.get_partition_keys()
    keys = every[every.index(getattr(args, "from")) : every.index(args.to) + 1]
    claims = hours.Claims(Path(args.claims))
    outcomes: list[dict] = []
    with runs.joined(args.window_backfill, args.alert_backfill):
        run = lambda key: run_hour(defs, monitor, key, instance, runs)  # noqa: E731
        try:
            hours.run_claimed(
                storage, monitor, keys, claims, args.process, run, outcomes.append, check=hours.parent_watch()
            )
        except hours.WorkerFailed as exc:
            print(exc)
            return 1
    partial = Path(args.out).with_suffix(".partial")
    partial.write_text(json.dumps({"hours": outcomes}))
    partial.replace(args.out)
    return 0


class _DayRows:
    """Hour outcomes (``hours.run_hour``) in any order: a line per day printed as soon as it and
    every day before it are complete, the ERROR checks per hour that failed one."""

    def __init__(self, storage, monitor, keys: list[str]) -> None:
        self.storage, self.monitor, self.keys = storage, monitor, keys
        self.outcomes: dict[str, dict] = {}
        self.errors: dict[str, list[str]] = {}
        self.printed = 0  # keys[:printed] are in printed lines (or in the day being printed)
        self.day_stats: dict[str, list] = {}

    def add(self, outcome: dict) -> None:
        self.outcomes[outcome["key"]] = outcome
        while self.printed < len(self.keys) and self.keys[self.printed] in self.outcomes:
            self._count(self.outcomes[self.keys[self.printed]])
            self.printed += 1

    def _count(self, outcome: dict) -> None:
        key, failed = outcome["key"], outcome["failed"]
        path = ResultsStore.drift_path(self.monitor.name, key)
        record = self.storage.reports.read_json(path) if self.storage.reports.exists(path) else None
        stats = self.day_stats.setdefault(key[:10], [0, 0.0, 0.0, 0, 0])
        if record:
            rows = record["current_rows"]
            stats[0] += rows
            stats[1] += rows * record["extra"].get("refusal_rate", 0.0)
            stats[2] += rows * record["extra"].get("output_length_mean", 0.0)
        error = any(sev == "ERROR" for _, sev in failed)
        stats[3] += any(sev == "WARN" for _, sev in failed) and not error
        stats[4] += error
        if error:
            self.errors[key] = sorted({name for name, sev in failed if sev == "ERROR"})
        if key.endswith("23:00"):
            rows, refusals, tokens, warn_hours, error_hours = self.day_stats[key[:10]]
            print(
                f"   {key[:10]:<11} {rows:>7,} {refusals / max(rows, 1):>8.3f} {tokens / max(rows, 1):>7.1f} "
                f"{warn_hours:>7} {error_hours:>8}"
            )


def hourly_range_note(monitor, all_keys: list[str], evaluated: list[str]) -> str:
    """Why the hourly monitor's partitions look partly filled in the UI (issue 15)."""
    if len(evaluated) >= len(all_keys):
        return f"== all {len(all_keys)} hourly windows of '{monitor.name}' are evaluated"
    share = len(evaluated) / len(all_keys)
    return (
        f"== '{monitor.name}' has {len(all_keys)} hourly partitions ({all_keys[0]} .. {all_keys[-1]}); the demo "
        f"evaluates the last {len(evaluated)} ({HOURLY_DEMO_DAYS} days, both simulated incidents), so the UI shows "
        f"the monitor ~{share:.0%} filled: the earlier hours are the trailing baseline's history (the sudden-change "
        f"checks read their counts), not skipped failures. Evaluate them with `drift-assets backfill --monitor "
        f"{monitor.name} --from {all_keys[0]} --to {all_keys[len(all_keys) - len(evaluated) - 1]}` or from the UI."
    )


def _runs_of_hours(errors: dict[str, list[str]]) -> list[tuple[str, str, list[str]]]:
    import datetime as dt

    from drift_assets.monitoring.windows import parse_partition_key

    def parse(key: str) -> dt.datetime:
        return parse_partition_key(key, "hourly").start

    runs: list[tuple[str, str, list[str]]] = []
    for key in sorted(errors):
        if runs and parse(key) - parse(runs[-1][1]) == dt.timedelta(hours=1):
            start, _, checks = runs[-1]
            runs[-1] = (start, key, sorted(set(checks) | set(errors[key])))
        else:
            runs.append((key, key, errors[key]))
    return runs


def _window_line(storage, monitor, key: str, result) -> str:
    failed = failed_checks_of(result)
    path = ResultsStore.drift_path(monitor.name, key)
    if not result.success and not storage.reports.exists(path):
        errors = [e.event_specific_data.error.message.strip().splitlines()[0] for e in result.get_step_failure_events()]
        return f"{key:<17} FAILED: {'; '.join(errors)[:160]}"
    record = storage.reports.read_json(path)
    s = record["summary"]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    pred_drift = (
        "-"
        if s.get("prediction_psi") is None
        else ("YES" if any(c[0] == "prediction_has_no_drift" for c in failed) else "no")
    )
    checks = (
        ", ".join(f"{name}/{sev}" for name, sev, _ in sorted(failed, key=lambda c: (c[1] != "ERROR", c[0]))) or "none"
    )
    return (
        f"{key:<17} {record['current_rows']:>8,} {fmt(s.get('max_feature_psi')):>8} "
        f"{fmt(s.get('prediction_psi')):>8} {pred_drift:>10}  {checks}"
    )


def _auc_text(record: dict) -> str:
    est = record.get("estimated")
    estimated = (
        "estimated AUC -"
        if not est or est.get("roc_auc") is None
        else (f"estimated AUC {est['roc_auc']:.2f} [{est['lower']:.2f}, {est['upper']:.2f}]")
    )
    if record.get("status") == "ok" and record.get("auc") is not None:
        realized = f"realized {record['auc']:.2f}"
    else:
        realized = f"realized pending ({record.get('label_coverage', 0.0):.0%} labelled)"
    return f"{estimated} | {realized}"


def retraining_decision(monitor, failed: list[tuple[str, str, str]]) -> str:
    """What the retraining matrix decides for this window (the sensor acts on it, once per run)."""
    if not monitor.retraining.enabled:
        return "retraining off"
    triggers = sorted({name for name, sev, _ in failed if sev == "ERROR" and name in monitor.retraining.on_checks})
    performance = {rule.name for rule in monitor.check_rules("model_performance")}
    dropped = [name for name, sev, _ in failed if sev == "ERROR" and name in performance]
    if not triggers:
        return "no retraining"
    if monitor.retraining.require_performance_impact and not (set(triggers) & performance) and not dropped:
        return "drift without performance impact: no retraining"
    return f"retrain ({', '.join(triggers)})"


def performance_line(storage, monitor, key: str, result) -> str | None:
    """``estimated AUC 0.78 [0.74, 0.82] | realized 0.79 | retrain (...)`` for monitors with labels."""
    path = ResultsStore.performance_path(monitor.name, key)
    if not storage.reports.exists(path):
        return None
    record = storage.reports.read_json(path)
    return f"{_auc_text(record)} | {retraining_decision(monitor, failed_checks_of(result))}"


def print_window(storage, monitor, key: str, result) -> None:
    """The window's drift line and, below it, its performance line (estimate, realized, decision)."""
    print("   " + _window_line(storage, monitor, key, result))
    performance = performance_line(storage, monitor, key, result)
    if performance:
        print("   " + " " * 18 + performance)


def execute_run_request(defs, sensor_name: str, request, instance, *, run_config=None, runs=None):
    """Run a sensor's RunRequest as the daemon would launch it: a run tied to the code location,
    tagged with the sensor name and run key (a daemon started later recognises it and does not
    launch it again) and the monitor, executed in this process."""
    from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

    job_name = defs.resolve_sensor_def(sensor_name).job_name  # the daemon launches the same job
    if runs is None:  # retraining sensors are named <monitor>_retraining_sensor (orchestration/sensors.py)
        suffix = "_retraining_sensor"
        runs = monitor_runs(defs, instance, sensor_name.removesuffix(suffix) if sensor_name.endswith(suffix) else "")
    tags = {**(runs.tags if runs.monitor_name else {}), **request.tags, SENSOR_NAME_TAG: sensor_name}
    if request.run_key:
        tags[RUN_KEY_TAG] = request.run_key
    return runs.launcher.run(
        job_name,
        asset_selection=list(request.asset_selection or ()),
        partition_key=request.partition_key,
        tags=tags,
        run_config=run_config if run_config is not None else QUIET,
    )


def evaluate_sensor(defs, sensor_name: str, instance, cursor: str | None):
    """One tick of a sensor against ``instance`` with the definitions' resources (what the daemon does)."""
    from dagster import build_sensor_context

    sensor_def = defs.resolve_sensor_def(sensor_name)
    resources = {k: v for k, v in defs.resources.items() if k in sensor_def.required_resource_keys}
    with build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=resources) as context:
        return sensor_def(context)


def serve_champion_from(storage, monitor, since) -> int:
    """Simulate the deployment of the registry's champion: the demo's production log was scored by
    the simulator's v0001 when it was written, so the days from ``since`` on are re-scored by the
    current champion (prediction and model_version columns). A real serving system writes those
    scores itself. Returns the number of rows re-scored."""
    import io

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from drift_assets.monitoring.registry import ModelRegistry
    from drift_assets.retraining.reference import positive_scores

    data = storage.data
    registry = ModelRegistry(data, monitor.model_registry)
    champion = registry.champion()
    model = registry.load_model(champion)  # sha256-verified
    features = list(monitor.numerical) + list(monitor.categorical)
    version_column = getattr(monitor, "model_version_column", None) or "model_version"
    files = [
        f"{monitor.log}/{day_dir}/{name}"
        for day_dir in data.list_dir(monitor.log)
        if day_dir.startswith("date=") and day_dir[len("date=") :] >= since.isoformat()
        for name in data.list_dir(f"{monitor.log}/{day_dir}")
    ]
    tables = [pq.read_table(io.BytesIO(data.read_bytes(relative))) for relative in files]
    scores = np.array([], np.float64)
    if tables:  # one call for all the days (the simulator writes one schema): not one per file
        scores = positive_scores(model, pa.concat_tables([t.select(features) for t in tables]).to_pandas())
    offset = 0
    for relative, table in zip(files, tables, strict=True):
        part = scores[offset : offset + table.num_rows]
        offset += table.num_rows
        table = table.set_column(table.schema.get_field_index(monitor.prediction), monitor.prediction, pa.array(part))
        if version_column in table.column_names:
            table = table.set_column(
                table.schema.get_field_index(version_column),
                version_column,
                pa.array([champion.name] * table.num_rows, pa.string()),
            )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        data.write_bytes(relative, sink.getvalue().to_pybytes())
    return offset


def _simulated_story(storage) -> str | None:
    """The fraud drift story of the data on disk (None: no fraud data yet)."""
    path = "fraud/manifest.json"
    if not storage.data.exists(path):
        return None
    return storage.data.read_json(path).get("drift_story", "card_testing")


def _retrained_before(monitors, storage) -> bool:
    from drift_assets.monitoring.registry import ModelRegistry

    for monitor in monitors:
        if monitor.model_registry and len(ModelRegistry(storage.data, monitor.model_registry).versions()) > 1:
            return True
    return False


def demo_retraining(defs, monitor, storage, instance, keys: list[str], runs=None) -> bool:
    """Close the loop once: evaluate the retraining sensor's logic against the instance, run the
    retraining it requests (DVC, gate, registry), then -- after a promotion -- let the sensor
    re-materialise the reference assets and re-evaluate the later windows against the new reference."""

    from drift_assets.monitoring.registry import registry_of
    from drift_assets.orchestration.sensors import (
        evaluate_retraining,
        retraining_sensor_name,
    )

    name = retraining_sensor_name(monitor)
    registry = registry_of(monitor, defs.resources["storage"].storage().data)
    print(f"\n== retraining '{monitor.name}': the retraining sensor ({name}), evaluated once against the instance")
    tick = evaluate_retraining(instance, monitor, None, registry=registry)
    _print_tick(tick)
    requests = [r for r in tick.run_requests if r.partition_key]
    if not requests:
        print(f"   no retraining requested: {tick.skip_reason}")
        return True
    request = requests[0]
    before = registry.champion().name
    runs = runs or monitor_runs(defs, instance, monitor.name)
    result = execute_run_request(defs, name, request, instance, runs=runs)
    print(
        f"   run {result.run_id[:8]}: {monitor.name}/retrained_model for window {request.partition_key} "
        f"(DVC prepare -> train -> evaluate)"
    )
    if not result.success:
        failures = [e.event_specific_data.error.message.strip() for e in result.get_step_failure_events()]
        print("   retraining FAILED; champion unchanged. " + (failures[0][:1500] if failures else ""))
        return False
    record = _retraining_output(result, storage, monitor)
    print(
        f"   gate: challenger AUC {record['challenger_auc']:.4f} vs champion AUC {record['champion_auc']:.4f} "
        f"on the same holdout ({record['holdout_rows']:,} rows, min gain {monitor.retraining.min_auc_gain:g})"
        f" -> {record['status'].upper()} {record['name']}"
    )
    if record["status"] != "promoted":
        print(f"   champion stays {before}: {record['reason']}")
        return True
    champion = registry.champion()
    ref = champion.metadata.get("reference", {})
    print(
        f"   champion: {before} -> {champion.name}; its reference: {ref.get('rows', '?'):,} rows of window "
        f"{ref.get('window')} the challenger was not fitted on, scored by it"
    )

    tick = evaluate_retraining(instance, monitor, tick.cursor, registry=registry)
    _print_tick(tick)
    for request in tick.run_requests:
        if request.partition_key:  # a retraining: shown, not run (one retraining per demo)
            print(f"   (next retraining would be for {request.partition_key})")
            continue
        refreshed = execute_run_request(defs, name, request, instance, runs=runs)
        print(
            f"   reference assets re-materialised (run {refreshed.run_id[:8]}, "
            f"{'ok' if refreshed.success else 'FAILED'}): reference_data = {champion.reference_file}"
        )
    trigger = requests[0].partition_key
    after = [k for k in keys if k > trigger]
    if not after:
        return True
    ok = _windows_after(defs, monitor, storage, runs, champion, trigger, after)
    tick = evaluate_retraining(instance, monitor, tick.cursor, registry=registry)
    retrain = [r.partition_key for r in tick.run_requests if r.partition_key]
    print("   sensor: " + (f"would retrain again for {retrain[0]}" if retrain else "no further retraining requested"))
    return ok


def _windows_after(defs, monitor, storage, runs, champion, trigger: str, after: list[str]) -> bool:
    """Serve the new champion from the first window after the trigger and re-evaluate those windows
    (a backfill of their own) against its reference."""
    import datetime as dt

    instance = runs.launcher.instance
    since = dt.date.fromisoformat(after[0][:10])
    rescored = serve_champion_from(storage, monitor, since)
    print(
        f"   production serves {champion.name} from {since}: the simulated log from then on is re-scored by it "
        f"({rescored:,} rows; the simulator wrote v0001's scores)"
    )
    print(f"== windows after {trigger}, against {champion.name}'s reference")
    ok = True
    with runs.backfill(after, title=f"drift-assets demo: {monitor.name} windows after {trigger}") as batch:
        print(backfill_line(batch))
        print(f"   {'window':<17} {'rows':>8} {'max PSI':>8} {'pred PSI':>8} {'pred drift':>10}  failed checks")
        for key in after:
            result = run_window(defs, monitor, key, instance, batch)
            print_window(storage, monitor, key, result)
            ok &= result.success
    return ok


def _print_tick(tick) -> None:
    dropped = {(check, partition, run_id) for check, partition, run_id, _ in tick.dropped}
    for note in tick.notes:
        if not any(f" {partition} (run {run_id[:8]})" in note for _, partition, run_id in dropped):
            print(f"   sensor: {note}")
    if dropped:
        windows = sorted({partition for _, partition, _ in dropped})
        reasons = sorted({why for *_, why in tick.dropped})
        print(
            f"   sensor: earlier failures of {len(windows)} window(s) ({windows[0]} .. {windows[-1]}) consumed "
            f"without retraining: {', '.join(reasons)}"
        )


def _retraining_output(result, storage, monitor) -> dict:
    """The retraining attempt's results-store record, from the run's retrained_model metadata."""
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.path[-1] == "retrained_model":
            version = materialization.metadata["version"].value
            return storage.reports.read_json(ResultsStore.retraining_path(monitor.name, version))
    raise RuntimeError("the retraining run materialised no retrained_model")


if __name__ == "__main__":  # the demo's second process (cli/alongside.py) or an hour worker (cli/hours.py)
    import sys

    if sys.argv[1:2] == ["--hour-worker"]:
        sys.exit(hour_worker(sys.argv[2:]))
    sys.exit(demo_monitors(set(sys.argv[1:])))
