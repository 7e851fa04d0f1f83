"""`Fleet`: several emulated Centra stores served from one process and one port, each under
its own base path `/stores/<name>` (its Order API at `/stores/<name>/api/order`, its Shop API
at `/stores/<name>/api/shop`, its admin API at `/stores/<name>/_emulator`).

with Fleet(fleet_configs(3, now="2026-01-15 12:00:00", orders=(100, 300))) as fleet:
    emu = fleet.stores["store-01"]  # an Emulator whose URLs point into the fleet
    requests.get(emu.order_api_url + "/orders",
                 headers={"API-Authorization": emu.order_api_key})
    Path("stores.toml").write_text(stores_file_text(fleet))  # for CENTRA_STORES_FILE
    os.environ.update(store_secret_env(fleet))  # the variables that file names

Each store is a whole `Emulator` (store, faults, request counts, webhooks of its own), only
served by the fleet's server instead of one of its own.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import fields
from typing import Any

from .app import App
from .config import EmulatorConfig
from .emulator import Emulator, http_url
from .server import EmulatorHTTPServer, serve_in_thread, shut_down

# A store name is a URL path segment here, and a directory and partition key in the pipeline.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
STORES_PREFIX = "/stores"
# The timezones fleet_configs gives its stores, in turn.
FLEET_TIMEZONES: tuple[str, ...] = (
    "Europe/Stockholm",
    "America/New_York",
    "Asia/Tokyo",
    "UTC",
    "Australia/Sydney",
)
FLEET_ORDERS: tuple[int, int] = (1000, 5000)
_DEFAULTS = EmulatorConfig()


class Fleet:
    """The stores named by `configs`, in that order, on one server at (host, port); the
    stores' own `host` and `port` are not used."""

    def __init__(
        self, configs: dict[str, EmulatorConfig], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        if not configs:
            raise ValueError("a fleet needs at least one store")
        bad = [name for name in configs if not _valid_name(name)]
        if bad:
            raise ValueError(
                f"store name {bad[0]!r} is not valid: use 1-63 of a-z, 0-9, '_' and '-', "
                "starting with a letter or digit"
            )
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, got {port!r}")
        self.host = host
        self.requested_port = port
        self.stores: dict[str, Emulator] = {}
        for name, cfg in configs.items():
            emu = Emulator(cfg)
            emu.mount(self._address, f"{STORES_PREFIX}/{name}")
            self.stores[name] = emu
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ----------------------------------------------------------------------------
    def start(self) -> Fleet:
        if self._server is not None:
            return self
        self._server = EmulatorHTTPServer((self.host, self.requested_port), route=self.route)
        self._thread = serve_in_thread(self._server, "centra-emulator-fleet-http")
        for emu in self.stores.values():
            if emu.webhooks is not None:
                emu.webhooks.start()
        return self

    def stop(self) -> None:
        shut_down(self._server, self._thread)
        self._server = self._thread = None
        for emu in self.stores.values():
            if emu.webhooks is not None:
                emu.webhooks.stop()

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # serving ------------------------------------------------------------------------------
    def route(self, path: str) -> tuple[App | None, str]:
        """`/stores/<name>/rest` -> (that store's app, `/rest`); anything else -> (None, path)."""
        head, _, rest = path.removeprefix(STORES_PREFIX + "/").partition("/")
        if not path.startswith(STORES_PREFIX + "/") or head not in self.stores:
            return None, path
        return self.stores[head].app, "/" + rest

    def _address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the fleet is not running; call start() or use `with`")
        return self.host, int(self._server.server_address[1])

    @property
    def port(self) -> int:
        return self._address()[1]

    @property
    def base_url(self) -> str:
        """`http://host:port`; store `x` is under `{base_url}/stores/x`."""
        return http_url(*self._address())

    @property
    def names(self) -> list[str]:
        return list(self.stores)


def _valid_name(name: object) -> bool:
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None


# configurations -----------------------------------------------------------------------------
def store_names(count: int) -> list[str]:
    """`store-01`, `store-02`, ...: zero-padded to the width of `count`, at least 2 digits."""
    width = max(2, len(str(count)))
    return [f"store-{i:0{width}d}" for i in range(1, count + 1)]


def scaled_customers(orders: int) -> int:
    """Customers for a store of `orders` orders, in the ratio of EmulatorConfig's defaults
    (500 orders, 100 customers)."""
    return max(1, orders * _DEFAULTS.customers // _DEFAULTS.orders)


def fleet_configs(
    count: int,
    *,
    seed: int = 7,
    now: str | None = None,
    orders: tuple[int, int] = FLEET_ORDERS,
    webhook_base_url: str | None = None,
    webhook_secrets: dict[str, str] | None = None,
    **common: Any,
) -> dict[str, EmulatorConfig]:
    """`count` different stores, deterministically: store i (from 0) has seed `seed + i`,
    the i-th timezone of FLEET_TIMEZONES (in turn), orders spread evenly over the `orders`
    range (smallest first) and customers scaled to them (`scaled_customers`); API keys are
    random, so each store has its own. With `webhook_base_url` each store posts its webhooks
    to `{webhook_base_url}/<name>`, signed with its own secret (`webhook_secrets[name]`, or
    a random token). `common` sets any other EmulatorConfig field for every store, and wins
    over the derived timezone and customers."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be an integer >= 1, got {count!r}")
    low, high = orders
    if not 0 <= low <= high:
        raise ValueError(f"orders must be a range (min, max) with 0 <= min <= max, got {orders}")
    for name in ("webhook_url", "webhook_secret", "host", "port"):
        if name in common:
            hint = "webhook_base_url and webhook_secrets" if "webhook" in name else "Fleet(...)"
            raise ValueError(f"{name} is set per store by fleet_configs; use {hint}")
    known = {f.name for f in fields(EmulatorConfig)}
    unknown = sorted(set(common) - known)
    if unknown:
        raise ValueError(f"unknown EmulatorConfig field(s): {', '.join(unknown)}")
    names = store_names(count)
    if webhook_base_url is None and webhook_secrets:
        raise ValueError("webhook_secrets need webhook_base_url")
    stray = sorted(set(webhook_secrets or {}) - set(names))
    if stray:
        raise ValueError(f"webhook_secrets for unknown store(s): {', '.join(stray)}")
    configs: dict[str, EmulatorConfig] = {}
    for i, name in enumerate(names):
        size = low if count == 1 else low + (high - low) * i // (count - 1)
        settings: dict[str, Any] = {
            "orders": size,
            "customers": scaled_customers(size),
            "seed": seed + i,
            "now": now,
            "timezone": FLEET_TIMEZONES[i % len(FLEET_TIMEZONES)],
            **common,
        }
        if webhook_base_url is not None:
            settings["webhook_url"] = f"{webhook_base_url.rstrip('/')}/{name}"
            settings["webhook_secret"] = (webhook_secrets or {}).get(name) or secrets.token_urlsafe(
                24
            )
        configs[name] = EmulatorConfig(**settings)
    return configs


# what points the pipeline at a fleet ----------------------------------------------------------
def env_prefix(name: str) -> str:
    """The prefix of a store's secret variables: `store-01` -> `CENTRA_STORE_01_`."""
    return "CENTRA_" + name.upper().replace("-", "_") + "_"


def _secret_variables(fleet: Fleet) -> dict[str, dict[str, tuple[str, str]]]:
    """Per store: stores-file key -> (variable, secret)."""
    by_prefix: dict[str, str] = {}
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for name, emu in fleet.stores.items():
        prefix = env_prefix(name)
        if prefix in by_prefix:
            raise ValueError(
                f"stores {by_prefix[prefix]!r} and {name!r} would share the variables {prefix}*"
            )
        by_prefix[prefix] = name
        out[name] = {
            "order_api_key_env": (prefix + "ORDER_API_KEY", emu.order_api_key),
            "shop_api_key_env": (prefix + "SHOP_API_KEY", emu.shop_api_key),
        }
        if emu.config.webhook_secret is not None:
            out[name]["webhook_secret_env"] = (prefix + "WEBHOOK_SECRET", emu.config.webhook_secret)
    return out


def store_secret_env(fleet: Fleet) -> dict[str, str]:
    """Variable -> secret for every store: what `stores_file_text(fleet)` names."""
    return {
        variable: value
        for keys in _secret_variables(fleet).values()
        for variable, value in keys.values()
    }


def stores_file_text(fleet: Fleet) -> str:
    """A TOML stores file (CENTRA_STORES_FILE) for the running fleet: one `[[stores]]` table
    per store with its URLs, timezone and the names of the variables holding its secrets
    (`store_secret_env`); never a secret itself."""
    variables = _secret_variables(fleet)
    lines = [
        "# The emulated Centra stores of one `centra-pipeline emulator --stores` fleet.",
        "# Secrets are in the environment variables named here (the emulator prints them).",
    ]
    for name, emu in fleet.stores.items():
        entry = {
            "name": name,
            "timezone": emu.config.timezone,
            "order_api_url": emu.order_api_url,
            "order_api_key_env": variables[name]["order_api_key_env"][0],
            "shop_api_url": emu.shop_api_url,
            "shop_api_key_env": variables[name]["shop_api_key_env"][0],
        }
        if "webhook_secret_env" in variables[name]:
            entry["webhook_secret_env"] = variables[name]["webhook_secret_env"][0]
        lines.append("")
        lines.append("[[stores]]")
        # A JSON string of printable text is a TOML basic string.
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in entry.items())
    return "\n".join(lines) + "\n"
