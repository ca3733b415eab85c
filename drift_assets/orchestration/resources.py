"""Dagster resources (storage, compute, DVC, notifier); ``environment.resources_for_environment``
picks them.

``DRIFT_ASSETS_ENV=local`` (the default): files under the project (data/, reports/), Dagster's SQLite
instance under DAGSTER_HOME. ``DRIFT_ASSETS_ENV=s3``: the same layout under
``s3://$DRIFT_ASSETS_S3_BUCKET/$DRIFT_ASSETS_S3_PREFIX`` through dagster-aws's S3Resource settings
(endpoint ``S3_ENDPOINT_URL`` for MinIO/Ceph/moto, region ``AWS_REGION``; credentials from the
standard AWS chain, see docs/s3.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from dagster import ConfigurableResource, InitResourceContext

from drift_assets.monitoring.config import PROJECT_ROOT
from drift_assets.stats.summary import WindowSummary
from drift_assets.storage.root import Storage

if TYPE_CHECKING:  # dagster-aws costs ~0.5 s to import: loaded only for s3:// storage
    from dagster_aws.s3 import S3Resource


class StorageResource(ConfigurableResource):
    """Where inputs, asset outputs and reports live (local paths or s3:// URIs).

    With s3:// roots, ``S3StorageResource`` (``orchestration/s3_resources.py``, the subclass
    ``DRIFT_ASSETS_ENV=s3`` builds) holds dagster-aws's connection settings in ``s3``: endpoint,
    region and, if given at all, credentials as Dagster ``EnvVar``s (default: the standard AWS
    chain). Both the boto3 client (bucket check at run start, file uploads) and pyarrow's S3
    filesystem (streaming tables) are built from it. Use ``AWS_PROFILE`` rather than
    ``profile_name``: pyarrow reads the former only. Local storage never imports dagster-aws.
    """

    data_root: str
    assets_root: str
    reports_root: str

    @property
    def roots(self) -> tuple[str, str, str]:
        return self.data_root, self.assets_root, self.reports_root

    @property
    def on_s3(self) -> bool:
        return any(r.startswith("s3://") for r in self.roots)

    def s3_resource(self) -> S3Resource:
        return default_s3_resource()

    def buckets(self) -> list[str]:
        from drift_assets.storage.s3 import split_s3_uri

        return sorted({split_s3_uri(r)[0] for r in self.roots if r.startswith("s3://")})

    def storage(self) -> Storage:
        filesystem = None
        if self.on_s3:
            from drift_assets.storage.s3 import s3_filesystem

            s3 = self.s3_resource()
            filesystem = s3_filesystem(
                endpoint_url=s3.endpoint_url,
                region=s3.region_name,
                max_attempts=s3.max_attempts,
                access_key=s3.aws_access_key_id,
                secret_key=s3.aws_secret_access_key,
                session_token=s3.aws_session_token,
            )
        return Storage.at(self.data_root, self.assets_root, self.reports_root, filesystem)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """S3: ``head_bucket`` each bucket once at the start of a run, so a missing bucket, wrong
        credentials or an unreachable endpoint fail the run at once, naming the bucket."""
        if not self.on_s3:
            return
        from drift_assets.storage.s3 import check_bucket

        client = self.s3_resource().get_client()
        for bucket in self.buckets():
            check_bucket(client, bucket)

    def put_file(self, root: str, relative: str, local_path: str | Path, content_type: str | None = None) -> str:
        """Store a file produced on local disk under ``root`` ("data", "assets" or "reports"):
        on S3 through dagster-aws's boto3 client (multipart, with a content type so a browser
        opens an HTML report), locally as an atomic write. Returns the URI."""
        target = getattr(self.storage(), root)
        if target.is_local:
            return target.write_bytes(relative, Path(local_path).read_bytes())
        from drift_assets.storage.s3 import upload_file

        return upload_file(self.s3_resource().get_client(), str(local_path), target.uri_of(relative), content_type)


COMPUTE_KINDS = ("in_process", "dask")


class ComputeResource(ConfigurableResource):
    """Where a window's counts are computed.

    ``in_process`` (the default): the ``drift_report`` step streams the stored ``production_window``
    in its own process. ``dask``: the window's log files are split into one task per parquet row
    group on the Dask scheduler at ``dask_address`` (``tcp://host:port``); the reference profile is
    scattered to the workers once, each task returns its row group's counts, and the sums are added
    here (``monitoring.dask_compute``). ``dask_address: local`` (or ``local:N``) starts a
    ``LocalCluster`` of worker processes on this machine for each window instead. Workers open
    local paths or ``s3://`` URIs themselves, with their own environment's endpoint and
    credentials, so every worker must see the data root.
    Counts are equal to the in-process ones; the float sums behind means and Wasserstein distances
    agree to rounding (~1e-15 relative), so measures and checks are the same.
    """

    kind: str = "in_process"
    dask_address: str = ""

    @property
    def on_cluster(self) -> bool:
        return self.kind == "dask"

    def validate(self) -> None:
        if self.kind not in COMPUTE_KINDS:
            raise ValueError(f"compute kind must be one of {', '.join(COMPUTE_KINDS)}, got {self.kind!r}")
        if self.on_cluster and not self.dask_address.startswith(("tcp://", "tls://")):
            from drift_assets.monitoring.dask_compute import local_workers

            try:
                local = local_workers(self.dask_address)
            except ValueError:
                local = None
            if local is None:
                raise ValueError(
                    f"compute kind 'dask' needs a scheduler address like tcp://host:8786, or local[:N] for a"
                    f" LocalCluster of N workers on this machine (DRIFT_ASSETS_DASK_ADDRESS), got {self.dask_address!r}"
                )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self.validate()

    def window_summary(self, monitor, profile, window, data, estimator=None) -> WindowSummary:
        """The window's counts from the cluster (``kind='dask'`` only); with ``estimator``, the
        score counts for the performance estimate from the same tasks."""
        from drift_assets.monitoring.dask_compute import WindowRead, summarize_window_on_dask, window_locations

        if monitor.log_source is not None and monitor.log_source.kind == "postgres":
            from drift_assets.stats.errors import DriftInputError

            raise DriftInputError(
                f"{monitor.name}: compute kind 'dask' splits parquet files in row groups; this monitor's log is a"
                " PostgreSQL source (use the in_process compute)"
            )
        files = window_locations(data, monitor.log, window)
        read = WindowRead.for_monitor(monitor, window)
        return summarize_window_on_dask(self.dask_address, profile, files, read, estimator=estimator)


class DvcResource(ConfigurableResource):
    """The DVC CLI in its own virtualenv (DVC and Dagster conflict on antlr4 in one environment)."""

    executable: str = str(PROJECT_ROOT / ".venv-dvc" / "bin" / "dvc")
    template_dir: str = str(PROJECT_ROOT / "training")
    work_root: str = str(PROJECT_ROOT / ".retraining")
    timeout_seconds: float = 3600.0


class NotifierResource(ConfigurableResource):
    """A Slack-compatible webhook told about failed ERROR checks (empty: notifications off)."""

    webhook_url: str = ""
    dagster_url: str = "http://127.0.0.1:3000"


def local_storage_resource(root: Path = PROJECT_ROOT) -> StorageResource:
    return StorageResource(
        data_root=os.environ.get("DRIFT_ASSETS_DATA_ROOT", str(root / "data")),
        assets_root=os.environ.get("DRIFT_ASSETS_ASSETS_ROOT", str(root / "data" / "assets")),
        reports_root=os.environ.get("DRIFT_ASSETS_REPORTS_ROOT", str(root / "reports")),
    )


def default_s3_resource() -> S3Resource:
    """dagster-aws's S3Resource from the environment: endpoint (``S3_ENDPOINT_URL``, else the AWS
    SDKs' ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``) and region. No credentials here: boto3 and
    pyarrow both read the standard AWS chain themselves."""
    from dagster_aws.s3 import S3Resource

    from drift_assets.storage.s3 import MAX_ATTEMPTS, endpoint_from_env, region_from_env

    return S3Resource(endpoint_url=endpoint_from_env(), region_name=region_from_env(), max_attempts=MAX_ATTEMPTS)


def compute_resource() -> ComputeResource:
    """``DRIFT_ASSETS_COMPUTE=in_process|dask`` (default in_process) and, for dask,
    ``DRIFT_ASSETS_DASK_ADDRESS=tcp://host:port``. A bad value fails when definitions load."""
    resource = ComputeResource(
        kind=os.environ.get("DRIFT_ASSETS_COMPUTE", "in_process") or "in_process",
        dask_address=os.environ.get("DRIFT_ASSETS_DASK_ADDRESS", ""),
    )
    resource.validate()
    return resource
