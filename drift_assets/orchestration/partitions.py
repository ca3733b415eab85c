"""Partitions from a monitor's cadence: weeks start on Monday, hours on the hour, all in UTC."""

from __future__ import annotations

from dagster import (
    DailyPartitionsDefinition,
    HourlyPartitionsDefinition,
    TimeWindowPartitionsDefinition,
    WeeklyPartitionsDefinition,
)

from drift_assets.monitoring.config import MonitorConfig
from drift_assets.monitoring.windows import partition_key


def partitions_for(monitor: MonitorConfig) -> TimeWindowPartitionsDefinition:
    bounds = {
        "start_date": partition_key(monitor.start, monitor.cadence),
        "end_date": partition_key(monitor.end, monitor.cadence) if monitor.end else None,
        "timezone": "UTC",
    }
    if monitor.cadence == "hourly":
        return HourlyPartitionsDefinition(**bounds)
    if monitor.cadence == "daily":
        return DailyPartitionsDefinition(**bounds)
    return WeeklyPartitionsDefinition(**bounds, day_offset=1)  # weeks start on Monday
