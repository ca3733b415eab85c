"""A window's counts on a real Dask cluster (a scheduler and two workers as processes on 127.0.0.1)
against the same counts in this process and against the streaming path the Dagster assets use.

- Cluster and in-process summaries are identical (their dict forms, floating sums included), and so
  is every measure and check ``stats.compare`` derives from them.
- Against ``stream_window`` + ``evaluate_window`` (an independent reading of the same files, in
  256k-row batches rather than row groups) every count is equal and the float sums agree to 1e-12.
- Both workers ran tasks (asked of the scheduler's task stream); a worker SIGKILLed mid-window
  costs only its tasks, which the scheduler runs again elsewhere: the sum is still exact.
- Workers read S3 (moto's server on loopback) themselves; bad files fail with the file named.
- Nothing listens beyond loopback, and no process outlives its fixture.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import yaml
from cluster_servers import start_dask_cluster
from distributed import get_task_stream
from moto.server import ThreadedMotoServer
from servers import free_port
from support import PROJECT_ROOT, write_monitors_file

from drift_assets.monitoring import dask_compute
from drift_assets.monitoring.config import load_monitors
from drift_assets.monitoring.dask_compute import (
    WindowRead,
    summarize_window_in_process,
    summarize_window_on_dask,
    window_locations,
)
from drift_assets.monitoring.evaluation import evaluate_window, read_reference
from drift_assets.monitoring.performance import fit_estimator_record
from drift_assets.monitoring.windows import Window, WindowScan, expected_log_types, parse_partition_key, stream_window
from drift_assets.stats import compare, fit_profile
from drift_assets.stats.errors import EmptyWindowError
from drift_assets.stats.performance_estimation import PerformanceEstimator, count_window, estimate_performance
from drift_assets.stats.summary import CategoricalCounts, WindowSummary
from drift_assets.storage.root import Root
from drift_assets.storage.s3 import s3_filesystem
from drift_assets.storage.tables import TableReadError

pytestmark = pytest.mark.slow  # scheduler and worker processes, moto, ~40 s in all

DRIFTED_WEEK, STATIONARY_WEEK = "2026-08-17", "2026-08-03"
ROWS_PER_ROW_GROUP = 100  # ~430 rows a day -> 5 row groups a file, ~34 tasks a week
BUCKET, REGION = "dask-compute-test", "eu-west-1"
TASK_PREFIX = "count-row-group-"


# --------------------------------------------------------------------------- data and cluster
def rewrite_in_row_groups(path: Path, rows_per_group: int) -> None:
    table = pq.read_table(path)
    pq.write_table(table, path, row_group_size=rows_per_group)


@pytest.fixture(scope="module")
def setting(fraud_data, tmp_path_factory):
    """The simulated fraud data with every log file rewritten in small row groups."""
    base = tmp_path_factory.mktemp("dask-data")
    shutil.copytree(fraud_data, base / "data")
    for path in (base / "data" / "fraud" / "log").rglob("*.parquet"):
        rewrite_in_row_groups(path, ROWS_PER_ROW_GROUP)
    monitor = load_monitors(write_monitors_file(base / "monitors.yaml")).get("fraud")
    root = Root.open(str(base / "data"))
    reference = read_reference(monitor, root.table(monitor.reference))
    profile = fit_profile(reference, monitor.column_specs(), psi_bins=monitor.psi_bins)
    return monitor, profile, root


def _aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "AKIATESTDUMMYKEYID00",
        "AWS_SECRET_ACCESS_KEY": "dummy-secret-not-real",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "S3_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture(scope="module")
def s3_env():
    """moto's S3 server on loopback, and the environment (endpoint, dummy keys) to reach it."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = _aws_env(f"http://{host}:{port}")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        boto3.client("s3", endpoint_url=env["S3_ENDPOINT_URL"], region_name=REGION).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        yield env
    server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, s3_env):
    """A scheduler and two single-threaded workers; the workers see the S3 endpoint and keys."""
    with start_dask_cluster(tmp_path_factory.mktemp("cluster"), n_workers=2, env=s3_env) as started:
        yield started


