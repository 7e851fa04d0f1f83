"""Every error path of the clients, against real servers on loopback, and no secret in any
message, traceback or log line."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from centra_pipeline.centra.errors import (
    CentraAuthError,
    CentraConnectionError,
    CentraEndpointNotAllowed,
    CentraError,
    CentraMalformedResponse,
    CentraURLError,
)
from centra_pipeline.centra.order_api import ENDPOINTS as ORDER_ENDPOINTS
from centra_pipeline.centra.order_api import OrderApi
from centra_pipeline.centra.shop_api import ShopApi
from centra_pipeline.emulator import Emulator
from centra_pipeline.emulator.config import ORDER_ENDPOINTS as EMULATED_ORDER_ENDPOINTS
from centra_pipeline.emulator.config import SHOP_ENDPOINTS
from centra_pipeline.settings import Secret

from .conftest import FAST, ORDER_KEY, SECRETS, SHOP_KEY, PlainServer, fast, objs, served

URL_SHAPE = "https://<store>.centra.com/api/<plugin uri>"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# One call per Order API endpoint, named as in the plugin's allow-list.
ORDER_CALLS: dict[str, Callable[[OrderApi], Any]] = {
    "GET /orders": lambda api: next(api.iter_orders()),
    "GET /returns": lambda api: next(api.iter_returns()),
    "GET /customers": lambda api: next(api.iter_customers()),
    "GET /customers/{id}": lambda api: api.get_customer(1),
    "GET /products": lambda api: next(api.iter_products()),
    "GET /stock": lambda api: next(api.iter_stock()),
}
SHOP_CALLS: dict[str, Callable[[ShopApi], Any]] = {
    "POST /products/filter": lambda api: next(api.iter_products()),
    "GET /product-ids": lambda api: api.product_ids(),
}


def test_every_client_endpoint_is_one_the_plugin_allow_list_knows() -> None:
    assert set(ORDER_CALLS) == set(ORDER_ENDPOINTS) == set(EMULATED_ORDER_ENDPOINTS)
    assert set(SHOP_CALLS) <= set(SHOP_ENDPOINTS)


# --- wrong URL -------------------------------------------------------------------------------
def test_url_to_a_web_page_that_is_not_the_api(emu: Emulator, clients) -> None:
    """The store's host, but not the plugin path: the web server's HTML 404."""
    wrong = emu.base_url + "/api/ordr"
    api = clients.order(emu, url=wrong)
    with pytest.raises(CentraURLError) as caught:
        next(api.iter_orders())
    message = str(caught.value)
    assert wrong in message and "HTTP 404" in message and URL_SHAPE in message
    assert api.session.stats.requests == 1  # a wrong URL is not retried


def test_url_with_an_extra_path_segment(emu: Emulator, clients) -> None:
    """Under the plugin path, but not an endpoint: Centra's JSON 404 ("Unknown endpoint")."""
    api = clients.order(emu, url=emu.order_api_url + "/v1")
    with pytest.raises(CentraURLError) as caught:
        next(api.iter_customers())
    assert "GET /customers" in str(caught.value)
    # Lookups that may answer "not found" must not mistake a wrong path for a missing object.
    with pytest.raises(CentraURLError):
        api.get_customer(1)
    shop = clients.shop(emu, url=emu.shop_api_url + "/v1")
    with pytest.raises(CentraURLError):
        next(shop.iter_products())  # not an empty catalogue
    with pytest.raises(CentraURLError):
        shop.get_products(["500001"])


def test_url_to_a_web_page_answering_200(plain: PlainServer, clients) -> None:
    plain.answer(
        b"<!DOCTYPE html><html><body>Welcome to our shop</body></html>", content_type="text/html"
    )
    api = clients.order(None, url=plain.url, key=ORDER_KEY)
    with pytest.raises(CentraURLError) as caught:
        next(api.iter_orders())
    assert "HTML page" in str(caught.value) and URL_SHAPE in str(caught.value)
    assert plain.requests == 1


@pytest.mark.parametrize("url", ["example.centra.com/api/order", "ftp://example.com/api", ""])
def test_url_that_is_not_http_fails_before_any_request(url: str) -> None:
    with pytest.raises(CentraURLError) as caught:
        OrderApi.connect(url, ORDER_KEY, config=FAST)
    assert URL_SHAPE in str(caught.value)


