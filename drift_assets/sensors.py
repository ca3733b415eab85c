"""Sensors (retraining trigger, notifications) are added by the retraining and alerting layers."""

from __future__ import annotations

from drift_assets.config import MonitorConfig


def build_sensors(monitors: list[MonitorConfig]) -> list:
    return []
