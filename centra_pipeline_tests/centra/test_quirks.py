"""Centra's value quirks, as the emulator serves them and as `quirks` converts them: string
vs int ids, money as strings, "0000-00-00 00:00:00", `\\/` escapes, unknown fields, and naive
store-local timestamps across both DST transitions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest

from centra_pipeline.centra.jsonstream import parse_envelope
from centra_pipeline.centra.quirks import (
    Coercions,
    TypeDrift,
    column_bool,
    column_decimal,
    column_int,
    column_str,
    column_timestamp,
    format_local_datetime,
    parse_local_datetime,
    to_decimal,
    to_int,
)
from centra_pipeline.emulator import Emulator

from .conftest import ORDER_KEY, TIMEZONE, PlainServer, objs, raws

STOCKHOLM = TIMEZONE


# --- ids -----------------------------------------------------------------------------------
def test_ids_are_strings_in_orders_and_ints_in_returns(emu: Emulator, clients) -> None:
    api = clients.order(emu)
    orders = objs(api.iter_orders())
    returns = objs(api.iter_returns())
    assert all(isinstance(o["orderId"], str) and isinstance(o["customerId"], str) for o in orders)
    assert all(isinstance(r["orderId"], int) and isinstance(r["customerId"], int) for r in returns)
    # One converter gives one type: a return's order is found among the orders by value.
    order_ids = {to_int(o["orderId"]) for o in orders}
    assert {to_int(r["orderId"]) for r in returns} <= order_ids
    mixed = [o["orderId"] for o in orders[:3]] + [r["orderId"] for r in returns[:3]]
    column = column_int("order_id", mixed, Coercions())
    assert column.type == pa.int64()
    assert column.to_pylist() == [int(v) for v in mixed]


def test_observed_type_style_gives_the_same_values(start, clients) -> None:
    """tap-centra saw marketId, pricelistId and itemQty as strings; the docs show ints."""
    docs = start()
    observed = start(type_style="observed")
    a = objs(clients.order(docs).iter_orders())
    b = objs(clients.order(observed).iter_orders())
    assert [o["marketId"] for o in b][:3] == [str(o["marketId"]) for o in a][:3]
    for field in ("marketId", "pricelistId"):
        coercions = Coercions()
        assert column_int(field, [o[field] for o in b], coercions).to_pylist() == [
            o[field] for o in a
        ]
        assert coercions.counts == {}  # digit strings are a known quirk, not a coercion
    qty_a = [w["itemQty"] for o in a for line in o["products"] for w in line["warehouses"]]
    qty_b = [w["itemQty"] for o in b for line in o["products"] for w in line["warehouses"]]
    assert column_int("item_qty", qty_b, Coercions()).to_pylist() == qty_a


@pytest.mark.parametrize(
    ("value", "expected"),
    [("83651", 83651), (83651, 83651), (" 42 ", 42), ("", None), (None, None)],
)
def test_to_int(value, expected) -> None:
    assert to_int(value) == expected


@pytest.mark.parametrize("value", ["83651a", True, 1.5, [1]])
def test_to_int_rejects_what_is_not_an_id(value) -> None:
    with pytest.raises(TypeDrift):
        to_int(value)


# --- money -----------------------------------------------------------------------------------
def test_prices_as_strings_match_prices_as_numbers(emu: Emulator, clients) -> None:
    """Order API product rows print prices as strings ("329.00"); the Shop API has the same
    prices as numbers. Both convert to the same DECIMAL."""
    rows = objs(clients.order(emu).iter_products())
    shop = {p["product"]: p for p in objs(clients.shop(emu).iter_products())}
    prices = [p for row in rows for p in row["prices"]]
    assert prices and all(isinstance(p["price"], str) for p in prices)
    assert any(p["price"].endswith(".00") for p in prices)
    coercions = Coercions()
    column = column_decimal("price", [p["price"] for p in prices], coercions, 18, 2)
    assert column.to_pylist() == [Decimal(p["price"]) for p in prices]
    assert coercions.counts == {}

    checked = 0
    for row in rows:
        for product in shop.values():
            if str(row["stockItemId"]) not in product["items"]:
                continue
            for price in row["prices"]:
                market = product["markets"][_market_of(price["id"])]
                number = market["pricesByPricelist"][price["id"]]["priceBeforeDiscountAsNumber"]
                assert to_decimal(price["price"]) == to_decimal(number)
                checked += 1
    assert checked >= len(prices) // 2


def _market_of(pricelist_id: str) -> str:
    return str(int(pricelist_id) - 20)  # pricelists 21..26 belong to markets 1..6


def test_money_converters() -> None:
    assert to_decimal("329.00") == Decimal("329.00")
    assert to_decimal(3978.75) == Decimal("3978.75")
    assert to_decimal(25) == Decimal(25)
    assert to_decimal("") is None
    with pytest.raises(TypeDrift):
        to_decimal("-150.00 USD")  # a display string, kept as text, never parsed as money
    coercions = Coercions()
    column = column_decimal("v", ["329.00", 25, 3978.75, None, "0.10", 0.129], coercions, 18, 2)
    assert column.to_pylist() == [
        Decimal("329.00"),
        Decimal("25.00"),
        Decimal("3978.75"),
        None,
        Decimal("0.10"),
        Decimal("0.13"),
    ]
    assert coercions.counts == {"v": 1}  # 0.129 was rounded, and that is counted
    with pytest.raises(TypeDrift):
        column_decimal("v", [1e17], Coercions(), 18, 2)  # does not fit DECIMAL(18, 2)


def test_json_numbers_and_price_strings_load_as_the_same_exact_decimals() -> None:
    """A price sent as a JSON number (329.1, parsed as the nearest float) and as a string
    ("329.10") is the same DECIMAL, without a binary rounding error, and large amounts whose
    float64 is a hair off their decimal are not counted as rounded."""
    texts = ["329.10", "0.10", "59.95", "0.30", "2.67", "1234567.89", "99999999.99", "-150.07"]
    numbers_doc = '{"status":"ok","products":[' + ",".join(f'{{"price":{t}}}' for t in texts) + "]}"
    _, records = parse_envelope(numbers_doc, "products")
    numbers = [r.obj["price"] for r in records]
    assert all(isinstance(n, float) for n in numbers)
    expected = [Decimal(t) for t in texts]
    for scale in (2, 4):
        coercions = Coercions()
        from_numbers = column_decimal("price", numbers, coercions, 18, scale).to_pylist()
        from_strings = column_decimal("price", texts, coercions, 18, scale).to_pylist()
        assert from_numbers == from_strings == expected
        assert [str(d) for d in from_numbers] == [f"{d:.{scale}f}" for d in expected]
        assert coercions.counts == {}
    # A digit that really is dropped is still counted, at any magnitude.
    coercions = Coercions()
    column_decimal("price", [1234567.12345, "0.00001"], coercions, 18, 4)
    assert coercions.counts == {"price": 2}


def test_flags_and_text_converters() -> None:
    assert column_bool("b", [0, 1, True, False, None], Coercions()).to_pylist() == [
        False,
        True,
        True,
        False,
        None,
    ]
    assert column_bool("b", ["1", "0", 1], Coercions()).to_pylist() == [True, False, True]
    with pytest.raises(TypeDrift):
        column_bool("b", ["maybe"], Coercions())
    coercions = Coercions()
    assert column_str("s", ["a", 7, None], coercions).to_pylist() == ["a", "7", None]
    assert coercions.counts == {"s": 1}


# --- "no date" -------------------------------------------------------------------------------


# --- escapes, unicode, unknown fields: the raw JSON is what Centra sent ----------------------
def test_escaped_slashes_and_unicode_stay_in_the_raw_text(emu: Emulator, clients) -> None:
    api = clients.order(emu)
    rows = list(api.iter_products())
    raw = raws(rows)[0]
    obj = objs(rows)[0]
    assert obj["images"][0].startswith("https://media.")
    assert '"https:\\/\\/media.' in raw and "https://" not in raw
    customers = list(api.iter_customers())
    pairs = [
        (r.obj, r.raw) for page in customers for r in page.records if not r.obj["city"].isascii()
    ]
    assert pairs, "the store should have customers in Göteborg, München, ..."
    customer, text = pairs[0]
    assert json.dumps(customer["city"])[1:-1] in text  # "G\\u00f6teborg" as sent
    assert customer["city"] not in text
    for page in customers:
        for record in page.records:
            assert json.loads(record.raw) == record.obj


def test_custom_attributes_are_kept(emu: Emulator, clients) -> None:
    """Custom order attributes arrive as extra top-level keys (`order_attr_<name>`)."""
    orders = [r for p in clients.order(emu).iter_orders() for r in p.records]
    custom = [r for r in orders if "order_attr_external_id" in r.obj]
    assert custom and len(custom) < len(orders)
    for record in custom:
        assert '"order_attr_external_id":' in record.raw
        assert record.obj == emu.store.render_order(int(record.obj["orderId"]))


def test_unknown_fields_and_number_spelling_survive_byte_for_byte(plain: PlainServer, clients):
    first = (
        '{"orderId":"7","grandTotalValue":329.10,"price":"329.00","brandNewField":'
        '{"nested": [1, 2.50, "a\\/b"]},"url":"https:\\/\\/x.example\\/\\u00e5"}'
    )
    second = '{ "orderId" : 8 }'
    body = f'{{"status":"ok","orders":[{first}, {second}],"somethingNew":true}}'
    plain.answer(body.encode())
    records = next(clients.order(None, url=plain.url, key=ORDER_KEY).iter_orders()).records
    assert [r.raw for r in records] == [first, second]
    assert records[0].obj["brandNewField"] == {"nested": [1, 2.5, "a/b"]}
    assert records[0].obj["url"] == "https://x.example/å"
    assert to_int(records[0].obj["orderId"]) == 7 and to_int(records[1].obj["orderId"]) == 8


# --- naive store-local timestamps and DST ------------------------------------------------------
def _both(values: list[str | None], tz: str = STOCKHOLM) -> tuple[list, list]:
    vector = column_timestamp("t", values, Coercions(), tz).to_pylist()
    scalar = [parse_local_datetime(v, tz) for v in values]
    return scalar, vector


def test_ambiguous_autumn_hour_takes_the_first_occurrence() -> None:
    # 2025-10-26 in Stockholm: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    scalar, vector = _both(["2025-10-26 02:30:00", "2025-10-26 01:59:59", "2025-10-26 03:00:00"])
    expected = [
        datetime(2025, 10, 26, 0, 30, tzinfo=UTC),  # 02:30 CEST, not 02:30 CET (01:30Z)
        datetime(2025, 10, 25, 23, 59, 59, tzinfo=UTC),
        datetime(2025, 10, 26, 2, 0, tzinfo=UTC),
    ]
    assert scalar == vector == expected


def test_spring_gap_takes_the_next_valid_instant_in_both_converters() -> None:
    # 2025-03-30 in Stockholm: 02:00 CET jumps to 03:00 CEST; 02:00-02:59 do not exist.
    scalar, vector = _both(["2025-03-30 02:00:00", "2025-03-30 02:30:00", "2025-03-30 03:00:00"])
    transition = datetime(2025, 3, 30, 1, 0, tzinfo=UTC)
    assert vector == [transition, transition, transition]
    assert scalar == vector  # cursors (scalar) and table values (vectorised) agree


@pytest.mark.parametrize("day", ["2025-03-30", "2025-10-26", "2026-01-15"])
def test_scalar_and_vectorised_converters_agree_every_minute_of_a_dst_day(day: str) -> None:
    start = datetime.strptime(day, "%Y-%m-%d")
    values = [
        (start + timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S") for m in range(0, 1440, 1)
    ]
    scalar, vector = _both(values)
    assert scalar == vector
    assert all(v is not None for v in vector)
    # Every wall time that exists round-trips through the store's timezone.
    existing = [
        v
        for v, instant in zip(values, vector, strict=True)
        if format_local_datetime(instant, STOCKHOLM) == v
    ]
    assert len(existing) == (1380 if day == "2025-03-30" else 1440)


def test_other_timestamp_spellings() -> None:
    values = ["2026-01-15 12:00:00.123456", "2026-01-15", "2026-07-01 12:00:00", None, ""]
    scalar, vector = _both(values)
    assert (
        scalar
        == vector
        == [
            datetime(2026, 1, 15, 11, 0, 0, 123456, tzinfo=UTC),
            datetime(2026, 1, 14, 23, 0, tzinfo=UTC),
            datetime(2026, 7, 1, 10, 0, tzinfo=UTC),
            None,
            None,
        ]
    )
    assert _both(["2026-01-15 12:00:00"], "UTC")[1] == [datetime(2026, 1, 15, 12, tzinfo=UTC)]
    for bad in ("15/01/2026", "2026-01-15T12:00:00+01:00", "2026-02-30 00:00:00", "2026-04-31"):
        with pytest.raises(TypeDrift):
            parse_local_datetime(bad, STOCKHOLM)
        with pytest.raises(TypeDrift):
            column_timestamp("order_date", ["2026-01-15 12:00:00", bad], Coercions(), STOCKHOLM)
    with pytest.raises(TypeDrift):
        column_timestamp("order_date", [20260115], Coercions(), STOCKHOLM)


@pytest.mark.parametrize(
    ("now", "has_repeats"),
    [("2025-10-26 01:30:00", True), ("2025-03-30 01:30:00", False)],
    ids=["autumn", "spring"],
)
def test_orders_placed_across_a_dst_change(start, clients, now: str, has_repeats: bool) -> None:
    """Orders placed over two hours around a DST change, read back through the client: each
    naive orderDate converts to its true instant, except in the repeated autumn hour, where
    the second occurrence resolves to the first (one hour early) by the documented rule."""
    emu = start(orders=50, now=now)
    emu.set_plugin("order", include_hold_wfp=True)
    result = emu.tick(new_orders=120, advance_seconds=7200)
    api = clients.order(emu, page_size=25)
    got = objs(api.iter_orders(newer_than=now))
    assert sorted(int(o["orderId"]) for o in got) == result["new_order_ids"]
    converted = column_timestamp(
        "order_date", [o["orderDate"] for o in got], Coercions(), STOCKHOLM
    ).to_pylist()
    exact = early = 0
    for order, instant in zip(got, converted, strict=True):
        truth = datetime.fromtimestamp(
            int(emu.store.orders.epoch[int(order["orderId"]) - 1001]), UTC
        )
        assert parse_local_datetime(order["orderDate"], STOCKHOLM) == instant
        if instant == truth:
            exact += 1
        else:
            assert truth - instant == timedelta(hours=1)
            assert order["orderDate"][11:13] == "02"  # only inside the repeated hour
            early += 1
    assert exact + early == 120
    assert (early > 0) == has_repeats
