"""Ticks, the store's life over time: validating a tick request, and the steps a tick takes
(new and updated orders, new and completed returns, updated customers and products).

`apply` runs the steps in a fixed order (`Store.tick` calls it under the store lock): each
step draws from the tick's seeded RNGs, so the order of the steps is part of what makes a
seeded store reproducible.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from .catalog import Catalog
from .customers import CustomerTable
from .orders import FIRST_ORDER_NUMBER, OrderTable
from .returns import FIRST_RETURN_ID, ReturnTable

TICK_FIELDS: tuple[str, ...] = (
    "new_orders",
    "updated_orders",
    "new_returns",
    "completed_returns",
    "updated_customers",
    "updated_products",
    "advance_seconds",
)
MAX_TICK_COUNT = 1_000_000
MAX_ADVANCE_SECONDS = 366 * 86400


class TickError(ValueError):
    """The tick request is invalid; nothing was changed."""


def parse_tick(body: object) -> dict[str, int]:
    """Validate a tick request (JSON object of non-negative integer counts)."""
    if not isinstance(body, dict):
        raise TickError('tick body must be a JSON object of counts, e.g. {"new_orders": 5}')
    unknown = [key for key in body if key not in TICK_FIELDS]
    if unknown:
        raise TickError(f"unknown field {unknown[0]!r}; allowed fields: {', '.join(TICK_FIELDS)}")
    counts = {name: 0 for name in TICK_FIELDS}
    counts["advance_seconds"] = 60
    for key, value in body.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TickError(f"{key} must be a non-negative integer, got {value!r}")
        if value < 0:
            raise TickError(f"{key} must be a non-negative integer, got {value}")
        limit = MAX_ADVANCE_SECONDS if key == "advance_seconds" else MAX_TICK_COUNT
        if value > limit:
            raise TickError(f"{key} must be at most {limit}, got {value}")
        counts[key] = value
    return counts


def apply(
    counts: dict[str, int],
    *,
    catalog: Catalog,
    customers: CustomerTable,
    orders: OrderTable,
    returns: ReturnTable,
    previous: int,
    now: int,
    seed: int,
    tick: int,
) -> dict[str, list[int]]:
    """Make the changes a validated tick request asks for, the clock having moved from
    `previous` to `now`; the ids changed, by kind (the keys of a tick result)."""
    rng = np.random.default_rng([seed, 2, tick])
    prng = random.Random(f"centra-emulator-tick-{seed}-{tick}")
    existing_orders = orders.size
    existing_returns = returns.size
    new_ids = add_orders(orders, customers, counts["new_orders"], previous, now, rng)
    updated_ids = update_orders(orders, counts["updated_orders"], existing_orders, now, rng)
    new_return_ids = add_returns(orders, returns, counts["new_returns"], now, rng)
    completed_ids = complete_returns(returns, counts["completed_returns"], existing_returns, rng)
    customer_ids = update_customers(customers, counts["updated_customers"], now, rng)
    product_ids, stock_item_ids = update_products(catalog, counts["updated_products"], now, prng)
    return {
        "new_order_ids": new_ids,
        "updated_order_ids": updated_ids,
        "new_return_ids": new_return_ids,
        "completed_return_ids": completed_ids,
        "updated_customer_ids": customer_ids,
        "updated_product_ids": product_ids,
        "updated_stock_item_ids": stock_item_ids,
    }


# steps --------------------------------------------------------------------------------------
def add_orders(
    orders: OrderTable,
    customers: CustomerTable,
    count: int,
    previous: int,
    now: int,
    rng: np.random.Generator,
) -> list[int]:
    """New pending orders placed since the previous clock (5% waiting for payment); their
    order numbers."""
    if not count or not customers.n:  # every order needs a customer
        return []
    if now > previous:
        epochs = np.sort(rng.integers(previous + 1, now + 1, size=count, dtype=np.int64))
    else:
        epochs = np.full(count, now, dtype=np.int64)
    added = orders.append(epochs, rng.random(count) < 0.05)
    return (added + FIRST_ORDER_NUMBER).tolist()


def update_orders(
    orders: OrderTable, count: int, existing: int, now: int, rng: np.random.Generator
) -> list[int]:
    """Move orders among the first `existing` one step along the order flow; their numbers."""
    updated = _pick_order_updates(orders, count, existing, rng)
    for index in updated:
        _advance_order(orders, index, now, float(rng.random()))
    return [FIRST_ORDER_NUMBER + int(i) for i in updated]


def _pick_order_updates(
    orders: OrderTable, count: int, existing: int, rng: np.random.Generator
) -> list[int]:
    """Half of the updates go to open orders, the rest to any order, old ones included."""
    count = min(count, existing)
    if count == 0:
        return []
    o = orders
    open_idx = np.flatnonzero((o.status[:existing] <= 3) | o.hold[:existing] | o.wfp[:existing])
    k_open = min(open_idx.size, (count + 1) // 2)
    chosen = rng.choice(open_idx, size=k_open, replace=False) if k_open else open_idx[:0]
    rest = count - k_open
    if rest:
        pool = np.setdiff1d(np.arange(existing, dtype=np.int64), chosen, assume_unique=True)
        chosen = np.concatenate([chosen, rng.choice(pool, size=rest, replace=False)])
    return sorted(int(i) for i in chosen)


def _advance_order(o: OrderTable, index: int, now: int, u: float) -> None:
    """One visible change along Centra's order flow (or a cosmetic edit when final)."""
    status = int(o.status[index])
    if o.hold[index]:
        o.hold[index] = False  # released from hold
    elif o.wfp[index]:
        o.wfp[index] = False  # payment arrived
    elif status <= 3 and u < 0.1:
        o.status[index] = 6
        o.cancel_epoch[index] = now
        o.ship_epoch[index] = 0
    elif status == 1:
        o.status[index] = 2
    elif status == 2:
        o.status[index] = 3
    elif status == 3:
        o.status[index] = 4
        o.ship_epoch[index] = now
    elif status == 4:
        o.status[index] = 5
    else:
        # Archived or cancelled: change something visible (tracking, internal comment) so
        # an "updated" order always differs from what a client fetched before.
        o.rev[index] = o.rev.get(index, 0) + 1


