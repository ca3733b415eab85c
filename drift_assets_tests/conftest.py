"""Shared fixtures: a small simulated fraud setting and definitions pointed at it.

The simulation is seeded (deterministic) and session-scoped: every test that needs data reads the
same few weeks, and tests that damage data work on their own copy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from support import PROJECT_ROOT, SMALL, write_monitors_file  # noqa: F401


@pytest.fixture(scope="session")
def fraud_data(tmp_path_factory) -> Path:
    """A data root holding ``fraud/`` with 6 weeks from 2026-08-03; drift from week 3 (2026-08-17)."""
    from drift_assets.simulate import simulate_fraud

    root = tmp_path_factory.mktemp("data")
    simulate_fraud(str(root / "fraud"), **SMALL)
    return root


@pytest.fixture
def project(tmp_path, fraud_data, monkeypatch):
    """Definitions over a private copy of the simulated data (tests may damage it)."""
    data = tmp_path / "data"
    shutil.copytree(fraud_data, data)
    monkeypatch.setenv("DRIFT_ASSETS_ENV", "local")
    monkeypatch.setenv("DRIFT_ASSETS_DATA_ROOT", str(data))
    monkeypatch.setenv("DRIFT_ASSETS_ASSETS_ROOT", str(tmp_path / "assets"))
    monkeypatch.setenv("DRIFT_ASSETS_REPORTS_ROOT", str(tmp_path / "reports"))
    monkeypatch.setenv("DRIFT_ASSETS_HTML_REPORTS", "1")
    monitors = write_monitors_file(tmp_path / "monitors.yaml")
    monkeypatch.setenv("DRIFT_ASSETS_MONITORS", str(monitors))
    return tmp_path


def pytest_configure(config):
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    # Profiles of s3:// references are cached under the project's cache dir: not the user's, in tests.
    import tempfile

    os.environ.setdefault("DRIFT_ASSETS_CACHE_DIR", tempfile.mkdtemp(prefix="drift-assets-cache-"))
