"""Dagster's local compute logs, mirrored to the terminal by a thread instead of four processes.

A run's stdout and stderr go to files under the instance's ``storage/`` directory, which the UI
shows on the run's page. Dagster's ``LocalComputeLogManager`` writes them by pointing the process's
file descriptors 1 and 2 at the files and mirroring the files back to the terminal with one
``tail -F`` per stream, each watched by its own Python process (so a killed run leaves no ``tail``
behind). That is four processes started and stopped per run: ~0.07 CPU s and ~0.1 s of an hourly
window's ~0.44 s here (``benchmarks/bench_dagster_week.py``).

``TeeComputeLogManager`` does the same with a thread of this process in place of the processes:
descriptors 1 and 2 point at the same files for the run (so C code and child processes write
there too, and a child that outlives the run keeps writing to the file), and the thread copies what
the run adds to each file to the original stream, polling every ``POLL_SECONDS`` (``tail -F``
polls every second). When the run ends the thread copies what is left, up to the file's size at
that moment, and stops. The files, their paths and the completion marker are Dagster's; reading
them (the UI, ``dagster debug``) is Dagster's code unchanged.

It is the default of ``PooledSqliteInstance`` (``sqlite_storage.py``; dagster.yaml's
``instance_class``); a ``compute_logs:`` block in dagster.yaml still wins.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from typing import IO, Any

from dagster._core.execution.compute_logs import should_disable_io_stream_redirect
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._serdes import ConfigurableClassData
from dagster._utils import ensure_file, touch_file

POLL_SECONDS = 0.1  # how soon a line written during a run shows on the terminal
CHUNK_BYTES = 1 << 16


def _fileno(stream: IO[Any]) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # pytest's capture, StringIO: no descriptor
        return None


def _write_all(descriptor: int, data: bytes) -> None:
    while data:
        data = data[os.write(descriptor, data) :]


def _mirror(path: str, offset: int, terminal: int, stop: threading.Event) -> None:
    """Copy what is appended to ``path`` after ``offset`` to ``terminal`` until ``stop``; then the
    rest, up to the file's size at that moment (a child still writing cannot keep it going)."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            end: int | None = None
            while True:
                if end is None and stop.is_set():
                    end = os.fstat(log.fileno()).st_size
                limit = CHUNK_BYTES if end is None else min(CHUNK_BYTES, end - log.tell())
                data = log.read(limit) if limit > 0 else b""
                if data:
                    _write_all(terminal, data)
                elif end is not None:
                    return
                else:
                    stop.wait(POLL_SECONDS)
    except OSError:  # the terminal went away: the file has everything regardless
        pass
    finally:
        os.close(terminal)


@contextmanager
def tee_stream_to_file(stream: IO[Any], path: str) -> Generator[None, None, None]:
    """While inside, everything written to ``stream``'s descriptor (by Python, C code or child
    processes) is appended to ``path``, and copied to where the descriptor pointed before."""
    ensure_file(path)
    descriptor = _fileno(stream)
    if descriptor is None:
        yield
        return
    stream.flush()
    terminal = os.dup(descriptor)
    stop = threading.Event()
    mirror = threading.Thread(
        target=_mirror,
        args=(path, os.path.getsize(path), terminal, stop),
        name=f"compute-log mirror {os.path.basename(path)}",
        daemon=True,
    )
    log = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.dup2(log, descriptor)
    os.close(log)
    mirror.start()
    try:
        yield
    finally:
        try:
            stream.flush()
        finally:
            os.dup2(terminal, descriptor)  # before the thread closes ``terminal``: it waits for ``stop``
            stop.set()
            mirror.join()


class TeeComputeLogManager(LocalComputeLogManager):
    """``LocalComputeLogManager`` whose capture mirrors through a thread (see the module docstring)."""

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: dict
    ) -> TeeComputeLogManager:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Generator[CapturedLogContext, None, None]:
        if should_disable_io_stream_redirect():  # Windows consoles: Dagster's own way
            with super().capture_logs(log_key) as context:
                yield context
            return
        out = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT])
        err = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR])
        with tee_stream_to_file(sys.stdout, out), tee_stream_to_file(sys.stderr, err):
            yield CapturedLogContext(log_key)
        touch_file(self.complete_artifact_path(log_key))  # Dagster's marker: the capture is complete


__all__ = ["TeeComputeLogManager", "tee_stream_to_file"]
