"""The `centra-pipeline verify` command: compare Centra with the analyst snapshot, per
store-local day (the comparison is `centra_pipeline.verify`).

Exit 0 when they agree, 1 on drift, 2 when it could not verify: bad input, configuration,
no snapshot, Centra unreachable or refusing. The report goes to stdout, progress and errors
to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from centra_pipeline.centra.errors import CentraError
from centra_pipeline.centra.quirks import TypeDrift
from centra_pipeline.cli.per_store import add_store_option, each_store
from centra_pipeline.settings import ConfigError, Settings
from centra_pipeline.verify.compare import verify
from centra_pipeline.verify.report import format_text, to_json
from centra_pipeline.verify.results import EXIT_CANNOT_VERIFY, VerifyError
from centra_pipeline.verify.specs import STREAM_NAMES, check_streams, parse_since


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Compare Centra (Order API) with the analyst snapshot per store-local day: orders "
        "per status and totals per currency, returns and customers per day. Reads only. "
        "Exit 0: they agree; 1: drift; 2: could not verify."
    )
    parser.add_argument(
        "--since",
        metavar="YYYY-MM-DD",
        help="only days on or after this store-local date (default: all days)",
    )
    parser.add_argument(
        "--stream",
        action="append",
        metavar="NAME",
        help=f"only this stream (repeatable): {', '.join(STREAM_NAMES)} (default all)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    add_store_option(parser)


def _progress_line(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """`centra-pipeline verify`: 0 when Centra and the snapshot agree, 1 on drift, 2 when it
    could not verify (bad input, configuration, no snapshot, Centra unreachable or refusing)."""
    as_json = bool(getattr(args, "json", False))
    try:  # bad input: refused before anything is read
        streams = check_streams(args.stream)
        since = parse_since(args.since) if args.since is not None else None
    except ValueError as exc:
        return _cannot_verify(str(exc), as_json)
    return each_store(
        args,
        lambda settings: _verify(settings, streams, since, as_json),
        fail=lambda message: _cannot_verify(message, as_json),
    )


def _verify(settings: Settings, streams: list[str], since: Any, as_json: bool) -> int:
    try:
        result = verify(settings, streams, since, progress=_progress_line)
    except (ConfigError, VerifyError, CentraError) as exc:
        return _cannot_verify(str(exc), as_json)
    except TypeDrift as exc:
        return _cannot_verify(
            f"Centra sent a value the pipeline cannot store ({exc}); a sync fails on it too",
            as_json,
        )
    if as_json:
        print(json.dumps(to_json(result), indent=2))
    else:
        print(format_text(result))
    return result.exit_code


def _cannot_verify(message: str, as_json: bool) -> int:
    print(f"centra-pipeline verify: {message}", file=sys.stderr)
    verdict = f"Could not verify: {message}"
    if as_json:
        print(json.dumps({"status": "could_not_verify", "verdict": verdict, "error": message}))
    else:
        print(verdict)
    return EXIT_CANNOT_VERIFY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="centra-pipeline verify")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
