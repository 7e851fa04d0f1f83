"""Returns: one per shipped order at most, created after shipping, completed later.

Return ids increase with the return date (ticks only ever add returns at the store clock), so
"newest first" is also "highest id first" outside the autumn DST hour. A return's lines are a
subset of its order's lines (bundle lines excluded), chosen by hashing the return id.
"""

from __future__ import annotations

import numpy as np

from .clock import StoreClock
from .markets import BASE_CURRENCY, MARKETS
from .money import money
from .orders import FIRST_ORDER_NUMBER, Line, OrderTable
from .products import Item
from .rand import Hasher

FIRST_RETURN_ID = 1
_DAY = 86400
_COMMENTS = ("Wrong size", "Changed my mind", "Damaged on arrival", "Godkänd retur")


def shipment_id(order_number: int) -> int:
    """Numeric shipment id (returns print it as an int next to the "<order>-1" number)."""
    return 7_000_000 + order_number


class ReturnTable:
    def __init__(
        self,
        count: int,
        orders: OrderTable,
        hasher: Hasher,
        rng: np.random.Generator,
        clock: StoreClock,
        now: int,
    ) -> None:
        self.orders = orders
        self.hasher = hasher
        self.clock = clock
        shipped = np.flatnonzero(
            (orders.status >= 4) & (orders.status <= 5) & (orders.ship_epoch + _DAY <= now)
        )
        count = min(count, shipped.size)
        chosen = np.sort(rng.choice(shipped, size=count, replace=False)) if count else shipped[:0]
        ship = orders.ship_epoch[chosen]
        window = np.minimum(30 * _DAY, now - ship - _DAY)
        epoch = ship + _DAY + (hasher.uniform(chosen, "return/delay") * window).astype(np.int64)
        order = np.argsort(epoch, kind="stable")
        self.order_index = chosen[order].astype(np.int64)
        self.epoch = epoch[order].astype(np.int64)
        self.local = clock.to_local_array(self.epoch)
        age = now - self.epoch
        u = hasher.uniform(np.arange(count, dtype=np.int64), "return/completed")
        self.completed = np.where(age > 14 * _DAY, u < 0.95, u < 0.2)
        orders.has_return[self.order_index] = True

    @property
    def size(self) -> int:
        return int(self.order_index.size)

    def index_of(self, return_id: int) -> int | None:
        index = return_id - FIRST_RETURN_ID
        return index if 0 <= index < self.size else None

    def add(self, order_indices: np.ndarray, epoch: int) -> list[int]:
        start = self.size
        count = order_indices.size
        self.order_index = np.concatenate([self.order_index, order_indices.astype(np.int64)])
        epochs = np.full(count, epoch, dtype=np.int64)
        self.epoch = np.concatenate([self.epoch, epochs])
        self.local = np.concatenate([self.local, self.clock.to_local_array(epochs)])
        self.completed = np.concatenate([self.completed, np.zeros(count, dtype=bool)])
        self.orders.has_return[order_indices] = True
        return [FIRST_RETURN_ID + start + k for k in range(count)]

    # rendering --------------------------------------------------------------------------
    def render_many(self, return_indices: list[int]) -> list[dict[str, object]]:
        """The returns at `return_indices`, their orders' lines drawn in one go."""
        order_lines = self.orders.lines([int(self.order_index[i]) for i in return_indices])
        return [self.render(i, lines) for i, lines in zip(return_indices, order_lines, strict=True)]

    def returned_lines(self, return_index: int, order_lines: list[Line]) -> list[tuple[Line, int]]:
        """(order line, returned quantity) pairs: a non-empty subset of the order's lines."""
        rid = FIRST_RETURN_ID + return_index
        lines = [ln for ln in order_lines if not ln.is_bundle]
        h = self.hasher
        picked = [ln for j, ln in enumerate(lines) if h.scalar(rid * 8 + j, "return/line") < 0.5]
        if not picked and lines:
            picked = [lines[h.scalar_below(rid, "return/first", len(lines))]]
        out = []
        for j, line in enumerate(picked):
            qty = (
                line.qty
                if line.qty == 1
                else 1 + h.scalar_below(rid * 8 + j, "return/qty", line.qty)
            )
            out.append((line, qty))
        return out

    def render(self, return_index: int, order_lines: list[Line] | None = None) -> dict[str, object]:
        """One return; `order_lines` are its order's lines when the caller drew them."""
        if order_lines is None:
            order_lines = self.orders.lines([int(self.order_index[return_index])])[0]
        h = self.hasher
        orders = self.orders
        rid = FIRST_RETURN_ID + return_index
        index = int(self.order_index[return_index])
        number = FIRST_ORDER_NUMBER + index
        market = MARKETS[int(orders.market[index])]
        lines = self.returned_lines(return_index, order_lines)
        tax = sum(line.unit_tax * qty for line, qty in lines)
        fee = h.scalar(rid, "return/fee") < 0.1
        comment_u = h.scalar(rid, "return/comment")
        return {
            "returnId": rid,
            "completed": bool(self.completed[return_index]),
            "shipment": f"{number}-1",
            "shipmentId": shipment_id(number),
            "orderId": number,
            "selectionId": h.hex32(index, "order/selection"),
            "customerId": int(orders.customer[index]),
            "date": self.clock.fmt(int(self.local[return_index])),
            "marketId": market.id,
            "pricelistId": market.pricelist_id,
            "returnCost": 0,
            "shippingCost": 0,
            "handlingCost": money(market.shipping_cents) if fee else 0,
            "voucherValue": 0,
            "taxValue": money(tax),
            "taxDeduction": 0,
            "currency": market.currency,
            "baseCurrency": BASE_CURRENCY,
            "baseCurrencyRate": market.base_rate,
            "returnToStock": h.scalar(rid, "return/stock") < 0.85,
            "comment": None
            if comment_u < 0.5
            else _COMMENTS[int((comment_u - 0.5) * 2 * len(_COMMENTS))],
            "createdFrom": "Order API" if h.scalar(rid, "return/source") < 0.3 else "Centra",
            "products": [
                _return_line(rid * 10 + k + 1, line, qty, orders.catalog.items[line.item])
                for k, (line, qty) in enumerate(lines)
            ],
        }


def _return_line(return_line_id: int, line: Line, qty: int, item: Item) -> dict[str, object]:
    variant = item.variant
    product = variant.product
    return {
        "returnLineId": return_line_id,
        "shipmentLineId": 50_000_000 + line.line_id,
        "orderLineId": line.line_id,
        "productId": product.product_id,
        "variantId": variant.variant_id,
        "productName": product.name,
        "productBrand": product.brand[1],
        "variantName": variant.name,
        "size": None if item.size == "One Size" else item.size,
        "sku": product.sku,
        "variantSku": variant.variant_sku,
        "sizeSku": item.size_sku,
        "ean": item.ean,
        "upc": item.upc,
        "quantity": qty,
        "price": money(line.unit_price),
    }
