"""Orders: per-order state in numpy arrays, JSON objects rendered on demand.

A million orders as Python dicts would need many gigabytes; as columns they need ~40 bytes
each. What an order *is* (its lines, payment, address) is a pure function of (seed, index),
computed with counter-based hashes (rand.Hasher); what *happens* to it (status, flags,
shipping and cancel times) lives in the arrays, and the rare cosmetic edits a tick makes to
a finished order live in a small overlay (`rev`). Rendering a page hashes the page's indices
column by column, then one tight Python loop builds the dicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalog import MARKETS, VAT, Catalog, Item, money, money_label
from .clock import ZERO_DATE, StoreClock
from .config import STATUS_WORDS, EmulatorConfig
from .customers import CustomerTable
from .rand import Hasher, pick_weighted

FIRST_ORDER_NUMBER = 1001
MAX_LINES = 6
_LINE_WEIGHTS = (10, 20, 25, 20, 15, 10)  # 1..6 lines, mean 3.4
_QTY_WEIGHTS = (80, 15, 5)  # qty 1..3
_PAYMENTS = (
    ("klarna_checkout_v3", "3rd", "Klarna Checkout v3", "klarna"),
    ("adyen_drop_in", "cc", "Adyen Drop-In", "card"),
    ("paypal_commerce", "3rd", "PayPal Commerce", "paypal"),
    ("invoice", "inv", "Invoice", None),
)
_CARRIERS = (
    ("PostNord", "MyPack Home", "https://tracking.postnord.example/track/"),
    ("DHL Express", "Express Worldwide", "https://www.dhl.example/track?id="),
    ("UPS", "Standard", "https://www.ups.example/track/"),
)
_WAREHOUSE = "Main Warehouse"
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
    def _line_columns(
        self, ix: np.ndarray
    ) -> tuple[list[int], list[list[int]], list[list[int]], list[int]]:
        """Per order: line count, item per slot, qty per slot, bundle item (-1 = none)."""
        h = self.hasher
        cat = self.catalog
        nlines = (1 + pick_weighted(h.uniform(ix, "order/nlines"), _LINE_WEIGHTS)).tolist()
        n_regular = len(cat.regular_items)
        regular = np.asarray(cat.regular_items, dtype=np.int64)
        items, qtys = [], []
        for j in range(MAX_LINES):
            slot = ix * 8 + j
            items.append(regular[h.below(slot, "order/item", n_regular)].tolist())
            qtys.append((1 + pick_weighted(h.uniform(slot, "order/qty"), _QTY_WEIGHTS)).tolist())
        bundles = cat.bundle_items
        if bundles:
            has = h.uniform(ix, "order/bundle?") < 0.04
            pick = np.asarray(bundles, dtype=np.int64)[h.below(ix, "order/bundle", len(bundles))]
            bundle = np.where(has, pick, -1).tolist()
        else:
            bundle = [-1] * ix.size
        return nlines, items, qtys, bundle

    def _slots(
        self, k: int, nlines: list[int], items: list[list[int]], bundle: list[int]
    ) -> list[int]:
        """Distinct catalog items for order k's top-level lines, in line order."""
        chosen: list[int] = []
        if bundle[k] >= 0:
            chosen.append(bundle[k])
        for j in range(nlines[k]):
            item = items[j][k]
            if item not in chosen and len(chosen) < nlines[k]:
                chosen.append(item)
        return chosen

    def lines(self, index: int) -> list[Line]:
        """Top-level lines of one order with unit prices, as rendered (used by returns)."""
        ix = np.asarray([index], dtype=np.int64)
        nlines, items, qtys, bundle = self._line_columns(ix)
        market_i = int(self.market[index])
        vat = VAT[self.customers.base(int(self.customer[index])).country]
        auto = _auto_pct(self.hasher.scalar(index, "order/auto-discount"))
        number = FIRST_ORDER_NUMBER + index
        out = []
        for j, item in enumerate(self._slots(0, nlines, items, bundle)):
            _original, _campaign, price = self._unit_prices(item, market_i, auto)
            out.append(
                Line(
                    line_id=number * 10 + j + 1,
                    item=item,
                    qty=qtys[j][0],
                    unit_price=price,
                    unit_tax=_tax(price, vat),
                    is_bundle=bundle[0] >= 0 and j == 0,
                )
            )
        return out

    def _unit_prices(self, item: int, market_i: int, auto_pct: int) -> tuple[int, int, int]:
        product = self.catalog.products_of(item)
        return _unit_prices(
            self.catalog.base_price[product.index][market_i], product.campaign_pct, auto_pct
        )

    # rendering --------------------------------------------------------------------------
    def render_many(self, indices: np.ndarray) -> list[dict[str, object]]:
        ix = np.asarray(indices, dtype=np.int64)
        if ix.size == 0:
            return []
        h = self.hasher
        cfg = self.cfg
        clock = self.clock
        fmt = clock.fmt
        cat = self.catalog
        customers = self.customers
        observed = cfg.type_style == "observed"
        words = cfg.order_status_format == "word"

        status = self.status[ix].tolist()
        hold = self.hold[ix].tolist()
        wfp = self.wfp[ix].tolist()
        market = self.market[ix].tolist()
        customer = self.customer[ix].tolist()
        local = self.local[ix].tolist()
        ship_epoch = self.ship_epoch[ix]
        ship_local = np.where(ship_epoch > 0, clock.to_local_array(ship_epoch), 0).tolist()
        cancel_epoch = self.cancel_epoch[ix]
        cancel_local = np.where(cancel_epoch > 0, clock.to_local_array(cancel_epoch), 0).tolist()
        nlines, items, qtys, bundle = self._line_columns(ix)
        u_auto = h.uniform(ix, "order/auto-discount").tolist()
        u_voucher = h.uniform(ix, "order/voucher").tolist()
        payment = h.below(ix, "order/payment", len(_PAYMENTS)).tolist()
        carrier = h.below(ix, "order/carrier", len(_CARRIERS)).tolist()
        express = (h.uniform(ix, "order/express") < 0.2).tolist()
        eta_days = (2 + h.below(ix, "order/eta", 6)).tolist()
        preferred = (h.uniform(ix, "order/preferred") < 0.1).tolist()
        attrs = (h.uniform(ix, "order/attributes") < 0.1).tolist()
        note = (h.uniform(ix, "order/note") < 0.05).tolist()
        suspect = (h.uniform(ix, "order/suspect") < 0.005).tolist()
        tracking = h.below(ix, "order/tracking", 10**10).tolist()
        ip = h.below(ix, "order/ip", 254).tolist()
        rev_map = self.rev
        items_all = cat.items
        base_price = cat.base_price

        out: list[dict[str, object]] = []
        for k, index in enumerate(ix.tolist()):
            number = FIRST_ORDER_NUMBER + index
            m_i = market[k]
            mk = MARKETS[m_i]
            currency = mk.currency
            cust = customers.base(customer[k])
            vat = VAT[cust.country]
            auto_pct = _auto_pct(u_auto[k])
            st = status[k]
            rev = rev_map.get(index, 0)

            lines = []
            items_total = tax_total = discount_total = auto_total = 0
            chosen = self._slots(k, nlines, items, bundle)
            for j, item_i in enumerate(chosen):
                item = items_all[item_i]
                variant = item.variant
                product = variant.product
                qty = qtys[j][k]
                original, campaign, price = _unit_prices(
                    base_price[product.index][m_i], product.campaign_pct, auto_pct
                )
                auto_total += (campaign - price) * qty
                unit_tax = _tax(price, vat)
                total = price * qty
                items_total += total
                tax_total += unit_tax * qty
                discount_total += (original - price) * qty
                line_id = number * 10 + j + 1
                line = _line_dict(line_id, item, qty, original, price, unit_tax, vat, observed)
                if product.is_bundle and product.bundle_items:
                    line["isBundle"] = True
                    line["bundle"] = self._bundle_components(
                        product.bundle_items, line_id, number, qty, price, m_i, vat, observed
                    )
                lines.append(line)

            shipping = 0 if items_total >= mk.free_shipping_from_cents else mk.shipping_cents
            if express[k]:
                shipping = shipping * 2 or mk.shipping_cents
            voucher = 0
            if u_voucher[k] < 0.08:
                voucher = max(100, items_total // 10 // 100 * 100)
            grand = items_total + shipping - voucher
            grand_tax = _tax(grand, vat)
            discount_sum = voucher + auto_total

            shipments = []
            if st == 3:
                shipments.append(_shipment(number, ZERO_DATE, "", "", "", "", ""))
            elif st in (4, 5):
                name, service, url = _CARRIERS[carrier[k]]
                tracking_id = f"{tracking[k]:010d}" + (f"-{rev}" if rev else "")
                shipments.append(
                    _shipment(
                        number,
                        fmt(ship_local[k]),
                        name,
                        service,
                        tracking_id,
                        url + tracking_id,
                        f"RS{tracking[k] % 10**8:08d}" if st == 5 else "",
                    )
                )
            pay = _PAYMENTS[payment[k]]
            day = local[k] - local[k] % _DAY
            order = {
                "orderId": str(number),
                "selectionId": h.hex32(index, "order/selection"),
                "orderStatus": STATUS_WORDS[st] if words else str(st),
                "orderDate": fmt(local[k]),
                "cancelDate": fmt(cancel_local[k]) if cancel_local[k] else ZERO_DATE,
                "preferredDeliveryDate": fmt(day + 5 * _DAY) if preferred[k] else ZERO_DATE,
                "estimatedDeliveryDate": fmt(day + eta_days[k] * _DAY),
                "orderStore": "retail",
                "orderCurrency": currency,
                "customerId": str(customer[k]),
                "accountId": "",
                "deliveryName": f"{cust.first} {cust.last}",
                "deliveryCompany": "",
                "deliveryEmail": cust.email,
                "deliveryCell": cust.phone,
                "deliveryTele": "",
                "deliveryAddress": cust.address,
                "deliveryCoaddress": "",
                "deliveryZipcode": cust.zipcode,
                "deliveryCity": cust.city,
                "deliveryState": cust.state,
                "deliveryCountry": cust.country,
                "billingName": f"{cust.first} {cust.last}",
                "billingCompany": "",
                "billingEmail": cust.email,
                "billingTele": cust.phone,
                "billingAddress": cust.address,
                "billingCoaddress": "",
                "billingZipcode": cust.zipcode,
                "billingCity": cust.city,
                "billingState": cust.state,
                "billingCountry": cust.country,
                "billingVAT": "",
                "poNumber": "",
                "shippingList": "express" if express[k] else "standard",
                "suspect": 1 if suspect[k] else 0,
                "internalOrder": 0,
                "hold": 1 if hold[k] else 0,
                "waitingForPayment": 1 if wfp[k] else 0,
                "shippingValue": money(shipping),
                "voucherValue": money(-voucher),
                "grandTotalValue": money(grand),
                "grandTotalTaxValue": money(grand_tax),
                "taxAdded": 0,
                "taxDeducted": 0,
                "internalComment": f"Updated by customer service (revision {rev})" if rev else "",
                "otherComment": "Please leave the parcel at the door." if note[k] else "",
                "marketId": str(mk.id) if observed else mk.id,
                "pricelistId": str(mk.pricelist_id) if observed else mk.pricelist_id,
                "ipAddress": f"203.0.113.{ip[k] + 1}",
                "paymentPlugin": pay[0],
                "paymentType": pay[1],
                "paymentDescription": pay[2],
                "paymentReference": None if pay[3] is None else h.hex32(index, "order/payref"),
                "paymentMethod": pay[3],
                "defaultCarrier": "",
                "shipments": shipments,
                "totalItemsPriceTax": money(tax_total),
                "totalItemsPrice": money(items_total),
                "totalItemsWithoutTax": money(items_total - tax_total),
                "taxBreakdown": [
                    {"description": "VAT", "taxPercent": vat, "value": money(grand_tax)}
                ]
                if vat
                else [],
                "products": lines,
                "totalItemsDiscount": money(discount_total),
                "discounts": {
                    "anyDiscount": discount_sum > 0,
                    "discount": money_label(-discount_sum, currency),
                    "discountAsNumber": money(-discount_sum),
                    "vouchers": [
                        {
                            "voucher": f"WELCOME{10 + index % 7}",
                            "name": "Welcome voucher",
                            "priceOff": money_label(-voucher, currency),
                            "priceOffAsANumber": money(-voucher),
                            "description": "10% off the first order",
                            "isCredit": False,
                            "originalPriceOff": money_label(-voucher, currency),
                            "originalPriceOffAsNumber": money(-voucher),
                        }
                    ]
                    if voucher
                    else [],
                    "automaticDiscounts": [
                        {
                            "automaticDiscount": str(300 + auto_pct),
                            "name": f"Members {auto_pct}% off",
                            "priceOff": money_label(-auto_total, currency),
                            "priceOffAsANumber": money(-auto_total),
                        }
                    ]
                    if auto_pct
                    else [],
                },
            }
            if attrs[k] and cfg.custom_attributes:
                # Custom order attributes arrive as extra top-level keys <attribute>_<element>.
                order["order_attr_external_id"] = f"EXT-{number}"
                order["order_attr_gift_message"] = "Happy birthday!" if index % 3 == 0 else ""
            out.append(order)
        return out

    def _bundle_components(
        self,
        component_items: tuple[int, ...],
        bundle_line_id: int,
        number: int,
        qty: int,
        bundle_price: int,
        m_i: int,
        vat: float,
        observed: bool,
    ) -> list[dict[str, object]]:
        """Bundle contents ("containing items nested under bundle"): price split pro rata."""
        cat = self.catalog
        weights = [cat.base_price[cat.products_of(i).index][m_i] for i in component_items]
        total_weight = sum(weights) or 1
        shares = [bundle_price * w // total_weight for w in weights]
        shares[-1] = bundle_price - sum(shares[:-1])
        components = []
        for c, (item_i, share) in enumerate(zip(component_items, shares, strict=True)):
            line = _line_dict(
                number * 10 + 7 + c,
                cat.items[item_i],
                qty,
                share,
                share,
                _tax(share, vat),
                vat,
                observed,
            )
            line["isPartOfBundle"] = str(bundle_line_id)
            components.append(line)
        return components


def _auto_pct(u: float) -> int:
    """Automatic discount ("Members x% off"): 4% of orders get 10%, 2% get 15%."""
    return 0 if u >= 0.06 else (10 if u < 0.04 else 15)


def _unit_prices(original: int, campaign_pct: int, auto_pct: int) -> tuple[int, int, int]:
    """(original, after campaign, final) unit prices in cents. Orders use the base price they
    were placed at, never the current catalogue price."""
    campaign = original - original * campaign_pct // 100
    return original, campaign, campaign - campaign * auto_pct // 100


def _percent(part: int, whole: int) -> int | float:
    if not part or not whole:
        return 0
    value = round(part * 100 / whole, 2)
    return int(value) if value == int(value) else value


def _tax(gross_cents: int, vat: float) -> int:
    """VAT share of a VAT-inclusive amount, rounded to the cent."""
    return round(gross_cents * vat / (100 + vat)) if vat else 0


def _shipment(
    number: int, shipped: str, carrier: str, service: str, tracking: str, url: str, slip: str
) -> dict[str, str]:
    return {
        "shipmentId": f"{number}-1",
        "shippedDate": shipped,
        "carrier": carrier,
        "service": service,
        "trackingId": tracking,
        "trackingUrl": url,
        "returnSlipTracking": slip,
        "additionalMessage": "",
    }


def _line_dict(
    line_id: int,
    item: Item,
    qty: int,
    original: int,
    price: int,
    unit_tax: int,
    vat: float,
    observed: bool,
) -> dict[str, object]:
    variant = item.variant
    product = variant.product
    reduction = original - price
    return {
        "lineId": str(line_id),
        "sku": product.sku,
        "variantSku": variant.variant_sku,
        "sizeSku": item.size_sku,
        "ean": item.ean,
        "upc": item.upc,
        "name": product.name,
        "variant": variant.name,
        "brand": product.brand[1],
        "size": item.size,
        "qty": qty,
        "originalPrice": money(original),
        "price": money(price),
        "weight": product.weight,
        "weightUnit": "kg",
        "countryOfOrigin": product.country_of_origin,
        "harmCode": product.kind.harm_code,
        "comment": "",
        "otherComment": "",
        "taxPercent": vat,
        "priceDiscount": money(reduction),
        "priceDiscountAsPercent": _percent(reduction, original),
        "taxValue": money(unit_tax),
        "totalTaxValue": money(unit_tax * qty),
        "totalPrice": money(price * qty),
        "totalPriceWithoutTax": money((price - unit_tax) * qty),
        "totalPriceWithTax": money(price * qty),
        "anyDiscount": reduction > 0,
        "priceEachWithoutTax": money(price - unit_tax),
        "priceEachReduction": money(reduction),
        "warehouses": [{"name": _WAREHOUSE, "itemQty": str(qty) if observed else qty}],
        "isBundle": False,
    }
