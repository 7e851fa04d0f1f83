"""jsonstream: records and their exact JSON text out of real emulator responses, and a clear
MalformedJSON (never a partial result) for every way a body can be cut or bent."""

from __future__ import annotations

import json

import pytest
import requests

from centra_pipeline.centra.jsonstream import (
    MalformedJSON,
    parse_document,
    parse_envelope,
    parse_keyed_records,
)
from centra_pipeline.emulator import Emulator

from .conftest import ORDER_KEY, SHOP_KEY


def _get(emu: Emulator, path: str, **params) -> str:
    response = requests.get(
        emu.order_api_url + path,
        params=params,
        headers={"API-Authorization": ORDER_KEY},
        timeout=10,
    )
    assert response.status_code == 200
    return response.text


def _shop(emu: Emulator, path: str, body=None) -> str:
    response = requests.request(
        "POST" if body is not None else "GET",
        emu.shop_api_url + path,
        json=body,
        headers={"API-Authorization": SHOP_KEY},
        timeout=10,
    )
    assert response.status_code == 200
    return response.text


@pytest.mark.parametrize(
    ("path", "key", "params"),
    [
        ("/orders", "orders", {"limit": 12}),
        ("/returns", "returns", {"limit": 5}),
        ("/customers", "customers", {"limit": 9}),
        ("/products", "products", {"limit": 4, "page": 2}),
        ("/stock", "products", {}),
    ],
)
def test_envelopes_split_into_records_and_their_exact_text(
    emu: Emulator, path: str, key: str, params: dict
) -> None:
    text = _get(emu, path, **params)
    document = json.loads(text)
    envelope, records = parse_envelope(text, key)
    assert [r.obj for r in records] == document[key]
    assert envelope == {k: v for k, v in document.items() if k != key}
    assert envelope["status"] == "ok"
    position = 0
    for record in records:
        # Each raw text is a slice of the body, in order, and parses to its record.
        position = text.index(record.raw, position) + len(record.raw)
        assert json.loads(record.raw) == record.obj
    if path == "/products":
        assert envelope == {
            "status": "ok",
            "previous": "?limit=4&page=1",
            "next": "?limit=4&page=3",
        }


def test_single_record_envelope(emu: Emulator) -> None:
    text = _get(emu, "/customers/4")
    envelope, records = parse_envelope(text, "customer", single=True)
    assert envelope == {"status": "ok"}
    assert len(records) == 1 and records[0].obj == emu.store.render_customer(4)
    envelope, records = parse_envelope(_get(emu, "/customers/99999"), "customer", single=True)
    assert records == [] and envelope["status"] == "no"


def test_shop_api_maps_keyed_by_id(emu: Emulator) -> None:
    text = _shop(emu, "/products/filter", {"quantity": 3, "offset": 1})
    records = parse_keyed_records(text)
    assert [r.obj for r in records] == list(json.loads(text).values())
    assert len(records) == 3
    assert parse_keyed_records(_shop(emu, "/products/filter", {"offset": 10_000})) == []
    assert parse_keyed_records("[]") == []
    assert parse_document(_shop(emu, "/product-ids")) == json.loads(_shop(emu, "/product-ids"))


def test_whitespace_and_key_order_do_not_matter(emu: Emulator) -> None:
    compact = _get(emu, "/orders", limit=3)
    pretty = json.dumps(json.loads(compact), indent=4)
    _, a = parse_envelope(compact, "orders")
    _, b = parse_envelope(pretty, "orders")
    assert [r.obj for r in a] == [r.obj for r in b]
    assert all(r.raw.startswith("{\n") for r in b)
    # The records key may come after other members, and records may be missing entirely.
    envelope, records = parse_envelope('{"next":null,"orders":[{"a":1}],"status":"ok"}', "orders")
    assert envelope == {"next": None, "status": "ok"} and records[0].raw == '{"a":1}'
    assert parse_envelope('{"status":"no","msg":"x"}', "orders") == (
        {"status": "no", "msg": "x"},
        [],
    )


def test_every_cut_of_a_real_body_is_malformed(emu: Emulator) -> None:
    """A body cut anywhere (a truncated transfer) must fail, never yield fewer records."""
    text = _get(emu, "/orders", limit=2)
    assert len(text) > 1000
    for cut in range(0, len(text)):
        with pytest.raises(MalformedJSON):
            parse_envelope(text[:cut], "orders")
    keyed = _shop(emu, "/products/filter", {"quantity": 2})
    for cut in range(0, len(keyed), 7):
        with pytest.raises(MalformedJSON):
            parse_keyed_records(keyed[:cut])


@pytest.mark.parametrize(
    "text",
    [
        '{"status":"ok","orders":[1,2]}',  # records that are not objects
        '{"status":"ok","orders":[{"a":1}{"b":2}]}',  # missing comma
        '{"status":"ok","orders":[{"a":1}]} trailing',
        '{"status":"ok" "orders":[]}',
        '{"status":"ok",7:[]}',
        "[]",
        '"ok"',
        "   ",
        "<html><body>502 Bad Gateway</body></html>",
    ],
)
def test_malformed_envelopes(text: str) -> None:
    with pytest.raises(MalformedJSON):
        parse_envelope(text, "orders")


def test_malformed_messages_do_not_echo_the_body() -> None:
    body = '{"status":"ok","orders":[{"customerEmail":"secret@example.com", BROKEN'
    with pytest.raises(MalformedJSON) as caught:
        parse_envelope(body, "orders")
    assert "secret@example.com" not in str(caught.value)
    assert "BROKEN" not in str(caught.value)


def test_a_single_record_that_is_not_an_object_is_malformed() -> None:
    with pytest.raises(MalformedJSON, match="not an object"):
        parse_envelope('{"status":"ok","customer":[1,2]}', "customer", single=True)
