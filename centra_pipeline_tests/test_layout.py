"""The package's shape, as docs/architecture.md describes it: layers that import downwards
only, no import cycles, the Dagster-free layers free of Dagster, and modules small enough to
read at a glance."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "centra_pipeline"
MAX_LINES = 400
# Layers that must run without Dagster: tests, the CLI's plain commands and the emulator
# use them directly, and Dagster only orchestrates them.
DAGSTER_FREE = ("centra", "streams", "storage", "sync", "webhooks", "verify", "emulator")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


MODULES = _modules()


def imports_of(path: Path, *, typing: bool = False) -> set[str]:
    """Modules `path` imports (module level or inside functions); those under
    `if TYPE_CHECKING:` only with `typing`. Relative imports are resolved."""
    tree = ast.parse(path.read_text())
    package = _module_name(path).rsplit(".", 0 if path.stem == "__init__" else 1)[0]
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if not typing and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                imported.add(candidate if candidate in MODULES else module)
    return imported


def import_graph(prefix: str = "centra_pipeline", *, typing: bool = False) -> dict[str, set[str]]:
    """Module → the modules below `prefix` it imports."""
    inside = {name: path for name, path in MODULES.items() if name.startswith(prefix)}
    return {
        name: {m for m in imports_of(path, typing=typing) if m in inside and m != name}
        for name, path in inside.items()
    }


GRAPH = import_graph()


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycles() -> None:
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The finder itself can fail: a two-module loop added to the graph is reported."""
    graph = {name: set(deps) for name, deps in GRAPH.items()}
    graph["centra_pipeline.settings"].add("centra_pipeline.storage.lake")
    graph["centra_pipeline.storage.lake"].add("centra_pipeline.settings")
    assert ["centra_pipeline.settings", "centra_pipeline.storage.lake"] in cycles(graph)
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


@pytest.mark.parametrize("layer", DAGSTER_FREE)
def test_layers_below_the_orchestration_do_not_import_dagster(layer: str) -> None:
    offenders = {
        name: sorted(m for m in imports_of(path) if m.split(".")[0] == "dagster")
        for name, path in MODULES.items()
        if name.startswith(f"centra_pipeline.{layer}")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_api_clients_know_nothing_of_the_pipeline_above_them() -> None:
    allowed = {"centra_pipeline.settings"}
    for name, deps in GRAPH.items():
        if name.startswith("centra_pipeline.centra"):
            outside = {d for d in deps if not d.startswith("centra_pipeline.centra")} - allowed
            assert not outside, f"{name} imports {sorted(outside)}"


def test_modules_are_small_enough_to_read() -> None:
    long = {
        str(path.relative_to(PACKAGE.parent)): n
        for path in MODULES.values()
        if (n := path.read_text().count("\n")) > MAX_LINES
    }
    assert long == {}


def test_a_stream_is_one_module_and_one_registry_line() -> None:
    """Every stream module defines STREAM, the registry lists each once, and no module
    outside streams/ names a stream by its name to decide how to read it."""
    import centra_pipeline.streams as streams

    modules = sorted(
        p.stem for p in (PACKAGE / "streams").glob("*.py") if "STREAM = Stream(" in p.read_text()
    )
    assert sorted(streams.STREAMS) == modules
    engine = [PACKAGE / "sync" / "extract.py", PACKAGE / "sync" / "reconcile_reads.py"]
    for path in engine:
        text = path.read_text()
        for name in streams.STREAMS:
            assert f'"{name}"' not in text, f"{path.name} special-cases the stream {name}"
