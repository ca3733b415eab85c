"""Assemble the Dagster definitions from the monitors file. Nothing else happens here."""

from __future__ import annotations

from dataclasses import replace

from dagster import Definitions

from drift_assets.monitoring.config import check_reference_files, load_monitors
from drift_assets.orchestration.environment import resources_for_environment
from drift_assets.orchestration.factory import monitor_definitions, shared_definitions
from drift_assets.stats.checks import CheckTable


def build_definitions(
    monitors_file=None, environment: str | None = None, check_table: CheckTable | None = None
) -> Definitions:
    """``check_table`` replaces every monitor's check registry (extensions in code, and tests)."""
    loaded = load_monitors(monitors_file)
    storage = resources_for_environment(environment)["storage"]
    if not storage.on_s3:
        check_reference_files(loaded, storage.data_root)
    monitors = list(loaded)
    if check_table is not None:
        monitors = [replace(m, checks=check_table) for m in monitors]
    return Definitions.merge(*(monitor_definitions(m) for m in monitors), shared_definitions(monitors, environment))


defs = build_definitions()
