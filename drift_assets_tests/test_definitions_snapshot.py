"""A snapshot of the names Dagster stores (asset keys, checks, jobs, schedules, sensors, partitions):
a rename orphans run history, check executions and sensor cursors, so it must be a deliberate change.

After an intended change: ``UPDATE_SNAPSHOTS=1 make test-fast`` rewrites the snapshot; review its diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from drift_assets.definitions import build_definitions
from drift_assets.orchestration import keys as keys_module

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def describe(defs) -> dict:
    repo = defs.get_repository_def()
    graph = defs.resolve_asset_graph()
    assets = {}
    for node in sorted(graph.asset_nodes, key=lambda n: n.key.to_user_string()):
        partitions = node.partitions_def
        assets[node.key.to_user_string()] = {
            "group": node.group_name,
            "partitions": type(partitions).__name__ if partitions else None,
            "checks": sorted(check.name for check in node.check_keys),
            "upstream": sorted(k.to_user_string() for k in node.parent_keys),
        }
    return {
        "assets": assets,
        "jobs": sorted(job.name for job in repo.get_all_jobs() if not job.name.startswith("__")),
        "schedules": {s.name: s.cron_schedule for s in sorted(repo.schedule_defs, key=lambda s: s.name)},
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "resources": sorted(defs.resources),
        "run_tags": sorted(v for k, v in vars(keys_module).items() if k.endswith("_TAG")),
    }


def test_definitions_match_the_snapshot():
    current = describe(build_definitions())
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    assert current == expected, "definitions changed: a rename orphans stored history (see this module's docstring)"


def test_the_snapshot_notices_a_new_check(monkeypatch):
    """The comparison is not vacuous: one more check on drift_report is a difference."""
    from drift_assets.stats.checks import DEFAULT_CHECKS, CheckRule

    extra = CheckRule("snapshot_probe_check", "WARN", "share", "higher", "probe")
    current = describe(build_definitions(check_table=DEFAULT_CHECKS.extended(extra)))
    expected = json.loads(SNAPSHOT.read_text())
    assert current != expected
    assert "snapshot_probe_check" in current["assets"]["fraud/drift_report"]["checks"]
