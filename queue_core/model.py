"""The queue's records: tickets and counters, as immutable values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Any

from qms_common.protocol import BookingStatus, CounterStatus, TicketStatus, Via


def iso(t: datetime | None, tz: tzinfo) -> str | None:
    """Public times: ISO 8601 in the site's zone, to the second, with the offset."""
    return _iso(t, tz) if t else None


# A command shows the same few moments many times (its own moment in the reply, the events and
# the state; each ticket's times in every view of it). Equal aware datetimes are the same
# instant, so the text depends only on the key.
@lru_cache(maxsize=4096)
def _iso(t: datetime, tz: tzinfo) -> str:
    return t.astimezone(tz).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Ticket:
    id: str              # business day + field + number: unique forever
    day: str             # business day, YYYY-MM-DD
    number: str          # what people see and hear: "1005", "A005"
    value: int           # the number within the field's range
    origin_field: str    # the field that issued it (its range and prefix)
    field: str           # the field it waits in now (changes on transfer)
    priority: bool
    status: TicketStatus
    issued_at: datetime
    order: int           # site-wide issue order, the tie-break when clocks agree
    called_at: datetime | None = None
    finished_at: datetime | None = None
    counter: str | None = None   # serving or served it; the target while transferred to a counter
    officer: str | None = None
    calls: int = 0
    source: str | None = None
    phone: str | None = None
    rating: int | None = None
    rated_at: datetime | None = None
    dossier: str | None = None
    via: Via = Via.KIOSK
    awaiting_checkin: bool = False  # a remote ticket kept in its place, callable after check-in
    appointment: str | None = None  # the booking code of a ticket given at its check-in
    code: str | None = None         # a remote ticket's check-in code: private like the phone
    slot_at: datetime | None = None  # an appointment ticket's slot: its place in the calling order
    passed_over: bool = False       # its turn came while it awaited check-in (told once)

    @property
    def sort_key(self) -> tuple[int, datetime, int]:
        # priority first (by issue time), then appointments by their slot, then everyone else by
        # issue time; the place is kept through transfers
        if self.priority:
            return (0, self.issued_at, self.order)
        if self.slot_at is not None:
            return (1, self.slot_at, self.order)
        return (2, self.issued_at, self.order)

    @property
    def targeted(self) -> bool:
        """Transferred to one counter: only that counter may call it."""
        return self.status is TicketStatus.TRANSFERRED and self.counter is not None

    def public(self, tz: tzinfo) -> dict[str, Any]:
        """The ticket as the contract shows it; the phone number stays private."""
        return {
            "id": self.id,
            "number": self.number,
            "field": self.field,
            "priority": self.priority,
            "status": str(self.status),
            "issued_at": iso(self.issued_at, tz),
            "called_at": iso(self.called_at, tz),
            "finished_at": iso(self.finished_at, tz),
            "counter": self.counter,
            "calls": self.calls,
            "rating": self.rating,
            "dossier": self.dossier,
            "via": str(self.via),
            "awaiting_checkin": self.awaiting_checkin,
            "appointment": self.appointment,
        }


    def record(self, tz: tzinfo) -> dict[str, Any]:
        """The ticket as the records show it (statistics, exports): who served it and when it
        was rated, and whether a phone number will be told (for the tracking page), never which."""
        return {**self.public(tz), "day": self.day, "origin_field": self.origin_field, "officer": self.officer,
                "source": self.source, "rated_at": iso(self.rated_at, tz), "order": self.order,
                "has_phone": self.phone is not None}


@dataclass(frozen=True, slots=True)
class Counter:
    id: str
    status: CounterStatus = CounterStatus.CLOSED
    ticket: str | None = None        # the ticket being served
    officer: str | None = None
    last_served: str | None = None   # the ticket a rating by counter goes to
    since: datetime | None = None    # when the status last changed


@dataclass(frozen=True, slots=True)
class Booking:
    """An appointment: a slot of a later day, booked with a phone the web server verified."""

    code: str            # 8 characters of CODE_ALPHABET, unique forever
    field: str
    day: str             # YYYY-MM-DD
    slot: str            # HH:MM, site time
    phone: str | None    # erased `[notify] phone_days` after its day
    status: BookingStatus
    created_at: datetime
    updated_at: datetime
    ticket: str | None = None  # the ticket its check-in gave (check-in again answers it)

    @property
    def live(self) -> bool:
        """Holds its place in the slot."""
        return self.status in (BookingStatus.BOOKED, BookingStatus.CHECKED_IN)

    def public(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field, "day": self.day, "slot": self.slot,
                "status": str(self.status)}
