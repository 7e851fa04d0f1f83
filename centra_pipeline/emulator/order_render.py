"""Orders as the Order API prints them, rendered on demand from the order table's columns.

Rendering a page draws the page's hashed values column by column (numpy), then a plain Python
loop builds each order's dict from those columns: lines and totals, charges, shipments,
addresses, payment and discounts. Keys come in the order of the docs' example.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .clock import ZERO_DATE, StoreClock
from .config import STATUS_WORDS
from .customers import CustomerBase
from .markets import MARKETS, VAT, Market
from .money import money, money_label, vat_share
from .orders import FIRST_ORDER_NUMBER, OrderTable, auto_discount_pct, unit_prices
from .products import Item

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


def render_orders(orders: OrderTable, indices: np.ndarray) -> list[dict[str, object]]:
    """Order API order objects for the orders at `indices`, in that order."""
    ix = np.asarray(indices, dtype=np.int64)
    if ix.size == 0:
        return []
    page = _Page(orders, ix)
    return [page.render(k, index) for k, index in enumerate(ix.tolist())]


@dataclass(slots=True)
class _Sums:
    """Totals over an order's lines, in cents."""

    items: int = 0  # what the lines cost, VAT included
    tax: int = 0
    discount: int = 0  # below the original prices: campaigns and the automatic discount
    auto: int = 0  # of which the automatic discount


def _local_or_zero(clock: StoreClock, epochs: np.ndarray) -> list[int]:
    """Local seconds of each epoch; 0 (never happened) stays 0."""
    return np.where(epochs > 0, clock.to_local_array(epochs), 0).tolist()


