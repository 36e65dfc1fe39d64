"""The business day's queue in memory, with the indexes the rules need.

Pure: no I/O. The service applies a Change to the book only after it is committed.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from qms_common.config import SiteConfig
from qms_common.protocol import CALLABLE_STATUSES, CounterStatus, EventKind, ProtocolError, TicketStatus
from queue_core.model import Counter, Ticket

ACTIVE_STATUSES = frozenset({CounterStatus.OPEN, CounterStatus.SERVING})


@dataclass
class Event:
    kind: EventKind
    ticket: Ticket
    counter: str | None
    recall: bool = False


@dataclass
class Change:
    """What one command does: the new versions of records, and what to announce."""

    tickets: list[Ticket] = field(default_factory=list)
    counters: list[Counter] = field(default_factory=list)
    numbers: dict[str, int] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    next_order: int | None = None
    day: str | None = None              # set by a rollover: the new business day
    ticket: Ticket | None = None        # for the reply
    counter: Counter | None = None      # for the reply
    error: ProtocolError | None = None  # refused, but after changing something (see call_next)

    @property
    def empty(self) -> bool:
        return not (self.tickets or self.counters or self.numbers or self.events or self.day)


@dataclass
class FieldStats:
    served: int = 0
    wait_sum: float = 0.0
    wait_n: int = 0
    service_sum: float = 0.0
    service_n: int = 0
    priority_waiting: int = 0

    def add(self, t: Ticket, sign: int) -> None:
        if t.called_at is not None:
            self.wait_sum += sign * (t.called_at - t.issued_at).total_seconds()
            self.wait_n += sign
            if t.status is TicketStatus.DONE and t.finished_at is not None:
                self.served += sign
                self.service_sum += sign * (t.finished_at - t.called_at).total_seconds()
                self.service_n += sign
        if t.priority and t.status in CALLABLE_STATUSES:
            self.priority_waiting += sign


class Book:
    def __init__(self, site: SiteConfig, day: str, *, tickets: Iterable[Ticket] = (),
                 counters: dict[str, Counter] | None = None,
                 last_numbers: dict[str, int] | None = None, next_order: int = 1) -> None:
        self.site = site
        self.day = day
        self.next_order = next_order
        self.last_number: dict[str, int] = dict(last_numbers or {})
        counters = counters or {}
        self.counters: dict[str, Counter] = {c.id: counters.get(c.id, Counter(c.id))
                                             for c in site.counters}
        self._active: dict[str, int] = {}  # field -> counters open or serving for it
        for c in self.counters.values():
            self._count_active(c, +1)
        self.tickets: dict[str, Ticket] = {}
        self._waiting: dict[str, list[tuple[tuple[Any, ...], str]]] = {f.id: [] for f in site.fields}
        self._targeted: dict[str, set[str]] = {c.id: set() for c in site.counters}
        self._stats: dict[str, FieldStats] = {f.id: FieldStats() for f in site.fields}
        for t in tickets:
            self._put(t)

    # ------------------------------------------------------------ changes

    def apply(self, change: Change) -> None:
        for t in change.tickets:
            self._put(t)
        for c in change.counters:
            self._count_active(self.counters[c.id], -1)
            self.counters[c.id] = c
            self._count_active(c, +1)
        self.last_number.update(change.numbers)
        if change.next_order is not None:
            self.next_order = change.next_order

    def _put(self, new: Ticket) -> None:
        old = self.tickets.get(new.id)
        if old is not None:
            self._index(old, -1)
        self.tickets[new.id] = new
        self._index(new, +1)

    def _index(self, t: Ticket, sign: int) -> None:
        self._stats.setdefault(t.field, FieldStats()).add(t, sign)
        if t.status not in CALLABLE_STATUSES:
            return
        entry = (t.sort_key, t.id)
        queue = self._waiting.setdefault(t.field, [])
        if sign > 0:
            insort(queue, entry)
        else:
            i = bisect_left(queue, entry)
            if i < len(queue) and queue[i] == entry:
                del queue[i]
        if t.targeted:
            assert t.counter is not None
            targets = self._targeted.setdefault(t.counter, set())
            (targets.add if sign > 0 else targets.discard)(t.id)

    # ------------------------------------------------------------ queries

    def find_next(self, counter_id: str) -> Ticket | None:
        """The ticket this counter calls next: priority first, then the oldest, among its fields
        and the tickets transferred to it."""
        best: Ticket | None = None
        cc = self.site.counter(counter_id)
        for fid in cc.fields if cc else ():
            for _, tid in self._waiting.get(fid, ()):
                t = self.tickets[tid]
                if t.targeted and t.counter != counter_id:
                    continue
                if best is None or t.sort_key < best.sort_key:
                    best = t
                break
        for tid in self._targeted.get(counter_id, ()):
            t = self.tickets[tid]
            if best is None or t.sort_key < best.sort_key:
                best = t
        return best

    def find_ticket(self, ref: str, counter_id: str | None = None) -> Ticket | None:
        """A ticket of the day by id, or by the number people see ("1005", "a005")."""
        if ref in self.tickets:
            return self.tickets[ref]
        wanted = ref.strip().upper()
        matches = [t for t in self.tickets.values() if t.number.upper() == wanted]
        if len(matches) > 1 and counter_id is not None:
            cc = self.site.counter(counter_id)
            preferred = [t for t in matches if cc and t.field in cc.fields]
            matches = preferred or matches
        return matches[0] if matches else None

    def waiting(self, field_id: str) -> int:
        return len(self._waiting.get(field_id, ()))

    def front(self, field_id: str, n: int) -> list[Ticket]:
        """The first n tickets of a field's queue, in calling order."""
        return [self.tickets[tid] for _, tid in self._waiting.get(field_id, [])[:n]]

    def ahead(self, t: Ticket) -> int:
        """How many are called before this ticket in its field's queue."""
        return bisect_left(self._waiting.get(t.field, []), (t.sort_key, t.id))

    def active_counters(self, field_id: str) -> int:
        return self._active.get(field_id, 0)

    def _count_active(self, c: Counter, sign: int) -> None:
        cc = self.site.counter(c.id)
        if cc is not None and c.status in ACTIVE_STATUSES:
            for fid in cc.fields:
                self._active[fid] = self._active.get(fid, 0) + sign

    def avg_service_s(self, field_id: str) -> float:
        s = self._stats.get(field_id)
        if s and s.service_n:
            return s.service_sum / s.service_n
        return float(self.site.queue.default_service_s)

    def est_wait_s(self, field_id: str, ahead: int) -> int:
        return math.ceil(ahead * self.avg_service_s(field_id) / max(1, self.active_counters(field_id)))

    def queue_view(self, field_id: str) -> dict[str, Any]:
        """The retained queue state of a field, without seq and time."""
        f = self.site.field(field_id)
        stats = self._stats.get(field_id, FieldStats())
        queue = self._waiting.get(field_id, [])
        preview = self.site.queue.next_preview
        return {
            "field": field_id,
            "name": f.name if f else field_id,
            "waiting": len(queue),
            "priority_waiting": stats.priority_waiting,
            "next": [self.tickets[tid].number for _, tid in queue[:preview]],
            "served": stats.served,
            "avg_wait_s": round(stats.wait_sum / stats.wait_n) if stats.wait_n else None,
            "est_wait_s": self.est_wait_s(field_id, len(queue)),
        }