@pytest.fixture
def client(cluster):
    with cluster.client() as c:
        yield c


# --------------------------------------------------------------------------- helpers
def streamed(monitor, profile, root: Root, window: Window):
    """The path the drift_report asset takes today: stream_window batches into evaluate_window."""
    scan = WindowScan()
    batches = stream_window(
        root,
        monitor.log,
        window,
        timestamp_column=monitor.timestamp_column,
        types=expected_log_types(monitor),
        derived=monitor.derived,
        scan=scan,
    )
    return evaluate_window(monitor, profile, window, batches, data=root, problems=scan.problems), scan


def assert_same_counts(actual: WindowSummary, expected: WindowSummary) -> None:
    """Every count equal; float sums (means, Wasserstein) equal to rounding."""
    assert actual.rows == expected.rows
    assert actual.problems == expected.problems
    assert set(actual.columns) == set(expected.columns)
    for name, counts in expected.columns.items():
        got = actual.columns[name]
        if isinstance(counts, CategoricalCounts):
            assert got.counts.tolist() == counts.counts.tolist(), name
            assert (got.missing, got.unseen_values) == (counts.missing, counts.unseen_values), name
        else:
            assert got.sketch_counts.tolist() == counts.sketch_counts.tolist(), name
            assert got.missing == counts.missing, name
            np.testing.assert_allclose(got.sketch_sums, counts.sketch_sums, rtol=1e-12, atol=1e-9, err_msg=name)


def drift(monitor, profile, summary, read):
    return compare(profile, summary, monitor.rules, top_features=set(monitor.top_features), table_name=read.table_name)


def task_records(stream_data) -> list[dict]:
    return [r for r in stream_data if str(r["key"]).startswith(TASK_PREFIX)]


# --------------------------------------------------------------------------- equality
@pytest.mark.parametrize("week", [DRIFTED_WEEK, STATIONARY_WEEK])
def test_cluster_counts_equal_in_process_counts_and_the_streamed_window(setting, client, week):
    monitor, profile, root = setting
    window = parse_partition_key(week, "weekly")
    read = WindowRead.for_monitor(monitor, window)
    files = window_locations(root, monitor.log, window)
    assert len(files) == 7

    cluster_scan, local_scan = WindowScan(), WindowScan()
    with get_task_stream(client) as stream:
        on_cluster = summarize_window_on_dask(client, profile, files, read, scan=cluster_scan)
    in_process = summarize_window_in_process(profile, files, read, scan=local_scan)

    assert on_cluster.to_dict() == in_process.to_dict()
    assert drift(monitor, profile, on_cluster, read).to_dict() == drift(monitor, profile, in_process, read).to_dict()
    assert (cluster_scan.rows, cluster_scan.first_timestamp, cluster_scan.last_timestamp) == (
        local_scan.rows,
        local_scan.first_timestamp,
        local_scan.last_timestamp,
    )

    # One task per row group, spread over both workers.
    records = task_records(stream.data)
    expected_tasks = sum(math.ceil(pq.read_metadata(f).num_rows / ROWS_PER_ROW_GROUP) for f in files)
    assert len(records) == expected_tasks >= 30
    by_worker = {r["worker"] for r in records}
    assert len(by_worker) == 2, f"tasks ran on {by_worker}"

    # The streaming path reads the same rows: equal counts, equal decisions.
    evaluation, stream_scan = streamed(monitor, profile, root, window)
    assert_same_counts(on_cluster, evaluation.summary)
    assert cluster_scan.rows == stream_scan.rows == evaluation.summary.rows == on_cluster.rows > 2000
    assert (cluster_scan.first_timestamp, cluster_scan.last_timestamp) == (
        stream_scan.first_timestamp,
        stream_scan.last_timestamp,
    )
    result = drift(monitor, profile, on_cluster, read)
    assert [(c.name, c.column, c.passed) for c in result.checks] == [
        (c.name, c.column, c.passed) for c in evaluation.result.checks
    ]
    for name, column in evaluation.result.columns.items():
        assert result.columns[name].psi == pytest.approx(column.psi, rel=1e-9, abs=1e-12)
        if column.current_mean is None:  # categorical
            assert result.columns[name].current_mean is None
        else:
            assert result.columns[name].current_mean == pytest.approx(column.current_mean, rel=1e-12)
    # The simulated drift is found (or not) the same way: the comparison above is not vacuous.
    assert bool(result.failed_checks("ERROR")) == (week == DRIFTED_WEEK)


