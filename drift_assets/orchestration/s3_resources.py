"""The storage resource with dagster-aws's S3 settings, for ``DRIFT_ASSETS_ENV=s3``.

A module of its own so that local storage (the default) never imports dagster-aws (~0.5 s).
"""

from __future__ import annotations

import os

from dagster_aws.s3 import S3Resource

from drift_assets.orchestration.resources import StorageResource, default_s3_resource


class S3StorageResource(StorageResource):
    """``StorageResource`` whose ``s3`` holds the connection settings (see ``StorageResource``)."""

    s3: S3Resource | None = None

    def s3_resource(self) -> S3Resource:
        return self.s3 if self.s3 is not None else default_s3_resource()


def s3_storage_resource() -> S3StorageResource:
    bucket = os.environ.get("DRIFT_ASSETS_S3_BUCKET")
    if not bucket:
        raise ValueError("DRIFT_ASSETS_ENV=s3 needs DRIFT_ASSETS_S3_BUCKET (and optionally DRIFT_ASSETS_S3_PREFIX)")
    base = f"s3://{bucket}/{os.environ.get('DRIFT_ASSETS_S3_PREFIX', 'drift_assets').strip('/')}"
    return S3StorageResource(
        data_root=f"{base}/data",
        assets_root=f"{base}/assets",
        reports_root=f"{base}/reports",
        s3=default_s3_resource(),
    )
