"""Assemble the Dagster definitions from the monitors file. Nothing else happens here."""

from __future__ import annotations

from dagster import Definitions

from drift_assets.monitoring.config import load_monitors
from drift_assets.orchestration.factory import monitor_definitions, shared_definitions


def build_definitions(monitors_file=None, environment: str | None = None) -> Definitions:
    monitors = load_monitors(monitors_file)
    return Definitions.merge(*(monitor_definitions(m) for m in monitors), shared_definitions(monitors, environment))


defs = build_definitions()
