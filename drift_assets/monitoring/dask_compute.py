"""A window's counts computed as one task per parquet row group: in this process or on a Dask cluster.

Window summaries are mergeable counts (``WindowSummary.__add__``), which is all a cluster needs:

1. the window's files (local paths or ``s3://`` URIs) are opened for their footers and split into
   one task per row group;
2. the reference profile is sent to every worker once (``scatter(broadcast=True)``), not once per
   task;
3. each task reads its row group (workers read S3 directly, with their own credentials), selects
   the window's rows, conforms them and adds derived columns exactly as ``stream_window`` does
   (``windows.window_rows``), and returns the row group's ``WindowSummary`` plus what it saw
   (rows, first/last timestamp, column problems): a few KB to a few hundred KB, never rows;
4. the parts are added in task order (file order, then row-group order) and the same statistics
   code (``stats.compare``) runs on the total.

Given a performance estimator (sent once per worker like the profile), each task also counts the
row group's scores on the estimator's grid in the same pass (``WindowSummary.performance``): fixed-point
sums, so the cluster's score counts, and the seeded estimate made from them, equal the in-process ones
exactly.

``summarize_window_in_process`` runs the same tasks in a loop and adds them in the same order, so
the two give bit-for-bit the same summary (floating sums included). Against ``stream_window`` +
``summarize`` (batches of 256k rows that span row groups), counts are equal exactly and the float
sums behind means and Wasserstein agree to rounding (relative ~1e-15): addition is done in a
different grouping.

No Dagster here: a ``compute`` resource chooses ``in_process`` or ``dask`` by configuration and
calls one of the two functions, which share their signature after the Dask client argument.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from drift_assets.monitoring.config import DerivedColumn, MonitorConfig
from drift_assets.monitoring.windows import Window, WindowScan, expected_log_types, log_files, window_rows
from drift_assets.stats.profile import ReferenceProfile
from drift_assets.stats.summary import WindowSummary, empty_summary, summarize
from drift_assets.storage.root import Root
from drift_assets.storage.s3 import display_path
from drift_assets.storage.tables import BATCH_ROWS, TableReadError, resolve

if TYPE_CHECKING:
    from distributed import Client, Future

    from drift_assets.stats.performance_estimation import PerformanceEstimator

# How long a client waits for a scheduler that is not (yet) there before failing with its address
# (DRIFT_ASSETS_DASK_TIMEOUT overrides it, in seconds).
CONNECT_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class WindowRead:
    """What to read from each file: the window, its timestamp column, the schema the window is
    conformed to, and the derived columns; ``table_name`` names the window in error messages.

    ``window=None`` (``for_table``): every row of the files, the columns named in ``types`` read as
    they are, as ``drift-assets compare`` reads its current table."""

    window: Window | None
    timestamp_column: str
    types: Mapping[str, pa.DataType]
    derived: tuple[DerivedColumn, ...] = ()
    table_name: str = "current window"

    @classmethod
    def for_monitor(cls, monitor: MonitorConfig, window: Window) -> WindowRead:
        return cls(
            window,
            monitor.timestamp_column,
            expected_log_types(monitor),
            tuple(monitor.derived),
            f"{monitor.name} window {window.key}",
        )

    @classmethod
    def for_table(cls, types: Mapping[str, pa.DataType], table_name: str) -> WindowRead:
        return cls(None, "", dict(types), (), table_name)


@dataclass(frozen=True)
class RowGroupTask:
    location: str  # a local path or s3://bucket/key
    row_group: int


@dataclass
class RowGroupCounts:
    """One task's answer: the row group's counts and what reading it saw."""

    summary: WindowSummary
    rows: int
    first_timestamp: dt.datetime | None
    last_timestamp: dt.datetime | None
    problems: dict[str, str] = field(default_factory=dict)


def window_locations(root: Root, log: str, window: Window) -> list[str]:
    """The window's files as locations a worker can open by itself: local paths or s3:// URIs."""
    return [display_path(root.filesystem, path) for path in log_files(root, log, window)]


# --------------------------------------------------------------------------- tasks (run on workers)
def _open(location: str, filesystem: pafs.FileSystem | None) -> tuple[pafs.FileSystem, str]:
    # Without an explicit filesystem each worker resolves s3:// from its own environment
    # (endpoint, region, credential chain): no secret travels with the task.
    return resolve(location, filesystem)


