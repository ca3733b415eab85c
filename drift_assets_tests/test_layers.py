"""The package's architecture, enforced: which folder may import which, no import cycles (imports
inside functions included), Dagster only in the orchestration layer, no function over 80 lines."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "drift_assets"

# Layer -> the drift_assets layers it may import (itself included). Data flows one way:
# stats -> storage -> monitoring -> retraining / alerting -> orchestration -> cli.
ALLOWED = {
    "stats": {"stats"},
    "storage": {"storage", "stats.errors"},
    "monitoring": {"monitoring", "storage", "stats"},
    "retraining": {"retraining", "monitoring", "storage", "stats"},
    "alerting": {"alerting", "monitoring", "storage", "stats"},
    "orchestration": {"orchestration", "retraining", "alerting", "monitoring", "storage", "stats"},
    "simulate": {"simulate", "storage", "stats"},
    "cli": {
        "cli",
        "orchestration",
        "retraining",
        "alerting",
        "monitoring",
        "storage",
        "stats",
        "simulate",
        "definitions",
    },
    "definitions": {"orchestration", "monitoring", "stats"},
    "__main__": {"cli"},
    "__init__": set(),
}
# Third-party packages some layers must not import.
FORBIDDEN_THIRD_PARTY = {
    "stats": {
        "dagster",
        "dagster_aws",
        "evidently",
        "pandas",
        "prometheus_client",
        "boto3",
        "requests",
        "dask",
        "distributed",
    },
    "storage": {"dagster", "dagster_aws", "evidently", "prometheus_client", "dask", "distributed"},
    "monitoring": {"dagster", "dagster_aws", "prometheus_client"},
    "retraining": {"dagster", "dagster_aws", "prometheus_client", "evidently"},
    "alerting": {"dagster", "dagster_aws", "evidently"},
    "simulate": {"dagster", "dagster_aws", "evidently", "prometheus_client"},
}
MAX_FUNCTION_LINES = 80


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        yield ".".join(parts), path


def layer_of(module: str) -> str:
    return module.split(".")[0]


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every import in the file, at any depth (imports inside functions hide cycles)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from drift_assets.stats import rules` imports a module; `import compare` maybe a name:
            # both resolve to the longest known module prefix later.
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def internal_target(name: str) -> str | None:
    """``drift_assets.monitoring.config`` -> ``monitoring.config``; None for third-party names."""
    if name == "drift_assets" or not name.startswith("drift_assets."):
        return None
    return name.removeprefix("drift_assets.")


def allowed(layer: str, target: str) -> bool:
    return any(target == rule or target.startswith(rule + ".") or layer_of(target) == rule for rule in ALLOWED[layer])


def test_every_folder_has_a_rule():
    assert {layer_of(m) for m, _ in modules()} <= set(ALLOWED)


def test_layers_import_only_what_they_may():
    violations = []
    for module, path in modules():
        layer = layer_of(module)
        for name, line in imports_of(path):
            target = internal_target(name)
            if target is not None and not allowed(layer, target):
                violations.append(f"{path.relative_to(PACKAGE)}:{line} ({layer}) imports {name}")
            top = name.split(".")[0]
            if target is None and top in FORBIDDEN_THIRD_PARTY.get(layer, set()):
                violations.append(f"{path.relative_to(PACKAGE)}:{line} ({layer}) imports {top}")
    assert not violations, "\n".join(violations)


def _graph() -> dict[str, set[str]]:
    known = {m.removesuffix(".__init__") for m, _ in modules()}
    graph: dict[str, set[str]] = {}
    for module, path in modules():
        node = module.removesuffix(".__init__")
        edges = set()
        for name, _ in imports_of(path):
            target = internal_target(name)
            # `from drift_assets.stats import rules` names a module; `... import compare` a function.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != node and not node.startswith(target + "."):
                edges.add(target)
        graph[node] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    # A package's __init__ re-exporting its modules is not a cycle with them (skipped above).
    cycle = find_cycle(_graph())
    assert cycle is None, " -> ".join(cycle)


def test_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize(
    ("layer", "target", "ok"),
    [
        ("stats", "orchestration.keys", False),
        ("storage", "stats.errors", True),
        ("storage", "stats.profile", False),
        ("monitoring", "orchestration.resources", False),
        ("orchestration", "monitoring.config", True),
        ("alerting", "retraining.gate", False),
    ],
)
def test_the_rules_can_fail(layer, target, ok):
    assert allowed(layer, target) is ok


def test_no_function_over_80_lines():
    long = []
    for _, path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "\n".join(long)


def test_package_top_level_only_assembles():
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top == {"__init__.py", "__main__.py", "definitions.py"}
