"""Storage on S3 through dagster-aws, against a real S3-compatible server (moto's, on 127.0.0.1).

The same fraud simulation as the ``fraud_data`` fixture is written to a bucket with
``simulate_fraud(filesystem=<S3>)``; every test works on its own copy under its own prefix. What is
checked: Dagster runs in ``DRIFT_ASSETS_ENV=s3`` write their outputs as objects and give the same
check results as the same runs over local files; a missing bucket, a missing key, wrong
credentials and an unreachable server fail clearly, naming bucket/key and never a secret, within a
bounded time; reads stream (ranged GETs of the columns needed, not whole files); a failed write
leaves nothing at the final key; the CLI (`simulate --target s3://`, `compare s3://`) works.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from dagster import AssetCheckKey, AssetKey, instance_for_test
from moto.server import ThreadedMotoServer
from servers import free_port
from support import SMALL, write_monitors_file

from drift_assets.definitions import build_definitions
from drift_assets.orchestration.io_managers import BatchStream, write_parquet
from drift_assets.storage.root import Root
from drift_assets.storage.s3 import S3NotFoundError, S3StorageError, s3_filesystem
from drift_assets.storage.tables import TableSource

pytestmark = pytest.mark.slow  # servers, Dagster runs or long simulations

BUCKET = "drift-assets-test"
KEY_ID = "AKIATESTDUMMYKEYID00"
SECRET = "dummy-secret-a1b2c3-must-never-appear"
REGION = "eu-west-1"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
DRIFT_REPORT = AssetKey(["fraud", "drift_report"])
STATIONARY, DRIFTED = "2026-08-03", "2026-08-17"
SEED_PREFIX = "seed"
CLI = os.path.join(os.path.dirname(sys.executable), "drift-assets")


def _start_server(port: int) -> ThreadedMotoServer:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server


def _aws_env(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "S3_ENDPOINT_URL": endpoint,
        # never read a developer's real AWS configuration in tests
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture(scope="module")
def moto_endpoint():
    """One moto server for the module, holding the seeded simulation under ``seed/data``.

    moto keeps its state in the process, not in the server: a server started later on another (or
    the same) port sees the same buckets."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = _start_server(free_port())
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in _aws_env(endpoint).items():
            mp.setenv(name, value)
        client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):  # moto's state is per process
            client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        from drift_assets.simulate import simulate_fraud

        simulate_fraud(f"{BUCKET}/{SEED_PREFIX}/data/fraud", filesystem=s3_filesystem(endpoint, REGION), **SMALL)
    yield endpoint
    server.stop()


@dataclass
class S3Project:
    endpoint: str
    prefix: str
    tmp: Path

    @property
    def fs(self) -> pafs.S3FileSystem:
        return s3_filesystem(self.endpoint, REGION)

    @property
    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION)

    def uri(self, relative: str) -> str:
        return f"s3://{BUCKET}/{self.prefix}/{relative}"

    def keys(self) -> dict[str, dict]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{self.prefix}/")
        return {o["Key"][len(self.prefix) + 1 :]: o for page in pages for o in page.get("Contents", [])}


@pytest.fixture
def s3_project(moto_endpoint, tmp_path, monkeypatch) -> S3Project:
    """Definitions in S3 mode over a private copy of the seeded data (tests may damage it)."""
    for name, value in _aws_env(moto_endpoint).items():
        monkeypatch.setenv(name, value)
    prefix = f"t-{uuid.uuid4().hex[:10]}"
    fs = s3_filesystem(moto_endpoint, REGION)
    pafs.copy_files(
        f"{BUCKET}/{SEED_PREFIX}/data", f"{BUCKET}/{prefix}/data", source_filesystem=fs, destination_filesystem=fs
    )
    monkeypatch.setenv("DRIFT_ASSETS_ENV", "s3")
    monkeypatch.setenv("DRIFT_ASSETS_S3_BUCKET", BUCKET)
    monkeypatch.setenv("DRIFT_ASSETS_S3_PREFIX", prefix)
    monkeypatch.setenv("DRIFT_ASSETS_HTML_REPORTS", "1")
    monkeypatch.setenv("DRIFT_ASSETS_MONITORS", str(write_monitors_file(tmp_path / "monitors.yaml")))
    return S3Project(moto_endpoint, prefix, tmp_path)


