"""Fan-out: one producer (the state follower, the announcer), many live pages.

Each subscriber has its own bounded queue, so a slow or dead browser never holds up the others:
when its queue overflows it is told to resynchronise (Resync) instead of receiving the backlog,
and its page is sent the present again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any


class Resync:
    """Items were dropped for this subscriber: send the whole present again."""


RESYNC = Resync()


class Subscription:
    def __init__(self, hub: Hub, maxsize: int, wants: Callable[[Any], bool] | None = None) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self.wants = wants
        self.dropped = 0

    def put(self, item: Any) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(RESYNC)

    async def get(self) -> Any:
        return await self._queue.get()

    def get_batch(self) -> list[Any]:
        """Whatever else is already waiting, so a burst becomes one update."""
        items = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    async def batches(self) -> AsyncIterator[list[Any]]:
        while True:
            first = await self.get()
            yield [first, *self.get_batch()]

    def close(self) -> None:
        self._hub._subs.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Hub:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def subscribe(self, maxsize: int = 256, wants: Callable[[Any], bool] | None = None) -> Subscription:
        """`wants` filters what reaches the subscriber: fifty TVs need not wake for an agent's
        health report."""
        sub = Subscription(self, maxsize, wants)
        self._subs.add(sub)
        return sub

    def publish(self, item: Any) -> None:
        for sub in list(self._subs):
            if sub.wants is None or sub.wants(item):
                sub.put(item)

    def __len__(self) -> int:
        return len(self._subs)
