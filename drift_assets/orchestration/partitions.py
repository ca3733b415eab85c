"""Partitions from a monitor's cadence: weeks start on Monday, hours on the hour, all in UTC."""

from __future__ import annotations

from dagster import DailyPartitionsDefinition, HourlyPartitionsDefinition, TimeWindowPartitionsDefinition, WeeklyPartitionsDefinition

from drift_assets.monitoring.config import MonitorConfig


def partitions_for(monitor: MonitorConfig) -> TimeWindowPartitionsDefinition:
    end = monitor.end
    if monitor.cadence == "hourly":
        fmt = "%Y-%m-%d-%H:%M"
        return HourlyPartitionsDefinition(
            start_date=monitor.start.strftime(fmt), end_date=end.strftime(fmt) if end else None, timezone="UTC"
        )
    fmt = "%Y-%m-%d"
    if monitor.cadence == "daily":
        return DailyPartitionsDefinition(
            start_date=monitor.start.strftime(fmt), end_date=end.strftime(fmt) if end else None, timezone="UTC"
        )
    return WeeklyPartitionsDefinition(
        start_date=monitor.start.strftime(fmt),
        end_date=end.strftime(fmt) if end else None,
        day_offset=1,  # Monday
        timezone="UTC",
    )
