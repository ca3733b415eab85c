"""Schedules: each monitor's window job runs for the window that just ended.

Weekly monitors tick Monday 06:00 UTC for the previous Monday-Sunday week; hourly monitors tick at
five past the hour for the previous hour (late rows get a few minutes to land).
"""

from __future__ import annotations

from dagster import ScheduleDefinition, build_schedule_from_partitioned_job

from drift_assets.monitoring.config import MonitorConfig


def window_schedule(monitor: MonitorConfig, job) -> ScheduleDefinition:
    if monitor.cadence == "hourly":
        return build_schedule_from_partitioned_job(job, name=f"{monitor.name}_hourly_schedule", minute_of_hour=5)
    if monitor.cadence == "daily":
        return build_schedule_from_partitioned_job(
            job, name=f"{monitor.name}_daily_schedule", hour_of_day=6, minute_of_hour=0
        )
    return build_schedule_from_partitioned_job(
        job, name=f"{monitor.name}_weekly_schedule", day_of_week=1, hour_of_day=6, minute_of_hour=0
    )
