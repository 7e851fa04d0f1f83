"""Emulator configuration: one frozen dataclass, validated on construction.

Every option where Centra's documentation is silent has a default chosen here and a name that
docs/emulator.md explains; tests switch these to prove the pipeline does not depend on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .clock import parse_local

StatusFormat = Literal["code", "word"]
TypeStyle = Literal["docs", "observed"]
SortOrder = Literal["asc", "desc"]
WebhookEncoding = Literal["php", "rfc3986"]

# Centra's order-flow codes (Centra's order-flow overview); "word" is the alternative rendering.
STATUS_WORDS: dict[int, str] = {
    1: "pending",
    2: "confirmed",
    3: "processing",
    4: "completed",
    5: "archived",
    6: "cancelled",
}
ALL_STATUSES: tuple[int, ...] = tuple(STATUS_WORDS)
MARKET_IDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6)  # fixed by markets.MARKETS

ORDER_ENDPOINTS: tuple[str, ...] = (
    "GET /orders",
    "GET /returns",
    "GET /customers",
    "GET /customers/{id}",
    "GET /products",
    "GET /stock",
)
SHOP_ENDPOINTS: tuple[str, ...] = (
    "GET /products",
    "GET /products/{id}",
    "POST /products/filter",
    "GET /product-ids",
    "GET /categories",
    "GET /categories/{id}",
    "GET /brands",
    "GET /brands/{id}",
)
# What a merchant's own tools call, not the pipeline; emulated for its effect on what is read.
ORDER_WRITE_ENDPOINTS: tuple[str, ...] = ("PUT /anonymize-customer/{id}",)
API_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "order": ORDER_ENDPOINTS + ORDER_WRITE_ENDPOINTS,
    "shop": SHOP_ENDPOINTS,
}
FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "reset", "truncate", "slow")

_NOW_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@dataclass(frozen=True)
class PluginSettings:
    """What one Centra API plugin exposes (Order API plugin settings; docs/emulator.md).

    `None` means "all" for endpoints and markets. The secret is the API key, held in
    EmulatorConfig (order_api_key / shop_api_key) so it is set in one place.
    """

    allowed_endpoints: tuple[str, ...] | None = None
    statuses: tuple[int, ...] = ALL_STATUSES
    markets: tuple[int, ...] | None = None
    include_hold_wfp: bool = False

    def validate(self, api: str) -> None:
        known = API_ENDPOINTS[api]
        if self.allowed_endpoints is not None:
            unknown = [e for e in self.allowed_endpoints if e not in known]
            if unknown:
                raise ValueError(
                    f"{api} plugin: unknown endpoint(s) {unknown}; known: {list(known)}"
                )
        bad_status = [s for s in self.statuses if s not in STATUS_WORDS]
        if bad_status:
            raise ValueError(f"{api} plugin: unknown order status(es) {bad_status}; use 1..6")
        if self.markets is not None:
            bad_market = [m for m in self.markets if m not in MARKET_IDS]
            if bad_market:
                raise ValueError(
                    f"{api} plugin: unknown market id(s) {bad_market}; known: {list(MARKET_IDS)}"
                )


@dataclass(frozen=True)
class EmulatorConfig:
    # size and determinism
    orders: int = 500
    customers: int = 100
    products: int = 40
    returns: int | None = None  # None = orders // 10
    seed: int = 7
    now: str | None = None  # store-local "YYYY-MM-DD HH:MM:SS"; None = wall clock
    timezone: str = "Europe/Stockholm"
    history_days: int = 730
    # network
    host: str = "127.0.0.1"
    port: int = 0
    order_api_key: str | None = None  # None = random token
    shop_api_key: str | None = None
    # Order API choices where the docs are silent (docs/emulator.md)
    max_limit: int = 5000
    order_status_format: StatusFormat = "code"
    type_style: TypeStyle = "docs"
    custom_attributes: bool = True
    orders_sort: SortOrder = "asc"
    orders_newer_than_inclusive: bool = True
    orders_older_than_inclusive: bool = False
    after_filters_inclusive: bool = True  # customers created/modified, products created/modified
    product_prices_as_numbers: bool = False  # GET /products prices[].price: "329.00" or 329
    returns_offset: bool = False  # GET /returns also honours `offset` (over `page`)
    # webhooks
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_batch_size: int = 100
    webhook_timeout: float = 5.0
    webhook_retries: int = 3
    webhook_retry_delay: float = 1.0  # first retry delay; doubles (Centra: "starting from 1 s")
    webhook_encoding: WebhookEncoding = "php"
    webhook_duplicate_rate: float = 0.0
    webhook_shuffle: bool = False
    # plugins
    order_plugin: PluginSettings = field(default_factory=PluginSettings)
    shop_plugin: PluginSettings = field(default_factory=PluginSettings)
    # faults (API endpoints only)
    latency_ms: int = 0
    rate_429: float = 0.0
    retry_after: int | str = 1  # seconds, or "http-date"
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_reset: float = 0.0
    rate_truncate: float = 0.0
    rate_slow: float = 0.0
    slow_ms: int = 2000

    def __post_init__(self) -> None:
        # The checks run in this order, so a config with several errors always reports the
        # same one first.
        self._validate_sizes()
        self._validate_clock()
        self._validate_api_choices()
        self._validate_webhooks()
        self._validate_secrets()
        _require_rate("webhook_duplicate_rate", self.webhook_duplicate_rate)
        validate_fault_settings({k: getattr(self, k) for k in FAULT_RATE_NAMES}, self.retry_after)
        self.order_plugin.validate("order")
        self.shop_plugin.validate("shop")

    def _validate_sizes(self) -> None:
        for name in ("orders", "customers", "products", "history_days", "latency_ms", "slow_ms"):
            _require_int(name, getattr(self, name), minimum=0)
        _require_int("products", self.products, minimum=1)
        _require_int("history_days", self.history_days, minimum=1)
        if self.orders > 0:
            _require_int("customers", self.customers, minimum=1)
        if self.returns is not None:
            _require_int("returns", self.returns, minimum=0)
        _require_int("seed", self.seed, minimum=0)
        _require_int("port", self.port, minimum=0)
        if self.port > 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        _require_int("max_limit", self.max_limit, minimum=1)
        _require_int("webhook_batch_size", self.webhook_batch_size, minimum=1)
        if self.webhook_batch_size > 100:
            raise ValueError("webhook_batch_size must be 1..100 (Centra's plugin allows 1-100)")
        _require_int("webhook_retries", self.webhook_retries, minimum=0)
        if self.webhook_timeout <= 0 or self.webhook_retry_delay < 0:
            raise ValueError("webhook_timeout must be > 0 and webhook_retry_delay >= 0")

    def _validate_clock(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone {self.timezone!r} is not an IANA name (e.g. Europe/Stockholm)"
            ) from None
        if self.now is not None:
            try:
                if not _NOW_RE.match(self.now):
                    raise ValueError(self.now)
                parse_local(self.now)
            except ValueError:
                raise ValueError(
                    f"now {self.now!r} must be a store-local 'YYYY-MM-DD HH:MM:SS'"
                ) from None

    def _validate_api_choices(self) -> None:
        _require_choice("order_status_format", self.order_status_format, ("code", "word"))
        _require_choice("type_style", self.type_style, ("docs", "observed"))
        _require_choice("orders_sort", self.orders_sort, ("asc", "desc"))
        _require_choice("webhook_encoding", self.webhook_encoding, ("php", "rfc3986"))
        for name in ("product_prices_as_numbers", "returns_offset"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")

    def _validate_webhooks(self) -> None:
        if (self.webhook_url is None) != (self.webhook_secret is None):
            raise ValueError("webhook_url and webhook_secret must be set together")
        if self.webhook_url is not None and not self.webhook_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError(
                f"webhook_url must start with http:// or https://: {self.webhook_url!r}"
            )

    def _validate_secrets(self) -> None:
        for name in ("order_api_key", "shop_api_key", "webhook_secret"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"{name} must be a non-empty string")

    @property
    def return_count(self) -> int:
        return self.orders // 10 if self.returns is None else self.returns


FAULT_RATE_NAMES: tuple[str, ...] = (
    "rate_429",
    "rate_500",
    "rate_503",
    "rate_reset",
    "rate_truncate",
    "rate_slow",
)


def validate_fault_settings(rates: dict[str, float], retry_after: int | str) -> None:
    for name, value in rates.items():
        _require_rate(name, value)
    if sum(rates.values()) > 1.0 + 1e-9:
        raise ValueError(f"fault rates add up to more than 1: {rates}")
    if isinstance(retry_after, bool) or not (
        (isinstance(retry_after, int) and retry_after >= 0) or retry_after == "http-date"
    ):
        raise ValueError(
            f"retry_after must be seconds (int >= 0) or 'http-date', got {retry_after!r}"
        )


def _require_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _require_rate(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")


def _require_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
