"""Outbound webhooks: signed form posts, batches of at most 100, retries, drops, duplicates."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from centra_pipeline.centra.webhook import decode_payload, parse_events, verify_signature
from centra_pipeline.emulator import Emulator

from .conftest import make_config

SECRET = "webhook-secret-for-tests"


class Receiver:
    """A local webhook endpoint that records raw requests and can be told to fail."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/centra/webhook"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def events(self) -> list[dict[str, Any]]:
        out = []
        for headers, body in self.requests:
            verify_signature(SECRET, body, headers["X-Centra-Signature"])
            out.extend({"type": e.type, "action": e.action, "id": int(e.id), "date": e.date}
                       for e in parse_events(decode_payload(body)))  # fmt: skip
        return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _emulator(receiver: Receiver, **overrides: Any) -> Emulator:
    settings = {"webhook_url": receiver.url, "webhook_secret": SECRET, "webhook_retry_delay": 0.05}
    settings.update(overrides)
    return Emulator(make_config(**settings))


def test_tick_events_are_signed_batched_and_complete(receiver: Receiver) -> None:
    with _emulator(receiver) as emu:
        result = emu.tick(new_orders=230, updated_orders=20)
        assert result["webhook_events"] == 250
        assert emu.wait_webhooks(timeout=10)
        sizes = [len(parse_events(decode_payload(body))) for _, body in receiver.requests]
        assert sizes == [100, 100, 50]
        for headers, body in receiver.requests:
            assert headers["Content-Type"] == "application/x-www-form-urlencoded"
            assert body.startswith(b"payload=") and b"+" in body  # php style: space as "+"
            verify_signature(SECRET, body, headers["X-Centra-Signature"])
        events = receiver.events()
        assert [e["id"] for e in events if e["action"] == "insert"] == result["new_order_ids"]
        assert [e["id"] for e in events if e["action"] == "update"] == result["updated_order_ids"]
        assert {e["type"] for e in events} == {"order"}
        assert all(
            e["date"].startswith(result["now"] + ".") and len(e["date"]) == 26 for e in events
        )
        # Every id can be fetched from the Order API (with hold/wfp orders made visible).
        emu.set_plugin("order", include_hold_wfp=True)
        assert all(emu.store.render_order(e["id"]) is not None for e in events)
        stats = emu.stats()["webhooks"]
        assert stats["delivered"] == 250 and stats["batches_delivered"] == 3
        assert stats["failed"] == stats["dropped"] == stats["pending"] == 0


def test_failed_deliveries_are_retried_then_dropped(receiver: Receiver) -> None:
    receiver.status = 500
    with _emulator(receiver, webhook_retries=2) as emu:
        emu.tick(new_orders=3)
        started = time.monotonic()
        assert emu.wait_webhooks(timeout=10)
        # delays 0.05 and 0.1 s: the retry schedule doubles
        assert time.monotonic() - started >= 0.14
        assert len(receiver.requests) == 3  # one attempt + two retries
        stats = emu.stats()["webhooks"]
        assert stats["sent"] == 3 and stats["retried"] == 2 and stats["failed"] == 3
        assert stats["dropped"] == 3 and stats["batches_dropped"] == 1 and stats["delivered"] == 0
        # Every attempt is signed afresh (the body is the same batch).
        assert len({body for _, body in receiver.requests}) == 1

        receiver.status = 204  # the receiver recovers: the next batch goes through
        emu.tick(updated_orders=2)
        assert emu.wait_webhooks(timeout=10)
        assert emu.stats()["webhooks"]["delivered"] == 2


def test_a_timeout_counts_as_a_failure(receiver: Receiver) -> None:
    receiver.delay = 0.5
    with _emulator(receiver, webhook_timeout=0.1, webhook_retries=0) as emu:
        emu.tick(new_orders=1)
        assert emu.wait_webhooks(timeout=10)
        stats = emu.stats()["webhooks"]
        assert stats["failed"] == 1 and stats["dropped"] == 1


def test_unreachable_receiver_does_not_block_ticks() -> None:
    with Emulator(make_config(webhook_url="http://127.0.0.1:9/hook", webhook_secret=SECRET,
                              webhook_retry_delay=0.02)) as emu:  # fmt: skip
        started = time.monotonic()
        for _ in range(5):
            emu.tick(new_orders=10)
        assert time.monotonic() - started < 1.0
        assert emu.wait_webhooks(timeout=15)
        assert emu.stats()["webhooks"]["dropped"] == 50


def test_duplicates_shuffle_and_rfc3986_encoding(receiver: Receiver) -> None:
    with _emulator(
        receiver, webhook_duplicate_rate=1.0, webhook_shuffle=True, webhook_encoding="rfc3986"
    ) as emu:
        result = emu.tick(new_orders=40)
        assert emu.wait_webhooks(timeout=10)
        events = receiver.events()
        ids = [e["id"] for e in events]
        assert sorted(ids) == sorted(result["new_order_ids"] * 2)
        assert ids != sorted(ids)  # shuffled inside the batch
        body = receiver.requests[0][1]
        assert b"%20" in body and b"+" not in body
        assert emu.stats()["webhooks"]["duplicated"] == 40
