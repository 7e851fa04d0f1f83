"""ShopApi against the emulator: the catalogue read in full, targeted reads, product ids."""

from __future__ import annotations

import pytest

from centra_pipeline.centra.errors import CentraBusinessError
from centra_pipeline.centra.http import prefetch
from centra_pipeline.emulator import Emulator
from centra_pipeline.emulator.jsonenc import dumps

from .conftest import ORDER_KEY, SHOP_KEY, PlainServer, objs, raws, served, served_endpoint

FILTER = "POST /products/filter"


def test_iter_products_reads_the_whole_catalogue(emu: Emulator, clients) -> None:
    truth = list(emu.store.iter_shop_products())
    assert len(truth) == emu.stats()["shop_products"] >= 5
    api = clients.shop(emu, page_size=3)
    before = served_endpoint(emu, "shop", FILTER)
    pages = list(api.iter_products())
    assert objs(pages) == truth
    assert raws(pages) == [dumps(product).decode() for product in truth]
    assert [p.params for p in pages][:2] == [
        {"quantity": 3, "offset": 0},
        {"quantity": 4, "offset": 2},  # from the last product read (the anchor), one wider
    ]
    full, rest = divmod(len(truth), 3)
    assert [len(p.records) for p in pages] == [3] * full + ([rest] if rest else []) + [0]
    assert served_endpoint(emu, "shop", FILTER) - before == len(pages)
    assert all(p.endpoint == FILTER and p.server_time is not None for p in pages)


@pytest.mark.parametrize("edge", ["one", "exact-total", "larger"])
def test_iter_products_page_size_edges(emu: Emulator, clients, edge: str) -> None:
    truth = [p["product"] for p in emu.store.iter_shop_products()]
    total = len(truth)
    page_size = {"one": 1, "exact-total": total, "larger": total + 100}[edge]
    api = clients.shop(emu)
    before = served(emu, "shop")
    got = [p["product"] for p in objs(api.iter_products(page_size=page_size))]
    assert got == truth
    full, rest = divmod(total, page_size)
    assert served(emu, "shop") - before == full + bool(rest) + 1  # `{}` ends the read


def test_iter_products_for_a_market(emu: Emulator, clients) -> None:
    api = clients.shop(emu, page_size=4)
    truth = list(emu.store.iter_shop_products())
    got = objs(api.iter_products(market=1))
    assert got == truth  # every product is sold in every market of the emulated store
    assert all("1" in product["markets"] for product in got)


def test_iter_products_for_an_unknown_market_is_an_error_not_an_empty_catalogue(
    emu: Emulator, clients
) -> None:
    """404 {"errors":{"market":"not found: 999"}} is a bad filter. Reading it as "no more
    products" would make a wrong setting look like a catalogue that was emptied."""
    api = clients.shop(emu)
    with pytest.raises(CentraBusinessError) as caught:
        list(api.iter_products(market=999))
    assert "market" in str(caught.value)
    assert "not found" in str(caught.value)


def test_a_404_product_not_found_ends_the_read_quietly(plain: PlainServer, clients) -> None:
    """Centra's documented answer for an empty selection; the emulator answers `{}`."""
    plain.answer(b'{"errors":{"product":"not found"}}', status=404)
    api = clients.shop(None, url=plain.url, key=SHOP_KEY)
    assert list(api.iter_products()) == []
    assert api.get_products(["500001"]) == []
    assert plain.requests == 2


def test_a_server_that_ignores_offset_is_refused_not_paged_forever(
    plain: PlainServer, clients
) -> None:
    """Both APIs page by offset through one mechanism; a proxy or server that drops the
    offset would repeat page one forever. The Order API and the Shop API both stop."""
    from centra_pipeline.centra.errors import CentraError

    plain.answer(b'{"500001": {"product": "500001", "name": "Shirt"}}')
    shop = clients.shop(None, url=plain.url, key=SHOP_KEY)
    with pytest.raises(CentraError, match="ignores `offset`"):
        list(shop.iter_products())
    assert plain.requests == 2

    plain.answer(b'{"status": "ok", "orders": [{"orderId": 1, "order": 1}]}')
    order = clients.order(None, url=plain.url, key=ORDER_KEY)
    with pytest.raises(CentraError, match="ignores `offset`"):
        list(order.iter_orders())
    assert plain.requests == 4


def test_iter_products_is_lazy(emu: Emulator, clients) -> None:
    api = clients.shop(emu, page_size=2)
    before = served(emu, "shop")
    pages = api.iter_products()
    assert served(emu, "shop") == before
    assert len(next(pages).records) == 2
    assert served(emu, "shop") - before == 1
    pages.close()
    stream = prefetch(api.iter_products())
    next(stream)
    stream.close()
    assert served(emu, "shop") - before <= 3  # 1 above, then at most one page ahead


def test_get_products_by_id(emu: Emulator, clients) -> None:
    truth = {p["product"]: p for p in emu.store.iter_shop_products()}
    wanted = sorted(truth)[1:4]
    api = clients.shop(emu)
    records = api.get_products(wanted)
    assert [r.obj for r in records] == [truth[i] for i in wanted]
    assert [r.obj for r in api.get_products([int(wanted[0])])] == [truth[wanted[0]]]
    # Unknown ids are not errors: the selection is simply empty.
    assert api.get_products(["1"]) == []
    assert [r.obj["product"] for r in api.get_products([wanted[0], "1"])] == [wanted[0]]


def test_product_ids(emu: Emulator, clients) -> None:
    api = clients.shop(emu)
    before = served_endpoint(emu, "shop", "GET /product-ids")
    ids = api.product_ids()
    assert ids == [p["product"] for p in emu.store.iter_shop_products()]
    assert all(isinstance(i, str) for i in ids)
    assert served_endpoint(emu, "shop", "GET /product-ids") - before == 1


def test_shop_catalogue_agrees_with_order_api_rows(emu: Emulator, clients) -> None:
    """The two APIs describe one store: every Shop API item is an Order API stock item."""
    shop = clients.shop(emu)
    order = clients.order(emu)
    stock_items = {row["stockItemId"] for row in objs(order.iter_products())}
    shop_items = {int(i) for p in objs(shop.iter_products()) for i in p["items"]}
    assert shop_items and shop_items <= stock_items


def test_all_products_in_one_response_equal_the_paged_read(emu, clients) -> None:
    shop = clients.shop(emu)
    everything = shop.all_products()
    paged = [r.obj for page in shop.iter_products(page_size=7) for r in page.records]
    assert [r.obj for r in everything.records] == paged
    assert len(paged) == len(list(emu.store.iter_shop_products()))