def add_returns(
    orders: OrderTable, returns: ReturnTable, count: int, now: int, rng: np.random.Generator
) -> list[int]:
    """Returns for shipped orders that have none yet; their return ids."""
    eligible = np.flatnonzero(
        (orders.status >= 4)
        & (orders.status <= 5)
        & ~orders.has_return
        & (orders.ship_epoch > 0)
        & (orders.ship_epoch <= now)
    )
    k = min(count, eligible.size)
    picks = np.sort(rng.choice(eligible, size=k, replace=False)) if k else eligible[:0]
    return returns.add(picks, now)


def complete_returns(
    returns: ReturnTable, count: int, existing: int, rng: np.random.Generator
) -> list[int]:
    """Complete open returns among the first `existing` (not the ones this tick added)."""
    open_returns = np.flatnonzero(~returns.completed[:existing])
    k = min(count, open_returns.size)
    done = np.sort(rng.choice(open_returns, size=k, replace=False)) if k else open_returns[:0]
    returns.completed[done] = True
    return (done + FIRST_RETURN_ID).tolist()


def update_customers(
    customers: CustomerTable, count: int, now: int, rng: np.random.Generator
) -> list[int]:
    k = min(count, customers.n)
    customer_ids = (
        (np.sort(rng.choice(customers.n, size=k, replace=False)) + 1).tolist() if k else []
    )
    for cid in customer_ids:
        customers.touch(cid, now)
    return customer_ids


def update_products(
    catalog: Catalog, count: int, now: int, prng: random.Random
) -> tuple[list[int], list[int]]:
    """New prices and stock for some products: (product ids, stock item ids touched)."""
    k = min(count, len(catalog.products))
    product_indices = sorted(prng.sample(range(len(catalog.products)), k))
    stock_item_ids: list[int] = []
    for p in product_indices:
        stock_item_ids.extend(catalog.touch_product(p, now, prng))
    return [catalog.products[p].product_id for p in product_indices], stock_item_ids


def order_events(stamp: str, new_ids: list[int], updated_ids: list[int]) -> list[dict[str, Any]]:
    """The webhook events of a tick: one per new order (insert) and updated order (update)."""
    actions = [("insert", i) for i in new_ids] + [("update", i) for i in updated_ids]
    return [
        {"type": "order", "action": action, "date": f"{stamp}.{k % 1_000_000:06d}", "id": oid}
        for k, (action, oid) in enumerate(actions)
    ]
