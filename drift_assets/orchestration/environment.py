"""Resources chosen per environment in ONE place.

``DRIFT_ASSETS_ENV=local`` (the default): files under the project (data/, reports/), Dagster's SQLite
instance under DAGSTER_HOME. ``DRIFT_ASSETS_ENV=s3``: the same layout under
``s3://$DRIFT_ASSETS_S3_BUCKET/$DRIFT_ASSETS_S3_PREFIX`` through dagster-aws's S3Resource settings.

Where a window's counts are computed: ``DRIFT_ASSETS_COMPUTE=in_process`` (the default) or ``dask``
with ``DRIFT_ASSETS_DASK_ADDRESS=tcp://host:port`` (a Dask scheduler) or ``local[:N]`` (a ``LocalCluster``;
see ``ComputeResource``).
"""

from __future__ import annotations

import os

from dagster import EnvVar

from drift_assets.orchestration.io_managers import JsonIOManager, ParquetIOManager
from drift_assets.orchestration.resources import (
    DvcResource,
    NotifierResource,
    compute_resource,
    local_storage_resource,
)


def resources_for_environment(env: str | None = None) -> dict:
    env = env or os.environ.get("DRIFT_ASSETS_ENV", "local")
    if env == "local":
        storage = local_storage_resource()
    elif env == "s3":
        from drift_assets.orchestration.s3_resources import s3_storage_resource  # dagster-aws: only here

        storage = s3_storage_resource()
    else:
        raise ValueError(f"DRIFT_ASSETS_ENV must be 'local' or 's3', got {env!r}")
    dvc_defaults = DvcResource()
    return {
        "storage": storage,
        "compute": compute_resource(),
        "parquet_io_manager": ParquetIOManager(storage=storage),
        "json_io_manager": JsonIOManager(storage=storage),
        "dvc": DvcResource(
            executable=os.environ.get("DRIFT_ASSETS_DVC", dvc_defaults.executable),
            work_root=os.environ.get("DRIFT_ASSETS_RETRAINING_DIR", dvc_defaults.work_root),
            template_dir=os.environ.get("DRIFT_ASSETS_TRAINING_TEMPLATE", dvc_defaults.template_dir),
        ),
        "notifier": NotifierResource(
            webhook_url=EnvVar("DRIFT_ASSETS_WEBHOOK_URL").get_value("") or "",
        ),
    }
