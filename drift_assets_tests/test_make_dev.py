"""`make dev` starts the UI with `dg dev` (not the superseded `dagster dev`), on the project's instance
config, and serves the reports on loopback: nothing it prints is a warning a user must puzzle over."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import requests
from servers import free_port, wait_until

pytestmark = pytest.mark.slow  # starts the webserver, daemon and a code server

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCATIONS = '{"query": "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"}'


def _environment_ready() -> bool:
    """`make dev` depends on `make setup`; run here only when that is already done (as `make test` does)."""
    status = subprocess.run(
        ["make", "-q", ".venv/.installed", ".venv-dvc/.installed"], cwd=PROJECT_ROOT, capture_output=True
    )
    return status.returncode == 0


def _location_loaded(port: int) -> bool:
    response = requests.post(
        f"http://127.0.0.1:{port}/graphql",
        data=LOCATIONS,
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    entries = response.json()["data"]["workspaceOrError"]["locationEntries"]
    return [(e["name"], e["loadStatus"]) for e in entries] == [("drift_assets", "LOADED")]


def test_make_dev_uses_dg_dev_on_the_project_instance_without_warnings(tmp_path):
    if not _environment_ready():
        pytest.skip("the project environment is not set up or is stale: run `make setup` first")
    home = tmp_path / "dagster_home"
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "probe.html").write_text("<p>report</p>")
    ui_port, reports_port = free_port(), free_port()
    log = tmp_path / "make-dev.log"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "dev", f"DEV_PORT={ui_port}", f"REPORTS_PORT={reports_port}",
             f"DAGSTER_HOME={home}", f"REPORTS_DIR={reports}"],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_until(lambda: _location_loaded(ui_port), timeout=120, message="the code location to load")
        probe = requests.get(f"http://127.0.0.1:{reports_port}/probe.html", timeout=5)
        assert probe.status_code == 200 and "report" in probe.text
        text = log.read_text(errors="replace")
        # the instance dg dev runs on is the project's config, copied into DAGSTER_HOME
        assert (home / "dagster.yaml").read_text() == (PROJECT_ROOT / "dagster.yaml").read_text()
        commands = _group_commands(process.pid)
        assert any(_runs(c, "dg", "dev") for c in commands), commands
        assert not any(_runs(c, "dagster", "dev") for c in commands), commands  # the superseded command
        for warning in ("SupersessionWarning", "superseded", "will not be used to configure Dagster"):
            assert warning not in text, f"`make dev` printed {warning!r}:\n{text[-2000:]}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the group make started: make, dg, webserver, daemon, http.server
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert wait_until(lambda: _port_closed(ui_port) and _port_closed(reports_port), timeout=30, message="ports freed")


def _runs(command: list[str], program: str, subcommand: str) -> bool:
    """Whether ``command`` is ``program subcommand ...`` (directly or as ``python .../program ...``)."""
    return any(Path(a).name == program and b == subcommand for a, b in zip(command, command[1:], strict=False))


def _group_commands(group: int) -> list[list[str]]:
    """The command lines of the processes in process group ``group`` (from /proc)."""
    commands = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[2]) == group:
            commands.append([part.decode() for part in cmdline if part])
    return commands


def _port_closed(port: int) -> bool:
    try:
        requests.get(f"http://127.0.0.1:{port}/", timeout=1)
    except requests.ConnectionError:
        return True
    return False
