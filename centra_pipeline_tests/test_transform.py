"""Records → typed tables: Centra's quirks and drift (unknown fields, missing optional fields,
numbers as strings, "0000-00-00 00:00:00", changed types)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from centra_pipeline.centra.jsonstream import RawRecord, parse_envelope
from centra_pipeline.centra.quirks import TypeDrift
from centra_pipeline.settings import project_root
from centra_pipeline.streams import STREAMS, TABLES
from centra_pipeline.streams.model import snake
from centra_pipeline.streams.rows import MissingKey, flatten
from centra_pipeline.streams.tables_doc import render

# Shaped like the order in Centra's GET /orders example: string ids, money as numbers and
# strings, a zero date, an escaped slash, a bundle, a voucher, a custom attribute.
ORDER = """{
 "orderId": "83651", "selectionId": "7dee9426b07b13ec452f87a3b67aa6be",
 "orderStatus": "4", "orderDate": "2024-10-27 02:30:00", "cancelDate": "0000-00-00 00:00:00",
 "customerId": "12345", "accountId": "", "orderCurrency": "EUR",
 "deliveryCity": "Somecity", "billingVAT": "", "hold": 0, "waitingForPayment": "0",
 "shippingValue": 25, "grandTotalValue": "3978.75", "grandTotalTaxValue": 795.75,
 "marketId": "1", "pricelistId": 1, "paymentReference": null,
 "ipAddress": "127.0.0.1", "order_attr_external_id": "EXT-1",
 "shipments": [{"shipmentId": "83651-1", "shippedDate": "0000-00-00 00:00:00",
                "trackingUrl": "https:\\/\\/track.example\\/1"}],
 "taxBreakdown": [{"description": "VAT", "taxPercent": 25, "value": 795.75}],
 "products": [
   {"lineId": "43243", "sku": "S1", "qty": 1, "price": 450.5, "originalPrice": "500.50",
    "warehouses": [{"name": "Default", "itemQty": "1"}], "isBundle": false,
    "isPartOfBundle": "217", "newLineField": 7},
   {"lineId": 43244, "sku": "S2", "qty": "2", "price": 180.5, "isBundle": true,
    "bundle": [{"lineId": "43243", "sku": "S1"}]}],
 "discounts": {"anyDiscount": false, "discount": "0.00 USD", "discountAsNumber": 0,
   "vouchers": [{"voucher": "vip123", "priceOff": "-150.00 USD", "priceOffAsANumber": -150.0,
                 "isCredit": false}],
   "automaticDiscounts": [{"automaticDiscount": "12345", "priceOffAsANumber": 0}]}
}"""


def flat(stream: str, *raws: str, tz: str = "Europe/Stockholm"):
    records = [RawRecord(json.loads(raw), raw) for raw in raws]
    return flatten(
        STREAMS[stream], records, load_id="L1", extracted_at=datetime.now(UTC), seq_start=0, tz=tz
    )


def test_an_order_becomes_typed_rows_in_four_tables() -> None:
    batch = flat("orders", ORDER)
    order = batch.tables["orders"].to_pylist()[0]
    assert order["order_id"] == 83651 and order["customer_id"] == 12345
    assert order["account_id"] is None  # "" means no account
    assert order["grand_total_value"] == Decimal("3978.7500")  # a string, as a DECIMAL
    assert order["shipping_value"] == Decimal("25.0000")
    assert order["market_id"] == 1 and order["pricelist_id"] == 1  # "1" and 1 alike
    assert order["cancel_date"] is None  # 0000-00-00 00:00:00
    # 02:30 on 2024-10-27 happens twice in Stockholm; the first (CEST, UTC+2) is taken.
    assert order["order_date"] == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    assert order["hold"] is False and order["waiting_for_payment"] is False
    assert order["order_status_name"] == "completed"
    assert order["discounts_discount_as_number"] == Decimal("0.0000")
    assert json.loads(order["tax_breakdown"])[0]["taxPercent"] == 25
    assert order["_raw"] == ORDER  # exactly what Centra sent
    assert json.loads(order["_extra"]) == {"order_attr_external_id": "EXT-1"}

    lines = batch.tables["order_lines"].to_pylist()
    assert [line["line_id"] for line in lines] == [43243, 43244]
    assert all(line["order_id"] == 83651 for line in lines)
    assert lines[0]["original_price"] == Decimal("500.5000") and lines[1]["qty"] == 2
    assert json.loads(lines[0]["_extra"]) == {"newLineField": 7}
    assert json.loads(lines[1]["bundle"])[0]["lineId"] == "43243"
    shipment = batch.tables["order_shipments"].to_pylist()[0]
    assert shipment["shipped_date"] is None
    assert shipment["tracking_url"] == "https://track.example/1"  # \/ unescaped
    discounts = batch.tables["order_discounts"].to_pylist()
    assert [(d["discount_type"], d["discount_position"]) for d in discounts] == [
        ("voucher", 0),
        ("automatic", 0),
    ]
    assert discounts[0]["price_off_as_a_number"] == Decimal("-150.0000")
    assert set(batch.drift.fields) == {"orders.order_attr_external_id", "order_lines.newLineField"}


def test_missing_optional_fields_load_as_null() -> None:
    # Centra's second example return has no "completed" key at all.
    batch = flat(
        "returns",
        '{"returnId": 384, "orderId": 20179, "date": "2019-07-11 14:33:56",'
        ' "products": [{"returnLineId": 553, "quantity": 1}]}',
    )
    row = batch.tables["returns"].to_pylist()[0]
    assert row["completed"] is None and row["currency"] is None
    assert batch.tables["return_lines"].num_rows == 1
    assert not batch.drift.fields


def test_more_decimals_than_a_money_column_keeps_is_a_recorded_coercion() -> None:
    batch = flat(
        "orders", ORDER.replace('"grandTotalTaxValue": 795.75', '"grandTotalTaxValue": 795.123456')
    )
    assert batch.tables["orders"].to_pylist()[0]["grand_total_tax_value"] == Decimal("795.1235")
    assert batch.coercions.counts == {"orders.grand_total_tax_value": 1}
    assert "795.123456" in batch.coercions.samples["orders.grand_total_tax_value"]


def test_a_number_in_a_text_column_is_kept_and_recorded() -> None:
    batch = flat("orders", ORDER.replace('"ipAddress": "127.0.0.1"', '"ipAddress": 2130706433'))
    assert batch.tables["orders"].to_pylist()[0]["ip_address"] == "2130706433"
    assert batch.coercions.counts == {"orders.ip_address": 1}


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("grandTotalValue", '"about 30 EUR"', "expected a number"),
        ("orderDate", '"yesterday"', "timestamp"),
        ("hold", '"maybe"', "boolean"),
        ("customerId", '{"id": 5}', "integer"),
        ("marketId", "true", "integer"),
    ],
)
def test_a_changed_type_is_a_clear_error_naming_column_and_record(field, value, expected) -> None:
    record = json.loads(ORDER)
    record[field] = json.loads(value)
    with pytest.raises(TypeDrift) as raised:
        flat("orders", json.dumps(record))
    message = str(raised.value)
    assert snake(field) in message and expected in message and "83651" in message


def test_a_record_without_its_primary_key_cannot_be_merged() -> None:
    record = json.loads(ORDER)
    del record["orderId"]
    with pytest.raises(MissingKey, match="orderId"):
        flat("orders", json.dumps(record))


def test_parse_envelope_keeps_each_records_exact_text() -> None:
    body = '{"status":"ok","orders":[' + ORDER + ', {"orderId":"2"}],"next":null}'
    envelope, records = parse_envelope(body, "orders")
    assert envelope == {"status": "ok", "next": None}
    assert records[0].raw == ORDER and records[1].obj == {"orderId": "2"}


def test_column_names_are_centras_field_names_in_snake_case() -> None:
    assert snake("grandTotalValue") == "grand_total_value"
    assert snake("billingVAT") == "billing_vat"
    assert snake("discounts.discountAsNumber") == "discounts_discount_as_number"
    for table in TABLES.values():
        for col in table.columns:
            if (
                col.source
                and not col.source.startswith("@")
                and col.transform is None
                and col.name not in ("price_id",)
            ):
                assert col.name == snake(col.source), (table.name, col.name)


def test_ids_have_one_type_in_every_table() -> None:
    types: dict[str, set[str]] = {}
    for table in TABLES.values():
        for col in table.columns:
            is_shop_id = table.name.startswith("shop_") and col.name in ("product", "item")
            if col.name.endswith("_id") or is_shop_id:
                types.setdefault(col.name, set()).add(col.type)
    # Centra uses `shipmentId` for two different things: the shipment *number* "83651-1" on
    # orders, and an internal integer id on returns (whose `shipment` holds the number).
    assert {name: t for name, t in types.items() if len(t) > 1} == {
        "shipment_id": {"VARCHAR", "BIGINT"}
    }


def test_table_reference_is_current() -> None:
    committed = (project_root() / "docs" / "tables.md").read_text()
    assert committed == render(), (
        "docs/tables.md is stale: run "
        "`uv run python -m centra_pipeline.streams.tables_doc > docs/tables.md`"
    )