@pytest.fixture(scope="module")
def estimator(setting):
    """The fraud monitor's performance estimator, fitted on its labelled reference."""
    monitor, _, root = setting
    reference = read_reference(monitor, root.table(monitor.reference))
    return PerformanceEstimator.from_dict(fit_estimator_record(monitor, reference))


def test_score_counts_ride_with_the_drift_counts_and_the_cluster_equals_in_process_exactly(setting, client, estimator):
    """One pass per row group counts drift and the estimator's scores; fixed-point sums make the
    cluster's score counts (and the seeded estimate from them) equal the in-process ones exactly,
    and equal the streamed window's, whose batches span row groups."""
    monitor, profile, root = setting
    window = parse_partition_key(DRIFTED_WEEK, "weekly")
    read = WindowRead.for_monitor(monitor, window)
    files = window_locations(root, monitor.log, window)

    on_cluster = summarize_window_on_dask(client, profile, files, read, estimator=estimator)
    in_process = summarize_window_in_process(profile, files, read, estimator=estimator)
    assert on_cluster.to_dict() == in_process.to_dict()
    assert on_cluster.performance is not None and on_cluster.performance_problem is None
    assert on_cluster.performance.total_rows + on_cluster.performance.missing_scores == on_cluster.rows > 2000
    assert estimate_performance(estimator, on_cluster.performance).to_dict() == (
        estimate_performance(estimator, in_process.performance).to_dict()
    )
    # The drift counts are the ones a drift-only pass gives.
    assert on_cluster.without_performance().to_dict() == summarize_window_in_process(profile, files, read).to_dict()

    # Independent: the streamed window's scores counted by themselves, in 256k-row batches.
    batches = stream_window(
        root, monitor.log, window, timestamp_column=monitor.timestamp_column, types=expected_log_types(monitor)
    )
    separate = count_window(estimator, (b.select([monitor.prediction]) for b in batches))
    assert on_cluster.performance.to_dict() == separate.to_dict()


def test_a_window_cutting_through_files_counts_only_its_rows(setting, client):
    """A window from Tuesday noon: the first and last day files are partly outside it."""
    monitor, profile, root = setting
    start = dt.datetime(2026, 8, 18, 12, tzinfo=dt.UTC)
    window = Window("shifted", start, start + dt.timedelta(days=3))
    read = WindowRead.for_monitor(monitor, window)
    files = window_locations(root, monitor.log, window)
    assert len(files) == 4
    on_cluster = summarize_window_on_dask(client, profile, files, read)
    evaluation, scan = streamed(monitor, profile, root, window)
    assert on_cluster.to_dict() == summarize_window_in_process(profile, files, read).to_dict()
    assert_same_counts(on_cluster, evaluation.summary)
    # Independent count: rows of the four files whose timestamp is in [start, end).
    ts = pa.concat_arrays([pq.read_table(f, columns=["timestamp"]).column(0).combine_chunks() for f in files])
    inside = [window.start <= t < window.end for t in ts.to_pylist()]
    assert on_cluster.rows == sum(inside) == scan.rows
    assert 0 < on_cluster.rows < len(ts)


