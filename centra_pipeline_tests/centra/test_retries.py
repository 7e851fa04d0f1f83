"""Retries, the retry budget and the rate limiter, under faults the emulator injects on the
socket: 429 (Retry-After in seconds and as an HTTP date), 500, 503, resets, truncated bodies
and slow responses."""

from __future__ import annotations

import math
import threading
import time
from email.utils import formatdate

import pytest
import requests

from centra_pipeline.centra.errors import (
    CentraConnectionError,
    CentraServerError,
)
from centra_pipeline.centra.failures import parse_retry_after
from centra_pipeline.centra.http import CentraSession
from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.centra.ratelimit import RateLimiter
from centra_pipeline.emulator import Emulator
from centra_pipeline.emulator.request_log import busiest_window

from .conftest import FAST, ORDER_KEY, fast, objs, served


def _customers_truth(emu: Emulator) -> list[dict]:
    return list(emu.store.iter_customers())


# --- one transient fault, then success -------------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("500", "HTTP 500"),
        ("reset", "connection error"),
        ("truncate", "truncated response body"),
        ("429", "HTTP 429 Too Many Requests"),
    ],
)
def test_a_transient_fault_is_retried_and_the_data_is_complete(
    fresh: Emulator, clients, fault: str, reason: str
) -> None:
    fresh.faults.set_rates(retry_after=0)
    fresh.faults.queue(fault, fault)
    api = clients.order(fresh, page_size=7)
    assert objs(api.iter_customers()) == _customers_truth(fresh)
    assert fresh.stats()["faults"]["injected"][fault] == 2
    assert api.session.stats.retries == 2
    assert api.session.stats.snapshot()["retry_reasons"] == {reason: 2}


def test_shop_api_post_is_retried_too(fresh: Emulator, clients) -> None:
    fresh.faults.set_rates(retry_after=0)
    fresh.faults.queue("reset", "500", "truncate", "429")
    shop = clients.shop(fresh, page_size=3, config=fast(max_attempts=5))
    assert objs(shop.iter_products()) == list(fresh.store.iter_shop_products())
    assert shop.session.stats.retries == 4


def test_retry_after_in_seconds_is_honoured(fresh: Emulator, clients) -> None:
    """backoff_base is 10 ms: only the server's `Retry-After: 1` can make the call wait 1 s."""
    fresh.faults.set_rates(retry_after=1)
    fresh.faults.queue("429")
    api = clients.order(fresh)
    started = time.monotonic()
    record = api.get_customer(5)
    elapsed = time.monotonic() - started
    assert record is not None and record.obj == fresh.store.render_customer(5)
    assert 1.0 <= elapsed < 3.0
    assert api.session.stats.retry_reasons == {"HTTP 429 Too Many Requests": 1}


def test_retry_after_as_an_http_date_is_honoured(fresh: Emulator, clients) -> None:
    """The emulator sends `formatdate(now + 1)`: a whole second, so the retry may not start
    before that second on the wall clock."""
    fresh.faults.set_rates(retry_after="http-date")
    fresh.faults.queue("429")
    api = clients.order(fresh)
    sent = time.time()
    record = api.get_customer(6)
    assert record is not None and record.obj == fresh.store.render_customer(6)
    assert time.time() >= math.floor(sent + 1) - 0.01
    assert time.time() - sent < 3.0
    assert api.session.stats.retry_reasons == {"HTTP 429 Too Many Requests": 1}


def test_503_retry_after_is_honoured(fresh: Emulator, clients) -> None:
    fresh.faults.queue("503")  # the emulator's 503 carries `Retry-After: 1`
    shop = clients.shop(fresh)
    started = time.monotonic()
    ids = shop.product_ids()
    assert time.monotonic() - started >= 1.0
    assert ids == [p["product"] for p in fresh.store.iter_shop_products()]
    assert shop.session.stats.retry_reasons == {"HTTP 503": 1}


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(formatdate(now + 45, usegmt=True), now=now) == 45.0
    assert parse_retry_after(formatdate(now - 45, usegmt=True), now=now) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    for unreadable in (None, "", "soon", "Thu, 99 Foo 2015"):
        assert parse_retry_after(unreadable) is None


def test_slow_response_within_the_read_timeout_is_not_retried(fresh: Emulator, clients) -> None:
    fresh.faults.set_rates(slow_ms=400)
    fresh.faults.queue("slow")
    api = clients.order(fresh, page_size=50)
    started = time.monotonic()
    first = next(api.iter_orders())
    assert time.monotonic() - started >= 0.35
    assert [o["orderId"] for o in objs([first])] == [
        str(n) for n in fresh.store.order_numbers()[:50]
    ]
    assert api.session.stats.retries == 0


def test_slow_response_beyond_the_read_timeout_is_retried(fresh: Emulator, clients) -> None:
    fresh.faults.set_rates(slow_ms=6000)  # 20 pieces, 300 ms apart
    fresh.faults.queue("slow")
    api = clients.order(fresh, page_size=50, config=fast(read_timeout=0.1))
    assert objs(api.iter_customers()) == _customers_truth(fresh)
    assert api.session.stats.retries == 1


