"""Progress lines for long CLI commands: ``label: done/total unit (pct%), elapsed 12s, ETA 30s``.

Printed at most every ``DRIFT_ASSETS_PROGRESS_SECONDS`` seconds (default 5; 0 prints every step),
and always for the last step, so a fast run prints one line and a slow one is never silent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

PROGRESS_ENV = "DRIFT_ASSETS_PROGRESS_SECONDS"
DEFAULT_EVERY_SECONDS = 5.0


def duration(seconds: float) -> str:
    """12.3 -> '12.3s', 75 -> '1m15s', 3725 -> '1h02m'."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _every_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(PROGRESS_ENV, DEFAULT_EVERY_SECONDS)))
    except ValueError:
        return DEFAULT_EVERY_SECONDS


class Progress:
    """Counts steps of a known total; ``step()`` after each one prints a line now and then."""

    def __init__(
        self,
        label: str,
        total: int,
        unit: str = "windows",
        echo: Callable[[str], None] = print,
        every_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label, self.total, self.unit, self.echo, self.clock = label, max(0, int(total)), unit, echo, clock
        self.every = _every_seconds() if every_seconds is None else every_seconds
        self.started = clock()
        self.done = 0
        self._last_print: float | None = None

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def line(self) -> str:
        elapsed = self.elapsed
        pct = 100.0 * self.done / self.total if self.total else 100.0
        text = f"{self.label}: {self.done}/{self.total} {self.unit} ({pct:.0f}%), elapsed {duration(elapsed)}"
        if self.done < self.total:
            eta = elapsed / self.done * (self.total - self.done) if self.done else None
            text += f", ETA {duration(eta) if eta is not None else '?'}"
        return text

    def step(self, n: int = 1) -> None:
        self.update(self.done + n)

    def update(self, done: int) -> None:
        self.done = min(int(done), self.total) if self.total else int(done)
        now = self.clock()
        due = self._last_print is None and now - self.started >= self.every
        due = due or (self._last_print is not None and now - self._last_print >= self.every)
        if due or self.done >= self.total:
            self._last_print = now
            self.echo(self.line())


class Phases:
    """Elapsed time per phase of the demo: ``start(name)`` ends the previous phase with a line."""

    def __init__(self, echo: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic):
        self.echo, self.clock = echo, clock
        self.started = clock()
        self.times: list[tuple[str, float]] = []
        self._current: tuple[str, float] | None = None

    def start(self, name: str) -> None:
        self.end()
        self._current = (name, self.clock())

    def end(self) -> None:
        if self._current is not None:
            name, began = self._current
            took = self.clock() - began
            self.times.append((name, took))
            self.echo(f"   ({name}: {duration(took)})")
            self._current = None

    def summary(self) -> str:
        self.end()
        parts = ", ".join(f"{name} {duration(took)}" for name, took in self.times)
        return f"Elapsed: {duration(self.clock() - self.started)} in all ({parts})"
