"""Full reads while the store changes under them: nothing visible throughout is skipped.

Positional paging (`offset`, `page`) skips a record whenever another leaves the result set in
front of the read position. Each test here changes the emulator's store *between two page
requests* (the page iterators are lazy: the next request is made only when the next page is
taken) and checks that every record visible throughout the read was read exactly once, and
that nothing was read twice. Where it shows the point, the same change is applied to a plain
positional read, which does skip: the tests would catch the old behaviour.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

import pytest

from centra_pipeline.centra.errors import CentraError
from centra_pipeline.centra.http import Response
from centra_pipeline.centra.jsonstream import RawRecord
from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.centra.page import Page, record_key
from centra_pipeline.centra.paging import offset_pages
from centra_pipeline.emulator import Emulator
from centra_pipeline.emulator.store import Store

from .conftest import objs, served, served_endpoint

LOGGER = "centra_pipeline.centra"


# --- helpers -------------------------------------------------------------------------------
def read_changing(pages: Iterable[Page], change: Callable[[int], None]) -> list[Page]:
    """Take every page; after page k (before the request for page k+1) call change(k)."""
    taken: list[Page] = []
    for page in pages:
        taken.append(page)
        change(len(taken))
    return taken


def ids(pages: Iterable[Page], field: str) -> list[int]:
    return [int(record[field]) for record in objs(pages)]


class Visible:
    """The visible result set at every change: what stayed visible throughout, and what was
    visible at some point (`see()` after every change; changes happen only there)."""

    def __init__(self, truth: Callable[[], set[int]]) -> None:
        self.truth = truth
        self.throughout = truth()
        self.ever = set(self.throughout)

    def see(self) -> set[int]:
        now = self.truth()
        self.throughout &= now
        self.ever |= now
        return now


def assert_read_exactly_once(got: list[int], visible: Visible) -> None:
    """Every record visible throughout was read; nothing twice; nothing never visible."""
    visible.see()
    twice = sorted(k for k, n in Counter(got).items() if n > 1)
    assert not twice, f"read more than once: {twice}"
    missed = sorted(visible.throughout - set(got))
    assert not missed, f"visible throughout but not read: {missed}"
    assert set(got) <= visible.ever


def set_hidden(store: Store, numbers: Iterable[int], hidden: bool) -> None:
    """Put orders on hold (hidden by the plugin) or release them, as a tick would."""
    with store.lock:
        for number in numbers:
            index = store.orders.index_of(number)
            assert index is not None
            store.orders.hold[index] = hidden
            if not hidden:
                store.orders.wfp[index] = False
        store.version += 1
        store._cache.clear()


def plain_offset_read(
    api: OrderApi, path: str, records_key: str, field: str, limit: int, change
) -> list[int]:
    """What the client did before: offsets advanced by the records received, no anchor."""
    got: list[int] = []
    offset = 0
    while True:
        params = {"limit": limit, "offset": offset}
        _, records, _ = api._get(path, f"GET {path}", records_key, params)
        if not records:
            return got
        got += [int(r.obj[field]) for r in records]
        offset += len(records)
        change(len(got) // limit)


def order_truth(emu: Emulator) -> set[int]:
    return set(emu.store.order_numbers())


def return_truth(emu: Emulator) -> set[int]:
    return {r["returnId"] for r in emu.store.iter_returns()}


# --- (a) orders leaving the result set during the read -----------------------------------
def test_orders_stay_complete_when_the_plugin_stops_serving_cancelled_orders(
    start, clients, caplog
) -> None:
    emu = start(orders=600)
    api = clients.order(emu, page_size=40)
    visible = Visible(lambda: order_truth(emu))
    cancelled_early = [
        o["orderId"] for o in list(emu.store.iter_orders())[:80] if o["orderStatus"] == "6"
    ]
    assert cancelled_early, "some cancelled orders must lie in front of the read position"

    def change(page: int) -> None:
        if page == 2:
            emu.store.set_plugin("order", statuses=(1, 2, 3, 4, 5))
            visible.see()

    with caplog.at_level(logging.INFO, logger=LOGGER):
        pages = read_changing(api.iter_orders(), change)
    assert_read_exactly_once(ids(pages, "orderId"), visible)
    assert visible.ever - visible.throughout, "the change must hide orders"
    assert sum(p.rereads for p in pages) >= 1  # it had to step back ...
    assert any("stepped back" in r.getMessage() for r in caplog.records)  # ... and says so
    assert not pages[-1].has_more and pages[-1].records == []

    # The same change under plain offset paging skips orders that never left the set.
    emu.store.set_plugin("order", statuses=(1, 2, 3, 4, 5, 6))
    plain = plain_offset_read(api, "/orders", "orders", "orderId", 40, change)
    assert visible.throughout - set(plain), "plain offsets were expected to skip here"


@pytest.mark.parametrize(("page_size", "seed"), [(7, 1), (40, 2), (40, 3), (101, 4)])
def test_orders_stay_complete_while_orders_go_on_hold_and_are_released(
    start, clients, page_size: int, seed: int
) -> None:
    """After every page, orders already read go on hold (they leave the set in front of the
    read position) and held orders are released (they arrive, anywhere)."""
    emu = start(orders=600)
    api = clients.order(emu, page_size=page_size)
    rng = random.Random(seed)
    visible = Visible(lambda: order_truth(emu))
    read: list[int] = []

    def change(_: int) -> None:
        now = visible.see()
        behind = sorted(n for n in read if n in now)
        held = sorted(set(emu.store.order_numbers(visible_only=False)) - now)
        set_hidden(emu.store, rng.sample(behind, min(len(behind), rng.randint(1, 4))), True)
        set_hidden(emu.store, rng.sample(held, min(len(held), rng.randint(0, 3))), False)
        visible.see()

    def tracked() -> Iterator[Page]:
        for page in api.iter_orders():
            read.extend(int(r.obj["orderId"]) for r in page.records)
            yield page

    pages = read_changing(tracked(), change)
    assert_read_exactly_once(ids(pages, "orderId"), visible)
    assert sum(p.rereads for p in pages) >= 1


def test_orders_sorted_newest_first_while_new_orders_arrive_in_front(start, clients) -> None:
    """With a descending sort, new orders arrive in front of the read position: everything
    shifts back, and the overlap drops what is served again."""
    emu = start(orders=300, orders_sort="desc")
    api = clients.order(emu, page_size=25)
    visible = Visible(lambda: order_truth(emu))

    def change(_: int) -> None:
        emu.tick(new_orders=3, updated_orders=2, advance_seconds=60)
        visible.see()

    pages = read_changing(api.iter_orders(), change)
    assert_read_exactly_once(ids(pages, "orderId"), visible)
    assert sum(p.overlap for p in pages) > len(pages)  # more than the one anchor a page


def test_orders_read_with_a_clamping_server_while_orders_leave(start, clients) -> None:
    """The server serves at most 25 whatever we ask: offsets advance by what was received."""
    emu = start(orders=400, max_limit=25)
    api = clients.order(emu, page_size=100)
    visible = Visible(lambda: order_truth(emu))

    def change(page: int) -> None:
        if page == 3:
            emu.store.set_plugin("order", markets=(1, 2, 3, 4))
            visible.see()

    pages = read_changing(api.iter_orders(), change)
    assert_read_exactly_once(ids(pages, "orderId"), visible)
    assert visible.ever - visible.throughout
    assert all(len(p.records) <= 25 for p in pages)
    assert sum(p.rereads for p in pages) >= 1


# --- customers: they never leave the set; arrivals and the overlap ---------------------------
def test_customers_are_read_once_while_they_are_modified_during_the_read(fresh, clients) -> None:
    """GET /customers has no filter a customer can drop out of (ids ascending; `modified` is
    an "after" filter on a timestamp that only moves forward), so nothing can be skipped.
    With `modified`, customers modified during the read *enter* the set, in front of the
    read position too: the overlap drops them when they come round again."""
    api = clients.order(fresh, page_size=4)
    truth = [int(c["customerId"]) for c in fresh.store.iter_customers()]
    pages = read_changing(
        api.iter_customers(), lambda _: fresh.tick(updated_customers=3, advance_seconds=30)
    )
    assert ids(pages, "customerId") == truth
    assert [p.overlap for p in pages][1:] == [1] * (len(pages) - 1)

    bound = fresh.tick(advance_seconds=60)["now"]
    fresh.tick(updated_customers=10, advance_seconds=60)

    def modified_since() -> set[int]:
        return {int(c["customerId"]) for c in objs(api.iter_customers(modified=bound))}

    visible = Visible(modified_since)
    assert 5 <= len(visible.throughout) < len(truth)

    def change(_: int) -> None:
        fresh.tick(updated_customers=4, advance_seconds=30)
        visible.see()

    pages = read_changing(api.iter_customers(modified=bound, page_size=2), change)
    assert_read_exactly_once(ids(pages, "customerId"), visible)
    assert visible.ever > visible.throughout  # customers entered the set during the read


# --- (b) returns by date while returns are added and hidden --------------------------------
@pytest.mark.parametrize("page_size", [1, 4, 7])
def test_returns_stay_complete_while_returns_are_hidden_and_added(
    start, clients, page_size: int
) -> None:
    emu = start(orders=1000)
    api = clients.order(emu, page_size=page_size)
    visible = Visible(lambda: return_truth(emu))

    def change(page: int) -> None:
        if page == 2:
            emu.store.set_plugin("order", markets=(1, 2, 3))  # hides returns, also read ones
        if page % 3 == 0:
            emu.tick(new_returns=2, advance_seconds=60)  # the newest: in front of the read
        if page == 8:
            emu.store.set_plugin("order", markets=(1, 2, 3, 5))
        visible.see()

    pages = read_changing(api.iter_returns(), change)
    assert_read_exactly_once(ids(pages, "returnId"), visible)
    assert len(visible.ever) > len(visible.throughout) + 5
    dates = [r["date"] for r in objs(pages)]
    assert dates == sorted(dates, reverse=True)

    # Page numbers, as before, skip returns under the same change.
    emu.store.set_plugin("order", markets=None)
    visible = Visible(lambda: return_truth(emu))
    plain: list[int] = []
    for number in range(1, 1000):
        params = {"limit": page_size, "page": number}
        _, records, _ = api._get("/returns", "GET /returns", "returns", params)
        if not records:
            break
        plain += [r.obj["returnId"] for r in records]
        if number == 2:
            emu.store.set_plugin("order", markets=(1, 2, 3))
            visible.see()
    assert visible.throughout - set(plain), "page numbers were expected to skip"


def test_returns_keep_the_callers_window(start, clients) -> None:
    emu = start(orders=1000)
    truth = list(emu.store.iter_returns())
    newer, older = truth[60]["date"], truth[10]["date"]
    window = [r["returnId"] for r in truth if newer <= r["date"] < older]
    api = clients.order(emu, page_size=6)
    before = served_endpoint(emu, "order", "GET /returns")
    pages = list(api.iter_returns(newer_than=newer, older_than=older))
    assert ids(pages, "returnId") == window
    assert all(p.params["newer_than"] == newer for p in pages)
    assert all(p.params["older_than"] <= older for p in pages)
    full, rest = divmod(len(window), 6)
    assert served_endpoint(emu, "order", "GET /returns") - before == full + bool(rest) + 1


@pytest.mark.parametrize("max_limit", [5000, 5])
def test_more_returns_in_one_second_than_a_page_holds(start, clients, max_limit: int) -> None:
    """Twelve returns created in one second, read four at a time: that second is read by
    page number (`newer_than` = `older_than` - 1 s), whether the server would serve a wider
    page or clamps the limit; then the read goes on with what is older."""
    emu = start(orders=1000, max_limit=max_limit)
    created = emu.tick(new_returns=12, advance_seconds=0)["new_return_ids"]
    assert len(created) == 12
    api = clients.order(emu, page_size=4)
    truth = [r["returnId"] for r in emu.store.iter_returns()]
    assert set(truth[:12]) == set(created)  # the newest second holds twelve
    before = served_endpoint(emu, "order", "GET /returns")
    pages = list(api.iter_returns())
    assert ids(pages, "returnId") == truth
    by_page = [p for p in pages if "newer_than" in p.params]
    assert sum(len(p.records) for p in by_page) >= 4
    newest = next(emu.store.iter_returns())["date"]
    assert {p.params["newer_than"] for p in by_page} == {newest}
    # A few requests more than plain page numbers (one or two for the crowded second).
    full, rest = divmod(len(truth), 4)
    extra = served_endpoint(emu, "order", "GET /returns") - before - (full + bool(rest) + 1)
    assert 0 < extra <= 3


# --- the Shop API catalogue: products made inactive during the read -------------------------
def test_catalogue_stays_complete_while_products_are_made_inactive(start, clients) -> None:
    emu = start(products=40)
    api = clients.shop(emu, page_size=5)
    store = emu.store
    visible = Visible(lambda: {int(p["product"]) for p in store.iter_shop_products()})
    read: list[int] = []

    def change(page: int) -> None:
        if page in (2, 4, 5):
            with store.lock:  # deactivate products already read: in front of the read position
                for variant in store.shop_variants():
                    if variant.shop_id in read[:3]:
                        variant.product.active = False
            visible.see()

    def tracked() -> Iterator[Page]:
        for page in api.iter_products():
            read.extend(int(r.obj["product"]) for r in page.records)
            yield page

    pages = read_changing(tracked(), change)
    assert_read_exactly_once(ids(pages, "product"), visible)
    assert visible.ever - visible.throughout
    assert sum(p.rereads for p in pages) >= 1


# --- (c) an unchanged store: the same requests as plain paging, every record once ------------
@pytest.mark.parametrize("page_size", [1, 2, 7, 40, 145, 146, 147, 500])
def test_unchanged_store_costs_what_plain_offset_paging_cost(
    emu: Emulator, clients, page_size: int
) -> None:
    truth = emu.store.order_numbers()
    assert len(truth) == 146
    api = clients.order(emu, page_size=page_size)
    before = served(emu)
    pages = list(api.iter_orders())
    assert ids(pages, "orderId") == truth  # each once, in API order
    full, rest = divmod(len(truth), page_size)
    plain_requests = full + bool(rest) + 1  # pages, then the empty page that ended the read
    assert served(emu) - before == len(pages) == plain_requests
    expected = [page_size] * full + ([rest] if rest else []) + [0]
    assert [len(p.records) for p in pages] == expected
    assert sum(p.rereads for p in pages) == 0
    assert [p.overlap for p in pages] == [0] + [1] * (len(pages) - 1)


@pytest.mark.parametrize("page_size", [1, 3, 4, 7, 29, 30, 31])
def test_unchanged_store_customers_returns_and_catalogue(
    emu: Emulator, clients, page_size: int
) -> None:
    def plain(total: int) -> int:
        full, rest = divmod(total, page_size)
        return full + bool(rest) + 1

    api = clients.order(emu, page_size=page_size)
    shop = clients.shop(emu, page_size=page_size)
    reads = [
        ("GET /customers", "order", api.iter_customers, "customerId", emu.store.iter_customers),
        ("GET /returns", "order", api.iter_returns, "returnId", emu.store.iter_returns),
        ("POST /products/filter", "shop", shop.iter_products, "product", None),
    ]
    for endpoint, side, read, field, truth_of in reads:
        truth = (
            [int(p["product"]) for p in emu.store.iter_shop_products()]
            if truth_of is None
            else [int(r[field]) for r in truth_of()]
        )
        before = served_endpoint(emu, side, endpoint)
        pages = list(read())
        assert ids(pages, field) == truth, endpoint
        assert served_endpoint(emu, side, endpoint) - before == plain(len(truth)), endpoint
        assert sum(p.rereads for p in pages) == 0


# --- (d) a server that clamps the limit ------------------------------------------------------
def test_clamping_server_still_reads_everything(start, clients) -> None:
    emu = start(orders=300, max_limit=6)
    api = clients.order(emu, page_size=50)
    assert ids(api.iter_orders(), "orderId") == emu.store.order_numbers()
    assert ids(api.iter_customers(), "customerId") == list(range(1, 31))
    assert ids(api.iter_returns(), "returnId") == [r["returnId"] for r in emu.store.iter_returns()]


# --- offset_pages against an in-memory result set that changes at every request ------------
class ChangingList:
    """A result set served by offset; before answering, records may leave or arrive."""

    def __init__(
        self,
        size: int,
        rng: random.Random,
        *,
        clamp: int | None = None,
        every: int = 1,
        leave: tuple[int, ...] = (0, 0, 1, 2, 5),
        arrive: tuple[int, ...] = (0, 0, 1, 3),
    ) -> None:
        self.rows = list(range(size))
        self.leave, self.arrive = leave, arrive  # how many at once: one of these
        self.next_key = size
        self.rng = rng
        self.clamp = clamp
        self.every = every  # change before one request in `every`
        self.requests = 0
        self.left: set[int] = set()
        self.change = True

    def mutate(self) -> None:
        rng = self.rng
        for _ in range(rng.choice(self.leave)):
            if self.rows:
                self.left.add(self.rows.pop(rng.randrange(len(self.rows))))
        for _ in range(rng.choice(self.arrive)):
            self.rows.insert(rng.randrange(len(self.rows) + 1), self.next_key)
            self.next_key += 1

    def fetch(self, offset: int, limit: int):
        self.requests += 1
        if self.change and self.requests > 1 and self.requests % self.every == 0:
            self.mutate()
        count = min(limit, self.clamp or limit)
        window = self.rows[offset : offset + count]
        records = [RawRecord({"id": k}, f'{{"id": {k}}}') for k in window]
        response = Response(200, "[]", {}, datetime.now(UTC))
        return {"offset": offset, "limit": limit}, records, response


def _read(server: ChangingList, limit: int) -> list[int]:
    pages = offset_pages(
        server.fetch, api="test", endpoint="GET /x", key=record_key("id"), limit=limit
    )
    return [r.obj["id"] for page in pages for r in page.records]


@pytest.mark.parametrize(("limit", "lost_at_most"), [(3, 8), (10, 3), (50, 2)])
def test_offset_pages_under_random_change(limit: int, lost_at_most: int) -> None:
    """Heavy churn: before almost every request records leave and arrive anywhere. Nothing
    present from start to end is skipped and nothing is read twice; when a whole window's
    worth left during one request the read stops with an error instead (rare, and rarer
    the wider the pages)."""
    lost = 0
    for seed in range(60):
        rng = random.Random(seed * 1000 + limit)
        size = rng.randint(0, 300)
        server = ChangingList(size, rng, clamp=rng.choice((None, None, 4, 9)))
        try:
            got = _read(server, limit)
        except CentraError as exc:
            assert "cannot tell where" in str(exc)
            lost += 1
            continue
        assert len(got) == len(set(got)), f"seed {seed}: duplicates"
        stayed = set(range(size)) - server.left  # present from the start to the end
        assert stayed <= set(got), f"seed {seed}: skipped {sorted(stayed - set(got))}"
        assert set(got) <= set(range(server.next_key))
    assert lost <= lost_at_most


@pytest.mark.parametrize("limit", [1, 2])
def test_offset_pages_with_tiny_pages_under_light_change(limit: int) -> None:
    """Pages of one and two records (`limit` 1 asks for two from the second request on: the
    anchor and a new one) stay exact while the set changes now and then."""
    for seed in range(40):
        rng = random.Random(seed)
        size = rng.randint(0, 60)
        server = ChangingList(size, rng, every=3, leave=(0, 1), arrive=(0, 1))
        got = _read(server, limit)
        assert len(got) == len(set(got))
        assert set(range(size)) - server.left <= set(got)


@pytest.mark.parametrize("limit", [1, 2, 5, 10])
@pytest.mark.parametrize("size", [0, 1, 9, 10, 11, 100])
def test_offset_pages_on_a_still_list(limit: int, size: int) -> None:
    server = ChangingList(size, random.Random(0))
    server.change = False
    assert _read(server, limit) == list(range(size))
    full, rest = divmod(size, limit)
    assert server.requests == full + bool(rest) + 1


def test_offset_pages_stops_when_every_record_of_the_last_two_pages_left() -> None:
    server = ChangingList(20, random.Random(0))
    server.change = False
    pages = offset_pages(server.fetch, api="test", endpoint="GET /x", key=record_key("id"), limit=3)
    assert [r.obj["id"] for r in next(pages).records] == [0, 1, 2]
    assert [r.obj["id"] for r in next(pages).records] == [3, 4, 5]
    assert [r.obj["id"] for r in next(pages).records] == [6, 7, 8]
    server.rows = [k for k in server.rows if not 2 <= k <= 8]  # the last two pages read
    with pytest.raises(CentraError, match="cannot tell where"):
        next(pages)


def test_offset_pages_reads_on_when_everything_read_so_far_left() -> None:
    server = ChangingList(20, random.Random(0))
    server.change = False
    pages = offset_pages(server.fetch, api="test", endpoint="GET /x", key=record_key("id"), limit=3)
    assert [r.obj["id"] for r in next(pages).records] == [0, 1, 2]
    server.rows = server.rows[3:]
    rest = [r.obj["id"] for page in pages for r in page.records]
    assert rest == list(range(3, 20))


def test_offset_pages_refuses_a_server_that_ignores_offset_with_full_pages() -> None:
    requests = 0

    def fetch(offset: int, limit: int):
        nonlocal requests
        requests += 1
        records = [RawRecord({"id": k}, f'{{"id": {k}}}') for k in (1, 2, 3)]
        return {}, records, Response(200, "[]", {}, datetime.now(UTC))

    pages = offset_pages(fetch, api="test", endpoint="GET /x", key=record_key("id"), limit=3)
    with pytest.raises(CentraError, match="ignores `offset`"):
        list(pages)
    assert requests == 2


def test_record_key_uses_the_field_or_the_raw_text() -> None:
    key = record_key("orderId")
    assert key(RawRecord({"orderId": 7}, "{}")) == key(RawRecord({"orderId": "7"}, "{ }")) == "7"
    assert key(RawRecord({}, '{"x": 1}')) == '{"x": 1}'