def run_job(defs, instance, name, partition=None):
    return defs.resolve_job_def(name).execute_in_process(
        instance=instance, partition_key=partition, run_config=QUIET, raise_on_error=False
    )


def failure_text(result) -> str:
    """Every error message (with causes) of a run: step failures and resource init failures."""
    parts = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        while error is not None:
            parts.append(error.message)
            error = error.cause
    return "\n".join(parts)


def check_results(defs, instance) -> dict:
    """check name -> partition -> (passed, severity, metadata values) of the drift report."""
    names = sorted(k.name for k in defs.resolve_asset_graph().asset_check_keys if k.asset_key == DRIFT_REPORT)
    out = {}
    for name in names:
        history = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(DRIFT_REPORT, name), limit=20
        )
        out[name] = {
            r.partition: (
                r.evaluation.passed,
                r.evaluation.severity.value,
                {k: v.value for k, v in r.evaluation.metadata.items()},
            )
            for r in history
        }
    return out


def all_event_text(instance) -> str:
    return "\n".join(repr(entry) for run in instance.get_runs() for entry in instance.all_logs(run.run_id))


# --------------------------------------------------------------------------- the monitoring loop on S3
def test_runs_on_s3_write_objects_and_match_the_same_runs_on_local_files(s3_project, fraud_data, tmp_path, monkeypatch):
    # The S3 data is the same simulation as the local fixture.
    local_ref = pq.read_table(fraud_data / "fraud" / "reference" / "reference.parquet")
    s3_ref = pq.read_table(
        f"{BUCKET}/{s3_project.prefix}/data/fraud/reference/reference.parquet", filesystem=s3_project.fs
    )
    assert s3_ref.equals(local_ref)

    html_monitors = write_monitors_file(tmp_path / "monitors-html.yaml", html=True)
    s3_defs = build_definitions(html_monitors, environment="s3")
    with instance_for_test() as instance:
        for name, partition in (
            ("fraud_reference_job", None),
            ("fraud_window_job", STATIONARY),
            ("fraud_window_job", DRIFTED),
        ):
            result = run_job(s3_defs, instance, name, partition)
            assert result.success, failure_text(result)
        s3_checks = check_results(s3_defs, instance)
        window_meta = instance.get_latest_materialization_event(
            AssetKey(["fraud", "production_window"])
        ).asset_materialization.metadata
        report_meta = instance.get_latest_materialization_event(
            AssetKey(["fraud", "evidently_report"])
        ).asset_materialization.metadata
        logged = all_event_text(instance)

    # Outputs are objects under the prefix; no temporary object is left behind.
    keys = s3_project.keys()
    for key in (
        "assets/fraud/reference_data/__all__.parquet",
        "assets/fraud/reference_profile/__all__.json",
        f"assets/fraud/production_window/{STATIONARY}.parquet",
        f"assets/fraud/production_window/{DRIFTED}.parquet",
        f"assets/fraud/drift_report/{DRIFTED}.json",
        f"reports/fraud/drift/{STATIONARY}.json",
        f"reports/fraud/drift/{DRIFTED}.json",
    ):
        assert key in keys and keys[key]["Size"] > 0, key
    # One report per evaluation: the window key and the run id in the name.
    [html_key] = [k for k in keys if k.startswith(f"reports/fraud/html/{DRIFTED}-") and k.endswith(".html")]
    assert keys[html_key]["Size"] > 0
    assert not [k for k in keys if ".tmp" in k]
    assert window_meta["path"].value == s3_project.uri(f"assets/fraud/production_window/{DRIFTED}.parquet")
    assert report_meta["evidently_report"].value == s3_project.uri(html_key)
    head = s3_project.client.head_object(Bucket=BUCKET, Key=f"{s3_project.prefix}/{html_key}")
    assert head["ContentType"].startswith("text/html")  # uploaded through dagster-aws's client
    # Evidently's bundle is stored once next to the pages, and the page references it relatively.
    [bundle] = [k for k in keys if k.startswith("reports/fraud/html/_assets/evidently-") and k.endswith(".js")]
    assert keys[bundle]["Size"] > 3_000_000 and keys[html_key]["Size"] < 1_500_000
    page = s3_project.client.get_object(Bucket=BUCKET, Key=f"{s3_project.prefix}/{html_key}")["Body"].read()
    assert f'<script src="_assets/{bundle.rsplit("/", 1)[1]}"></script>'.encode() in page
    js_head = s3_project.client.head_object(Bucket=BUCKET, Key=f"{s3_project.prefix}/{bundle}")
    assert js_head["ContentType"].startswith("text/javascript")
    profile = json.loads(
        s3_project.client.get_object(
            Bucket=BUCKET, Key=f"{s3_project.prefix}/assets/fraud/reference_profile/__all__.json"
        )["Body"].read()
    )
    assert profile["reference_rows"] == SMALL["reference_rows"]
    # Nothing secret in metadata or logs.
    assert SECRET not in logged and KEY_ID not in logged

    # The same runs over the same data on local files give the same check results.
    data = tmp_path / "local" / "data"
    shutil.copytree(fraud_data, data)
    monkeypatch.setenv("DRIFT_ASSETS_DATA_ROOT", str(data))
    monkeypatch.setenv("DRIFT_ASSETS_ASSETS_ROOT", str(tmp_path / "local" / "assets"))
    monkeypatch.setenv("DRIFT_ASSETS_REPORTS_ROOT", str(tmp_path / "local" / "reports"))
    local_defs = build_definitions(write_monitors_file(tmp_path / "monitors-local.yaml"), environment="local")
    with instance_for_test() as instance:
        for name, partition in (
            ("fraud_reference_job", None),
            ("fraud_window_job", STATIONARY),
            ("fraud_window_job", DRIFTED),
        ):
            assert run_job(local_defs, instance, name, partition).success
        local_checks = check_results(local_defs, instance)

    assert set(s3_checks) == set(local_checks) and "feature_psi_below_retrain_threshold" in s3_checks
    for name in local_checks:
        assert set(s3_checks[name]) == {STATIONARY, DRIFTED}, name
        assert s3_checks[name] == local_checks[name], name
    assert s3_checks["feature_psi_below_retrain_threshold"][STATIONARY][0] is True
    assert s3_checks["feature_psi_below_retrain_threshold"][DRIFTED][0] is False

    s3_record = json.loads(
        s3_project.client.get_object(Bucket=BUCKET, Key=f"{s3_project.prefix}/reports/fraud/drift/{DRIFTED}.json")[
            "Body"
        ].read()
    )
    local_record = json.loads((tmp_path / "local" / "reports" / "fraud" / "drift" / f"{DRIFTED}.json").read_text())
    assert s3_record["summary"] == local_record["summary"]
    assert s3_record["current_rows"] == local_record["current_rows"] > 0
    local_window = pq.read_table(tmp_path / "local" / "assets" / "fraud" / "production_window" / f"{DRIFTED}.parquet")
    s3_window = pq.read_table(
        f"{BUCKET}/{s3_project.prefix}/assets/fraud/production_window/{DRIFTED}.parquet", filesystem=s3_project.fs
    )
    assert s3_window.num_rows == local_window.num_rows