def row_group_count(location: str, filesystem: pafs.FileSystem | None = None) -> int:
    """Row groups in a parquet file, from its footer. A file that is not parquet fails, named."""
    fs, path = _open(location, filesystem)
    try:
        with fs.open_input_file(path) as handle:
            return pq.ParquetFile(handle).num_row_groups
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise TableReadError(
            f"{display_path(fs, path)}: not a readable parquet file ({type(exc).__name__}: {exc})"
        ) from exc


def _row_group_batches(
    fs: pafs.FileSystem, path: str, row_group: int, columns: Sequence[str]
) -> Iterator[pa.RecordBatch]:
    try:
        with fs.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            present = parquet.schema_arrow.names
            # Missing columns are left out here; conforming turns them into nulls and names them.
            wanted = [c for c in columns if c in present]
            yield from parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=[row_group], columns=wanted)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise TableReadError(
            f"{display_path(fs, path)}: cannot read row group {row_group} ({type(exc).__name__}: {exc})"
        ) from exc


def count_row_group(
    task: RowGroupTask,
    profile: ReferenceProfile,
    read: WindowRead,
    filesystem: pafs.FileSystem | None = None,
    estimator: PerformanceEstimator | None = None,
) -> RowGroupCounts:
    """The counts of one row group's rows in the window (the unit of work on a cluster); with
    ``estimator``, its score counts from the same batches."""
    fs, path = _open(task.location, filesystem)
    scan = WindowScan()
    types = dict(read.types)

    def selected() -> Iterator[pa.RecordBatch]:
        for batch in _row_group_batches(fs, path, task.row_group, list(types)):
            if read.window is None:  # a whole table: rows as read
                scan.rows += batch.num_rows
                yield batch
                continue
            rows = window_rows(
                batch,
                path,
                read.window,
                timestamp_column=read.timestamp_column,
                types=types,
                derived=read.derived,
                scan=scan,
            )
            if rows is not None:
                yield rows

    summary = summarize(profile, selected(), table_name=read.table_name, estimator=estimator)
    return RowGroupCounts(summary, scan.rows, scan.first_timestamp, scan.last_timestamp, scan.problems)


# --------------------------------------------------------------------------- merging
def merge_counts(
    profile: ReferenceProfile,
    parts: Iterator[RowGroupCounts],
    files: Sequence[str],
    scan: WindowScan | None = None,
    estimator: PerformanceEstimator | None = None,
) -> WindowSummary:
    """Add the parts in order. Column problems met while reading (first reason kept, as when
    streaming) are added to the summary's problems, as ``evaluate_window`` does."""
    scan = scan if scan is not None else WindowScan()
    scan.files.extend(files)
    total = empty_summary(profile, estimator)
    for part in parts:
        total = total + part.summary
        scan.rows += part.rows
        for moment in (part.first_timestamp, part.last_timestamp):
            if moment is not None:
                scan.first_timestamp = moment if scan.first_timestamp is None else min(scan.first_timestamp, moment)
                scan.last_timestamp = moment if scan.last_timestamp is None else max(scan.last_timestamp, moment)
        for column, reason in part.problems.items():
            scan.problems.setdefault(column, reason)
    for column, reason in scan.problems.items():
        total.problems.setdefault(column, reason)
    return total


def _tasks(files: Sequence[str], counts: Sequence[int]) -> list[RowGroupTask]:
    return [RowGroupTask(location, i) for location, n in zip(files, counts, strict=True) for i in range(n)]


# --------------------------------------------------------------------------- the two computes
def summarize_window_in_process(
    profile: ReferenceProfile,
    files: Sequence[str],
    read: WindowRead,
    *,
    filesystem: pafs.FileSystem | None = None,
    scan: WindowScan | None = None,
    estimator: PerformanceEstimator | None = None,
) -> WindowSummary:
    """The window's summary from one task per row group, run here one after the other."""
    tasks = _tasks(files, [row_group_count(f, filesystem) for f in files])
    parts = (count_row_group(t, profile, read, filesystem, estimator) for t in tasks)
    return merge_counts(profile, parts, files, scan, estimator)


