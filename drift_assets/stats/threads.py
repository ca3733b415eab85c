"""The small thread pool the hot paths share (numpy and arrow release the GIL while they sort,
bin and decode): a window's columns in ``summary.py``, a reference's columns in ``profile.py``.
``DRIFT_ASSETS_THREADS`` sets its size (default: the machine's CPUs, at most ``MAX_THREADS``; 1 =
serial)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager

from drift_assets.stats.errors import DriftInputError

# The pool never grows past this: beyond a few threads memory bandwidth, not cores, is the limit.
MAX_THREADS = 8
THREADS_ENV = "DRIFT_ASSETS_THREADS"
# Below this many values in a batch, threads cost more than they save: counted serially.
MIN_PARALLEL_VALUES = 200_000


def thread_count() -> int:
    """Threads for counting columns: ``DRIFT_ASSETS_THREADS``, else the CPUs (1 .. MAX_THREADS)."""
    configured = os.environ.get(THREADS_ENV, "").strip()
    if configured:
        try:
            return max(1, int(configured))
        except ValueError as exc:
            raise DriftInputError(f"{THREADS_ENV}={configured!r}: expected a whole number of threads") from exc
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_THREADS, cpus))


@contextmanager
def column_pool(n_columns: int) -> Iterator[Executor | None]:
    """A thread pool for one window (None when serial); created per call, so a fork never inherits one."""
    workers = min(thread_count(), n_columns)
    if workers <= 1:
        yield None
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drift-assets-count") as pool:
        yield pool