# --------------------------------------------------------------------------- failures
def test_missing_bucket_fails_the_run_naming_the_bucket(s3_project, monkeypatch):
    monkeypatch.setenv("DRIFT_ASSETS_S3_BUCKET", "no-such-drift-bucket")
    defs = build_definitions(environment="s3")
    with instance_for_test() as instance:
        result = run_job(defs, instance, "fraud_reference_job")
    assert not result.success
    text = failure_text(result)
    assert "s3://no-such-drift-bucket" in text and "does not exist" in text, text
    assert SECRET not in text


def test_missing_key_fails_the_run_naming_the_key(s3_project):
    key = f"{s3_project.prefix}/data/fraud/reference/reference.parquet"
    s3_project.client.delete_object(Bucket=BUCKET, Key=key)
    defs = build_definitions(environment="s3")
    with instance_for_test() as instance:
        result = run_job(defs, instance, "fraud_reference_job")
    assert not result.success
    text = failure_text(result)
    assert f"s3://{BUCKET}/{key}" in text, text

    # Reading a missing object through the storage layer names it and the error code.
    root = Root.open(s3_project.uri("data"), s3_project.fs)
    with pytest.raises(S3NotFoundError) as info:
        root.read_bytes("fraud/models/no-such-file.json")
    assert s3_project.uri("data/fraud/models/no-such-file.json") in str(info.value)