def llm_setting(base: Path):
    """Two simulated LLM days (refusal spike 14:00-17:00 on day 2) and the project's LLM monitor."""
    from drift_assets.simulate import simulate_llm

    simulate_llm(
        str(base / "data" / "llm"),
        start=dt.date(2026, 10, 5),
        days=2,
        reference_days=2,
        refusal_spike_day=2,
        refusal_spike_hours=(14, 17),
        version_change_day=2,
        version_change_hour=20,
    )
    for path in (base / "data" / "llm" / "log").rglob("*.parquet"):
        rewrite_in_row_groups(path, 500)
    llm = yaml.safe_load((PROJECT_ROOT / "monitors.yaml").read_text())["monitors"]["llm"]
    llm.update(start="2026-10-05", end="2026-10-07", extra={"html_report": False})
    (base / "monitors.yaml").write_text(yaml.safe_dump({"monitors": {"llm": llm}}))
    monitor = load_monitors(base / "monitors.yaml").get("llm")
    root = Root.open(str(base / "data"))
    return monitor, fit_profile(read_reference(monitor, root.table(monitor.reference)), monitor.column_specs()), root


def test_derived_columns_are_computed_on_the_workers(tmp_path, client):
    """The LLM monitor's columns come from the response text (lengths, refusal patterns)."""
    monitor, profile, root = llm_setting(tmp_path)
    start = dt.datetime(2026, 10, 6, 13, tzinfo=dt.UTC)
    window = Window("spike", start, start + dt.timedelta(hours=5))
    read = WindowRead.for_monitor(monitor, window)
    files = window_locations(root, monitor.log, window)

    on_cluster = summarize_window_on_dask(client, profile, files, read)
    assert on_cluster.to_dict() == summarize_window_in_process(profile, files, read).to_dict()
    evaluation, _ = streamed(monitor, profile, root, window)
    assert_same_counts(on_cluster, evaluation.summary)

    # Independent counts with Python's own string handling, over the window's rows.
    refusal = next(d for d in monitor.derived if d.name == "refusal")
    patterns = [re.compile(p, re.IGNORECASE) for p in refusal.options["patterns"]]
    table = pa.concat_tables([pq.read_table(f, columns=["timestamp", "output"]) for f in files])
    outputs = [r["output"] for r in table.to_pylist() if start <= r["timestamp"] < window.end]
    refusals = sum(1 for text in outputs if any(p.search(text) for p in patterns))
    vocabulary = profile.columns["refusal"].binning.vocabulary
    assert on_cluster.rows == len(outputs) > 500
    assert on_cluster.columns["refusal"].counts[vocabulary.index("yes")] == refusals > 0
    assert on_cluster.columns["output_chars"].sketch_sums.sum() == sum(len(text) for text in outputs)


# --------------------------------------------------------------------------- bad input
def test_a_file_missing_a_column_is_reported_the_same_way(setting, client, tmp_path):
    monitor, profile, root = setting
    private = tmp_path / "data"
    shutil.copytree(root.path, private)
    damaged = next((private / "fraud" / "log" / "date=2026-08-19").glob("*.parquet"))
    table = pq.read_table(damaged).drop_columns(["txn_amount"])
    table = table.set_column(
        table.column_names.index("txn_count_1h"), "txn_count_1h", pa.array(["many"] * table.num_rows)
    )
    pq.write_table(table, damaged, row_group_size=ROWS_PER_ROW_GROUP)
    private_root = Root.open(str(private))
    window = parse_partition_key(DRIFTED_WEEK, "weekly")
    read = WindowRead.for_monitor(monitor, window)
    files = window_locations(private_root, monitor.log, window)

    on_cluster = summarize_window_on_dask(client, profile, files, read)
    assert on_cluster.to_dict() == summarize_window_in_process(profile, files, read).to_dict()
    evaluation, _ = streamed(monitor, profile, private_root, window)
    assert_same_counts(on_cluster, evaluation.summary)
    assert on_cluster.problems == {
        "txn_amount": f"column 'txn_amount' is missing in {damaged}",
        "txn_count_1h": f"column 'txn_count_1h' has type string in {damaged}, expected numerical",
    }
    # The other columns were still counted over the whole week.
    assert on_cluster.columns["amount_to_avg_ratio"].rows == on_cluster.rows