class _Page:
    """The columns of one page of orders, drawn once; `render(k, index)` builds the k-th."""

    def __init__(self, orders: OrderTable, ix: np.ndarray) -> None:
        h = orders.hasher
        cfg = orders.cfg
        self.orders = orders
        self.fmt = orders.clock.fmt
        self.observed = cfg.type_style == "observed"
        self.words = cfg.order_status_format == "word"
        self.custom_attributes = cfg.custom_attributes
        self.status = orders.status[ix].tolist()
        self.hold = orders.hold[ix].tolist()
        self.wfp = orders.wfp[ix].tolist()
        self.market = orders.market[ix].tolist()
        self.customer = orders.customer[ix].tolist()
        self.local = orders.local[ix].tolist()
        self.ship_local = _local_or_zero(orders.clock, orders.ship_epoch[ix])
        self.cancel_local = _local_or_zero(orders.clock, orders.cancel_epoch[ix])
        self.lines = orders.line_columns(ix)
        self.u_auto = h.uniform(ix, "order/auto-discount").tolist()
        self.u_voucher = h.uniform(ix, "order/voucher").tolist()
        self.payment = h.below(ix, "order/payment", len(_PAYMENTS)).tolist()
        self.carrier = h.below(ix, "order/carrier", len(_CARRIERS)).tolist()
        self.express = (h.uniform(ix, "order/express") < 0.2).tolist()
        self.eta_days = (2 + h.below(ix, "order/eta", 6)).tolist()
        self.preferred = (h.uniform(ix, "order/preferred") < 0.1).tolist()
        self.attrs = (h.uniform(ix, "order/attributes") < 0.1).tolist()
        self.note = (h.uniform(ix, "order/note") < 0.05).tolist()
        self.suspect = (h.uniform(ix, "order/suspect") < 0.005).tolist()
        self.tracking = h.below(ix, "order/tracking", 10**10).tolist()
        self.ip = h.below(ix, "order/ip", 254).tolist()

    def render(self, k: int, index: int) -> dict[str, object]:
        number = FIRST_ORDER_NUMBER + index
        market = MARKETS[self.market[k]]
        customer = self.orders.customers.base(self.customer[k])
        vat = VAT[customer.country]
        auto_pct = auto_discount_pct(self.u_auto[k])
        rev = self.orders.rev.get(index, 0)
        lines, sums = self._lines(k, number, vat, auto_pct)
        shipping, voucher = self._charges(k, market, sums.items)
        grand = sums.items + shipping - voucher
        grand_tax = vat_share(grand, vat)
        order = {
            **self._header(k, index, number, market.currency),
            **_addresses(customer),
            "poNumber": "",
            "shippingList": "express" if self.express[k] else "standard",
            "suspect": 1 if self.suspect[k] else 0,
            "internalOrder": 0,
            "hold": 1 if self.hold[k] else 0,
            "waitingForPayment": 1 if self.wfp[k] else 0,
            "shippingValue": money(shipping),
            "voucherValue": money(-voucher),
            "grandTotalValue": money(grand),
            "grandTotalTaxValue": money(grand_tax),
            "taxAdded": 0,
            "taxDeducted": 0,
            "internalComment": f"Updated by customer service (revision {rev})" if rev else "",
            "otherComment": "Please leave the parcel at the door." if self.note[k] else "",
            "marketId": str(market.id) if self.observed else market.id,
            "pricelistId": str(market.pricelist_id) if self.observed else market.pricelist_id,
            "ipAddress": f"203.0.113.{self.ip[k] + 1}",
            **self._payment(k, index),
            "defaultCarrier": "",
            "shipments": self._shipments(k, number, rev),
            "totalItemsPriceTax": money(sums.tax),
            "totalItemsPrice": money(sums.items),
            "totalItemsWithoutTax": money(sums.items - sums.tax),
            "taxBreakdown": [{"description": "VAT", "taxPercent": vat, "value": money(grand_tax)}]
            if vat
            else [],
            "products": lines,
            "totalItemsDiscount": money(sums.discount),
            "discounts": _discounts(index, market.currency, voucher, auto_pct, sums.auto),
        }
        if self.attrs[k] and self.custom_attributes:
            # Custom order attributes arrive as extra top-level keys <attribute>_<element>.
            order["order_attr_external_id"] = f"EXT-{number}"
            order["order_attr_gift_message"] = "Happy birthday!" if index % 3 == 0 else ""
        return order

    # sections -----------------------------------------------------------------------------
    def _header(self, k: int, index: int, number: int, currency: str) -> dict[str, object]:
        fmt = self.fmt
        status = self.status[k]
        local = self.local[k]
        day = local - local % _DAY
        return {
            "orderId": str(number),
            "selectionId": self.orders.hasher.hex32(index, "order/selection"),
            "orderStatus": STATUS_WORDS[status] if self.words else str(status),
            "orderDate": fmt(local),
            "cancelDate": fmt(self.cancel_local[k]) if self.cancel_local[k] else ZERO_DATE,
            "preferredDeliveryDate": fmt(day + 5 * _DAY) if self.preferred[k] else ZERO_DATE,
            "estimatedDeliveryDate": fmt(day + self.eta_days[k] * _DAY),
            "orderStore": "retail",
            "orderCurrency": currency,
            "customerId": str(self.customer[k]),
            "accountId": "",
        }

    def _lines(
        self, k: int, number: int, vat: float, auto_pct: int
    ) -> tuple[list[dict[str, object]], _Sums]:
        catalog = self.orders.catalog
        columns = self.lines
        market_i = self.market[k]
        sums = _Sums()
        lines = []
        for j, item_i in enumerate(columns.chosen(k)):
            item = catalog.items[item_i]
            product = item.variant.product
            qty = columns.qtys[j][k]
            original, campaign, price = unit_prices(
                catalog.base_price[product.index][market_i], product.campaign_pct, auto_pct
            )
            unit_tax = vat_share(price, vat)
            sums.items += price * qty
            sums.tax += unit_tax * qty
            sums.discount += (original - price) * qty
            sums.auto += (campaign - price) * qty
            line_id = number * 10 + j + 1
            line = _line_dict(line_id, item, qty, original, price, unit_tax, vat, self.observed)
            if product.is_bundle and product.bundle_items:
                line["isBundle"] = True
                line["bundle"] = self._bundle_components(
                    product.bundle_items, line_id, number, qty, price, market_i, vat
                )
            lines.append(line)
        return lines, sums

    def _bundle_components(
        self,
        component_items: tuple[int, ...],
        bundle_line_id: int,
        number: int,
        qty: int,
        bundle_price: int,
        market_i: int,
        vat: float,
    ) -> list[dict[str, object]]:
        """Bundle contents ("containing items nested under bundle"): price split pro rata."""
        cat = self.orders.catalog
        weights = [cat.base_price[cat.products_of(i).index][market_i] for i in component_items]
        total_weight = sum(weights) or 1
        shares = [bundle_price * w // total_weight for w in weights]
        shares[-1] = bundle_price - sum(shares[:-1])
        components = []
        for c, (item_i, share) in enumerate(zip(component_items, shares, strict=True)):
            line_id = number * 10 + 7 + c
            tax = vat_share(share, vat)
            line = _line_dict(
                line_id, cat.items[item_i], qty, share, share, tax, vat, self.observed
            )
            line["isPartOfBundle"] = str(bundle_line_id)
            components.append(line)
        return components

    def _charges(self, k: int, market: Market, items_total: int) -> tuple[int, int]:
        """(shipping, voucher) in cents: free shipping above the market's threshold, express
        costs double, and a welcome voucher takes 10% (whole currency units, at least 1)."""
        shipping = 0 if items_total >= market.free_shipping_from_cents else market.shipping_cents
        if self.express[k]:
            shipping = shipping * 2 or market.shipping_cents
        voucher = 0
        if self.u_voucher[k] < 0.08:
            voucher = max(100, items_total // 10 // 100 * 100)
        return shipping, voucher

    def _shipments(self, k: int, number: int, rev: int) -> list[dict[str, str]]:
        """Processing orders have an unshipped shipment; completed and archived ones a shipped
        one (archived ones with a return slip); a revision changes the tracking id."""
        status = self.status[k]
        if status == 3:
            return [_shipment(number, ZERO_DATE, "", "", "", "", "")]
        if status not in (4, 5):
            return []
        name, service, url = _CARRIERS[self.carrier[k]]
        tracking = self.tracking[k]
        tracking_id = f"{tracking:010d}" + (f"-{rev}" if rev else "")
        slip = f"RS{tracking % 10**8:08d}" if status == 5 else ""
        shipped = self.fmt(self.ship_local[k])
        return [_shipment(number, shipped, name, service, tracking_id, url + tracking_id, slip)]

    def _payment(self, k: int, index: int) -> dict[str, object]:
        plugin, kind, description, method = _PAYMENTS[self.payment[k]]
        return {
            "paymentPlugin": plugin,
            "paymentType": kind,
            "paymentDescription": description,
            "paymentReference": None
            if method is None
            else self.orders.hasher.hex32(index, "order/payref"),
            "paymentMethod": method,
        }


def _addresses(customer: CustomerBase) -> dict[str, object]:
    """Delivery and billing address, both from the customer's base data: a later customer
    update changes the customer record, never what old orders print."""
    name = f"{customer.first} {customer.last}"
    return {
        "deliveryName": name,
        "deliveryCompany": "",
        "deliveryEmail": customer.email,
        "deliveryCell": customer.phone,
        "deliveryTele": "",
        "deliveryAddress": customer.address,
        "deliveryCoaddress": "",
        "deliveryZipcode": customer.zipcode,
        "deliveryCity": customer.city,
        "deliveryState": customer.state,
        "deliveryCountry": customer.country,
        "billingName": name,
        "billingCompany": "",
        "billingEmail": customer.email,
        "billingTele": customer.phone,
        "billingAddress": customer.address,
        "billingCoaddress": "",
        "billingZipcode": customer.zipcode,
        "billingCity": customer.city,
        "billingState": customer.state,
        "billingCountry": customer.country,
        "billingVAT": "",
    }


def _discounts(
    index: int, currency: str, voucher: int, auto_pct: int, auto_total: int
) -> dict[str, object]:
    discount_sum = voucher + auto_total
    return {
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
    }


def _percent(part: int, whole: int) -> int | float:
    if not part or not whole:
        return 0
    value = round(part * 100 / whole, 2)
    return int(value) if value == int(value) else value


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
