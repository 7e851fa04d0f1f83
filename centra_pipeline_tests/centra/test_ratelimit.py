"""One rate limit per API: a ceiling on what Centra sees in any second, shared by every
session (stream) and thread of the API, paused for everyone when the server throttles.

The limiter's arithmetic is checked on a fake clock; its effect is judged the way Centra
would judge it: from the emulator's own log of when requests arrived."""

from __future__ import annotations

import gc
import itertools
import random
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from centra_pipeline.centra.http import CentraSession
from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.centra.ratelimit import (
    SEND_GRACE,
    WINDOW_MARGIN,
    RateLimiter,
    request_sent,
    shared_limiter,
)
from centra_pipeline.centra.shop_api import ShopApi
from centra_pipeline.emulator import Emulator
from centra_pipeline.emulator.request_log import busiest_window

from ..conftest import emulator_process, requests_seen
from .conftest import NOW, ORDER_KEY, SHOP_KEY, TIMEZONE, fast


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _limiter(rate: float) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    return RateLimiter(rate, clock=clock, sleep=clock.sleep), clock


def test_a_second_holds_at_most_the_rate_never_a_burst_on_top() -> None:
    """A token bucket of one second's worth lets 2x the rate into some second; the window
    does not: 25 starts at 10/s take two full windows of waiting."""
    limiter, clock = _limiter(10)
    starts = []
    for _ in range(25):
        limiter.acquire()
        starts.append(clock.now)
    assert starts[:10] == [100.0] * 10  # the first second's worth at once
    window = 1 + WINDOW_MARGIN
    assert starts[10] == pytest.approx(100 + window)
    assert starts[24] == pytest.approx(100 + 2 * window)
    assert busiest_window(starts) == 10
    assert all(b - a >= window - 1e-9 for a, b in zip(starts, starts[10:], strict=False))


def test_a_rate_below_one_spaces_single_requests() -> None:
    limiter, clock = _limiter(0.5)
    starts = []
    for _ in range(3):
        limiter.acquire()
        starts.append(clock.now)
    assert [b - a for a, b in itertools.pairwise(starts)] == [
        pytest.approx(2 * (1 + WINDOW_MARGIN))
    ] * 2


def test_a_throttle_holds_every_start_until_the_server_said() -> None:
    limiter, _clock = _limiter(10)
    limiter.acquire()
    limiter.hold(5.0)
    assert limiter.held_for == pytest.approx(5.0)
    waited = limiter.acquire()
    assert waited == pytest.approx(5.0)
    assert limiter.held_for == 0


def test_a_throttle_that_arrives_while_a_thread_waits_holds_it_too() -> None:
    limiter = RateLimiter(4)
    for _ in range(4):
        limiter.acquire()  # the window is full: the next start waits about a second
    done: list[float] = []
    started = time.monotonic()
    waiter = threading.Thread(target=lambda: done.append(limiter.acquire()))
    waiter.start()
    time.sleep(0.2)
    limiter.hold(2.0)  # told while it sleeps towards its slot
    waiter.join()
    assert time.monotonic() - started >= 2.2 - 0.01


