"""The Dagster layer, and the only package that imports Dagster: asset keys, partitions, resources,
IO managers, the per-monitor asset factory, checks, jobs, schedules and sensors."""
