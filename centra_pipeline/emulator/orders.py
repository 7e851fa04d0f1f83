"""Orders: per-order state in numpy arrays, and the lines and unit prices each order is made of.

A million orders as Python dicts would need many gigabytes; as columns they need ~40 bytes
each. What an order *is* (its lines, payment, address) is a pure function of (seed, index),
computed with counter-based hashes (rand.Hasher); what *happens* to it (status, flags,
shipping and cancel times) lives in the arrays, and the rare cosmetic edits a tick makes to
a finished order live in a small overlay (`rev`). `order_render` turns a page of order
indices into Order API JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .catalog import Catalog
from .clock import StoreClock
from .config import EmulatorConfig
from .customers import CustomerTable
from .markets import VAT
from .money import percent_off, vat_share
from .rand import Hasher, pick_weighted

FIRST_ORDER_NUMBER = 1001
MAX_LINES = 6
_LINE_WEIGHTS = (10, 20, 25, 20, 15, 10)  # 1..6 lines, mean 3.4
_QTY_WEIGHTS = (80, 15, 5)  # qty 1..3
_DAY = 86400


@dataclass(frozen=True)
class Line:
    """What returns need to know about an order line."""

    line_id: int
    item: int  # catalog item index
    qty: int
    unit_price: int  # cents, after discounts
    unit_tax: int  # cents
    is_bundle: bool


class LineColumns(NamedTuple):
    """The line draws of a page of orders, one list per column: for the k-th order of the
    page, its line count `nlines[k]`, the item and quantity drawn for slot j (`items[j][k]`,
    `qtys[j][k]`) and its bundle item `bundle[k]` (-1 = none)."""

    nlines: list[int]
    items: list[list[int]]
    qtys: list[list[int]]
    bundle: list[int]

    def chosen(self, k: int) -> list[int]:
        """Distinct catalog items for the k-th order's top-level lines, in line order."""
        chosen: list[int] = []
        if self.bundle[k] >= 0:
            chosen.append(self.bundle[k])
        for j in range(self.nlines[k]):
            item = self.items[j][k]
            if item not in chosen and len(chosen) < self.nlines[k]:
                chosen.append(item)
        return chosen


