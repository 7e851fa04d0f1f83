"""When each API request arrived: what a client's rate limit is judged by.

The emulator keeps the arrival time (wall clock, as the kernel received the request's first
bytes: server.py) of the newest requests per API and serves
them at `GET /_emulator/requests`, with the most that arrived in any one second, so a test or
benchmark can check from the server's side that a client never exceeds its limit.
"""

from __future__ import annotations

import threading
import time
from collections import deque

KEPT = 100_000  # per API, newest kept
APIS = ("order", "shop")


def busiest_window(times: list[float], seconds: float = 1.0) -> int:
    """The most arrivals in any window of `seconds` (half-open: [t, t + seconds))."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, stamp in enumerate(ordered):
        while ordered[first] <= stamp - seconds:
            first += 1
        most = max(most, last - first + 1)
    return most


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrivals: dict[str, deque[float]] = {api: deque(maxlen=KEPT) for api in APIS}

    def arrived(self, api: str, stamp: float | None = None) -> None:
        """A request to `api` arrived at `stamp` (epoch seconds; default now)."""
        stamp = time.time() if stamp is None else stamp
        with self._lock:
            self._arrivals[api].append(stamp)

    def since(self, moment: float = 0.0) -> dict[str, list[float]]:
        """Arrival times after `moment` (epoch seconds), per API."""
        with self._lock:
            return {api: [t for t in times if t > moment] for api, times in self._arrivals.items()}

    def summary(self, moment: float = 0.0) -> dict[str, dict]:
        return {
            api: {
                "requests": len(times),
                "busiest_second": busiest_window(times),
                "arrivals": times,
            }
            for api, times in self.since(moment).items()
        }
