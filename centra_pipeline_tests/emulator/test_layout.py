"""The emulator's modules form layers: no import cycle, counting every import (module-level,
inside functions and under TYPE_CHECKING), so each module can be read knowing only the ones
below it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import centra_pipeline.emulator

PACKAGE = Path(centra_pipeline.emulator.__file__).parent
NAME = "centra_pipeline.emulator"


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The sibling modules `path` imports, wherever in the file the import is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                target = node.module
            elif node.level == 0 and node.module and node.module.startswith(NAME + "."):
                target = node.module.removeprefix(NAME + ".")
            else:
                continue
            if target is None:  # from . import a, b
                found.update(alias.name for alias in node.names if alias.name in modules)
            else:
                found.add(target.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(NAME + "."):
                    found.add(alias.name.removeprefix(NAME + ".").split(".")[0])
    return found & modules


def _graph() -> dict[str, set[str]]:
    paths = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: _imports(path, set(paths)) - {name} for name, path in paths.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        for target in sorted(graph[name]):
            cycle = visit(target, [*path, name])
            if cycle:
                return cycle
        done.add(name)
        return None

    for name in sorted(graph):
        cycle = visit(name, [])
        if cycle:
            return cycle
    return None


def test_the_emulator_modules_have_no_import_cycle() -> None:
    graph = _graph()
    assert "emulator" in graph and "app" in graph["emulator"]  # the graph sees real imports
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_package_docstring_lists_every_module_below_its_importers() -> None:
    """The module map in the package docstring is the layering; a new module goes into it."""
    doc = centra_pipeline.emulator.__doc__ or ""
    graph = _graph()
    listed = [name for name in re.findall(r"`(\w+)`", doc) if name in graph]
    assert sorted(listed) == sorted(graph), "list each module once in the package docstring"
    position = {name: i for i, name in enumerate(listed)}
    above = [(m, t) for m, targets in graph.items() for t in targets if position[t] > position[m]]
    assert not above, f"modules importing ones listed after them: {sorted(above)}"