def test_nothing_listening_is_a_connection_error_after_bounded_retries(clients) -> None:
    port = _free_port()
    api = clients.order(None, url=f"http://127.0.0.1:{port}/api/order", key=ORDER_KEY)
    with pytest.raises(CentraConnectionError) as caught:
        next(api.iter_orders())
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "refused" in message
    assert "CENTRA_ORDER_API_URL" in message
    assert api.session.stats.retries == FAST.max_attempts - 1


def test_host_that_does_not_resolve(clients) -> None:
    shop = clients.shop(
        None, url="http://no-such-store.invalid/api/shop", key=SHOP_KEY, config=fast(max_attempts=1)
    )
    with pytest.raises(CentraConnectionError) as caught:
        shop.product_ids()
    assert "does not resolve" in str(caught.value)
    assert "CENTRA_SHOP_API_URL" in str(caught.value)


# --- wrong key -------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["wrong-key-0123456789", ORDER_KEY.upper(), SHOP_KEY])
def test_wrong_order_api_key(emu: Emulator, clients, key: str) -> None:
    api = clients.order(emu, key=key)
    before = served(emu)
    with pytest.raises(CentraAuthError) as caught:
        next(api.iter_orders())
    assert "CENTRA_ORDER_API_KEY" in str(caught.value)
    assert "HTTP 401" in str(caught.value)
    assert served(emu) - before == 1  # not retried


def test_wrong_shop_api_key(emu: Emulator, clients) -> None:
    shop = clients.shop(emu, key=ORDER_KEY)  # the other plugin's secret: a common mix-up
    for call in SHOP_CALLS.values():
        with pytest.raises(CentraAuthError) as caught:
            call(shop)
        assert "CENTRA_SHOP_API_KEY" in str(caught.value)
        assert "Shop API" in str(caught.value)


def test_key_rotated_in_centra_mid_stream(fresh: Emulator, clients) -> None:
    api = clients.order(fresh, page_size=20)
    pages = api.iter_orders()
    assert len(next(pages).records) == 20
    fresh.set_plugin("order", secret="a-new-secret-after-rotation")
    with pytest.raises(CentraAuthError):
        next(pages)


def test_a_secret_object_works_as_the_key(emu: Emulator) -> None:
    api = OrderApi.connect(emu.order_api_url, Secret(ORDER_KEY), config=FAST)
    try:
        assert api.get_customer(3).obj == emu.store.render_customer(3)
    finally:
        api.close()


# --- endpoint not allowed --------------------------------------------------------------------
@pytest.mark.parametrize("endpoint", list(ORDER_CALLS))
def test_order_endpoint_not_allowed_says_which_endpoint_to_allow(
    fresh: Emulator, clients, endpoint: str
) -> None:
    others = [e for e in ORDER_CALLS if e != endpoint]
    fresh.set_plugin("order", allowed_endpoints=others)
    api = clients.order(fresh)
    with pytest.raises(CentraEndpointNotAllowed) as caught:
        ORDER_CALLS[endpoint](api)
    message = str(caught.value)
    assert f"enable {endpoint} under 'Allow access to the following endpoints'" in message
    assert "Order API plugin's settings" in message
    assert caught.value.endpoint == endpoint and caught.value.api == "Order API"
    assert api.session.stats.requests == 1  # not retried
    for other in others:  # only the denied endpoint fails
        ORDER_CALLS[other](api)


@pytest.mark.parametrize("endpoint", list(SHOP_CALLS))
def test_shop_endpoint_not_allowed_says_which_endpoint_to_allow(
    fresh: Emulator, clients, endpoint: str
) -> None:
    fresh.set_plugin("shop", allowed_endpoints=[e for e in SHOP_ENDPOINTS if e != endpoint])
    shop = clients.shop(fresh)
    with pytest.raises(CentraEndpointNotAllowed) as caught:
        SHOP_CALLS[endpoint](shop)
    assert f"enable {endpoint} under 'Allow access to the following endpoints'" in str(caught.value)
    assert "Shop API plugin's settings" in str(caught.value)
    for other, call in SHOP_CALLS.items():
        if other != endpoint:
            call(shop)