class OrderTable:
    """All orders of the store; index i is order number FIRST_ORDER_NUMBER + i."""

    def __init__(
        self,
        cfg: EmulatorConfig,
        hasher: Hasher,
        rng: np.random.Generator,
        clock: StoreClock,
        catalog: Catalog,
        customers: CustomerTable,
        history_start: int,
        now: int,
    ) -> None:
        self.cfg = cfg
        self.hasher = hasher
        self.clock = clock
        self.catalog = catalog
        self.customers = customers
        self.rev: dict[int, int] = {}
        n = cfg.orders
        span = now - history_start
        # Sorted uniforms through sqrt: order density grows linearly towards `now`, so recent
        # days hold more (open) orders than old ones, like a growing shop.
        u = np.sort(rng.random(n))
        epoch = history_start + (np.sqrt(u) * span).astype(np.int64)
        keys = np.arange(n, dtype=np.int64)
        if n > 1:
            # Several orders per second happen in real shops (and break naive cursors).
            same = hasher.uniform(keys, "order/same-second") < 0.03
            same[0] = False
            epoch[1:][same[1:]] = epoch[:-1][same[1:]]
        epoch = np.minimum(epoch, now)
        self.epoch = epoch
        self.local = clock.to_local_array(epoch)
        self.customer = self._pick_customers(keys, epoch)
        self.market = customers.market[self.customer - 1].astype(np.int8)
        self._initial_flow(keys, now)
        self.has_return = np.zeros(n, dtype=bool)

    # generation -------------------------------------------------------------------------
    def _pick_customers(self, keys: np.ndarray, epoch: np.ndarray) -> np.ndarray:
        existing = np.searchsorted(self.customers.created, epoch, side="right")
        existing = np.maximum(existing, 1)
        return (1 + self.hasher.below(keys, "order/customer", existing)).astype(np.int32)

    def _initial_flow(self, keys: np.ndarray, now: int) -> None:
        """Status at `now` from a per-order timeline: confirm, process, ship, archive / cancel."""
        h = self.hasher
        n = keys.size
        age = now - self.epoch
        confirm = 300 + (h.uniform(keys, "flow/confirm") * _DAY).astype(np.int64)
        process = confirm + 7200 + (h.uniform(keys, "flow/process") * 2 * _DAY).astype(np.int64)
        ship = process + 7200 + (h.uniform(keys, "flow/ship") * 3 * _DAY).astype(np.int64)
        archive = ship + 30 * _DAY + (h.uniform(keys, "flow/archive") * 90 * _DAY).astype(np.int64)
        status = np.ones(n, dtype=np.int8)
        status[age >= confirm] = 2
        status[age >= process] = 3
        status[age >= ship] = 4
        status[age >= archive] = 5
        ship_epoch = np.where(status >= 4, self.epoch + ship, 0).astype(np.int64)
        cancel_delay = 3600 + (h.uniform(keys, "flow/cancel-delay") * 3 * _DAY).astype(np.int64)
        cancelled = (
            (h.uniform(keys, "flow/cancel?") < 0.05) & (age >= cancel_delay) & (cancel_delay < ship)
        )
        status[cancelled] = 6
        ship_epoch[cancelled] = 0
        cancel_epoch = np.where(cancelled, self.epoch + cancel_delay, 0).astype(np.int64)
        hold = np.zeros(n, dtype=bool)
        wfp = np.zeros(n, dtype=bool)
        stuck = h.uniform(keys, "flow/stuck")
        stuck_wfp = stuck < 0.006  # payment never arrived: pending + waitingForPayment forever
        stuck_hold = (stuck >= 0.006) & (stuck < 0.012)  # put on hold by customer service
        for mask, code in ((stuck_wfp, 1), (stuck_hold, 2)):
            status[mask] = code
            ship_epoch[mask] = 0
            cancel_epoch[mask] = 0
        wfp |= stuck_wfp | ((status == 1) & (h.uniform(keys, "flow/wfp") < 0.3))
        hold |= stuck_hold | ((status == 2) & (h.uniform(keys, "flow/hold") < 0.03))
        self.status = status
        self.ship_epoch = ship_epoch
        self.cancel_epoch = cancel_epoch
        self.hold = hold
        self.wfp = wfp

    def append(self, epochs: np.ndarray, wfp: np.ndarray) -> np.ndarray:
        """Add new pending orders (a tick); returns their indices."""
        start = self.size
        count = epochs.size
        keys = np.arange(start, start + count, dtype=np.int64)
        customers = (1 + self.hasher.below(keys, "order/customer", self.customers.n)).astype(
            np.int32
        )
        self.epoch = np.concatenate([self.epoch, epochs])
        self.local = np.concatenate([self.local, self.clock.to_local_array(epochs)])
        self.customer = np.concatenate([self.customer, customers])
        self.market = np.concatenate([self.market, self.customers.market[customers - 1]])
        self.status = np.concatenate([self.status, np.ones(count, dtype=np.int8)])
        self.ship_epoch = np.concatenate([self.ship_epoch, np.zeros(count, dtype=np.int64)])
        self.cancel_epoch = np.concatenate([self.cancel_epoch, np.zeros(count, dtype=np.int64)])
        self.hold = np.concatenate([self.hold, np.zeros(count, dtype=bool)])
        self.wfp = np.concatenate([self.wfp, wfp.astype(bool)])
        self.has_return = np.concatenate([self.has_return, np.zeros(count, dtype=bool)])
        return keys

    @property
    def size(self) -> int:
        return int(self.epoch.size)

    def index_of(self, number: int) -> int | None:
        index = number - FIRST_ORDER_NUMBER
        return index if 0 <= index < self.size else None

    # lines ------------------------------------------------------------------------------
    def line_columns(self, ix: np.ndarray) -> LineColumns:
        """The line draws of the orders at indices `ix`."""
        h = self.hasher
        cat = self.catalog
        nlines = (1 + pick_weighted(h.uniform(ix, "order/nlines"), _LINE_WEIGHTS)).tolist()
        n_regular = len(cat.regular_items)
        regular = cat.regular_item_array
        items, qtys = [], []
        for j in range(MAX_LINES):
            slot = ix * 8 + j
            items.append(regular[h.below(slot, "order/item", n_regular)].tolist())
            qtys.append((1 + pick_weighted(h.uniform(slot, "order/qty"), _QTY_WEIGHTS)).tolist())
        bundles = cat.bundle_items
        if bundles:
            has = h.uniform(ix, "order/bundle?") < 0.04
            pick = cat.bundle_item_array[h.below(ix, "order/bundle", len(bundles))]
            bundle = np.where(has, pick, -1).tolist()
        else:
            bundle = [-1] * ix.size
        return LineColumns(nlines, items, qtys, bundle)

    def lines(self, indices: list[int]) -> list[list[Line]]:
        """Top-level lines of each order at `indices` with unit prices, as rendered (used by
        returns; one draw for the whole page)."""
        columns = self.line_columns(np.asarray(indices, dtype=np.int64))
        return [self._lines_of(index, columns, k) for k, index in enumerate(indices)]

    def _lines_of(self, index: int, columns: LineColumns, k: int) -> list[Line]:
        market_i = int(self.market[index])
        vat = VAT[self.customers.base(int(self.customer[index])).country]
        auto = auto_discount_pct(self.hasher.scalar(index, "order/auto-discount"))
        number = FIRST_ORDER_NUMBER + index
        out = []
        for j, item in enumerate(columns.chosen(k)):
            _original, _campaign, price = self.unit_prices(item, market_i, auto)
            out.append(
                Line(
                    line_id=number * 10 + j + 1,
                    item=item,
                    qty=columns.qtys[j][k],
                    unit_price=price,
                    unit_tax=vat_share(price, vat),
                    is_bundle=columns.bundle[k] >= 0 and j == 0,
                )
            )
        return out

    def unit_prices(self, item: int, market_i: int, auto_pct: int) -> tuple[int, int, int]:
        """(original, after campaign, final) unit prices of a catalog item in cents. Orders use
        the base price they were placed at, never the current catalogue price."""
        product = self.catalog.products_of(item)
        return unit_prices(
            self.catalog.base_price[product.index][market_i], product.campaign_pct, auto_pct
        )


def auto_discount_pct(u: float) -> int:
    """Automatic discount ("Members x% off"): 4% of orders get 10%, 2% get 15%."""
    return 0 if u >= 0.06 else (10 if u < 0.04 else 15)


def unit_prices(original: int, campaign_pct: int, auto_pct: int) -> tuple[int, int, int]:
    """(original, after campaign, final) unit prices in cents."""
    campaign = percent_off(original, campaign_pct)
    return original, campaign, percent_off(campaign, auto_pct)
