"""OrderApi against the emulator over loopback: every call, every paging and filter edge.

Each read is compared with the emulator's truth (`emu.store`), record for record and byte
for byte, and the number of requests the emulator served says how the client paged.
"""

from __future__ import annotations

import itertools
import time
import weakref
from datetime import datetime, timedelta
from typing import Any

import pytest

from centra_pipeline.centra.errors import CentraBusinessError
from centra_pipeline.centra.http import prefetch
from centra_pipeline.centra.order_api import Page
from centra_pipeline.emulator import Emulator
from centra_pipeline.emulator.jsonenc import dumps

from .conftest import objs, raws, served, served_endpoint


def _order_ids(pages: Any) -> list[int]:
    return [int(o["orderId"]) for o in objs(pages)]


# --- GET /orders ---------------------------------------------------------------------------
def test_iter_orders_reads_every_visible_order_once_in_api_order(emu: Emulator, clients) -> None:
    api = clients.order(emu, page_size=40)
    before = served(emu)
    pages = list(api.iter_orders())
    truth = list(emu.store.iter_orders())
    assert len(truth) == emu.stats()["orders"]["visible"]
    assert 120 < len(truth) < 160  # so 40 a page gives three full pages and a short one
    assert objs(pages) == truth
    # The raw text is exactly what the emulator sent for each record (for the lake).
    assert raws(pages) == [dumps(order).decode() for order in truth]
    # Offset paging has no "last page" marker: a page with no new record ends the read.
    assert [len(p.records) for p in pages] == [40, 40, 40, len(truth) - 120, 0]
    assert served(emu) - before == len(pages) == 5
    assert [p.number for p in pages] == [1, 2, 3, 4, 5]
    # Anchored: each page after the first starts at the last order read, one wider.
    assert [p.params["offset"] for p in pages] == [0, 39, 79, 119, len(truth) - 1]
    assert [p.params["limit"] for p in pages] == [40, 41, 41, 41, 41]
    assert [p.overlap for p in pages] == [0, 1, 1, 1, 1]
    assert [p.rereads for p in pages] == [0] * 5
    assert [p.has_more for p in pages] == [True, True, True, True, False]
    assert all(p.endpoint == "GET /orders" for p in pages)
    assert all(p.n_bytes > 0 and p.server_time is not None for p in pages)


@pytest.mark.parametrize("edge", ["one", "short-last", "exact-divisor", "exact-total", "larger"])
def test_iter_orders_page_size_edges(emu: Emulator, clients, edge: str) -> None:
    """One record per page, a size that leaves a short last page, sizes that divide the
    total exactly (the last full page is followed by one empty page), and one larger than
    the whole result."""
    truth = emu.store.order_numbers()
    total = len(truth)
    page_size = {
        "one": 1,
        "short-last": next(d for d in range(7, total) if total % d),
        "exact-divisor": next(d for d in range(3, total) if total % d == 0),
        "exact-total": total,
        "larger": total + 1000,
    }[edge]
    api = clients.order(emu)
    before = served(emu)
    pages = list(api.iter_orders(page_size=page_size))
    assert _order_ids(pages) == truth
    full, rest = divmod(len(truth), page_size)
    assert served(emu) - before == full + (1 if rest else 0) + 1
    assert len(pages[-1].records) == 0


def test_iter_orders_with_a_server_that_clamps_the_limit(start, clients) -> None:
    """Centra's maximum limit is undocumented: short pages that are not the last must not
    end the read, and offsets must advance by what was received, not by what was asked."""
    emu = start(max_limit=25)
    api = clients.order(emu, page_size=100)
    pages = list(api.iter_orders())
    assert _order_ids(pages) == emu.store.order_numbers()
    # Each page after the first repeats its anchor: 24 new orders out of the 25 served.
    assert [len(p.records) for p in pages] == [25] + [24] * 5 + [1, 0]


def test_iter_orders_empty_result_is_one_request_and_one_empty_page(emu, clients) -> None:
    api = clients.order(emu)
    before = served(emu)
    pages = list(api.iter_orders(newer_than="2030-01-01 00:00:00"))
    assert served(emu) - before == 1
    assert len(pages) == 1 and pages[0].records == [] and not pages[0].has_more


