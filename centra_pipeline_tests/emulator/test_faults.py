"""Fault injection, observed where a client would see it: on the socket."""

from __future__ import annotations

import json
import socket
import time
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests

from .conftest import ORDER_KEY, Client


def _raw_request(client: Client, path: str = "/api/order/orders?limit=200") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", client.emu.port), timeout=5)
    request = f"GET {path} HTTP/1.1\r\nHost: test\r\nAPI-Authorization: {ORDER_KEY}\r\n\r\n"
    sock.sendall(request.encode())
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read until the server closes or Content-Length is satisfied."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    expected = int(headers.get("content-length", "0"))
    while len(body) < expected:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def test_reset_aborts_the_connection_with_rst(fresh: Client) -> None:
    fresh.emu.faults.queue("reset")
    sock = _raw_request(fresh)
    with pytest.raises(ConnectionResetError):
        sock.recv(1024)
    sock.close()
    fresh.emu.faults.queue("reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        fresh.order("/orders")
    assert fresh.order("/orders").status_code == 200  # the next request is fine again


def test_truncate_promises_more_bytes_than_it_sends(fresh: Client) -> None:
    fresh.emu.faults.queue("truncate")
    sock = _raw_request(fresh)
    status, headers, body = _read_response(sock)
    assert status == 200
    assert 0 < len(body) < int(headers["content-length"])
    assert sock.recv(1024) == b""  # closed after the partial body
    sock.close()
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    fresh.emu.faults.queue("truncate")
    with pytest.raises(requests.exceptions.RequestException):
        fresh.order("/orders", limit=200)


def test_slow_dribbles_a_complete_body(fresh: Client) -> None:
    fresh.emu.faults.set_rates(slow_ms=400)
    fresh.emu.faults.queue("slow")
    sock = _raw_request(fresh)
    started = time.monotonic()
    status, headers, body = _read_response(sock)
    elapsed = time.monotonic() - started
    sock.close()
    assert status == 200 and len(body) == int(headers["content-length"])
    assert json.loads(body)["status"] == "ok"
    assert elapsed >= 0.3


def test_status_faults_and_retry_after(fresh: Client) -> None:
    fresh.emu.faults.queue("429", "500", "503")
    throttled = fresh.order("/orders")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    assert fresh.order("/orders").status_code == 500
    unavailable = fresh.order("/orders")
    assert unavailable.status_code == 503 and "Retry-After" in unavailable.headers
    fresh.emu.faults.set_rates(retry_after="http-date")
    fresh.emu.faults.queue("429")
    date = fresh.shop("/products").headers["Retry-After"]
    assert parsedate_to_datetime(date).timestamp() >= time.time() - 5
    assert fresh.order("/orders").status_code == 200


def test_queue_runs_in_order_then_stops(fresh: Client) -> None:
    fresh.emu.faults.queue("503", "reset", "truncate", "429", "500", "slow")
    fresh.emu.faults.set_rates(slow_ms=50)
    seen: list[Any] = []
    for _ in range(7):
        try:
            response = fresh.order("/orders", limit=100)
            if response.status_code == 200:
                assert response.json()["status"] == "ok"
            seen.append(response.status_code)
        except requests.exceptions.RequestException as exc:
            seen.append(type(exc).__name__)
    assert seen[0] == 503 and seen[3:] == [429, 500, 200, 200]
    assert seen[1] == "ConnectionError" and seen[2] in ("ChunkedEncodingError", "ConnectionError")
    injected = fresh.emu.stats()["faults"]["injected"]
    assert injected == {"429": 1, "500": 1, "503": 1, "reset": 1, "truncate": 1, "slow": 1}


def test_random_rates_are_seeded_and_spare_the_admin_api(start: Any) -> None:
    runs = []
    for _ in range(2):
        client = start(rate_429=0.2, rate_500=0.1, rate_503=0.1)
        statuses = [client.order("/orders", limit=1).status_code for _ in range(40)]
        runs.append(statuses)
        assert client.admin("GET", "/stats").status_code == 200
    assert runs[0] == runs[1]
    assert {200, 429} <= set(runs[0]) <= {200, 429, 500, 503}

    always = start(rate_500=1.0)
    assert {always.order("/orders").status_code for _ in range(5)} == {500}
    assert {always.shop("/products").status_code for _ in range(5)} == {500}
    assert always.admin("POST", "/tick", json={"new_orders": 1}).status_code == 200
    assert always.admin("GET", "/stats").json()["faults"]["injected"]["500"] == 10


def test_latency_applies_to_api_requests_only(start: Any) -> None:
    client = start(latency_ms=150)
    started = time.monotonic()
    client.order("/orders", limit=1)
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    client.admin("GET", "/stats")
    assert time.monotonic() - started < 0.15


def test_faults_over_the_admin_api(fresh: Client) -> None:
    response = fresh.admin("POST", "/faults", json={"queue": ["500", "429"]})
    assert response.status_code == 200 and response.json()["queued"] == ["500", "429"]
    bad = fresh.admin("POST", "/faults", json={"queue": ["boom"], "rate_500": 1.0})
    assert bad.status_code == 400
    assert fresh.emu.faults.stats()["rates"]["rate_500"] == 0.0  # nothing changed
    assert fresh.admin("POST", "/faults", json={"rate_429": 2}).status_code == 400
    assert fresh.order("/orders").status_code == 500
    assert fresh.order("/orders").status_code == 429
    fresh.admin("POST", "/faults", json={"rate_503": 1.0})
    assert fresh.order("/orders").status_code == 503
    fresh.admin("POST", "/faults", json={"clear": True})
    assert fresh.order("/orders").status_code == 200