def test_wrong_credentials_fail_clearly_without_showing_the_secret(s3_project, monkeypatch):
    """moto checks signatures only in its IAM mode, switched on here (the server is in-process). An
    IAM user with an S3 policy is created first: its key works, the same key with a wrong secret
    is refused, as AWS refuses a wrong or revoked secret."""
    from moto.core.authorization import enable_iam_authentication

    iam = boto3.client("iam", endpoint_url=s3_project.endpoint, region_name=REGION)
    user = f"monitor-{s3_project.prefix}"
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="s3",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    defs = build_definitions(environment="s3")
    with enable_iam_authentication():
        with instance_for_test() as instance:
            good = run_job(defs, instance, "fraud_reference_job")
            assert good.success, failure_text(good)  # signed requests of both clients are accepted

            wrong_secret = "wrong-secret-zz9-plural-z-alpha"
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong_secret)
            result = run_job(defs, instance, "fraud_reference_job")
            logged = all_event_text(instance)
        root = Root.open(s3_project.uri("data"), s3_project.fs)
        with pytest.raises(S3StorageError) as info:
            root.read_bytes("fraud/manifest.json")
    assert not result.success
    text = failure_text(result)
    assert f"s3://{BUCKET}" in text and "access denied" in text, text
    assert wrong_secret not in logged and key["SecretAccessKey"] not in logged
    # pyarrow's client: bucket/key and the AWS error code, no secret
    message = str(info.value)
    assert s3_project.uri("data/fraud/manifest.json") in message and "access denied" in message, message
    assert info.value.code and wrong_secret not in message


def test_unreachable_server_fails_runs_quickly_and_the_next_run_succeeds(s3_project, monkeypatch):
    """A second server on its own port (moto's state is shared in the process) is stopped twice:
    before a run (the bucket check at run start fails) and right after a run started (pyarrow's
    first read fails). Both runs fail within seconds; after a restart on the same port the run
    succeeds."""
    import drift_assets.storage.s3 as s3_module

    port = free_port()
    server = _start_server(port)
    monkeypatch.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    defs = build_definitions(environment="s3")
    try:
        with instance_for_test() as instance:
            assert run_job(defs, instance, "fraud_reference_job").success

            server.stop()
            started = time.monotonic()
            down = run_job(defs, instance, "fraud_window_job", DRIFTED)
            elapsed = time.monotonic() - started
            assert not down.success
            text = failure_text(down)
            assert (
                f"s3://{BUCKET}" in text and "cannot reach the S3 endpoint" in text and f"127.0.0.1:{port}" in text
            ), text
            assert elapsed < 30, elapsed

            # Server goes away after the run started: the bucket check passes, the first read fails.
            server = _start_server(port)
            real_check = s3_module.check_bucket
            state = {"stopped": False}

            def check_then_stop(client, bucket):
                if not state["stopped"]:
                    real_check(client, bucket)
                    server.stop()
                    state["stopped"] = True

            monkeypatch.setattr(s3_module, "check_bucket", check_then_stop)
            started = time.monotonic()
            mid = run_job(defs, instance, "fraud_window_job", DRIFTED)
            elapsed = time.monotonic() - started
            monkeypatch.setattr(s3_module, "check_bucket", real_check)
            assert state["stopped"] and not mid.success
            text = failure_text(mid)
            assert s3_project.uri("data/fraud/log") in text and "NETWORK_CONNECTION" in text, text
            assert elapsed < 30, elapsed

            server = _start_server(port)
            again = run_job(defs, instance, "fraud_window_job", DRIFTED)
            assert again.success, failure_text(again)
            assert f"reports/fraud/drift/{DRIFTED}.json" in s3_project.keys()  # noqa: SIM118 - keys() lists the bucket
            assert not [k for k in s3_project.keys() if ".tmp" in k]  # noqa: SIM118 - keys() lists the bucket
    finally:
        server.stop()


