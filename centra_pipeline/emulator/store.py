"""The store: catalogue, customers, orders and returns, plus plugin settings, API keys and the
clock; the queries the API endpoints page through, ticks, and the whole-store views tests use.

Everything that reads or mutates the store takes `store.lock`; a request therefore sees one
consistent version. Queries return index arrays that are cached per (store version, plugin
version, query), so paging through a result with `offset` does not re-filter a million rows
on every page.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import ticks
from .catalog import Catalog
from .catalog_render import product_row, shop_product, stock_row
from .clock import StoreClock, parse_local
from .config import API_ENDPOINTS, EmulatorConfig, PluginSettings
from .customers import CustomerTable
from .markets import MARKETS
from .order_render import render_orders
from .orders import FIRST_ORDER_NUMBER, OrderTable
from .products import Item, Variant
from .rand import Hasher
from .returns import FIRST_RETURN_ID, ReturnTable

_CACHE_ENTRIES = 8


@dataclass(frozen=True)
class OrderQuery:
    newer_than: int | None = None  # local seconds
    older_than: int | None = None
    customer_id: int | None = None


@dataclass(frozen=True)
class ReturnQuery:
    newer_than: int | None = None
    older_than: int | None = None
    return_id: int | None = None
    order_number: int | None = None
    shipment: str | None = None
    customer_id: int | None = None


@dataclass(frozen=True)
class CustomerQuery:
    created: int | None = None  # local seconds, "created after"
    modified: int | None = None
    customer_id: int | None = None  # from an email lookup; -1 = no such customer


class Store:
    def __init__(self, cfg: EmulatorConfig) -> None:
        self.cfg = cfg
        self.clock = StoreClock(cfg.timezone)
        if cfg.now is None:
            self.now = self.clock.wall_now()
        else:
            self.now = self.clock.from_local(parse_local(cfg.now))
        history_start = self.now - cfg.history_days * 86400
        self.hasher = Hasher(cfg.seed)
        rng = np.random.default_rng([cfg.seed, 1])
        self.catalog = Catalog(cfg.products, cfg.seed, history_start, self.now)
        self.customers = CustomerTable(
            cfg.customers, self.hasher, rng, self.clock, history_start, self.now
        )
        self.orders = OrderTable(
            cfg, self.hasher, rng, self.clock, self.catalog, self.customers, history_start, self.now
        )
        self.returns = ReturnTable(
            cfg.return_count, self.orders, self.hasher, rng, self.clock, self.now
        )
        self.lock = threading.RLock()
        self.version = 0
        self.plugin_version = 0
        self.ticks = 0
        self.plugins: dict[str, PluginSettings] = {
            "order": cfg.order_plugin,
            "shop": cfg.shop_plugin,
        }
        self.keys: dict[str, str] = {
            "order": cfg.order_api_key or secrets.token_urlsafe(24),
            "shop": cfg.shop_api_key or secrets.token_urlsafe(24),
        }
        self._cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    # plugin settings ----------------------------------------------------------------------
    def set_plugin(self, api: str, **changes: Any) -> PluginSettings:
        """Change plugin settings live; `secret=` changes the API key."""
        if api not in API_ENDPOINTS:
            raise ValueError(f"api must be 'order' or 'shop', got {api!r}")
        allowed = {"secret", "allowed_endpoints", "statuses", "markets", "include_hold_wfp"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise ValueError(f"unknown plugin setting(s) {unknown}; allowed: {sorted(allowed)}")
        secret = changes.pop("secret", None)
        for name in ("allowed_endpoints", "statuses", "markets"):
            if name in changes and changes[name] is not None:
                value = changes[name]
                if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
                    raise ValueError(f"{name} must be a list")
                changes[name] = tuple(value)
        if "include_hold_wfp" in changes and not isinstance(changes["include_hold_wfp"], bool):
            raise ValueError("include_hold_wfp must be true or false")
        with self.lock:
            settings = replace(self.plugins[api], **changes)
            settings.validate(api)
            if secret is not None:
                if not isinstance(secret, str) or not secret.strip():
                    raise ValueError("secret must be a non-empty string")
                self.keys[api] = secret
            self.plugins[api] = settings
            self.plugin_version += 1
            return settings

    # caching ------------------------------------------------------------------------------
    def _cached(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        full = (self.version, self.plugin_version, *key)
        hit = self._cache.get(full)
        if hit is not None:
            self._cache.move_to_end(full)
            return hit
        value = compute()
        self._cache[full] = value
        while len(self._cache) > _CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return value

    # orders -------------------------------------------------------------------------------
    def _market_indices(self, market_ids: tuple[int, ...]) -> list[int]:
        return [i for i, m in enumerate(MARKETS) if m.id in market_ids]

    def _order_visible(self) -> np.ndarray:
        def compute() -> np.ndarray:
            o = self.orders
            plugin = self.plugins["order"]
            mask = np.isin(o.status, np.asarray(plugin.statuses, dtype=np.int8))
            if plugin.markets is not None:
                mask &= np.isin(o.market, np.asarray(self._market_indices(plugin.markets)))
            if not plugin.include_hold_wfp:
                mask &= ~(o.hold | o.wfp)
            return mask

        return self._cached(("order-visible",), compute)

    def _order_sorted(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices by (orderDate as naive local time, orderId) and the sorted local times."""

        def compute() -> tuple[np.ndarray, np.ndarray]:
            perm = np.argsort(self.orders.local, kind="stable")
            return perm, self.orders.local[perm]

        return self._cached(("order-sort",), compute)

    def order_visible(self, index: int) -> bool:
        return bool(self._order_visible()[index])

    def query_orders(self, q: OrderQuery) -> np.ndarray:
        """Visible order indices matching q, in API order (orders_sort)."""

        def compute() -> np.ndarray:
            perm, local = self._order_sorted()
            lo, hi = 0, perm.size
            if q.newer_than is not None:
                side = "left" if self.cfg.orders_newer_than_inclusive else "right"
                lo = int(np.searchsorted(local, q.newer_than, side=side))
            if q.older_than is not None:
                side = "right" if self.cfg.orders_older_than_inclusive else "left"
                hi = int(np.searchsorted(local, q.older_than, side=side))
            selected = perm[lo : max(lo, hi)]
            mask = self._order_visible()[selected]
            if q.customer_id is not None:
                mask &= self.orders.customer[selected] == q.customer_id
            result = selected[mask]
            return result[::-1].copy() if self.cfg.orders_sort == "desc" else result

        return self._cached(("orders", q), compute)

    def render_orders(self, indices: np.ndarray) -> list[dict[str, object]]:
        return render_orders(self.orders, indices)

    # returns ------------------------------------------------------------------------------
    def _return_sorted(self) -> np.ndarray:
        def compute() -> np.ndarray:
            ids = np.arange(self.returns.size, dtype=np.int64)
            return np.lexsort((ids, self.returns.local))[::-1].copy()  # newest first

        return self._cached(("return-sort",), compute)

    def _return_visible(self) -> np.ndarray:
        def compute() -> np.ndarray:
            plugin = self.plugins["order"]
            if plugin.markets is None:
                return np.ones(self.returns.size, dtype=bool)
            markets = self.orders.market[self.returns.order_index]
            return np.isin(markets, np.asarray(self._market_indices(plugin.markets)))

        return self._cached(("return-visible",), compute)

    def query_returns(self, q: ReturnQuery) -> np.ndarray:
        def compute() -> np.ndarray:
            r = self.returns
            perm = self._return_sorted()
            mask = self._return_visible()[perm]
            local = r.local[perm]
            if q.newer_than is not None:
                mask &= local >= q.newer_than  # documented: inclusive
            if q.older_than is not None:
                mask &= local < q.older_than  # documented: exclusive
            if q.return_id is not None:
                mask &= perm == q.return_id - FIRST_RETURN_ID
            orders_of = r.order_index[perm]
            if q.order_number is not None:
                mask &= orders_of == q.order_number - FIRST_ORDER_NUMBER
            if q.shipment is not None:
                number, _, seq = q.shipment.partition("-")
                if number.isdigit() and seq == "1":
                    mask &= orders_of == int(number) - FIRST_ORDER_NUMBER
                else:
                    mask &= False
            if q.customer_id is not None:
                mask &= self.orders.customer[orders_of] == q.customer_id
            return perm[mask]

        return self._cached(("returns", q), compute)

    def render_returns(self, indices: np.ndarray) -> list[dict[str, object]]:
        return self.returns.render_many(indices.tolist())

    # customers ----------------------------------------------------------------------------
    def query_customers(self, q: CustomerQuery) -> np.ndarray:
        def compute() -> np.ndarray:
            c = self.customers
            mask = np.ones(c.n, dtype=bool)
            inclusive = self.cfg.after_filters_inclusive
            if q.created is not None:
                mask &= c.created_local >= q.created if inclusive else c.created_local > q.created
            if q.modified is not None:
                mask &= (
                    c.modified_local >= q.modified if inclusive else c.modified_local > q.modified
                )
            if q.customer_id is not None:
                only = np.zeros(c.n, dtype=bool)
                if q.customer_id >= 1:
                    only[q.customer_id - 1] = True
                mask &= only
            return np.flatnonzero(mask) + 1  # customer ids, ascending

        return self._cached(("customers", q), compute)

    # products -----------------------------------------------------------------------------
    def after(self, value: int, bound: int) -> bool:
        return value >= bound if self.cfg.after_filters_inclusive else value > bound

    # tick ---------------------------------------------------------------------------------
    def tick(self, counts: dict[str, int]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Advance the clock and mutate the store; returns (result, webhook events).

        `counts` is a validated request (ticks.parse_tick)."""
        with self.lock:
            self.ticks += 1
            previous = self.now
            self.now += counts["advance_seconds"]
            changed = ticks.apply(
                counts,
                catalog=self.catalog,
                customers=self.customers,
                orders=self.orders,
                returns=self.returns,
                previous=previous,
                now=self.now,
                seed=self.cfg.seed,
                tick=self.ticks,
            )
            self.version += 1
            self._cache.clear()
            stamp = self.clock.fmt_epoch(self.now)
            events = ticks.order_events(
                stamp, changed["new_order_ids"], changed["updated_order_ids"]
            )
            return {"now": stamp, **changed}, events

    def anonymize_customer(self, cid: int) -> bool:
        """`PUT /anonymize-customer/{id}` (the Order API holds the lock): False if the
        customer was anonymised before."""
        if not self.customers.anonymize(cid, self.now):
            return False
        self.version += 1
        self._cache.clear()
        return True

    # truth for tests ----------------------------------------------------------------------
    def order_numbers(self, visible_only: bool = True) -> list[int]:
        with self.lock:
            if visible_only:
                indices = self.query_orders(OrderQuery())
            else:
                perm, _ = self._order_sorted()
                indices = perm[::-1] if self.cfg.orders_sort == "desc" else perm
            return (indices + FIRST_ORDER_NUMBER).tolist()

    def render_order(self, order_number: int) -> dict[str, object] | None:
        with self.lock:
            index = self.orders.index_of(order_number)
            if index is None or not self.order_visible(index):
                return None
            return render_orders(self.orders, np.asarray([index]))[0]

    def iter_orders(
        self, visible_only: bool = True, chunk: int = 1000
    ) -> Iterator[dict[str, object]]:
        numbers = np.asarray(self.order_numbers(visible_only), dtype=np.int64) - FIRST_ORDER_NUMBER
        for start in range(0, numbers.size, chunk):
            with self.lock:
                yield from render_orders(self.orders, numbers[start : start + chunk])

    def render_return(self, return_id: int) -> dict[str, object] | None:
        with self.lock:
            index = self.returns.index_of(return_id)
            if index is None or not self._return_visible()[index]:
                return None
            return self.returns.render(index)

    def iter_returns(self) -> Iterator[dict[str, object]]:
        with self.lock:
            indices = self.query_returns(ReturnQuery())
        for index in indices.tolist():
            with self.lock:
                yield self.returns.render(index)

    def render_customer(self, customer_id: int) -> dict[str, object] | None:
        with self.lock:
            if not self.customers.exists(customer_id):
                return None
            return self.customers.render(customer_id)

    def iter_customers(self) -> Iterator[dict[str, object]]:
        for cid in range(1, self.customers.n + 1):
            with self.lock:
                yield self.customers.render(cid)

    def product_row(self, item: Item) -> dict[str, object]:
        """One GET /products row, rendered as this store's configuration says."""
        return product_row(
            self.catalog, item, self.clock, prices_as_numbers=self.cfg.product_prices_as_numbers
        )

    def iter_product_rows(self) -> Iterator[dict[str, object]]:
        for item in self.catalog.items:
            with self.lock:
                yield self.product_row(item)

    def iter_stock_rows(self) -> Iterator[dict[str, object]]:
        for item in self.catalog.items:
            with self.lock:
                yield stock_row(self.catalog, item)

    def shop_variants(self, include_inactive: bool = False) -> list[Variant]:
        return [v for v in self.catalog.variants if include_inactive or v.product.active]

    def iter_shop_products(self) -> Iterator[dict[str, object]]:
        for variant in self.shop_variants():
            with self.lock:
                yield shop_product(self.catalog, variant)

    def counts(self) -> dict[str, Any]:
        with self.lock:
            return {
                "orders": self.orders.size,
                "orders_visible": int(self._order_visible().sum()),
                "customers": self.customers.n,
                "products": len(self.catalog.products),
                "stock_items": len(self.catalog.items),
                "shop_products": len(self.shop_variants()),
                "returns": self.returns.size,
                "returns_open": int((~self.returns.completed).sum()),
                "returns_visible": int(self._return_visible().sum()),
                "now": self.clock.fmt_epoch(self.now),
                "ticks": self.ticks,
            }
