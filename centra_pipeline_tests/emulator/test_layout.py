"""The emulator's modules form layers: no import cycle, counting every import (module-level,
inside functions and under TYPE_CHECKING), so each module can be read knowing only the ones
below it; the package docstring lists them in that order."""

from __future__ import annotations

import re

import centra_pipeline.emulator
from centra_pipeline_tests.test_layout import cycles, import_graph

NAME = "centra_pipeline.emulator"


def _graph() -> dict[str, set[str]]:
    """The emulator's modules by short name (`app`, `store`), TYPE_CHECKING imports included."""
    graph = import_graph(NAME + ".", typing=True)
    short = lambda name: name.removeprefix(NAME + ".")  # noqa: E731
    return {short(m): {short(d) for d in deps} for m, deps in graph.items()}


def test_the_emulator_modules_have_no_import_cycle() -> None:
    graph = _graph()
    assert "emulator" in graph and "app" in graph["emulator"]  # the graph sees real imports
    assert cycles(graph) == []


def test_the_package_docstring_lists_every_module_below_its_importers() -> None:
    """The module map in the package docstring is the layering; a new module goes into it."""
    doc = centra_pipeline.emulator.__doc__ or ""
    graph = _graph()
    listed = [name for name in re.findall(r"`(\w+)`", doc) if name in graph]
    assert sorted(listed) == sorted(graph), "list each module once in the package docstring"
    position = {name: i for i, name in enumerate(listed)}
    above = [(m, t) for m, targets in graph.items() for t in targets if position[t] > position[m]]
    assert not above, f"modules importing ones listed after them: {sorted(above)}"