def summarize_window_on_dask(
    client_or_address: Client | str,
    profile: ReferenceProfile,
    files: Sequence[str],
    read: WindowRead,
    *,
    filesystem: pafs.FileSystem | None = None,
    scan: WindowScan | None = None,
    estimator: PerformanceEstimator | None = None,
) -> WindowSummary:
    """The same summary, each row group a task on a Dask cluster (``tcp://host:port`` or a Client).

    A worker lost mid-window (killed, out of memory) costs only its tasks: the scheduler runs them
    again elsewhere, and the parts are still added in task order, so the sum is the same. An error
    in a task (a corrupt file) is raised here with the file named, and the other tasks cancelled.
    ``filesystem``, if given, is sent to the workers (with any keys it was built with); without it
    every worker opens s3:// locations from its own environment.
    """
    with _connected(client_or_address) as client:
        counts = client.gather(client.map(row_group_count, list(files), filesystem=filesystem, pure=False))
        tasks = _tasks(files, counts)
        shared_profile = client.scatter(profile, broadcast=True, hash=False)
        # A fresh copy: none of the caller's cached lookup tables (5 MB) travel; each worker builds its own.
        shared_estimator = (
            client.scatter(dataclasses.replace(estimator), broadcast=True, hash=False) if estimator else None
        )
        # Task names unique per call: two windows (or two runs of one window) in flight on one
        # cluster never share a task, whatever their arguments.
        run = uuid.uuid4().hex[:12]
        pending = deque(
            client.map(
                count_row_group,
                tasks,
                profile=shared_profile,
                read=read,
                filesystem=filesystem,
                estimator=shared_estimator,
                key=[f"count-row-group-{run}-{i}" for i in range(len(tasks))],
            )
        )
        try:
            return merge_counts(profile, _results_in_order(pending), files, scan, estimator)
        finally:
            client.cancel(list(pending))
            shared_profile.release()
            if shared_estimator is not None:
                shared_estimator.release()


def _results_in_order(pending: deque[Future]) -> Iterator[RowGroupCounts]:
    """Results in task order, each future dropped once read: the client holds one part at a time;
    parts finished early wait on their workers (a few KB to a few hundred KB each)."""
    while pending:
        yield pending[0].result()
        pending.popleft().release()


LOCAL_PREFIX = "local"


def local_workers(address: str) -> int | None:
    """``local`` (one worker per core) or ``local:N``: the number of workers of a ``LocalCluster``
    started for the call; None for a scheduler address."""
    if address != LOCAL_PREFIX and not address.startswith(LOCAL_PREFIX + ":"):
        return None
    count = address.partition(":")[2]
    if count and (not count.isdigit() or int(count) < 1):
        raise ValueError(f"dask address {address!r}: expected local or local:N with N >= 1 workers")
    return int(count) if count else max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _connected(client_or_address: Client | str) -> Iterator[Client]:
    """A client of the scheduler at an address; or of a ``LocalCluster`` (``local[:N]``: worker
    processes on this machine, one thread each, every port on 127.0.0.1, dashboard included)
    started here and ended with the call, for one big machine without a cluster to run."""
    from distributed import Client, LocalCluster

    if isinstance(client_or_address, Client):
        yield client_or_address
        return
    workers = local_workers(client_or_address) if isinstance(client_or_address, str) else None
    if workers is not None:
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
            ) as cluster,
            Client(cluster, set_as_default=False) as client,
        ):
            yield client
        return
    if not isinstance(client_or_address, str) or not client_or_address.startswith(("tcp://", "tls://", "inproc://")):
        raise ValueError(
            f"dask scheduler address must look like tcp://host:port, got {client_or_address!r}"
            " (or local[:N] for a LocalCluster on this machine)"
        )
    try:
        timeout = float(os.environ.get("DRIFT_ASSETS_DASK_TIMEOUT") or CONNECT_TIMEOUT_SECONDS)
        client = Client(client_or_address, timeout=timeout, set_as_default=False)
    except OSError as exc:
        raise ConnectionError(f"cannot reach the Dask scheduler at {client_or_address}: {exc}") from exc
    try:
        yield client
    finally:
        client.close()