# --- malformed and truncated JSON ------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "send_length"),
    [
        (b'{"status":"ok","orders":[{"orderId":"1001"},{"orderId":"10', True),
        (b'{"status":"ok","orders":[{"orderId":"1001"}]', False),  # cut, then the close
        (b'{"status":"ok","orders":[{"orderId":"1001"}]}{"x":1}', True),
        (b'{"status":"ok","orders":["1001"]}', True),
        (b"", True),
        (b"null\n", True),
    ],
    ids=["cut-in-a-record", "cut-without-length", "trailing-data", "not-records", "empty", "null"],
)
def test_malformed_json_is_retried_then_reported(
    plain: PlainServer, clients, body: bytes, send_length: bool
) -> None:
    plain.answer(body, send_length=send_length)
    api = clients.order(None, url=plain.url, key=ORDER_KEY)
    with pytest.raises(CentraMalformedResponse) as caught:
        next(api.iter_orders())
    assert "GET /orders" in str(caught.value)
    assert plain.requests == FAST.max_attempts
    assert api.session.stats.retries == FAST.max_attempts - 1


def test_truncated_bodies_from_the_emulator_are_retried_then_reported(
    fresh: Emulator, clients
) -> None:
    fresh.faults.queue(*["truncate"] * FAST.max_attempts)
    api = clients.order(fresh, page_size=100)
    with pytest.raises(CentraMalformedResponse) as caught:
        next(api.iter_orders())
    assert "truncated" in str(caught.value)
    assert fresh.stats()["faults"]["injected"]["truncate"] == FAST.max_attempts
    assert api.session.stats.retry_reasons == {"truncated response body": FAST.max_attempts - 1}


# --- secrets ---------------------------------------------------------------------------------
def test_no_secret_in_any_exception_traceback_or_log_line(
    fresh: Emulator, plain: PlainServer, clients, caplog: pytest.LogCaptureFixture
) -> None:
    wrong_key = "wrong-key-c0ffee-31337"
    caplog.set_level(logging.DEBUG)
    failures: list[BaseException] = []

    def expect_failure(call: Callable[[], Any]) -> None:
        try:
            call()
        except CentraError as exc:
            failures.append(exc)
        else:
            pytest.fail("expected a CentraError")

    order = clients.order(fresh)
    shop = clients.shop(fresh)
    expect_failure(lambda: next(clients.order(fresh, key=wrong_key).iter_orders()))
    expect_failure(lambda: clients.shop(fresh, key=wrong_key).product_ids())
    expect_failure(lambda: next(clients.order(fresh, url=fresh.base_url + "/x").iter_orders()))
    expect_failure(lambda: next(order.iter_orders(newer_than="bad date")))
    fresh.faults.queue(*["500"] * FAST.max_attempts)
    expect_failure(lambda: next(order.iter_orders()))
    fresh.faults.queue(*["reset"] * FAST.max_attempts)
    expect_failure(lambda: shop.product_ids())
    fresh.faults.queue(*["truncate"] * FAST.max_attempts)
    expect_failure(lambda: next(order.iter_customers()))
    fresh.set_plugin("order", allowed_endpoints=["GET /orders"])
    expect_failure(lambda: next(order.iter_returns()))
    plain.answer(b'{"status":"ok","orders":[', send_length=True)
    expect_failure(lambda: next(clients.order(None, url=plain.url, key=ORDER_KEY).iter_orders()))
    refused = f"http://127.0.0.1:{_free_port()}/api/order"
    expect_failure(lambda: next(clients.order(None, url=refused, key=ORDER_KEY).iter_orders()))
    slow = clients.order(fresh, config=fast(read_timeout=0.03, max_attempts=2))
    fresh.faults.set_rates(slow_ms=2000)
    fresh.faults.queue("slow", "slow")
    expect_failure(lambda: next(slow.iter_orders()))
    # ...and a successful read with retries logs warnings too.
    fresh.faults.queue("500", "429", "reset")
    fresh.faults.set_rates(retry_after=0)
    assert objs(shop.iter_products())

    assert len(failures) == 11
    assert any(r.levelno == logging.WARNING for r in caplog.records)  # retries were logged
    assert any(r.levelno == logging.DEBUG for r in caplog.records)  # urllib3 was listening
    secrets = (*SECRETS, wrong_key)
    for exc in failures:
        texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc)), repr(exc.args)]
        for text in texts:
            for secret in secrets:
                assert secret not in text, f"{type(exc).__name__} leaks a key"
    for secret in secrets:
        assert secret not in caplog.text
