"""The simulator's modules import one another without a cycle: every import counts,
those inside functions and under ``TYPE_CHECKING`` too (a cycle hidden that way is
still two modules that cannot be read, or changed, one without the other)."""

from __future__ import annotations

import ast
from pathlib import Path

import simulator

PACKAGE = Path(simulator.__file__).parent


def import_graph(package: Path, name: str = "simulator") -> dict[str, set[str]]:
    """Module → the modules of the same package it imports, from the source text
    (the package itself, ``__init__``, is a source but never a target)."""
    modules = {f"{name}.{path.stem}" if path.stem != "__init__" else name: path for path in package.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from simulator import fleet`` imports the submodule fleet
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            # every submodule imports its package first: that edge is no cycle of theirs
            edges |= {t for t in targets if t in modules and t not in (module, name)}
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph[module]):
            if cycle := visit(target):
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        if cycle := visit(module):
            return cycle
    return None


def test_the_simulator_package_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) >= 20 and "simulator.taps" in graph["simulator.machine"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checker_sees_cycles_hidden_in_functions_and_type_checking(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n")
    (tmp_path / "b.py").write_text("def f():\n    from pkg import c\n")
    (tmp_path / "c.py").write_text("import pkg.a\n")
    (tmp_path / "d.py").write_text("import os\nfrom pkg.a import x\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.d"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
