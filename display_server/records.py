"""Ticket records from the core, read with the `tickets` query of cmd/query a page at a time.

Nothing but the core opens the database: statistics, the consoles' lists of no-shows and the CSV
exports all come from here. TodayRecords keeps the business day's records for the live pages:
read again after something changed (an event, a new day, the core or the broker back), at most
every `min_interval_s`, and only while some page watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from display_server.follower import LinkChange, StateFollower
from display_server.hub import Resync
from display_server.state import Change
from qms_common.mqtt import Requester, new_request_id
from qms_common.protocol import ErrorCode, ProtocolError, QueryKind, Topics, query_command

log = logging.getLogger(__name__)

# Records per reply: about 50 KB, well under the broker's packet limit even with long names.
PAGE_SIZE = 100
QUERY_TIMEOUT_S = 10.0


async def iter_records(requester: Requester, topics: Topics, day_from: str | None, day_to: str | None, *,
                       page_size: int = PAGE_SIZE) -> AsyncIterator[list[dict[str, Any]]]:
    """Pages of ticket records of the business days from..to (inclusive), in issue order.
    Raises ProtocolError (NotConnected, RequestTimeout, or the core's refusal)."""
    after: str | None = None
    while True:
        fields = {"from": day_from, "to": day_to, "limit": page_size, "after": after}
        reply = await requester.request(topics.cmd_query, query_command(new_request_id(), QueryKind.TICKETS, **fields),
                                        timeout=QUERY_TIMEOUT_S)
        if reply.get("ok") is not True:
            err = reply.get("error") if isinstance(reply.get("error"), dict) else {}
            raise ProtocolError(ErrorCode(err.get("code", "internal")) if err.get("code") in set(ErrorCode)
                                else ErrorCode.INTERNAL, str(err.get("message") or "Lõi từ chối truy vấn."))
        tickets = reply.get("tickets")
        if not isinstance(tickets, list):
            raise ProtocolError(ErrorCode.INTERNAL, "Lõi trả lời truy vấn không đúng dạng.")
        yield [t for t in tickets if isinstance(t, dict)]
        after = reply.get("next") if isinstance(reply.get("next"), str) else None
        if after is None:
            return


@dataclass(frozen=True)
class RecordsUpdated:
    """TodayRecords read the day again (published on the follower's hub)."""

    version: int


class TodayRecords:
    def __init__(self, follower: StateFollower, *, min_interval_s: float = 2.0, retry_s: float = 5.0,
                 page_size: int = PAGE_SIZE) -> None:
        self.follower = follower
        self.min_interval_s = min_interval_s
        self.retry_s = retry_s
        self.page_size = page_size
        self.records: list[dict[str, Any]] = []
        self.day: str | None = None
        self.version = 0
        self.error: str | None = None
        self._watchers = 0
        self._dirty = True
        self._wake = asyncio.Event()
        self._last = -math.inf

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        """While a page shows what comes from here, keep it current."""
        self._watchers += 1
        self._wake.set()
        try:
            yield
        finally:
            self._watchers -= 1

    def invalidate(self) -> None:
        """Something changed that no event says (a dossier code, a command of ours)."""
        self._dirty = True
        self._wake.set()

    @property
    def loaded(self) -> bool:
        return self.version > 0

    async def run(self) -> None:
        with self.follower.hub.subscribe() as sub:
            listener = asyncio.create_task(self._listen(sub))
            try:
                await self._refresh_forever()
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    async def _listen(self, sub: Any) -> None:
        async for batch in sub.batches():
            if any(_changes_records(item) for item in batch):
                self.invalidate()

    async def _refresh_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not (self._watchers and self._dirty):
                continue
            wait = self._last + self.min_interval_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # coalesce a burst of changes into one read
            day = (self.follower.state.site or {}).get("day")
            if not isinstance(day, str) or not self.follower.connected:
                continue  # the connect or the core's state/site wakes us again
            self._dirty = False
            self._last = loop.time()
            try:
                records = [r async for page in iter_records(self.follower.requester, self.follower.topics, day, day,
                                                            page_size=self.page_size) for r in page]
            except ProtocolError as exc:
                if self.error != exc.message:
                    log.warning("Không đọc được hồ sơ vé ngày %s từ lõi: %s", day, exc.message)
                self.error = exc.message
                self._dirty = True
                loop.call_later(self.retry_s, self._wake.set)
                continue
            self.records, self.day, self.error = records, day, None
            self.version += 1
            self.follower.hub.publish(RecordsUpdated(self.version))


def _changes_records(item: Any) -> bool:
    if isinstance(item, Change):
        return item.kind in ("event", "site") or (item.kind == "status" and item.key == "core"
                                                  and item.data == "online")
    if isinstance(item, LinkChange):
        return item.connected
    return isinstance(item, Resync)
