"""Reading the next page while the caller works on this one."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from queue import Empty, Queue
from typing import TypeVar

T = TypeVar("T")


def prefetch(pages: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Fetch the next page in a background thread while the caller processes this one.

    Memory stays bounded (`depth` pages in flight). HTTP waits release the GIL, so the
    network and the caller's parsing overlap. Errors surface in the caller, in order.
    """
    queue: Queue = Queue(maxsize=depth)
    # A bounded queue alone lets the producer fetch one more page and hold it while it waits
    # for room; taking a slot *before* fetching keeps fetched-but-untaken pages at `depth`.
    slots = threading.Semaphore(max(depth - 1, 0))
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                if stop.is_set():
                    return
                queue.put(("page", page))
                slots.acquire()  # released when the consumer takes a page (or stops)
                if stop.is_set():
                    return
            queue.put(("done", done))
        except BaseException as exc:  # re-raised in the consumer
            queue.put(("error", exc))

    thread = threading.Thread(target=produce, name="centra-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = queue.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            slots.release()
            yield item
    finally:
        stop.set()
        slots.release()  # wake a producer waiting for a slot so it sees `stop`
        # Unblock a producer waiting on a full queue so the thread can finish.
        while thread.is_alive():
            with contextlib.suppress(Empty):
                queue.get_nowait()
            thread.join(timeout=0.05)