def test_a_read_with_random_faults_everywhere_is_still_exact(start, clients) -> None:
    """A third of all requests fail in every way the emulator knows; the read still returns
    every record once, in order, with the same bytes."""
    emu = start(
        rate_429=0.07,
        retry_after=0,
        rate_500=0.07,
        rate_reset=0.07,
        rate_truncate=0.07,
        rate_slow=0.05,
        slow_ms=40,
    )
    api = clients.order(emu, page_size=9, config=fast(max_attempts=10))
    pages = list(api.iter_orders())
    truth = list(emu.store.iter_orders())
    assert objs(pages) == truth
    injected = emu.stats()["faults"]["injected"]
    assert sum(injected.values()) >= 3
    assert api.session.stats.retries == sum(v for k, v in injected.items() if k != "slow")


# --- persistent faults: bounded retries, then one clear error --------------------------------
def test_persistent_server_errors_give_up_after_max_attempts(fresh: Emulator, clients) -> None:
    fresh.faults.set_rates(rate_500=1.0)
    api = clients.order(fresh)
    with pytest.raises(CentraServerError) as caught:
        next(api.iter_orders())
    assert f"gave up after {FAST.max_attempts} attempts" in str(caught.value)
    assert "HTTP 500" in str(caught.value)
    assert served(fresh) == FAST.max_attempts


@pytest.mark.parametrize("fault", ["reset", "slow"])
def test_persistent_connection_failures_are_connection_errors(
    fresh: Emulator, clients, fault: str
) -> None:
    fresh.faults.set_rates(slow_ms=6000)
    fresh.faults.queue(*[fault] * 3)
    api = clients.order(fresh, config=fast(max_attempts=3, read_timeout=0.1))
    with pytest.raises(CentraConnectionError) as caught:
        next(api.iter_orders())
    assert "CENTRA_ORDER_API_URL" in str(caught.value)
    assert api.session.stats.retries == 2


def test_the_retry_budget_bounds_the_total_time(fresh: Emulator, clients) -> None:
    """Many attempts allowed, but a total budget of 0.4 s: the call ends within it."""
    fresh.faults.set_rates(rate_500=1.0)
    config = fast(max_attempts=1000, max_retry_seconds=0.4, backoff_base=0.05, backoff_max=0.2)
    api = clients.order(fresh, config=config)
    started = time.monotonic()
    with pytest.raises(CentraServerError):
        next(api.iter_orders())
    elapsed = time.monotonic() - started
    assert elapsed < 0.4 + 0.3
    assert 2 <= served(fresh) < 1000


def test_a_retry_after_beyond_the_budget_fails_at_once(fresh: Emulator, clients) -> None:
    """Sleeping 120 s only to run out of budget helps nobody: give up now and say why."""
    fresh.faults.set_rates(rate_429=1.0, retry_after=120)
    api = clients.order(fresh, config=fast(max_retry_seconds=5))
    started = time.monotonic()
    with pytest.raises(CentraServerError) as caught:
        next(api.iter_orders())
    assert time.monotonic() - started < 1.0
    assert "429" in str(caught.value)
    assert served(fresh) == 1


# --- rate limiting -----------------------------------------------------------------------------
class TimedSession(requests.Session):
    """A real requests.Session that notes when each request leaves the client."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[float] = []

    def send(self, request, **kwargs):  # type: ignore[override]
        self.starts.append(time.monotonic())
        return super().send(request, **kwargs)


def _assert_within_limit(stamps: list[float], rate: float) -> None:
    """No one-second window holds more than `rate` request starts."""
    assert busiest_window(stamps) <= rate, busiest_window(stamps)


def test_the_rate_limiter_paces_requests_to_the_emulator(fresh: Emulator) -> None:
    """At 20 requests per second, 35 one-record pages need at least (35 - 20) / 20 = 0.75 s,
    and no one-second window holds more requests than the limit."""
    rate = 20.0
    http = TimedSession()
    session = CentraSession(
        fresh.order_api_url,
        ORDER_KEY,
        api_name="Order API",
        config=fast(max_requests_per_second=rate),
        session=http,
    )
    api = OrderApi(session, page_size=1)
    bound = fresh.store.render_order(1035)["orderDate"]
    started = time.monotonic()
    try:
        got = objs(api.iter_orders(older_than=bound))
    finally:
        api.close()
    elapsed = time.monotonic() - started
    assert [int(o["orderId"]) for o in got] == list(range(1001, 1035))
    assert len(http.starts) == 35 == served(fresh)
    assert elapsed >= (35 - rate) / rate
    assert session.stats.rate_limited_seconds > 0  # the limiter did the waiting
    _assert_within_limit(http.starts, rate)
    # The pacing is the limiter's doing: unlimited, the same read is far faster.
    fast_api = OrderApi(
        CentraSession(fresh.order_api_url, ORDER_KEY, api_name="Order API", config=FAST),
        page_size=1,
    )
    started = time.monotonic()
    assert objs(fast_api.iter_orders(older_than=bound)) == got
    assert time.monotonic() - started < elapsed / 2
    fast_api.close()


def test_rate_limiter_is_shared_fairly_between_threads() -> None:
    limiter = RateLimiter(50.0)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stamps) == 80
    assert time.monotonic() - started >= (80 - 50) / 50 - 0.01
    _assert_within_limit(stamps, 50.0)


def test_rate_limiter_rejects_a_non_positive_rate() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
