"""One rate limit per Centra API, shared by every stream and thread that talks to it.

Centra documents no REST rate limits, but a merchant's integrations share Centra's capacity
(its GraphQL limits are shared per environment), so we pace ourselves instead of waiting to be
throttled. `CENTRA_MAX_REQUESTS_PER_SECOND` is a ceiling on what Centra sees: at most that
many requests start in any one-second window, for the whole API, however many streams read
it and however many connections they page with.

- A sliding window, not a token bucket: a bucket that may burst a second's worth on top of
  its steady rate lets 2x the rate through in some second. Here a request starts only at
  least `window` after the start `burst` places before it, so no window holds more. Starts
  are taken under a lock at the moment they happen, not reserved ahead: a thread that wakes
  late from its wait would otherwise start nearer to the ones after it than the window.
  The window is widened by a small margin: a request reaches the server a little after it
  starts (thread scheduling, the socket), and the server must still never count more than
  the limit in one of its seconds.
- Throttled (`hold`): a 429 or a `Retry-After` stops every thread's next start until the
  server's time is up, not only the one that was told; each then retries in its slot.
- Shared (`shared_limiter`): sessions of one API in one process (the streams of a run, their
  connections, a probe beside them) get the same limiter, keyed by the plugin URL and the
  rate. Processes do not share it: the runs that read Centra in bulk write the warehouse and
  the run queue lets one of them run at a time (docs/architecture.md).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

# The window's margin: the server sees each request this share of a window later at most.
WINDOW_MARGIN = 0.05


class RateLimiter:
    """At most `rate` request starts per second in any window (thread-safe)."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin: float = WINDOW_MARGIN,
    ) -> None:
        if not rate > 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        # `burst` starts per `window`: 10 req/s is 10 per 1.05 s, 0.5 req/s one per 2.1 s.
        self.burst = max(1, int(rate))
        self.window = self.burst / rate * (1 + margin)
        self._starts: deque[float] = deque(maxlen=self.burst)
        self._held_until = 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait until a request may start; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                free_at = max(self._held_until, self._free_at())
                if free_at <= now:
                    # Taken at the moment of starting, so a thread that wakes late cannot
                    # bring its start nearer to the ones after it.
                    self._starts.append(now)
                    return waited
            self._sleep(free_at - now)
            waited += free_at - now

    def _free_at(self) -> float:
        """When the next start fits in the window: `window` after the start `burst` back."""
        return self._starts[0] + self.window if len(self._starts) == self.burst else 0.0

    def hold(self, seconds: float) -> None:
        """The server asked us to wait: nobody starts a request for `seconds`."""
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + max(0.0, seconds))

    @property
    def held_for(self) -> float:
        """Seconds until starts may resume after a throttle (0 when not held)."""
        with self._lock:
            return max(0.0, self._held_until - self._clock())


# Kept for the process's life, not only while a session holds one: a limiter made anew
# between two streams' sessions would forget the starts of the last second.
_SHARED: dict[tuple[str, float], RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_limiter(api_url: str, rate: float) -> RateLimiter:
    """The process's limiter for the API at `api_url` at `rate` (created on first use)."""
    with _SHARED_LOCK:
        limiter = _SHARED.get((api_url, rate))
        if limiter is None:
            limiter = RateLimiter(rate)
            _SHARED[(api_url, rate)] = limiter
        return limiter