def test_a_corrupt_file_fails_with_its_name_and_cancels_the_rest(setting, client, tmp_path):
    monitor, profile, root = setting
    window = parse_partition_key(DRIFTED_WEEK, "weekly")
    read = WindowRead.for_monitor(monitor, window)
    files = window_locations(root, monitor.log, window)
    corrupt = tmp_path / "part-9.parquet"
    corrupt.write_bytes(b"PAR1 this is not a parquet file")
    for run in (
        lambda f: summarize_window_on_dask(client, profile, f, read),
        lambda f: summarize_window_in_process(profile, f, read),
    ):
        with pytest.raises(TableReadError, match=f"{corrupt}: not a readable parquet file"):
            run([*files, str(corrupt)])
    # Nothing of the failed run is left running on the cluster.
    still_running = [key for keys in client.processing().values() for key in keys if str(key).startswith(TASK_PREFIX)]
    assert still_running == []


def test_an_empty_window_sums_to_no_rows_and_compare_refuses_it(setting, client):
    monitor, profile, _ = setting
    read = WindowRead.for_monitor(monitor, parse_partition_key("2030-01-07", "weekly"))
    on_cluster = summarize_window_on_dask(client, profile, [], read)
    assert on_cluster.to_dict() == summarize_window_in_process(profile, [], read).to_dict()
    assert on_cluster.rows == 0
    with pytest.raises(EmptyWindowError, match="no rows"):
        drift(monitor, profile, on_cluster, read)


def test_bad_scheduler_addresses_fail_clearly(setting, monkeypatch):
    monitor, profile, _ = setting
    read = WindowRead.for_monitor(monitor, parse_partition_key(DRIFTED_WEEK, "weekly"))
    with pytest.raises(ValueError, match="must look like tcp://host:port, got '127.0.0.1:8786'"):
        summarize_window_on_dask("127.0.0.1:8786", profile, [], read)
    monkeypatch.setattr(dask_compute, "CONNECT_TIMEOUT_SECONDS", 1)
    nobody = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError, match=f"cannot reach the Dask scheduler at {nobody}"):
        summarize_window_on_dask(nobody, profile, [], read)


# --------------------------------------------------------------------------- S3
def test_workers_read_the_window_from_s3_themselves(setting, client, s3_env):
    monitor, profile, root = setting
    fs = s3_filesystem(s3_env["S3_ENDPOINT_URL"], REGION)
    pafs.copy_files(
        root.path_of("fraud"),
        f"{BUCKET}/run/data/fraud",
        source_filesystem=pafs.LocalFileSystem(),
        destination_filesystem=fs,
    )
    s3_root = Root.open(f"s3://{BUCKET}/run/data")
    window = parse_partition_key(DRIFTED_WEEK, "weekly")
    read = WindowRead.for_monitor(monitor, window)
    files = window_locations(s3_root, monitor.log, window)
    assert len(files) == 7 and all(f.startswith(f"s3://{BUCKET}/run/data/fraud/log/date=") for f in files)

    on_cluster = summarize_window_on_dask(client, profile, files, read)
    local = summarize_window_in_process(profile, window_locations(root, monitor.log, window), read)
    assert on_cluster.to_dict() == local.to_dict()
    # The workers opened s3:// with their own environment: their processes hold the endpoint.
    endpoints = client.run(lambda: os.environ.get("S3_ENDPOINT_URL"))
    assert set(endpoints.values()) == {s3_env["S3_ENDPOINT_URL"]}


