"""Helpers shared by tests (importable: pytest puts this directory on sys.path)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
START = dt.date(2026, 8, 3)  # the simulator's default first Monday
SMALL = {"rows_per_week": 3000, "weeks": 6, "drift_week": 3, "training_rows": 20_000, "reference_rows": 10_000}


def project_dagster_home(tmp_path: Path, monkeypatch) -> Path:
    """An on-disk DAGSTER_HOME under ``tmp_path`` with the project's dagster.yaml, set for this test."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def write_monitors_file(path: Path, *, weeks: int = SMALL["weeks"], html: bool = False, **overrides) -> Path:
    """The project's monitors.yaml, cut to the fraud monitor over the simulated weeks."""
    config = yaml.safe_load((PROJECT_ROOT / "monitors.yaml").read_text())
    fraud = config["monitors"]["fraud"]
    fraud["end"] = (START + dt.timedelta(weeks=weeks)).isoformat()
    fraud.setdefault("extra", {})["html_report"] = html
    fraud.update(overrides)
    path.write_text(yaml.safe_dump({"monitors": {"fraud": fraud}}, sort_keys=False))
    return path
