"""The house plan's import directions (DESIGN.md section 1), checked by parsing every module.

backend <- tensor + autograd <- ops <- nn.functional <- nn <- optim, data
                                                       <- train, diagnostics, rules, io, cli
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "retrograd"

# top-level subpackage -> retrograd subpackages it must never import (directly or lazily)
FORBIDDEN = {
    "backend": {"tensor", "autograd", "ops", "nn", "optim", "data", "train", "io", "cli", "func"},
    "parallel": {"tensor", "autograd", "ops", "nn", "optim", "data", "train", "io", "cli", "func"},
    "autograd": {"nn", "optim", "data", "train", "cli", "diagnostics", "rules"},
    "ops": {"nn", "optim", "data", "train", "cli", "diagnostics", "rules", "io"},
    "nn": {"optim", "data", "train", "cli", "diagnostics", "rules"},
    "optim": {"data", "train", "cli", "diagnostics", "rules", "ops"},
    "data": {"autograd", "ops", "nn", "optim", "train", "cli", "diagnostics", "rules", "io"},
    "io": {"nn", "optim", "data", "train", "cli"},
    "utils": {"train", "cli", "optim", "data"},
    "models": {"optim", "data", "train", "cli"},
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        yield rel, ast.parse(path.read_text(), filename=str(path))


def _retrograd_imports(tree) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "retrograd" and len(parts) > 1:
                    found.add(parts[1])
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "retrograd":
                if len(parts) > 1:
                    found.add(parts[1])
                else:
                    found.update(alias.name for alias in node.names)
    return found


def _layer(rel: pathlib.Path) -> str:
    return rel.parts[0].removesuffix(".py")


@pytest.mark.parametrize(
    "rel,tree", list(_modules()), ids=lambda v: str(v) if isinstance(v, pathlib.Path) else ""
)
def test_imports_point_down_the_layers(rel, tree):
    forbidden = FORBIDDEN.get(_layer(rel), set())
    bad = sorted(_retrograd_imports(tree) & forbidden)
    assert not bad, f"retrograd/{rel} imports {bad}, against DESIGN.md's layering"


def test_the_engine_never_names_an_op():
    tree = ast.parse((PACKAGE / "autograd" / "engine.py").read_text())
    assert "ops" not in _retrograd_imports(tree)


def test_optim_knows_parameters_not_layers():
    for path in (PACKAGE / "optim").rglob("*.py") if (PACKAGE / "optim").exists() else []:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("retrograd.nn")
            ):
                assert node.module == "retrograd.nn.parameter", f"{path.name} imports {node.module}"


def test_only_the_cli_parses_arguments():
    for rel, tree in _modules():
        if rel.name == "cli.py":
            continue
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "argparse" not in names, f"retrograd/{rel} parses arguments; only cli.py may"
