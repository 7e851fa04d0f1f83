"""Fault injection for the API endpoints (never the admin API).

Two sources, checked in this order for every API request: a queue of scripted faults ("the
next three requests fail like this"), then seeded random rates. The random stream has its own
seed, so a failing test run can be replayed exactly (given the same request order).
"""

from __future__ import annotations

import random
import threading
from collections import Counter, deque
from typing import Any

from .config import FAULT_KINDS, FAULT_RATE_NAMES, EmulatorConfig, validate_fault_settings

_RATE_KIND = {
    "rate_429": "429",
    "rate_500": "500",
    "rate_503": "503",
    "rate_reset": "reset",
    "rate_truncate": "truncate",
    "rate_slow": "slow",
}


class Faults:
    def __init__(self, cfg: EmulatorConfig) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(f"centra-emulator-faults-{cfg.seed}")
        self._queue: deque[str] = deque()
        self.rates: dict[str, float] = {
            name: float(getattr(cfg, name)) for name in FAULT_RATE_NAMES
        }
        self.latency_ms = cfg.latency_ms
        self.retry_after: int | str = cfg.retry_after
        self.slow_ms = cfg.slow_ms
        self.injected: Counter[str] = Counter()

    def queue(self, *kinds: str) -> None:
        """The next API requests fail in this order, one fault per request."""
        self.apply(queue=list(kinds))

    def set_rates(self, **settings: Any) -> None:
        """Change random fault rates and fault parameters (latency_ms, retry_after, slow_ms)."""
        self.apply(settings=settings)

    def clear(self) -> None:
        """Drop queued faults and set every random rate to 0 (latency stays)."""
        self.apply(clear=True)

    def apply(
        self,
        *,
        queue: list[str] | None = None,
        clear: bool = False,
        settings: dict[str, Any] | None = None,
    ) -> None:
        """Validate everything first, then clear / set / queue in one step (all or nothing)."""
        settings = dict(settings or {})
        queue = list(queue or [])
        allowed = (*FAULT_RATE_NAMES, "latency_ms", "retry_after", "slow_ms")
        unknown = [k for k in settings if k not in allowed]
        if unknown:
            raise ValueError(f"unknown fault setting(s) {unknown}; allowed: {list(allowed)}")
        unknown = [k for k in queue if k not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kind(s) {unknown}; known: {list(FAULT_KINDS)}")
        for name in ("latency_ms", "slow_ms"):
            value = settings.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        with self._lock:
            rates = dict.fromkeys(FAULT_RATE_NAMES, 0.0) if clear else dict(self.rates)
            for name in FAULT_RATE_NAMES:
                if name in settings:
                    rates[name] = settings[name]
            retry_after = settings.get("retry_after", self.retry_after)
            validate_fault_settings(rates, retry_after)
            if clear:
                self._queue.clear()
            self.rates = {k: float(v) for k, v in rates.items()}
            self.retry_after = retry_after
            self.latency_ms = settings.get("latency_ms", self.latency_ms)
            self.slow_ms = settings.get("slow_ms", self.slow_ms)
            self._queue.extend(queue)

    def next_fault(self) -> str | None:
        with self._lock:
            if self._queue:
                kind: str | None = self._queue.popleft()
            else:
                kind = None
                u = self._rng.random()
                cumulative = 0.0
                for name in FAULT_RATE_NAMES:
                    cumulative += self.rates[name]
                    if u < cumulative:
                        kind = _RATE_KIND[name]
                        break
            if kind is not None:
                self.injected[kind] += 1
            return kind

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "injected": {kind: self.injected.get(kind, 0) for kind in FAULT_KINDS},
                "queued": list(self._queue),
                "rates": dict(self.rates),
                "latency_ms": self.latency_ms,
                "retry_after": self.retry_after,
                "slow_ms": self.slow_ms,
            }
