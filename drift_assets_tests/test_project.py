"""What a new user meets: pinned versions that agree, the CLI, the layering."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CLI = os.path.join(os.path.dirname(sys.executable), "drift-assets")


def test_dagster_family_versions_agree():
    """Unpinned, pip pairs dagster 1.13.28 with dagster-aws 0.11.14 (2021) without an error."""
    core = version("dagster")
    for package in ("dagster-webserver", "dagster-graphql", "dagster-pipes", "dagster-shared"):
        assert version(package) == core, package
    major, minor, patch = (int(x) for x in core.split("."))
    assert version("dagster-aws") == f"0.{minor + 16}.{patch}"


def test_evidently_and_pandas_pins():
    assert version("evidently") == "0.7.23"
    assert int(version("pandas").split(".")[0]) < 3  # evidently 0.7.23 does not import with pandas 3
    import evidently  # noqa: F401


def test_statistics_core_never_imports_dagster():
    code = (
        "import sys, drift_assets.stats; bad = [m for m in sys.modules if m.split('.')[0] == 'dagster']; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
    for path in (PROJECT_ROOT / "drift_assets" / "stats").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "dagster" for a in node.names), path
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "dagster", path


def _subcommands() -> list[str]:
    from drift_assets.cli.app import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sorted(action.choices)


def test_every_subcommand_has_help():
    commands = _subcommands()
    assert {"compare", "simulate", "demo"} <= set(commands)
    for argv in ([CLI, "--help"], [sys.executable, "-m", "drift_assets", "--help"]):
        out = subprocess.run(argv, capture_output=True, text=True)
        assert out.returncode == 0 and "compare" in out.stdout
    for command in commands:
        out = subprocess.run([CLI, command, "--help"], capture_output=True, text=True)
        assert out.returncode == 0, (command, out.stderr)
        assert "usage: drift-assets " + command in out.stdout


def test_readme_opens_with_the_two_commands_and_ci_runs_make_test():
    readme = (PROJECT_ROOT / "README.md").read_text().splitlines()
    code = [line.split("#")[0].strip() for line in readme[:8] if line.strip().startswith("make ")]
    assert code == ["make demo", "make test"]
    assert "make test" in (PROJECT_ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize(
    "name", ["pyproject.toml", "workspace.yaml", "dagster.yaml", "Makefile", "monitors.yaml", "data"]
)
def test_required_top_level_entries_exist(name):
    assert (PROJECT_ROOT / name).exists()
