"""Ticket records from the core, read with cmd/query: "tickets" a page at a time, "ticket" one by one.

Nothing but the core opens the database: statistics, the consoles' lists of no-shows and the CSV
exports all come from here. TodayRecords keeps the business day's records for the live pages,
only while some page watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from display_server.feed.follower import LinkChange, StateFollower
from display_server.feed.hub import Resync
from display_server.feed.state import Call, Change
from qms_common.mqtt import Requester, new_request_id
from qms_common.protocol import CALLABLE_STATUSES, ErrorCode, ProtocolError, QueryKind, Topics, query_command

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
    """The business day's ticket records, kept current while a page watches.

    The whole day is read (page by page) when a page starts watching, on a new day, after the
    broker or the core came back (events may have been missed) and every `full_every_s` as a
    safety net; in between, each ticket an event names is read again on its own (cmd/query
    "ticket"), so a busy day costs one small query per change instead of the whole day."""

    def __init__(self, follower: StateFollower, *, min_interval_s: float = 0.5, full_every_s: float = 300.0,
                 retry_s: float = 5.0, page_size: int = PAGE_SIZE, max_incremental: int = 50) -> None:
        self.follower = follower
        self.min_interval_s = min_interval_s
        self.full_every_s = full_every_s
        self.retry_s = retry_s
        self.page_size = page_size
        self.max_incremental = max_incremental
        self.day: str | None = None
        self.version = 0
        self.error: str | None = None
        self.full_reads = 0
        self._by_id: dict[str, dict[str, Any]] = {}
        self._sorted: list[dict[str, Any]] = []
        self._places: tuple[int, dict[str, int]] = (-1, {})
        self._watchers = 0
        self._full = True
        self._ids: set[str] = set()
        self._wake = asyncio.Event()
        self._last = -math.inf
        self._last_full = -math.inf

    @property
    def records(self) -> list[dict[str, Any]]:
        """The day's records in issue order."""
        return self._sorted

    @property
    def loaded(self) -> bool:
        return self.version > 0

    @property
    def watched(self) -> bool:
        """Some page watches: the records are kept current (else they may be old)."""
        return self._watchers > 0

    def get(self, ticket_id: str) -> dict[str, Any] | None:
        return self._by_id.get(ticket_id)

    def ahead(self, record: dict[str, Any]) -> int | None:
        """How many are called before this waiting ticket in its field, as the core counts them
        (priority first, then appointments, then issue time and order); None if it is not waiting. The
        places are worked out once per version of the records, however many pages ask."""
        if self._places[0] != self.version:
            queues: dict[str, list[dict[str, Any]]] = {}
            for r in self._sorted:
                if r.get("status") in CALLABLE_STATUSES:
                    queues.setdefault(str(r.get("field")), []).append(r)
            places = {}
            for queue in queues.values():
                # priority, then appointments, then the rest (docs/protocol.md, the calling order);
                # remote tickets awaiting check-in keep their place but are not counted before others
                queue.sort(key=lambda r: (not r.get("priority"), r.get("via") != "appointment",
                                          str(r.get("issued_at")), r.get("order") or 0))
                before = 0
                for r in queue:
                    places[str(r.get("id"))] = before
                    if not r.get("awaiting_checkin"):
                        before += 1
            self._places = (self.version, places)
        return self._places[1].get(str(record.get("id")))

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        """While a page shows what comes from here, keep it current."""
        if self._watchers == 0:
            self._full = True  # nobody kept it current meanwhile
        self._watchers += 1
        self._wake.set()
        try:
            yield
        finally:
            self._watchers -= 1

    def invalidate(self, ticket_id: str | None = None) -> None:
        """Something changed that no event says (a dossier code attached by the console): read that
        ticket again, or the whole day."""
        if ticket_id:
            self._ids.add(ticket_id)
        else:
            self._full = True
        self._wake.set()

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
            if not self._watchers:
                continue  # nobody watches: the first page to watch has the day read whole
            for item in batch:
                ticket_id = _event_ticket(item)
                if ticket_id is not None:
                    self._ids.add(ticket_id)
                elif _needs_full_read(item, self.day):
                    self._full = True
                else:
                    continue
                self._wake.set()

    async def _refresh_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.full_every_s):
                    await self._wake.wait()
            self._wake.clear()
            if loop.time() - self._last_full >= self.full_every_s:
                self._full = True
            if not self._watchers or not (self._full or self._ids):
                continue
            wait = self._last + self.min_interval_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # coalesce a burst of changes into one read
            day = (self.follower.state.site or {}).get("day")
            if not isinstance(day, str) or not self.follower.connected:
                continue  # the connect or the core's state/site wakes us again
            full = self._full or day != self.day or len(self._ids) > self.max_incremental
            ids, self._ids, self._full = self._ids, set(), False
            self._last = loop.time()
            try:
                if full:
                    await self._read_day(day)
                    self._last_full = loop.time()
                else:
                    await self._read_tickets(ids)
            except ProtocolError as exc:
                if self.error != exc.message:
                    log.warning("Không đọc được hồ sơ vé ngày %s từ lõi: %s", day, exc.message)
                self.error = exc.message
                self._full = self._full or full
                self._ids |= ids
                loop.call_later(self.retry_s, self._wake.set)
                continue
            self.error = None
            self._sorted = sorted(self._by_id.values(), key=lambda r: (r.get("order") or 0, str(r.get("id"))))
            self.version += 1
            self.follower.hub.publish(RecordsUpdated(self.version))

    async def _read_day(self, day: str) -> None:
        records = [r async for page in iter_records(self.follower.requester, self.follower.topics, day, day,
                                                    page_size=self.page_size) for r in page]
        self._by_id = {str(r.get("id")): r for r in records}
        self.day = day
        self.full_reads += 1

    async def _read_tickets(self, ids: set[str]) -> None:
        async def one(ticket_id: str) -> None:
            reply = await self.follower.requester.request(
                self.follower.topics.cmd_query, query_command(new_request_id(), QueryKind.TICKET, ticket=ticket_id),
                timeout=QUERY_TIMEOUT_S)
            record = reply.get("ticket") if reply.get("ok") is True else None
            if isinstance(record, dict) and record.get("day") == self.day:
                self._by_id[ticket_id] = record
            elif reply.get("ok") is not True and (reply.get("error") or {}).get("code") != ErrorCode.UNKNOWN_TICKET:
                raise ProtocolError(ErrorCode.INTERNAL, str((reply.get("error") or {}).get("message")))

        await asyncio.gather(*(one(i) for i in sorted(ids)))


def _event_ticket(item: Any) -> str | None:
    """The id of the ticket an event is about."""
    if not isinstance(item, Change) or item.kind != "event":
        return None
    ticket = item.data.ticket if isinstance(item.data, Call) else (item.data or {}).get("ticket")
    tid = ticket.get("id") if isinstance(ticket, dict) else None
    return tid if isinstance(tid, str) else None


def _needs_full_read(item: Any, day: str | None) -> bool:
    """Events may have been missed, or the day has changed."""
    if isinstance(item, Change):
        if item.kind == "site":
            return isinstance(item.data, dict) and item.data.get("day") != day
        return item.kind == "status" and item.key == "core" and item.data == "online"
    if isinstance(item, LinkChange):
        return item.connected
    return isinstance(item, Resync)