def test_newer_than_is_inclusive_and_older_than_exclusive(emu: Emulator, clients) -> None:
    truth = list(emu.store.iter_orders())
    pivot = truth[len(truth) // 2]["orderDate"]
    api = clients.order(emu, page_size=30)

    newer = objs(api.iter_orders(newer_than=pivot))
    older = objs(api.iter_orders(older_than=pivot))
    assert newer == [o for o in truth if o["orderDate"] >= pivot]
    assert older == [o for o in truth if o["orderDate"] < pivot]
    assert newer[0]["orderDate"] == pivot  # the bound itself is included by newer_than
    assert len(newer) + len(older) == len(truth)

    lo, hi = truth[20]["orderDate"], truth[60]["orderDate"]
    window = objs(api.iter_orders(newer_than=lo, older_than=hi))
    assert window == [o for o in truth if lo <= o["orderDate"] < hi]
    assert len(window) == 40  # orderDates in this store are distinct around these bounds


def test_date_only_bounds_mean_midnight(emu: Emulator, clients) -> None:
    truth = list(emu.store.iter_orders())
    day = truth[100]["orderDate"][:10]
    api = clients.order(emu)
    got = objs(api.iter_orders(newer_than=day))
    assert got == [o for o in truth if o["orderDate"] >= f"{day} 00:00:00"]
    assert truth[100] in got
    assert got == objs(api.iter_orders(newer_than=f"{day} 00:00:00"))


def test_customer_id_filter(emu: Emulator, clients) -> None:
    truth = list(emu.store.iter_orders())
    customer = truth[-1]["customerId"]  # a string id in orders ("7"); the client sends it as is
    api = clients.order(emu, page_size=2)
    got = objs(api.iter_orders(customer_id=customer))
    assert got == [o for o in truth if o["customerId"] == customer]
    assert got
    assert objs(api.iter_orders(customer_id=int(customer))) == got
    assert objs(api.iter_orders(customer_id=999_999)) == []


def test_get_order_visible_hidden_and_unknown(emu: Emulator, clients) -> None:
    api = clients.order(emu)
    visible = emu.store.order_numbers()
    hidden = sorted(set(emu.store.order_numbers(visible_only=False)) - set(visible))
    assert hidden, "the store should have orders on hold / waiting for payment"

    number = visible[17]
    record = api.get_order(number)
    assert record is not None
    assert record.obj == emu.store.render_order(number)
    assert record.raw == dumps(emu.store.render_order(number)).decode()
    assert api.get_order(str(number)).obj["orderId"] == str(number)  # str or int number

    # Hidden by the plugin's hold/WfP setting: Centra answers an empty list, we answer None.
    assert api.get_order(hidden[0]) is None
    assert api.get_order(999_999) is None


def test_orders_sorted_descending_still_read_completely(start, clients) -> None:
    """The sort of GET /orders is undocumented; offset paging must not depend on it."""
    emu = start(orders_sort="desc")
    api = clients.order(emu, page_size=33)
    assert _order_ids(api.iter_orders()) == emu.store.order_numbers()
    assert _order_ids(api.iter_orders()) == sorted(emu.store.order_numbers(), reverse=True)


def test_new_orders_after_a_tick_are_found_with_newer_than(fresh: Emulator, clients) -> None:
    api = clients.order(fresh)
    result = fresh.tick(new_orders=4, advance_seconds=600)
    got = objs(api.iter_orders(newer_than="2026-01-15 12:00:01"))
    visible_new = [n for n in result["new_order_ids"] if fresh.store.render_order(n)]
    assert [int(o["orderId"]) for o in got] == visible_new
    assert all(fresh.store.render_order(int(o["orderId"])) == o for o in got)


# --- GET /returns --------------------------------------------------------------------------
def test_iter_returns_reads_all_newest_first(emu: Emulator, clients) -> None:
    truth = list(emu.store.iter_returns())
    assert len(truth) == emu.stats()["returns"]["visible"] > 8
    api = clients.order(emu, page_size=4)
    before = served_endpoint(emu, "order", "GET /returns")
    pages = list(api.iter_returns())
    assert objs(pages) == truth
    full, rest = divmod(len(truth), 4)
    sizes = [4] * full + ([rest] if rest else []) + [0]
    assert [len(p.records) for p in pages] == sizes
    # Read by date: page 1 each time, older than the oldest second read + 1 s (exclusive).
    assert [p.number for p in pages] == list(range(1, len(sizes) + 1))
    assert {p.params["page"] for p in pages} == {1}
    assert "older_than" not in pages[0].params
    for previous, page in itertools.pairwise(pages):
        oldest = datetime.strptime(previous.records[-1].obj["date"], "%Y-%m-%d %H:%M:%S")
        assert page.params["older_than"] == f"{oldest + timedelta(seconds=1):%Y-%m-%d %H:%M:%S}"
        assert page.params["limit"] == 5 and page.overlap == 1  # the boundary return again
    assert served_endpoint(emu, "order", "GET /returns") - before == len(sizes)
    dates = [r["date"] for r in objs(pages)]
    assert dates == sorted(dates, reverse=True)
    assert all(isinstance(r["returnId"], int) for r in truth)  # ints here, strings in orders


@pytest.mark.parametrize("edge", ["one", "exact-divisor", "exact-total", "larger"])
def test_iter_returns_page_size_edges(emu: Emulator, clients, edge: str) -> None:
    truth = [r["returnId"] for r in emu.store.iter_returns()]
    total = len(truth)
    page_size = {
        "one": 1,
        "exact-divisor": next(d for d in range(2, total) if total % d == 0),
        "exact-total": total,
        "larger": total + 100,
    }[edge]
    api = clients.order(emu)
    before = served_endpoint(emu, "order", "GET /returns")
    got = [r["returnId"] for r in objs(api.iter_returns(page_size=page_size))]
    assert got == truth
    full, rest = divmod(len(truth), page_size)
    assert served_endpoint(emu, "order", "GET /returns") - before == full + bool(rest) + 1


def test_iter_returns_filters(emu: Emulator, clients) -> None:
    truth = list(emu.store.iter_returns())
    api = clients.order(emu, page_size=3)
    pivot = truth[7]["date"]
    assert objs(api.iter_returns(newer_than=pivot)) == [r for r in truth if r["date"] >= pivot]
    assert objs(api.iter_returns(older_than=pivot)) == [r for r in truth if r["date"] < pivot]
    order = truth[3]["orderId"]
    assert objs(api.iter_returns(order=order)) == [truth[3]]
    assert objs(api.iter_returns(return_id=truth[5]["returnId"])) == [truth[5]]
    assert objs(api.iter_returns(newer_than="2030-01-01")) == []


def test_get_return(emu: Emulator, clients) -> None:
    api = clients.order(emu)
    ids = [r["returnId"] for r in emu.store.iter_returns()]
    for return_id in (ids[0], ids[len(ids) // 2], ids[-1]):
        record = api.get_return(return_id)
        assert record is not None
        assert record.obj == emu.store.render_return(return_id)
    assert api.get_return(str(ids[1])).obj["returnId"] == ids[1]
    assert api.get_return(99_999) is None


# --- GET /customers ------------------------------------------------------------------------
def test_iter_customers_reads_all_and_pages_exactly(emu: Emulator, clients) -> None:
    truth = list(emu.store.iter_customers())
    assert len(truth) == 30
    api = clients.order(emu)
    for page_size, expected_requests in ((7, 6), (10, 4), (30, 2), (31, 2)):
        before = served_endpoint(emu, "order", "GET /customers")
        assert objs(api.iter_customers(page_size=page_size)) == truth
        assert served_endpoint(emu, "order", "GET /customers") - before == expected_requests


def test_iter_customers_modified_after_a_tick(fresh: Emulator, clients) -> None:
    api = clients.order(fresh)
    result = fresh.tick(updated_customers=3, advance_seconds=120)
    changed = objs(api.iter_customers(modified=result["now"]))  # "after" includes the bound
    assert [int(c["customerId"]) for c in changed] == result["updated_customer_ids"]
    assert all(c["modified"] == result["now"] for c in changed)
    assert objs(api.iter_customers(modified="2026-01-15 12:02:01")) == []


def test_iter_customers_created_and_email(emu: Emulator, clients) -> None:
    truth = list(emu.store.iter_customers())
    api = clients.order(emu, page_size=4)
    pivot = sorted(c["created"] for c in truth)[20]
    assert objs(api.iter_customers(created=pivot)) == [c for c in truth if c["created"] >= pivot]
    email = truth[12]["email"]
    assert objs(api.iter_customers(email=email.upper())) == [truth[12]]
    assert objs(api.iter_customers(email="nobody@example.com")) == []


def test_get_customer_found_and_not_found(emu: Emulator, clients) -> None:
    api = clients.order(emu)
    record = api.get_customer(12)
    assert record is not None
    assert record.obj == emu.store.render_customer(12)
    assert record.raw == dumps(emu.store.render_customer(12)).decode()
    assert api.get_customer("12").obj["customerId"] == "12"
    assert api.get_customer(9999) is None  # {"status":"no","msg":"The customer was not found."}


# --- GET /products and GET /stock -----------------------------------------------------------
def test_iter_products_follows_next_links_without_an_extra_request(emu, clients) -> None:
    truth = list(emu.store.iter_product_rows())
    total = len(truth)
    divisor = next(d for d in range(3, total) if total % d == 0)
    short = next(d for d in range(4, total) if total % d)
    api = clients.order(emu)
    for page_size in (1, short, divisor, total, total + 50):
        full, rest = divmod(total, page_size)
        expected = [page_size] * full + ([rest] if rest else [])
        before = served_endpoint(emu, "order", "GET /products")
        pages = list(api.iter_products(page_size=page_size))
        assert objs(pages) == truth
        # No `next` link on the last page: an exact last page costs no extra request.
        assert [len(p.records) for p in pages] == expected
        assert served_endpoint(emu, "order", "GET /products") - before == len(expected)
        assert [p.has_more for p in pages] == [True] * (len(expected) - 1) + [False]


def test_iter_stock_reads_every_row(emu: Emulator, clients) -> None:
    truth = list(emu.store.iter_stock_rows())
    api = clients.order(emu, page_size=4)
    got = objs(api.iter_stock())
    assert got == truth
    assert all(r["availableStock"] == r["physicalStock"] - r["allocatedStock"] for r in got)


def test_products_and_stock_modified_filters_after_a_tick(fresh: Emulator, clients) -> None:
    api = clients.order(fresh, page_size=2)
    result = fresh.tick(updated_products=2, advance_seconds=300)
    products = objs(api.iter_products(modified=result["now"]))
    assert sorted({p["productId"] for p in products}) == sorted(result["updated_product_ids"])
    stock = objs(api.iter_stock(stock_modified=result["now"]))
    assert [s["stockItemId"] for s in stock] == sorted(result["updated_stock_item_ids"])
    truth = {s["stockItemId"]: s for s in fresh.store.iter_stock_rows()}
    assert all(truth[s["stockItemId"]] == s for s in stock)
    assert objs(api.iter_products(modified="2026-01-16")) == []
    assert objs(api.iter_products(created="2030-01-01")) == []


# --- business errors -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "msg_part"),
    [
        (lambda api: next(api.iter_orders(newer_than="15/01/2026")), "Invalid date format"),
        (lambda api: next(api.iter_orders(page_size=-5)), "Invalid limit"),
        (lambda api: next(api.iter_returns(older_than="2026-01-15T10:00:00")), "Invalid date"),
        (lambda api: next(api.iter_customers(modified="yesterday")), "Invalid date"),
        (lambda api: api.get_order("ABC"), "Invalid order"),
        (lambda api: next(api.iter_stock(stock_modified="2026-13-01")), "Invalid date"),
    ],
)
def test_business_errors_raise_with_centras_message_and_are_not_retried(
    emu: Emulator, clients, call, msg_part: str
) -> None:
    api = clients.order(emu)
    before = served(emu)
    with pytest.raises(CentraBusinessError) as caught:
        call(api)
    assert msg_part in str(caught.value)
    assert caught.value.detail["status"] == "no"
    assert caught.value.api == "Order API"
    assert served(emu) - before == 1  # a business error is an answer, not a transient failure


# --- streaming: lazy, one page (plus one prefetched) alive ------------------------------------
def test_iter_orders_is_lazy(emu: Emulator, clients) -> None:
    api = clients.order(emu, page_size=10)
    before = served(emu)
    pages = api.iter_orders()
    assert served(emu) - before == 0  # creating the iterator fetches nothing
    first = next(pages)
    assert len(first.records) == 10
    assert served(emu) - before == 1
    pages.close()
    assert served(emu) - before == 1


def test_prefetch_fetches_at_most_one_page_ahead(emu: Emulator, clients) -> None:
    api = clients.order(emu, page_size=10)
    before = served(emu)
    pages = prefetch(api.iter_orders())
    first = next(pages)
    time.sleep(0.3)  # give the background thread every chance to run ahead
    assert served(emu) - before <= 2
    assert _order_ids([first]) == emu.store.order_numbers()[:10]
    pages.close()  # stops the producer: nothing more is fetched
    settled = served(emu)
    time.sleep(0.1)
    assert served(emu) == settled <= before + 2


def test_prefetch_keeps_at_most_two_pages_alive_while_streaming(emu, clients) -> None:
    """Memory stays flat: while the caller works on page k, only page k+1 exists besides it."""
    api = clients.order(emu, page_size=10)
    created: list[weakref.ref[Page]] = []

    def tracked(pages):
        for page in pages:
            created.append(weakref.ref(page))
            yield page

    seen = 0
    peak = 0
    for page in prefetch(tracked(api.iter_orders())):
        seen += len(page.records)
        time.sleep(0.02)  # let the producer run ahead as far as it can
        peak = max(peak, sum(ref() is not None for ref in created))
        del page
    assert seen == len(emu.store.order_numbers())
    assert len(created) == -(-seen // 10) + 1  # full pages, the short one, the empty one
    assert peak == 2


def test_prefetch_preserves_order_and_surfaces_errors_in_order(emu: Emulator, clients) -> None:
    api = clients.order(emu, page_size=9)
    assert _order_ids(prefetch(api.iter_orders())) == emu.store.order_numbers()

    def pages_then_error():
        yield from api.iter_orders(newer_than="2030-01-01")
        yield from api.iter_orders(newer_than="not a date")

    stream = prefetch(pages_then_error())
    assert next(stream).records == []  # the first generator's single empty page
    with pytest.raises(CentraBusinessError):
        next(stream)
