"""Dagster resources, chosen per environment in ONE place: ``resources_for_environment``.

``DRIFT_ASSETS_ENV=local`` (the default): files under the project (data/, reports/), Dagster's SQLite
instance under DAGSTER_HOME. ``DRIFT_ASSETS_ENV=s3``: the same layout under
``s3://$DRIFT_ASSETS_S3_BUCKET/$DRIFT_ASSETS_S3_PREFIX`` through dagster-aws's S3Resource settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource, EnvVar

from drift_assets.config import PROJECT_ROOT
from drift_assets.storage import Storage


class StorageResource(ConfigurableResource):
    """Where inputs, asset outputs and reports live (local paths or s3:// URIs)."""

    data_root: str
    assets_root: str
    reports_root: str
    s3_endpoint_url: str | None = None
    s3_region: str | None = None

    def storage(self) -> Storage:
        filesystem = None
        if self.data_root.startswith("s3://"):
            from drift_assets.s3 import s3_filesystem

            filesystem = s3_filesystem(endpoint_url=self.s3_endpoint_url, region=self.s3_region)
        return Storage.at(self.data_root, self.assets_root, self.reports_root, filesystem)


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


def s3_storage_resource() -> StorageResource:
    bucket = os.environ.get("DRIFT_ASSETS_S3_BUCKET")
    if not bucket:
        raise ValueError("DRIFT_ASSETS_ENV=s3 needs DRIFT_ASSETS_S3_BUCKET (and optionally DRIFT_ASSETS_S3_PREFIX)")
    base = f"s3://{bucket}/{os.environ.get('DRIFT_ASSETS_S3_PREFIX', 'drift_assets').strip('/')}"
    return StorageResource(
        data_root=f"{base}/data",
        assets_root=f"{base}/assets",
        reports_root=f"{base}/reports",
        s3_endpoint_url=os.environ.get("S3_ENDPOINT_URL") or None,
        s3_region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
    )


def resources_for_environment(env: str | None = None) -> dict:
    env = env or os.environ.get("DRIFT_ASSETS_ENV", "local")
    if env == "local":
        storage = local_storage_resource()
    elif env == "s3":
        storage = s3_storage_resource()
    else:
        raise ValueError(f"DRIFT_ASSETS_ENV must be 'local' or 's3', got {env!r}")
    from drift_assets.io_managers import JsonIOManager, ParquetIOManager

    dvc_defaults = DvcResource()
    return {
        "storage": storage,
        "parquet_io_manager": ParquetIOManager(storage=storage),
        "json_io_manager": JsonIOManager(storage=storage),
        "dvc": DvcResource(
            executable=os.environ.get("DRIFT_ASSETS_DVC", dvc_defaults.executable),
            work_root=os.environ.get("DRIFT_ASSETS_RETRAINING_DIR", dvc_defaults.work_root),
        ),
        "notifier": NotifierResource(
            webhook_url=EnvVar("DRIFT_ASSETS_WEBHOOK_URL").get_value("") or "",
        ),
    }
