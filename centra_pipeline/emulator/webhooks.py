"""Outbound Centra webhooks (Integration API version, Order trigger), sent by a background thread.

Delivery follows the plugin documentation (docs/webhooks.md): batches of at most N events,
a timeout per POST, up to `retries` retries with delays doubling from the base delay
(1, 2, 4 s by default), then the batch is dropped. What counts as a failure is undocumented;
we count a timeout, a connection error and any non-2xx status (docs/emulator.md).

The sender never blocks the store: a tick only appends to the queue.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import urllib.parse
from collections import deque
from typing import Any

from centra_pipeline.centra.webhook import SIGNATURE_HEADER, encode_payload, signature_header

from .config import EmulatorConfig

log = logging.getLogger(__name__)


class WebhookSender:
    def __init__(self, cfg: EmulatorConfig) -> None:
        assert cfg.webhook_url is not None and cfg.webhook_secret is not None
        self.url = cfg.webhook_url
        self._secret = cfg.webhook_secret
        self.batch_size = cfg.webhook_batch_size
        self.timeout = cfg.webhook_timeout
        self.retries = cfg.webhook_retries
        self.retry_delay = cfg.webhook_retry_delay
        self.encoding = cfg.webhook_encoding
        self.duplicate_rate = cfg.webhook_duplicate_rate
        self.shuffle = cfg.webhook_shuffle
        self._rng = random.Random(f"centra-emulator-webhooks-{cfg.seed}")
        self._queue: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.counts = {
            "queued": 0,  # events accepted (duplicates included)
            "duplicated": 0,  # extra copies queued by webhook_duplicate_rate
            "sent": 0,  # POST attempts
            "delivered": 0,  # events in batches that got a 2xx
            "batches_delivered": 0,
            "retried": 0,  # retry attempts
            "failed": 0,  # failed attempts (timeout, connection error, non-2xx)
            "dropped": 0,  # events given up on after the last retry
            "batches_dropped": 0,
        }

    # lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="centra-emulator-webhooks", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    # producer side ----------------------------------------------------------------------
    def enqueue(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        with self._cond:
            batch = list(events)
            if self.duplicate_rate:
                # Centra: "The same order can send the same action multiple times".
                extra = [dict(e) for e in events if self._rng.random() < self.duplicate_rate]
                batch.extend(extra)
                self.counts["duplicated"] += len(extra)
            self._queue.extend(batch)
            self.counts["queued"] += len(batch)
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued event was delivered or dropped; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {**self.counts, "pending": len(self._queue) + (1 if self._busy else 0)}

    # sender thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping.is_set())
                if self._stopping.is_set():
                    return
                batch = [
                    self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))
                ]
                self._busy = True
            try:
                if self.shuffle:
                    self._rng.shuffle(batch)  # Centra does not guarantee order
                self._deliver(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        body = encode_payload({"events": batch}, self.encoding)
        attempt = 0
        while True:
            ok = self._post(body)
            with self._cond:
                self.counts["sent"] += 1
                if ok:
                    self.counts["delivered"] += len(batch)
                    self.counts["batches_delivered"] += 1
                    return
                self.counts["failed"] += 1
                if attempt >= self.retries or self._stopping.is_set():
                    self.counts["dropped"] += len(batch)
                    self.counts["batches_dropped"] += 1
                    log.warning(
                        "webhook batch of %d events dropped after %d attempts",
                        len(batch),
                        attempt + 1,
                    )
                    return
            if self._stopping.wait(self.retry_delay * (2**attempt)):
                with self._cond:
                    self.counts["dropped"] += len(batch)
                    self.counts["batches_dropped"] += 1
                return
            attempt += 1
            with self._cond:
                self.counts["retried"] += 1

    def _post(self, body: bytes) -> bool:
        parts = urllib.parse.urlsplit(self.url)
        conn_cls = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "*/*",
            SIGNATURE_HEADER: signature_header(self._secret, body),  # fresh t= per attempt
        }
        conn = conn_cls(parts.hostname or "localhost", parts.port, timeout=self.timeout)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return 200 <= response.status < 300
        except (OSError, http.client.HTTPException) as exc:
            log.info("webhook POST to %s failed: %s", self.url, type(exc).__name__)
            return False
        finally:
            conn.close()
