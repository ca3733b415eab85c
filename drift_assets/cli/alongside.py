"""The demo's later monitors in a second process, alongside the first one.

Monitors share nothing but the Dagster instance (their assets, data and results are their own), so
the demo runs the first monitor (fraud: weekly windows, retraining) in its own process and the
others (llm: hourly windows) in a second one at the same time, as a deployment with two run slots
(dagster.yaml's ``max_concurrent_runs: 2``) would. Both write to the same SQLite instance (the
storage takes concurrent writers: ``test_sqlite_storage.py``). The second process's output is kept
in a file and printed, whole and in order, once the first monitor is done, so the console reads as
if they had run one after the other. ``drift-assets demo --one-at-a-time`` runs them in sequence.

    python -m drift_assets.cli.demo MONITOR [MONITOR ...]     # what the demo starts (demo_monitors)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from drift_assets.cli.progress import PROGRESS_ENV, duration


def stop_by_pid(process: subprocess.Popen, grace_seconds: float = 20) -> None:
    """End a process this one started, if it still runs: SIGTERM to its pid, SIGKILL after
    ``grace_seconds``, then wait for it (no zombie left)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class SecondProcess:
    """A running ``python -m drift_assets.cli.demo`` for ``names``, its output in ``log``."""

    names: list[str]
    process: subprocess.Popen
    log: Path
    started: float = field(default_factory=time.monotonic)

    def finish(self, echo=print) -> tuple[bool, float]:
        """Wait for it, print its output; (whether every monitor ran clean, its wall seconds)."""
        if self.process.poll() is None:
            echo(f"\n== waiting for the second process (monitors {', '.join(self.names)}; pid {self.process.pid})")
        code = self.process.wait()
        took = time.monotonic() - self.started
        echo(f"\n== output of the second process (monitors {', '.join(self.names)}; pid {self.process.pid}):")
        echo(self.log.read_text(errors="replace").rstrip("\n"))
        echo(f"   (second process: {duration(took)}, exit {code})")
        self.log.unlink(missing_ok=True)
        return code == 0, took

    def stop(self) -> None:
        """End it (the demo was interrupted or failed): by its pid, then wait."""
        stop_by_pid(self.process)
        self.log.unlink(missing_ok=True)


def start(names: list[str], echo=print) -> SecondProcess:
    """Start the monitors ``names`` in a second process with this process's environment."""
    handle, path = tempfile.mkstemp(prefix="drift-assets-demo-", suffix=".log")
    with os.fdopen(handle, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "drift_assets.cli.demo", *names],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its output is read after the fact: a progress line a minute is enough there.
            env={**os.environ, "PYTHONUNBUFFERED": "1", PROGRESS_ENV: "60"},
        )
    echo(
        f"== monitor(s) {', '.join(names)}: run in a second process alongside (pid {process.pid}); "
        "the output follows the first monitor's (--one-at-a-time to run them in sequence)"
    )
    return SecondProcess(names, process, Path(path))