def test_a_request_sent_late_holds_back_the_ones_after_it() -> None:
    """Between taking its start and writing its bytes a thread may wait (the GIL, behind
    threads parsing pages): the window counts sends, so a late send never lands in the same
    second as the next `rate` requests. Eight threads, each sending up to 0.3 s after its
    start; judged by the send times, no second holds more than the rate."""
    rate = 10
    limiter = RateLimiter(rate)
    sends: list[float] = []
    lock = threading.Lock()
    rng = random.Random(3)
    delays = [rng.uniform(0, 0.3) for _ in range(60)]

    def worker(mine: list[float]) -> None:
        for delay in mine:
            limiter.acquire()
            time.sleep(delay)
            with lock:
                sends.append(time.monotonic())
            request_sent()
            limiter.done()

    threads = [threading.Thread(target=worker, args=(delays[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sends) == 60
    assert busiest_window(sends) <= rate


def test_a_start_whose_thread_went_away_unreported_holds_the_others_up_only_briefly() -> None:
    limiter = RateLimiter(2)
    gone = threading.Thread(target=limiter.acquire)  # starts, never sends nor ends
    gone.start()
    gone.join()
    limiter.acquire()
    limiter.done()
    began = time.monotonic()
    limiter.acquire()  # the third start waits on the first: at most SEND_GRACE + a window
    assert time.monotonic() - began <= SEND_GRACE + limiter.window + 0.5
    limiter.done()


def test_a_connection_of_the_session_reports_when_it_sent(fresh: Emulator) -> None:
    """The session's connections tell the limiter the moment a request was written, before
    its answer came back."""
    limiter = RateLimiter(100)
    session = CentraSession(fresh.order_api_url, ORDER_KEY, api_name="Order API", config=fast())
    session.limiter = limiter
    seen: list[bool] = []
    real = limiter._sent

    def spy(start) -> None:
        seen.append(start.sent)
        real(start)

    limiter._sent = spy  # type: ignore[method-assign]
    response = session._send(
        "GET", f"{fresh.order_api_url}/orders", params={"limit": 1}, json_body=None
    )
    assert response.status == 200
    (start,) = limiter._starts
    assert start.sent
    # The first report came from the connection's write; `done` found it sent already.
    assert seen[0] is False and all(seen[1:])


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(0)


def test_sessions_of_one_api_share_one_limiter_and_the_apis_have_their_own() -> None:
    a = CentraSession("http://127.0.0.1:1/api/order", "k", api_name="Order API")
    b = CentraSession("http://127.0.0.1:1/api/order/", "k", api_name="Order API")
    shop = CentraSession("http://127.0.0.1:1/api/shop", "k", api_name="Shop API")
    assert a.limiter is b.limiter is shared_limiter("http://127.0.0.1:1/api/order", 10.0)
    assert shop.limiter is not a.limiter


def test_the_limit_remembers_a_closed_sessions_requests() -> None:
    """A stream that ends and one that starts in the same second share the second's limit:
    the limiter outlives the sessions that used it."""
    url = "http://127.0.0.1:2/api/order"
    config = fast(max_requests_per_second=5.0)
    first = CentraSession(url, "k", api_name="Order API", config=config)
    started = time.monotonic()
    for _ in range(5):
        first.limiter.acquire()
    first.close()
    del first
    gc.collect()
    second = CentraSession(url, "k", api_name="Order API", config=config)
    second.limiter.acquire()  # the window is still full: it waits for the first start's
    # (measured from the first start, not as the wait: gc.collect may take a while)
    assert time.monotonic() - started >= second.limiter.window - 0.01


class Recorder(requests.Session):
    """A real session that notes when each request left and when and how it was answered."""

    def __init__(self, log: list[tuple[float, float, int]]) -> None:
        super().__init__()
        self.log = log

    def send(self, request, **kwargs):  # type: ignore[override]
        sent = time.time()
        response = super().send(request, **kwargs)
        self.log.append((sent, time.time(), response.status_code))
        return response


@pytest.fixture(scope="module")
def remote() -> Iterator[str]:
    """The emulator in a process of its own, as Centra is (see `emulator_process`)."""
    options = ("--orders", "150", "--customers", "30", "--products", "6", "--now", NOW)
    keys = ("--order-api-key", ORDER_KEY, "--shop-api-key", SHOP_KEY)
    with emulator_process(*options, "--timezone", TIMEZONE, *keys) as base:
        yield base


def _arrivals(base: str, since: float) -> dict[str, list[float]]:
    return requests_seen(base, since)


def test_streams_and_threads_together_never_exceed_the_limit_the_server_sees(
    remote: str,
) -> None:
    """Three streams of the Order API, each paging from two threads, and the Shop API beside
    them: the emulator never sees more than the limit of either API in any second, while
    the read keeps the limit busy."""
    rate = 20.0
    config = fast(max_requests_per_second=rate)
    since = time.time()

    def order_api() -> OrderApi:
        session = CentraSession(
            f"{remote}/api/order", ORDER_KEY, api_name="Order API", config=config
        )
        return OrderApi(session, page_size=5)

    def shop_api() -> ShopApi:
        session = CentraSession(f"{remote}/api/shop", SHOP_KEY, api_name="Shop API", config=config)
        return ShopApi(session, page_size=1)

    def read(pages) -> None:
        for _ in pages:
            pass

    readers = [
        lambda: read(order_api().iter_orders()),
        lambda: read(order_api().iter_orders()),
        lambda: read(order_api().iter_customers()),
        lambda: read(order_api().iter_customers()),
        lambda: read(order_api().iter_products()),
        lambda: read(shop_api().iter_products()),
    ]
    threads = [threading.Thread(target=r) for r in readers]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    seen = _arrivals(remote, since)
    assert len(seen["order"]) > 3 * rate  # long enough for the limit to matter
    assert busiest_window(seen["order"]) <= rate
    assert busiest_window(seen["shop"]) <= rate
    # ...and the limit was used, not undercut: the Order API's requests took about their
    # share of the time at the limit.
    assert elapsed < len(seen["order"]) / rate * (1 + WINDOW_MARGIN) + 2.0


def test_a_429_pauses_every_thread_of_the_api_until_retry_after(fresh: Emulator) -> None:
    """One thread is told `429, Retry-After: 1`: no thread of the API sends anything until
    that second is over, then all carry on and every read completes."""
    fresh.faults.set_rates(retry_after=1)
    config = fast(max_requests_per_second=50.0, backoff_base=0.01)
    log: list[tuple[float, float, int]] = []
    results: dict[int, int] = {}

    def reader(n: int) -> None:
        api = OrderApi(
            CentraSession(
                fresh.order_api_url,
                ORDER_KEY,
                api_name="Order API",
                config=config,
                session=Recorder(log),
            ),
            page_size=3,
        )
        if n == 0:
            time.sleep(0.3)
            fresh.faults.queue("429")
        results[n] = sum(len(page.records) for page in api.iter_customers())

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results.values()) == {len(list(fresh.store.iter_customers()))}
    throttled = [answered for _, answered, status in log if status == 429]
    assert len(throttled) == 1
    told = throttled[0]
    during = [sent for sent, _, _ in log if told + 0.05 < sent < told + 1.0]
    assert during == []
    assert any(sent >= told + 1.0 for sent, _, _ in log)  # and reading went on after it
