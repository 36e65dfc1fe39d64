"""The business day's queue in memory, with the indexes the rules need.

Pure: no I/O. The service applies a Change to the book only after it is committed.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from qms_common.config import SiteConfig
from qms_common.protocol import CALLABLE_STATUSES, CounterStatus, EventKind, ProtocolError, TicketStatus, Via
from queue_core.appointments import FAIRNESS_WINDOW, appointment_may_go_first
from queue_core.bookings import BookingIndex
from queue_core.model import Booking, Counter, Ticket

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
    bookings: list[Booking] = field(default_factory=list)
    booking: Booking | None = None      # for the reply
    passed_over: set[str] = field(default_factory=set)  # tickets whose turn came while awaiting check-in
    extra: dict[str, Any] = field(default_factory=dict)  # more keys of the reply (code, late)
    show_ahead: bool = False            # the reply tells the ticket's place (issue, check-in)

    @property
    def empty(self) -> bool:
        return not (self.tickets or self.counters or self.numbers or self.events or self.day or self.bookings)


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
                 last_numbers: dict[str, int] | None = None, next_order: int = 1,
                 bookings: BookingIndex | None = None) -> None:
        self.site = site
        self.bookings = bookings if bookings is not None else BookingIndex()
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
        self._awaiting: dict[str, set[str]] = {}  # field -> waiting remote tickets not yet checked in
        # counter -> (when, went to an appointment) of its calls, for the fairness share
        self._calls: dict[str, list[tuple[datetime, bool]]] = {}
        for t in tickets:
            self._put(t)
            if t.counter and t.called_at and t.status in (TicketStatus.SERVING, TicketStatus.DONE,
                                                          TicketStatus.NO_SHOW):
                self._calls.setdefault(t.counter, []).append((t.called_at, t.via is Via.APPOINTMENT))
        for calls in self._calls.values():
            calls.sort()

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
        for b in change.bookings:
            self.bookings.put(b)
        for ev in change.events:
            if ev.kind is EventKind.CALLED and not ev.recall and ev.counter and ev.ticket.called_at:
                calls = self._calls.setdefault(ev.counter, [])
                calls.append((ev.ticket.called_at, ev.ticket.via is Via.APPOINTMENT))
                if len(calls) > 512:  # only the last hour matters
                    del calls[:256]

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
        if t.awaiting_checkin:
            awaiting = self._awaiting.setdefault(t.field, set())
            (awaiting.add if sign > 0 else awaiting.discard)(t.id)
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

    def find_next(self, counter_id: str, now: datetime | None = None) -> Ticket | None:
        """The ticket this counter calls next, among its fields and the tickets transferred to it:
        priority first, then appointment tickets by slot, then the others by issue time; never a
        remote ticket awaiting check-in. Fairness: an appointment ticket gives way to a walk-in
        when appointments already had their share of the counter's last hour of calls."""
        best: Ticket | None = None
        walk_in: Ticket | None = None   # the first of class 2 (walk-in or remote)
        cc = self.site.counter(counter_id)
        candidates: list[Ticket] = []
        for fid in cc.fields if cc else ():
            # each field's first callable ticket, and its first walk-in (for the fairness turn)
            first = True
            for _, tid in self._waiting.get(fid, ()):
                t = self.tickets[tid]
                if (t.targeted and t.counter != counter_id) or t.awaiting_checkin:
                    continue
                if first or t.sort_key[0] == 2:
                    candidates.append(t)
                first = False
                if t.sort_key[0] == 2:
                    break
        candidates += [self.tickets[tid] for tid in self._targeted.get(counter_id, ())
                       if not self.tickets[tid].awaiting_checkin]
        for t in candidates:
            if best is None or t.sort_key < best.sort_key:
                best = t
            if t.sort_key[0] == 2 and (walk_in is None or t.sort_key < walk_in.sort_key):
                walk_in = t
        if best is not None and best.sort_key[0] == 1 and walk_in is not None and not self._appointment_may_go(
                counter_id, now):
            return walk_in
        return best

    def _appointment_may_go(self, counter_id: str, now: datetime | None) -> bool:
        settings = self.site.appointments
        if settings is None:
            return True
        calls = self._calls.get(counter_id, [])
        if now is None:
            now = calls[-1][0] if calls else None
        since = now - FAIRNESS_WINDOW if now is not None else None
        recent = [appt for at, appt in calls if since is None or at >= since]
        return appointment_may_go_first(sum(recent), len(recent), settings.max_share)

    def passed_over(self, counter_id: str, chosen: Ticket | None) -> list[Ticket]:
        """Remote tickets awaiting check-in in this counter's fields whose turn has come: the
        counter calls `chosen` (or nobody) though they come first. Each is told once."""
        cc = self.site.counter(counter_id)
        out: list[Ticket] = []
        for fid in cc.fields if cc else ():
            for tid in self._awaiting.get(fid, ()):
                t = self.tickets[tid]
                if t.passed_over or (t.targeted and t.counter != counter_id):
                    continue
                if chosen is None or t.sort_key < chosen.sort_key:
                    out.append(t)
        return sorted(out, key=lambda t: t.sort_key)

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
        """Tickets that may be called now (remote tickets awaiting check-in are not)."""
        return len(self._waiting.get(field_id, ())) - len(self._awaiting.get(field_id, ()))

    def awaiting(self, field_id: str) -> int:
        return len(self._awaiting.get(field_id, ()))

    def front(self, field_id: str, n: int) -> list[Ticket]:
        """The first n tickets of a field's queue, in calling order."""
        return [self.tickets[tid] for _, tid in self._waiting.get(field_id, [])[:n]]

    def ahead(self, t: Ticket) -> int:
        """How many are called before this ticket in its field's queue: those before it in the
        calling order, but not remote tickets still awaiting check-in (they are passed over).
        The fairness share may still put a walk-in before an appointment ticket."""
        key = (t.sort_key, t.id)
        before = bisect_left(self._waiting.get(t.field, []), key)
        awaiting = self._awaiting.get(t.field)
        if awaiting:
            before -= sum(1 for tid in awaiting if (self.tickets[tid].sort_key, tid) < key)
        return before

    def live_codes(self) -> set[str]:
        """Check-in codes of today's remote tickets (a new one must differ from all of them)."""
        return {t.code for t in self.tickets.values() if t.code}

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
        awaiting = self._awaiting.get(field_id, set())
        preview = self.site.queue.next_preview
        nxt: list[str] = []
        for _, tid in queue:
            if len(nxt) >= preview:
                break
            if tid not in awaiting:
                nxt.append(self.tickets[tid].number)
        waiting = len(queue) - len(awaiting)
        return {
            "field": field_id,
            "name": f.name if f else field_id,
            "waiting": waiting,
            "priority_waiting": stats.priority_waiting,
            "next": nxt,
            "served": stats.served,
            "avg_wait_s": round(stats.wait_sum / stats.wait_n) if stats.wait_n else None,
            "est_wait_s": self.est_wait_s(field_id, waiting),
            "awaiting_checkin": len(awaiting),
        }
