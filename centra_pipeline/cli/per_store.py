"""`--store NAME` on the commands that act on one store's data (sync, check, state, verify,
query, forget): the command runs for each named store in turn (default: every store of the
stores file; without one, the single store `default`).

With several stores, text output gets a heading per store, `--json` output becomes one
document `{"stores": {name: document}}`, and the exit code is the worst store's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Callable

from centra_pipeline.settings import ConfigError, Settings
from centra_pipeline.stores import Stores, load_stores


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        action="append",
        metavar="NAME",
        help="only this store of CENTRA_STORES_FILE (repeatable; default every store)",
    )


def selected(args: argparse.Namespace, *, secrets: bool = True) -> tuple[Stores, list[Settings]]:
    """The deployment's stores and the ones `--store` names (ConfigError for unknown ones,
    or --store without a stores file naming anything but `default`). `secrets=False`: for
    commands that only read local files (stores.load_stores)."""
    stores = load_stores(secrets=secrets)
    return stores, stores.select(getattr(args, "store", None) or [])


def each_store(
    args: argparse.Namespace,
    body: Callable[[Settings], int],
    *,
    fail: Callable[[str], int],
    secrets: bool = True,
) -> int:
    """Run `body` for every selected store; see the module docstring for the output."""
    try:
        stores, chosen = selected(args, secrets=secrets)
    except ConfigError as exc:
        return fail(str(exc))
    if len(chosen) == 1:
        return body(chosen[0])
    if getattr(args, "json", False):
        return _as_one_document(chosen, body)
    worst = 0
    for index, settings in enumerate(chosen):
        print(f"{'' if index == 0 else chr(10)}== store {settings.store} ==", flush=True)
        worst = max(worst, body(settings))
    if stores.multi:
        print(f"\n{len(chosen)} stores; exit {worst} (the worst store's)")
    return worst


def _as_one_document(chosen: list[Settings], body: Callable[[Settings], int]) -> int:
    worst = 0
    documents: dict[str, object] = {}
    for settings in chosen:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = body(settings)
        worst = max(worst, code)
        text = buffer.getvalue().strip()
        try:
            documents[settings.store] = json.loads(text) if text else None
        except ValueError:
            documents[settings.store] = {"output": text}
    json.dump({"stores": documents, "exit_code": worst}, sys.stdout, indent=2)
    print()
    return worst
