"""``log: {kind: duckdb}`` over the fraud log on S3 (moto's S3 server on 127.0.0.1): the same rows,
counts and check results as the default reader over the same files on local disk."""

from __future__ import annotations

import contextlib
import dataclasses
import logging

import boto3
import pyarrow.fs as pafs
import pytest
from test_s3 import BUCKET, REGION, _aws_env, _start_server
from test_sql_source import WEEKS, _evaluate, _same_checks, _same_summary, fraud  # noqa: F401 - fixture

from drift_assets.monitoring.source_config import SourceSpec
from drift_assets.storage.root import Root
from drift_assets.storage.s3 import s3_filesystem

pytestmark = pytest.mark.slow  # an S3 server and a simulated fraud log


@pytest.fixture(scope="module")
def s3_data(fraud_data):
    from servers import free_port

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
        pafs.copy_files(
            str(fraud_data / "fraud" / "log"),
            f"{BUCKET}/duck/data/fraud/log",
            source_filesystem=pafs.LocalFileSystem(),
            destination_filesystem=s3_filesystem(endpoint, REGION),
        )
        yield Root.open(f"s3://{BUCKET}/duck/data")
    server.stop()


def test_duckdb_on_s3_reads_the_same_rows_as_the_default_reader_locally(fraud, s3_data):  # noqa: F811
    monitor, local, profile = fraud
    via_duckdb = dataclasses.replace(monitor, log_source=SourceSpec("duckdb", path=monitor.log))
    for key in WEEKS[1:3]:
        rows_local, _, files = _evaluate(monitor, local, profile, key)
        rows_s3, scan, duck = _evaluate(via_duckdb, s3_data, profile, key)
        assert rows_s3 == rows_local == scan.rows > 0
        assert all(f.startswith(f"{BUCKET}/duck/data/fraud/log/date=") for f in scan.files)
        _same_summary(duck, files)
        _same_checks(duck, files)
