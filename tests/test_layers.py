"""Imports flow one way: model <- engine <- spec <- machine <- timeouts <- execution.

The pure core (model, engine) never imports a parser, a validator, a database, a
clock or randomness. Checked on the source, so a violation fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "statewise"
LAYERS = [
    "errors",
    "model",
    "engine",
    "spec",
    "machine",
    "timeouts",
    "execution",
    "analysis",
    "render",
    "diff",
    "testing",
    "runtime",
    "cli",
]
FORBIDDEN_IN_CORE = {
    "yaml",
    "jsonschema",
    "sqlite3",
    "time",
    "datetime",
    "random",
    "os",
    "uuid",
    "logging",
    "socket",
    "threading",
    "asyncio",
    "io",
    "pathlib",
}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "statewise" or len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def imports(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


MODULES = sorted(
    p
    for p in PACKAGE.rglob("*.py")
    if layer_of("statewise." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)) is not None
)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_flow_down(path: Path) -> None:
    name = "statewise." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    mine = layer_of(name)
    assert mine is not None
    for imported in imports(path):
        theirs = layer_of(imported)
        assert theirs is None or theirs <= mine, f"{name} imports {imported} (upward)"
        if mine <= LAYERS.index("engine"):
            root = imported.split(".")[0]
            assert root not in FORBIDDEN_IN_CORE, f"pure core module {name} imports {imported}"


def test_every_layer_is_checked() -> None:
    seen = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in MODULES}
    assert {"errors", "model", "engine", "spec", "machine", "timeouts", "execution"} <= seen
