"""`centra-pipeline dev`, `demo --ui` and `demo` start the same synthetic store.

The README promises `dev` is the same as `demo --ui`, and the Quickstart gives the demo's
size; both must come from one definition. Nothing is started: the emulator is replaced by a
stand-in that records the configuration it was given and stops the command right there.
"""

from __future__ import annotations

import ast
import signal
from pathlib import Path
from typing import Any

import pytest

import centra_pipeline.emulator
from centra_pipeline.cli import dev, emulated_store, supervisor
from centra_pipeline.cli.main import build_parser

COMMANDS = {"dev": ["dev"], "demo --ui": ["demo", "--ui"], "demo": ["demo"]}
STORE_OPTIONS = ("orders", "customers", "products", "seed")


class _Stop(Exception):
    pass


def _parse(argv: list[str]) -> Any:
    return build_parser(argv[0]).parse_args(argv)


def _size(config: Any) -> tuple[Any, ...]:
    return (config.orders, config.customers, config.products, config.seed, config.timezone)


def test_dev_and_demo_ui_parse_the_same_store_options_with_the_same_defaults() -> None:
    dev, ui = _parse(COMMANDS["dev"]), _parse(COMMANDS["demo --ui"])
    assert {name: getattr(dev, name) for name in STORE_OPTIONS} == {
        name: getattr(ui, name) for name in STORE_OPTIONS
    }
    assert dev.orders == emulated_store.DEFAULT_ORDERS == 20_000  # the README Quickstart's size
    assert _size(emulated_store.store_config(dev)) == _size(emulated_store.store_config(ui))


def test_dev_demo_ui_and_demo_would_start_the_same_store(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: dict[str, Any] = {}
    command = ""

    class RecordingEmulator:
        def __init__(self, config: Any) -> None:
            built[command] = config
            raise _Stop

    monkeypatch.setattr(centra_pipeline.emulator, "Emulator", RecordingEmulator)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for command, argv in COMMANDS.items():  # noqa: B007 - read by RecordingEmulator
            args = _parse(argv)
            with pytest.raises(_Stop):
                args._run(args)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert set(built) == set(COMMANDS)
    sizes = {name: _size(config) for name, config in built.items()}
    assert sizes["dev"] == sizes["demo --ui"] == sizes["demo"], sizes
    assert sizes["dev"][0] == 20_000
    # The live setup adds its webhooks on top of the same store.
    assert built["dev"].webhook_url and built["demo --ui"].webhook_url
    assert built["demo"].webhook_url is None


def test_store_options_given_to_demo_ui_or_dev_size_the_store_alike() -> None:
    argv = ["demo", "--ui", "--orders", "900", "--customers", "70", "--products", "25"]
    args = _parse(argv)
    config = emulated_store.store_config(args)
    assert (config.orders, config.customers, config.products) == (900, 70, 25)
    dev_args = _parse(["dev", "--orders", "900", "--customers", "70", "--products", "25"])
    assert _size(emulated_store.store_config(dev_args)) == _size(config)


def _imports(module: Any) -> set[str]:
    """Every module `module` imports, function-local imports included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_store_is_defined_below_demo_and_dev_so_imports_go_one_way() -> None:
    # demo imports dev (for --ui); neither dev nor the modules below it may import demo.
    for module in (dev, emulated_store, supervisor):
        assert not any(name.startswith("centra_pipeline.cli.demo") for name in _imports(module))
    for module in (emulated_store, supervisor):
        assert not any(name.startswith("centra_pipeline.cli.dev") for name in _imports(module))
