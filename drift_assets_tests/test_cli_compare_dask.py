"""`drift-assets compare --dask ADDRESS`: CURRENT counted on a real scheduler and two workers
(processes on 127.0.0.1), one task per parquet row group, gives the same result as counting it in
the CLI's process; bad input still exits 2 with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from cluster_servers import start_dask_cluster
from servers import free_port
from test_cli_compare import ROLE_ARGS, table

from drift_assets.simulate.calibrated_scores import FRAUD_2_PERCENT

pytestmark = pytest.mark.slow  # a Dask cluster and CLI subprocesses, ~20 s

CLI = os.path.join(os.path.dirname(sys.executable), "drift-assets")


def run(*args, env=None):
    env = {**os.environ, **(env or {})}
    return subprocess.run([CLI, "compare", *map(str, args)], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with start_dask_cluster(tmp_path_factory.mktemp("cluster"), n_workers=2) as started:
        yield started


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("compare")
    pq.write_table(table(20_000, 1), base / "ref.parquet")
    # A directory of two files, 1,000-row row groups: 12 tasks.
    (base / "drifted").mkdir()
    pq.write_table(table(5_000, 3, shift=1.0, new_category=True), base / "drifted" / "a.parquet", row_group_size=1_000)
    pq.write_table(table(7_000, 4, shift=1.0), base / "drifted" / "b.parquet", row_group_size=1_000)
    pq.write_table(table(5_000, 2), base / "same.parquet", row_group_size=1_000)
    pa_csv.write_csv(table(1_000, 5), base / "current.csv")
    return base


def _assert_same_result(actual: dict, expected: dict) -> None:
    assert actual["current_rows"] == expected["current_rows"]
    assert set(actual["columns"]) == set(expected["columns"])
    for name, column in expected["columns"].items():
        for key, value in column.items():
            got = actual["columns"][name][key]
            if isinstance(value, float):
                assert got == pytest.approx(value, rel=1e-9, abs=1e-12), (name, key)
            else:
                assert got == value, (name, key)
    # The joint (multivariate) check needs the rows, which stay on the cluster: skipped, with why.
    per_column = lambda doc: sorted(  # noqa: E731
        (c["name"], c.get("column"), c["passed"], c["severity"])
        for c in doc["checks"]
        if c["name"] != "no_multivariate_drift"
    )
    assert per_column(actual) == per_column(expected)
    assert [c["name"] for c in expected["checks"]].count("no_multivariate_drift") == 1
    assert "no_multivariate_drift" not in [c["name"] for c in actual["checks"]]
    assert "--dask" in actual["multivariate"]["skipped"]


@pytest.mark.parametrize(("current", "exit_code"), [("same.parquet", 0), ("drifted", 1)])
def test_counts_on_the_cluster_give_the_in_process_result(files, cluster, current, exit_code):
    here = run(files / "ref.parquet", files / current, *ROLE_ARGS, "--json", "-")
    with cluster.client() as client:
        client.get_task_stream(start=time.time())  # registers the scheduler's task-stream plugin
        since = time.time()
        there = run(files / "ref.parquet", files / current, *ROLE_ARGS, "--json", "-", "--dask", cluster.address)
        tasks = [r for r in client.get_task_stream(start=since) if "count-row-group" in str(r["key"])]
    assert len(tasks) == (5 if current == "same.parquet" else 12)  # one per row group
    assert len({r["worker"] for r in tasks}) == 2
    assert here.returncode == there.returncode == exit_code, there.stderr
    expected, actual = json.loads(here.stdout), json.loads(there.stdout)
    assert expected["current_rows"] == (5_000 if current == "same.parquet" else 12_000)
    _assert_same_result(actual, expected)


def test_the_performance_estimate_on_the_cluster_is_the_in_process_one_exactly(tmp_path, cluster):
    """--prediction/--target: the score counts ride with the drift counts in every row-group task."""
    rng = np.random.default_rng(7)
    for name, rows, row_group in (("ref", 20_000, None), ("cur", 12_000, 1_000)):
        scores, target = FRAUD_2_PERCENT.sample(rng, rows, np.zeros(3), np.full(3, 0.7) if name == "cur" else None)
        labelled = pa.table({"x": rng.normal(size=rows), "s": scores, "y": target})
        pq.write_table(labelled, tmp_path / f"{name}.parquet", row_group_size=row_group)
    args = [tmp_path / "ref.parquet", tmp_path / "cur.parquet", "--numerical", "x", "--prediction", "s"]
    args += ["--target", "y", "--json", "-"]
    here, there = run(*args), run(*args, "--dask", cluster.address)
    assert here.returncode == there.returncode and here.returncode in (0, 1), there.stderr
    expected, actual = json.loads(here.stdout)["performance"], json.loads(there.stdout)["performance"]
    assert expected["estimated"]["rows"] == 12_000 and expected["realized"]["labelled_rows"] == 12_000
    assert actual == expected


def test_relative_paths_are_resolved_before_the_workers_open_them(files, cluster):
    out = subprocess.run(
        [CLI, "compare", "ref.parquet", "drifted", *ROLE_ARGS, "--json", "-", "--dask", cluster.address],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=files,
    )
    assert out.returncode == 1, out.stderr
    assert json.loads(out.stdout)["current_rows"] == 12_000


def test_a_csv_current_table_is_refused_in_one_line(files, cluster):
    out = run(files / "ref.parquet", files / "current.csv", *ROLE_ARGS, "--dask", cluster.address)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "current.csv" in out.stderr and "--dask reads parquet files only" in out.stderr


def test_an_unreachable_or_malformed_address_exits_2_in_one_line(files):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    out = run(
        files / "ref.parquet",
        files / "same.parquet",
        *ROLE_ARGS,
        "--dask",
        address,
        env={"DRIFT_ASSETS_DASK_TIMEOUT": "1"},
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and address in out.stderr and "Traceback" not in out.stderr
    bad = run(files / "ref.parquet", files / "same.parquet", *ROLE_ARGS, "--dask", "127.0.0.1:8786")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "tcp://host:port" in bad.stderr and "'127.0.0.1:8786'" in bad.stderr


def test_a_local_cluster_gives_the_in_process_result_and_leaves_no_process(files):
    """``--dask local:2``: a LocalCluster of two worker processes for the call; same result, and no
    process carrying the call's marker outlives it."""
    import uuid

    import psutil

    marker = uuid.uuid4().hex
    here = run(files / "ref.parquet", files / "drifted", *ROLE_ARGS, "--json", "-")
    there = run(
        files / "ref.parquet", files / "drifted", *ROLE_ARGS, "--json", "-", "--dask", "local:2", env={"MARK": marker}
    )
    assert here.returncode == there.returncode == 1, there.stderr
    _assert_same_result(json.loads(there.stdout), json.loads(here.stdout))
    left = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("MARK") == marker:
                left.append(proc.pid)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    assert left == []


def test_a_local_cluster_binds_loopback_only_and_rejects_a_bad_worker_count():
    from drift_assets.monitoring.dask_compute import _connected, local_workers
    from drift_assets.orchestration.resources import ComputeResource

    with _connected("local:2") as client:
        info = client.scheduler_info()
        assert info["address"].startswith("tcp://127.0.0.1:")
        assert len(info["workers"]) == 2 and all(a.startswith("tcp://127.0.0.1:") for a in info["workers"])
        assert client.dashboard_link.startswith("http://127.0.0.1:")
    assert local_workers("local") == (os.cpu_count() or 1) and local_workers("tcp://h:1") is None
    ComputeResource(kind="dask", dask_address="local:2").validate()
    for bad in ("local:0", "local:x", "localhost:8786"):
        with pytest.raises(ValueError, match="local"):
            ComputeResource(kind="dask", dask_address=bad).validate()
