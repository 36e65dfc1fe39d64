"""Token buckets per key: tickets per kiosk, wrong passwords per user name and per address.

Pure apart from the clock, which is injected (time.monotonic by default) so tests can move time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

# Keys kept at most; a full bucket carries no information and is the first to go.
_MAX_KEYS = 10_000


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """`capacity` events per `per_s` seconds for each key, refilled continuously."""

    def __init__(self, capacity: int, per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.rate = capacity / per_s
        self.per_s = per_s
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, key: str) -> _Bucket:
        now = self.clock()
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= _MAX_KEYS:
                self._forget_full(now)
            b = self._buckets[key] = _Bucket(float(self.capacity), now)
        else:
            b.tokens = min(float(self.capacity), b.tokens + (now - b.at) * self.rate)
            b.at = now
        return b

    def retry_after(self, key: str) -> float:
        """0 when an event is allowed now, else the seconds until it is."""
        b = self._bucket(key)
        return 0.0 if b.tokens >= 1.0 else (1.0 - b.tokens) / self.rate

    def take(self, key: str) -> float:
        """Count one event: 0 if it was allowed, else the seconds until one is (nothing taken)."""
        b = self._bucket(key)
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / self.rate

    def give_back(self, key: str) -> None:
        """Undo one take(): the event it counted turned out not to count (a right password)."""
        b = self._bucket(key)
        b.tokens = min(float(self.capacity), b.tokens + 1.0)

    def hit(self, key: str) -> None:
        """Count one event whether or not it was allowed (a wrong password always counts)."""
        b = self._bucket(key)
        b.tokens = max(0.0, b.tokens - 1.0)

    def _forget_full(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.tokens + (now - b.at) * self.rate >= self.capacity]:
            del self._buckets[key]
        if len(self._buckets) >= _MAX_KEYS:  # ten thousand keys in one window: an attack; start afresh
            self._buckets.clear()


def seconds_text(seconds: float) -> int:
    """Whole seconds to tell people, never 0."""
    return max(1, math.ceil(seconds))
