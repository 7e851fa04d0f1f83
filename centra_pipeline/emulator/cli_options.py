"""The options of `centra-pipeline emulator` as one table: flag, type, default, help, and the
`EmulatorConfig` field each one sets.

`cli.add_arguments` builds the parser from the table and `cli.build_config` the config, so an
option that maps straight onto a config field is one row here and nothing else.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .config import ALL_STATUSES, MARKET_IDS, ORDER_ENDPOINTS, SHOP_ENDPOINTS

DEFAULT_PORT = 8081


# argument types -----------------------------------------------------------------------------
def _number(text: str, convert: Callable[[str], Any], what: str) -> Any:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def _count(text: str) -> int:
    value = _number(text, int, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _rate(text: str) -> float:
    value = _number(text, float, "a number")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


def _positive(text: str) -> int:
    value = _number(text, int, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _range(text: str) -> tuple[int, int]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN,MAX")
    low, high = (_count(part.strip()) for part in parts)
    if low > high:
        raise argparse.ArgumentTypeError(f"{text!r}: MIN must be <= MAX")
    return low, high


def _seconds(text: str) -> float:
    value = _number(text, float, "a number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def _int_list(choices: tuple[int, ...]) -> Callable[[str], tuple[int, ...]]:
    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a comma-separated list of integers"
            ) from None
        bad = [v for v in values if v not in choices]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(map(str, choices))}")
        return values

    return parse


def _retry_after(text: str) -> int | str:
    if text == "http-date":
        return text
    return _count(text)


# the table ----------------------------------------------------------------------------------
BY_HAND = ""  # Option.field of an option that build_config turns into config itself


@dataclass(frozen=True)
class Option:
    """One command-line option; `dest` (the namespace attribute) is the flag in snake case."""

    flag: str
    type: Callable[[str], Any] | None
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    action: str | None = None  # "store_true" (a switch) or "append" (repeatable)
    metavar: str | None = None
    field: str | None = None  # the EmulatorConfig field it sets, if not named like the flag

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def config_field(self) -> str:
        return self.dest if self.field is None else self.field

    def add_to(self, parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
        kwargs: dict[str, Any] = {"help": self.help}
        if self.action == "store_true":
            kwargs["action"] = self.action
        elif self.action == "append":
            # A fresh list: without the flag the namespace holds the default itself, and the
            # table (with its default) is shared by every parser.
            kwargs.update(action=self.action, default=list(self.default))
        else:
            kwargs.update(type=self.type, default=self.default, choices=self.choices)
        if self.metavar is not None:
            kwargs["metavar"] = self.metavar
        parser.add_argument(self.flag, **kwargs)


def _switch(flag: str, help: str, field: str | None = None) -> Option:
    return Option(flag, None, False, help, action="store_true", field=field)


def _denied(flag: str, help: str) -> Option:
    return Option(flag, None, [], help, action="append", metavar="ENDPOINT", field=BY_HAND)


# (group title or None for the parser itself, options); the order is the --help order.
# fmt: off
OPTION_GROUPS: tuple[tuple[str | None, tuple[Option, ...]], ...] = (
    ("store", (
        Option("--orders", _count, 500, "orders in the store (default 500)"),
        Option("--customers", _count, 100, "customers (default 100)"),
        Option("--products", _count, 40, "products, each with 1-3 variants (default 40)"),
        Option("--returns", _count, None, "returns (default: orders / 10)"),
        Option("--seed", _count, 7, "random seed; same seed, same store (default 7)"),
        Option("--now", str, None,
               "store-local clock 'YYYY-MM-DD HH:MM:SS' (default: wall clock)"),
        Option("--timezone", str, "Europe/Stockholm",
               "store timezone, IANA name (default Europe/Stockholm)"),
        Option("--history-days", _count, 730, "days of order history before now (default 730)"),
    )),
    ("network and keys", (
        Option("--host", str, "127.0.0.1", "bind address (default 127.0.0.1, loopback only)"),
        Option("--port", _count, DEFAULT_PORT,
               f"port (default {DEFAULT_PORT}; 0 = any free port)"),
        Option("--order-api-key", str, None, "Order API key (default: random)"),
        Option("--shop-api-key", str, None, "Shop API key (default: random)"),
    )),
    ("API behaviour where Centra's docs are silent (see docs/emulator.md)", (
        Option("--max-limit", _count, 5000,
               "larger `limit` values are clamped to this (default 5000)"),
        Option("--status-format", str, "code",
               "orderStatus as '1'..'6' (code) or 'pending'... (word)",
               choices=("code", "word"), field="order_status_format"),
        Option("--type-style", str, "docs",
               "docs: marketId/pricelistId/itemQty as ints; observed: as strings",
               choices=("docs", "observed")),
        Option("--orders-sort", str, "asc", "GET /orders sort by orderDate, orderId (default asc)",
               choices=("asc", "desc")),
        _switch("--no-custom-attributes", "no order_attr_* keys on orders", field=BY_HAND),
        _switch("--product-prices-as-numbers",
                'GET /products prices[].price as JSON numbers (329) instead of strings ("329.00")'),
        _switch("--returns-offset",
                "GET /returns also honours `offset` (it then takes precedence over `page`)"),
    )),
    ("plugin settings", (
        Option("--order-statuses", _int_list(ALL_STATUSES), None,
               "statuses GET /orders returns, e.g. 1,2,3,4 (default all)", field=BY_HAND),
        Option("--order-markets", _int_list(MARKET_IDS), None,
               "market ids the Order API plugin serves (default all)", field=BY_HAND),
        _switch("--include-hold-wfp", "also return orders on hold / waiting for payment",
                field=BY_HAND),
        _denied("--deny-endpoint",
                f"Order API endpoint to forbid (403), repeatable: {', '.join(ORDER_ENDPOINTS)}"),
        _denied("--deny-shop-endpoint",
                f"Shop API endpoint to forbid, repeatable; one of: {', '.join(SHOP_ENDPOINTS)}"),
    )),
    ("webhooks (Centra Webhook plugin, Integration API version)", (
        Option("--webhook-url", str, None, "receiver URL; requires --webhook-secret"),
        Option("--webhook-secret", str, None, "HMAC secret for X-Centra-Signature"),
        Option("--webhook-batch-size", _count, 100, "max events per POST, 1-100 (default 100)"),
        Option("--webhook-timeout", _seconds, 5.0, "seconds per POST (default 5)"),
        Option("--webhook-retries", _count, 3,
               "retries after a failure, delays 1, 2, 4 s (default 3)"),
        Option("--webhook-encoding", str, "php",
               "form encoding of the payload (default php: space as +)",
               choices=("php", "rfc3986")),
        Option("--webhook-duplicate-rate", _rate, 0.0, "share of events sent twice (default 0)"),
        _switch("--webhook-shuffle", "shuffle events inside each batch"),
    )),
    ("faults (API endpoints only)", (
        Option("--latency-ms", _count, 0, "added latency per API request"),
        Option("--rate-429", _rate, 0.0, "share of API requests answered 429"),
        Option("--retry-after", _retry_after, 1,
               "Retry-After of a 429: seconds or 'http-date' (default 1)"),
        Option("--rate-500", _rate, 0.0, "share answered 500"),
        Option("--rate-503", _rate, 0.0, "share answered 503"),
        Option("--rate-reset", _rate, 0.0, "share of connections reset (TCP RST)"),
        Option("--rate-truncate", _rate, 0.0, "share of bodies cut off halfway"),
        Option("--rate-slow", _rate, 0.0, "share of bodies dribbled over --slow-ms"),
        Option("--slow-ms", _count, 2000, "duration of a slow body (default 2000)"),
    )),
    ("several stores on one port, each under /stores/<name> (see docs/emulator.md)", (
        Option("--stores", _positive, None,
               "serve N stores (store-01, ...) with different seeds, sizes and timezones "
               "instead of one", metavar="N", field=BY_HAND),
        Option("--store-orders", _range, None,
               "with --stores: store sizes spread over MIN,MAX orders (default 1000,5000)",
               metavar="MIN,MAX", field=BY_HAND),
        Option("--stores-file", str, None,
               "with --stores: write a stores file (TOML, for CENTRA_STORES_FILE) here",
               metavar="PATH", field=BY_HAND),
    )),
    (None, (
        Option("--tick-every", _seconds, None,
               "tick automatically with small counts every SECONDS",
               metavar="SECONDS", field=BY_HAND),
    )),
)
# fmt: on


def options() -> Iterator[Option]:
    for _, group in OPTION_GROUPS:
        yield from group


def config_values(args: argparse.Namespace) -> dict[str, Any]:
    """The EmulatorConfig fields that options set directly, by field name."""
    return {o.config_field: getattr(args, o.dest) for o in options() if o.config_field}


# EmulatorConfig's messages name fields, the CLI user knows flags: every field whose flag is
# spelled like it can be translated.
_FIELD_FLAGS = {o.dest: o.flag for o in options() if o.config_field == o.dest}
_FIELD_NAMES = re.compile(r"\b(" + "|".join(sorted(_FIELD_FLAGS, key=len, reverse=True)) + r")\b")


def flag_names(message: str) -> str:
    """Speak in CLI flags: "webhook_url ..." -> "--webhook-url ..."."""
    return _FIELD_NAMES.sub(lambda m: _FIELD_FLAGS[m.group(1)], message)