# --------------------------------------------------------------------------- losing a worker
def tiled_week(setting, directory: Path, copies: int, rows_per_group: int) -> tuple[list[str], WindowRead]:
    """The drifted week repeated ``copies`` times in one file: enough row groups to kill a worker
    in the middle (each task ~20-50 ms here)."""
    monitor, _, root = setting
    window = parse_partition_key(DRIFTED_WEEK, "weekly")
    week = pa.concat_tables([pq.read_table(f) for f in window_locations(root, monitor.log, window)])
    day = directory / "fraud" / "log" / f"date={DRIFTED_WEEK}"
    day.mkdir(parents=True)
    pq.write_table(pa.concat_tables([week] * copies), day / "part-0.parquet", row_group_size=rows_per_group)
    big = Root.open(str(directory))
    return window_locations(big, monitor.log, window), WindowRead.for_monitor(monitor, window)


def _kill_when_half_done(client, victim, victim_address: str, n_tasks: int, since: float) -> tuple[int, list[str]]:
    """Poll the scheduler; SIGKILL ``victim`` once it has finished a task and holds others while
    at least half the window is still to do. Returns (tasks done when killed, tasks it held)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = task_records(client.get_task_stream(start=since))
        assigned = client.processing(workers=[victim_address]).get(victim_address, [])
        held = [k for k in assigned if str(k).startswith(TASK_PREFIX)]
        if any(r["worker"] == victim_address for r in done) and held and len(done) <= n_tasks // 2:
            victim.kill()
            return len(done), held
        if len(done) > n_tasks // 2:
            break
        time.sleep(0.01)
    pytest.fail(f"could not kill the worker mid-window ({len(done)} of {n_tasks} tasks done)")


# ~20 s: its own cluster and a 1.8M-row window
def test_a_worker_killed_mid_window_still_gives_the_exact_sum(setting, tmp_path):
    _, profile, _ = setting
    files, read = tiled_week(setting, tmp_path / "big", copies=600, rows_per_group=20_000)
    n_tasks = pq.ParquetFile(files[0]).num_row_groups
    assert n_tasks == 90
    expected = summarize_window_in_process(profile, files, read)

    with start_dask_cluster(tmp_path / "cluster", n_workers=2) as own, own.client() as client:
        victim, survivor = own.workers
        addresses = own.worker_addresses()
        with get_task_stream(client) as stream, ThreadPoolExecutor(1) as pool:
            since = time.time()
            job = pool.submit(summarize_window_on_dask, client, profile, files, read)
            done_at_kill, held = _kill_when_half_done(client, victim, addresses[victim.pid], n_tasks, since)
            on_cluster = job.result(timeout=300)
        assert victim.process.poll() == -9 and survivor.process.poll() is None
        assert list(client.scheduler_info()["workers"]) == [addresses[survivor.pid]]
        pids = own.pids

    assert on_cluster.to_dict() == expected.to_dict()
    assert on_cluster.rows == 600 * 3000 and done_at_kill < n_tasks
    # The tasks the dead worker held were run again, by the survivor.
    finished_on = {}
    for record in task_records(stream.data):
        finished_on.setdefault(str(record["key"]), set()).add(record["worker"])
    assert len(finished_on) == n_tasks
    for key in held:
        assert addresses[survivor.pid] in finished_on[str(key)]
    assert not [p for p in pids if psutil.pid_exists(p)]


# --------------------------------------------------------------------------- processes
def test_everything_listens_on_loopback_only(cluster):
    for pid in cluster.pids:
        listening = [c.laddr for c in psutil.Process(pid).net_connections("inet") if c.status == psutil.CONN_LISTEN]
        assert listening, pid  # the scheduler/worker port and the dashboard's
        assert {addr.ip for addr in listening} == {"127.0.0.1"}, listening


def test_the_fixture_leaves_no_process_behind(tmp_path):
    with start_dask_cluster(tmp_path, n_workers=2) as own:
        pids = own.pids
        descendants = [c.pid for p in pids for c in psutil.Process(p).children(recursive=True)]
        assert len(pids) == 3 and all(psutil.pid_exists(p) for p in pids)
    alive = [p for p in pids + descendants if psutil.pid_exists(p)]
    assert alive == []