def test_failed_parquet_write_leaves_no_partial_object(s3_project):
    root = Root.open(s3_project.uri("assets"), s3_project.fs)
    schema = pa.schema([("x", pa.float64())])
    good = pa.table({"x": np.arange(10, dtype=float)})
    write_parquet(root, "t/window.parquet", good)

    def broken():
        yield pa.record_batch([pa.array(np.ones(100_000))], schema=schema)
        raise RuntimeError("log file vanished half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        write_parquet(root, "t/window.parquet", BatchStream(broken(), schema=schema))
    with pytest.raises(RuntimeError):
        write_parquet(root, "t/new.parquet", BatchStream(broken(), schema=schema))
    keys = s3_project.keys()
    assert "assets/t/new.parquet" not in keys
    assert not [k for k in keys if ".tmp" in k], keys
    assert pq.read_table(f"{BUCKET}/{s3_project.prefix}/assets/t/window.parquet", filesystem=s3_project.fs).equals(good)


# --------------------------------------------------------------------------- streaming
def test_log_on_s3_is_read_in_ranged_requests_not_downloaded_whole(s3_project, monkeypatch, tmp_path):
    """A 1-of-12-columns read of a multi-row-group file issues ranged GETs only (one or a few per
    row group), for a small part of the object, and yields batches of at most BATCH_ROWS rows."""
    import requests
    from moto.moto_api import recorder

    import drift_assets.storage.tables as tables

    monkeypatch.setattr(tables, "BATCH_ROWS", 40_000)  # 240k rows -> 6 batches (the default is 256k)

    rng = np.random.default_rng(3)
    n, groups = 240_000, 6
    table = pa.table({f"c{i}": rng.normal(size=n) for i in range(12)})
    path = f"{BUCKET}/{s3_project.prefix}/data/big/date=2026-08-03/part-0.parquet"
    pq.write_table(table, path, filesystem=s3_project.fs, row_group_size=n // groups)
    size = s3_project.fs.get_file_info(path).size

    monkeypatch.setattr(recorder, "_location", str(tmp_path / "recording.jsonl"))
    recorder.reset_recording()
    requests.post(f"{s3_project.endpoint}/moto-api/recorder/start-recording", timeout=5)
    try:
        source = TableSource.open(s3_project.uri("data/big/date=2026-08-03"))
        batches = list(source.batches(["c5"]))
    finally:
        requests.post(f"{s3_project.endpoint}/moto-api/recorder/stop-recording", timeout=5)
    assert len(batches) == groups and sum(b.num_rows for b in batches) == n
    gets = [json.loads(line) for line in (tmp_path / "recording.jsonl").read_text().splitlines()]
    gets = [g for g in gets if g["method"] == "GET" and "part-0.parquet" in g["url"]]
    assert gets, "no GET of the object recorded"
    ranges = [g["headers"].get("Range") or g["headers"].get("range") for g in gets]
    assert all(ranges), "a GET without a Range header downloads the whole object"
    assert len(gets) >= groups, ranges  # the column chunk of each row group is fetched on its own
    requested = 0
    for r in ranges:
        start, end = r.removeprefix("bytes=").split("-")
        requested += int(end) - int(start) + 1
    assert requested < 0.25 * size, (requested, size)


# --------------------------------------------------------------------------- the command line
def test_cli_simulate_to_s3_and_compare_s3_paths(s3_project):
    env = {**os.environ}
    target = s3_project.uri("cli")
    sim = subprocess.run(
        [
            CLI,
            "simulate",
            "--target",
            target,
            "--only",
            "fraud",
            "--rows-per-week",
            "1400",
            "--weeks",
            "3",
            "--drift-week",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert sim.returncode == 0, sim.stdout + sim.stderr
    keys = s3_project.keys()
    assert "cli/fraud/manifest.json" in keys and "cli/fraud/reference/reference.parquet" in keys
    assert any(k.startswith("cli/fraud/log/date=2026-08-03/") and k.endswith(".parquet") for k in keys)

    # The seeded data (6 weeks, drift from 2026-08-17): a drifted day exits 1.
    ref = s3_project.uri("data/fraud/reference/reference.parquet")
    out = subprocess.run(
        [CLI, "compare", ref, s3_project.uri("data/fraud/log/date=2026-08-18"), "--monitor", "fraud", "--json", "-"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert doc["columns"]["txn_count_1h"]["drifted"] is True
    # A missing object: exit 2, one line naming it.
    missing = subprocess.run(
        [CLI, "compare", ref, s3_project.uri("data/fraud/log/date=2030-01-01")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert s3_project.uri("data/fraud/log/date=2030-01-01") in missing.stderr
