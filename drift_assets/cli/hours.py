"""The demo's hourly windows in more than one process at a time.

One Dagster run per hour is required (Dagster records per-partition check results only for
single-partition runs) and most of an hour's cost is Dagster's own, in one process on one core. So
the demo runs its hours in contiguous ranges, one per process, as a deployment with two run slots
(dagster.yaml's ``max_concurrent_runs: 2``) would: the demo's process runs the first range, each
other range runs in a fresh ``python -m drift_assets.cli.demo --hour-worker`` (spawned, not forked:
OpenMP and threads make fork unsafe) with the same environment and instance. The hours failing an ERROR check
cost a second (verdict) run and are not known beforehand, so the ranges are claimed an hour at a
time from a shared file (``Claims``): a process whose range is done takes the second half of the
range with the most hours left. A worker's runs belong to the demo's two backfills
(``MonitorRuns.joined``: tagged with their ids, no record written); the demo adds the workers'
verdict partitions and failures to the records and sets the final status.

The answers are those of one process running the hours in order: a window's trailing baseline adds
stored or streamed counts alike (``evaluation.baseline_summary``), and the checks that read the
window before are given it where a range starts before that window is stored: ``no_gradual_drift``
(a CUSUM over every earlier window's stored result) continues from the hours before, computed from
the log (``evaluation.gradual_documents``, ~17 ms an hour), and ``on_new_failure``'s Evidently
page decision reads the previous hour's ERROR checks, evaluated here first (``seed_previous``).

Processes: ``DRIFT_ASSETS_DEMO_HOUR_WORKERS`` (``drift-assets demo --hour-workers N``); default 2 on
a machine with more than one core, 1 under ``--one-at-a-time`` (the env or the flag still wins).

    python -m drift_assets.cli.demo --hour-worker --monitor llm --from KEY --to KEY --process N \\
        --claims FILE --window-backfill ID --alert-backfill ID --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from drift_assets.cli.alongside import stop_by_pid

HOUR_WORKERS_ENV = "DRIFT_ASSETS_DEMO_HOUR_WORKERS"


class WorkerFailed(RuntimeError):
    """An hour worker crashed, was killed or gave no answer (the message: one line saying which)."""


def hour_workers() -> int:
    """How many processes run the demo's hours (``$DRIFT_ASSETS_DEMO_HOUR_WORKERS``, else 2 on a
    machine with more than one core). Not a positive integer: ValueError naming the variable."""
    raw = os.environ.get(HOUR_WORKERS_ENV, "").strip()
    if not raw:
        return 2 if (os.cpu_count() or 1) > 1 else 1
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{HOUR_WORKERS_ENV} must be a positive integer, got {raw!r}")
    return int(raw)


def chunks(keys: list[str], workers: int) -> list[list[str]]:
    """``keys`` in at most ``workers`` contiguous chunks, in order, sizes within one of each other."""
    n = max(1, min(workers, len(keys)))
    size, extra = divmod(len(keys), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (i < extra)
        out.append(keys[start:end])
        start = end
    return [c for c in out if c]


@contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """While workers run, SIGTERM (the demo's own ``SecondProcess.stop``, a supervisor) acts as Ctrl-C
    here: the ``finally`` that stops the workers runs and the backfills are marked canceled, where
    Python's default would end this process at once and leave the workers running."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class HourWorker:
    """A running hour worker (process number ``number``); output in ``log``,
    answer (its hours' outcomes) in ``out``."""

    number: int
    process: subprocess.Popen
    log: Path
    out: Path

    @property
    def label(self) -> str:
        return f"hour worker {self.number} (pid {self.process.pid})"

    def wait(self) -> tuple[list[dict] | None, str]:
        """Its outcomes per hour, or None and one line saying why there are none."""
        code = self.process.wait()
        if code == 0 and self.out.exists():
            try:
                return json.loads(self.out.read_text())["hours"], ""
            except (ValueError, KeyError) as exc:
                return None, f"{self.label}: unreadable answer {self.out}: {exc}"
        how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
        last = f": {lines[-1].strip()[:200]}" if lines else ""
        return None, f"{self.label} failed ({how}){last}"

    def check(self) -> None:
        """Raise ``WorkerFailed`` (one line) if it has ended with an error."""
        if self.process.poll() not in (None, 0):
            raise WorkerFailed(self.wait()[1])

    def stop(self) -> None:
        """End it if it still runs (by its pid), then remove its files."""
        stop_by_pid(self.process)
        self.log.unlink(missing_ok=True)
        self.out.unlink(missing_ok=True)


def parent_watch() -> Callable[[], None]:
    """A worker's ``check`` before each claim: raise ``WorkerFailed`` once the demo's process that
    started it is gone (killed with SIGKILL, say), so the worker stops after the hour it is in
    instead of taking over the rest of the hours for nobody."""
    parent = os.getppid()

    def check() -> None:
        if os.getppid() != parent:
            raise WorkerFailed(f"the demo's process (pid {parent}) is gone: this hour worker stops")

    return check


def check_all(workers: list[HourWorker]) -> None:
    """Raise ``WorkerFailed`` if any of ``workers`` has ended with an error."""
    for worker in workers:
        worker.check()


# A range is split only if it has this many hours left: each split costs a catch-up (the CUSUM's
# hours before, the previous hour's checks), ~0.3 s.
STEAL_MIN_HOURS = 6


class Claims:
    """Which process runs which hours: per process (0: the demo's own) the range ``[next, end)`` of
    indexes into the hours, in a JSON file changed under an exclusive ``flock``."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: Path, parts: list[list[str]]) -> Claims:
        ranges, start = [], 0
        for part in parts:
            ranges.append([start, start + len(part)])
            start += len(part)
        Path(path).write_text(json.dumps({"ranges": ranges}))
        return cls(path)

    def claim(self, process: int) -> int | None:
        """The next hour of ``process``'s range, else the first of the second half it takes of the
        range with the most hours left (at least ``STEAL_MIN_HOURS``); None: nothing left."""
        import fcntl

        with open(self.path, "r+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            ranges = json.loads(fh.read())["ranges"]
            own = ranges[process]
            if own[0] < own[1]:
                claimed = own[0]
                own[0] += 1
            else:
                victim = max(range(len(ranges)), key=lambda j: ranges[j][1] - ranges[j][0])
                left = ranges[victim][1] - ranges[victim][0]
                if left < STEAL_MIN_HOURS:
                    return None
                claimed = ranges[victim][0] + (left + 1) // 2
                ranges[process] = [claimed + 1, ranges[victim][1]]
                ranges[victim][1] = claimed
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps({"ranges": ranges}))
            return claimed


def run_claimed(
    storage,
    monitor,
    keys: list[str],
    claims: Claims,
    process: int,
    run: Callable[[str], dict],
    done: Callable[[dict], object],
    check: Callable[[], None] = lambda: None,
) -> None:
    """Claim hours of ``keys`` until none is left: ``run(key)`` each, then ``done(outcome)``; where a
    claimed hour does not follow the one before, catch up first (``catch_up``). ``check()`` before
    each claim (the demo's: raise if a worker died, so its range is not taken over hour by hour)."""
    profile = None
    # keys[:chained] are known here: evaluated by this process (stored) or given (catch_up).
    chained, last = 0, None
    while check() is None and (index := claims.claim(process)) is not None:
        if index > 0 and last != index - 1:
            profile = profile or _reference_profile(storage, monitor)
            chained = catch_up(monitor, profile, storage, keys, chained, index)
        done(run(keys[index]))
        chained += index == chained
        last = index


def _reference_profile(storage, monitor):
    from drift_assets.orchestration.io_managers import asset_path
    from drift_assets.orchestration.keys import MonitorKeys
    from drift_assets.stats import ReferenceProfile

    path = asset_path(MonitorKeys(monitor.name).reference_profile.path, None, "json")
    return ReferenceProfile.from_dict(storage.assets.read_json(path))


def catch_up(monitor, profile, storage, keys: list[str], chained: int, index: int) -> int:
    """Before running ``keys[index]`` out of order: the CUSUM documents of the hours from ``chained``
    to it (``gradual_documents``) and the previous hour's checks (``seed_previous``); the new ``chained``."""
    from drift_assets.monitoring.evaluation import gradual_documents

    if index > chained:
        gradual_documents(monitor, profile, storage.data, storage.reports, keys[chained:index])
    seed_previous(monitor, profile, storage, keys[index - 1])
    return max(chained, index)


def seed_previous(monitor, profile, storage, key: str) -> None:
    """``on_new_failure`` (report_asset.py) reads the previous window's stored drift record: it is not
    stored yet where a range starts, so evaluate that window's checks here, from the log as
    drift_report would (``evaluate_window``), and give them to this process (``remember_record``).
    Without a performance estimator: the demo's hourly monitor (llm) has no model scores, so its
    drift_report has none either."""
    from drift_assets.monitoring.evaluation import evaluate_window
    from drift_assets.monitoring.sources import stream_log
    from drift_assets.monitoring.windows import WindowScan, expected_log_types, parse_partition_key
    from drift_assets.orchestration.io_managers import StoredTable, asset_path
    from drift_assets.orchestration.keys import MonitorKeys
    from drift_assets.orchestration.report_asset import remember_record

    keys = MonitorKeys(monitor.name)
    window = parse_partition_key(key, monitor.cadence)
    scan = WindowScan()
    types = expected_log_types(monitor)
    batches = list(stream_log(storage.data, monitor, window, types=types, derived=monitor.derived, scan=scan))
    reference = StoredTable(storage.assets, asset_path(keys.reference_data.path, None, "parquet"))
    evaluation = evaluate_window(
        monitor,
        profile,
        window,
        iter(batches),
        data=storage.data,
        counts_store=storage.assets,
        problems=scan.problems,
        fitted=storage.assets.read_json(asset_path(keys.reference_profile.path, None, "json")),
        window_rows=sum(b.num_rows for b in batches),
        reference_batches=lambda: reference.batches(profile.column_names()),
        reports=storage.reports,
    )
    checks = evaluation.result.to_dict()["checks"] + [c.to_dict() for c in evaluation.extra_outcomes]
    remember_record(monitor.name, key, {"checks": checks})


def start(
    monitor_name: str, keys: list[str], process: int, claims: Claims, backfill_ids: tuple[str, str]
) -> HourWorker:
    """Start worker ``process`` over ``keys`` (the whole range; it claims its hours from ``claims``)
    for the backfills ``backfill_ids``."""
    handle, log = tempfile.mkstemp(prefix="drift-assets-hours-", suffix=".log")
    out = Path(log).with_suffix(".json")
    command = [
        sys.executable,
        "-m",
        "drift_assets.cli.demo",
        "--hour-worker",
        *("--monitor", monitor_name, "--from", keys[0], "--to", keys[-1]),
        *("--process", str(process), "--claims", str(claims.path)),
        *("--window-backfill", backfill_ids[0], "--alert-backfill", backfill_ids[1], "--out", str(out)),
    ]
    with os.fdopen(handle, "wb") as fh:
        process_handle = subprocess.Popen(
            command,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return HourWorker(process, process_handle, Path(log), out)


def worker_arguments(argv: list[str] | None) -> argparse.Namespace:
    """What ``start`` passes to a worker (``python -m drift_assets.cli.demo --hour-worker ...``)."""
    p = argparse.ArgumentParser(prog="python -m drift_assets.cli.demo --hour-worker")
    for name in ("--monitor", "--from", "--to", "--claims", "--window-backfill", "--alert-backfill", "--out"):
        p.add_argument(name, required=True)
    p.add_argument("--process", type=int, required=True)
    return p.parse_args(argv)
