"""How many tickets were issued today: the day's records read once (the web server may start in
the middle of a day), then every event/issued added to them. Served tickets need none of this:
the core's state/queue counts them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from display_server.feed.follower import LinkChange, StateFollower
from display_server.feed.hub import Resync
from display_server.feed.records import iter_records
from display_server.feed.state import Change
from qms_common.protocol import EventKind, ProtocolError

log = logging.getLogger(__name__)


def _prefix(day: str) -> str:
    """What the ids of a day's tickets start with (queue_core.rules.ticket_id)."""
    return day.replace("-", "") + "-"


def _wanted(item: Any) -> bool:
    if isinstance(item, Change):
        return (item.kind == "site" or (item.kind == "event" and item.key == EventKind.ISSUED)
                or (item.kind == "status" and item.key == "core"))
    return isinstance(item, (LinkChange, Resync))


class IssuedToday:
    def __init__(self, follower: StateFollower, *, retry_s: float = 5.0) -> None:
        self.follower = follower
        self.retry_s = retry_s
        self.day: str | None = None      # the business day the ids are of, once read whole
        self._ids: set[str] = set()
        self._stale = True               # the day must be read (again): a new day, a missed event
        self._wake = asyncio.Event()
        self._error: str | None = None
        self._changed = asyncio.Event()  # replaced at every change: whoever waits on the old one wakes

    @property
    def count(self) -> int | None:
        """None until the current day's records were read."""
        return None if self.day is None else len(self._ids)

    def _bump(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, predicate: Callable[[int | None], bool]) -> None:
        """Until the count satisfies predicate (tests, tools)."""
        while not predicate(self.count):
            await self._changed.wait()

    def _today(self) -> str | None:
        day = (self.follower.state.site or {}).get("day")
        return day if isinstance(day, str) else None

    def _take(self, item: Any) -> None:
        if isinstance(item, Change) and item.kind == "event":
            ticket = item.data.get("ticket") if isinstance(item.data, dict) else None
            tid = ticket.get("id") if isinstance(ticket, dict) else None
            day = self._today()
            if isinstance(tid, str) and day is not None and tid.startswith(_prefix(day)):
                self._ids.add(tid)  # also while the day is being read: the read may miss it
                self._bump()
            return
        if isinstance(item, Change) and item.kind == "status":
            if self._stale:
                self._wake.set()  # the core may be back to answer
            return
        if isinstance(item, Change):
            if self._today() == self.day and not self._stale:
                return  # state/site again, same day
            if self._today() != self.day:
                self.day, self._ids = None, set()  # yesterday's count is not today's
        if isinstance(item, LinkChange) and not item.connected:
            return  # the connect that follows wakes us
        self._stale = True  # a new day, a reconnect (events may be lost), or items dropped here
        self._wake.set()

    async def run(self) -> None:
        with self.follower.hub.subscribe(wants=_wanted) as sub:
            listener = asyncio.create_task(self._listen(sub))
            try:
                await self._read_forever()
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    async def _listen(self, sub: Any) -> None:
        async for batch in sub.batches():
            for item in batch:
                self._take(item)

    async def _read_forever(self) -> None:
        self._wake.set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            day = self._today()
            if not self._stale or day is None or not self.follower.connected or not self.follower.state.core_online:
                continue  # state/site, the connect or the core's presence wakes us again
            self._stale = False
            try:
                ids = {str(r.get("id")) async for page in iter_records(
                    self.follower.requester, self.follower.topics, day, day) for r in page}
            except ProtocolError as exc:
                if self._error != exc.message:  # once, not at every retry
                    log.warning("Không đọc được số vé đã phát hôm nay từ lõi: %s", exc.message)
                self._error = exc.message
                self._stale = True
                asyncio.get_running_loop().call_later(self.retry_s, self._wake.set)
                continue
            if day != self._today():
                self._stale = True  # the day ended while it was read
                self._wake.set()
                continue
            self._error = None
            self._ids = ids | {i for i in self._ids if i.startswith(_prefix(day))}
            self.day = day
            self._bump()
