"""A dossier (hồ sơ) and its timeline: the rules, without I/O.

A dossier is created once (its code is its identity) and then only gains entries: each status
change is an entry with its own id, applied once, whatever order the entries arrive in. What the
dossier "is" now — its status, department, whether it is late — is worked out from the entries
ordered by their time (`at`), ties in the order they arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from dossiers.calendar import BusinessCalendar, late_business_days
from qms_common.protocol import (
    FINISHED_DOSSIER_STATUSES,
    DossierCreate,
    DossierEvent,
    DossierSource,
    DossierStatus,
    bad_request,
)

RECEIVED_ID = "received"  # the entry every dossier starts with
# An event's time may run ahead of this service's clock (another system's clock), by so much.
MAX_FUTURE = timedelta(days=1)
# A real dossier has a handful of entries; this bound keeps its view (replies, events) well inside
# a broker packet even with every text at its longest.
MAX_ENTRIES = 100


def aware(t: datetime, tz: tzinfo) -> datetime:
    """A moment with its offset: one written without is read in the site's zone."""
    return t if t.tzinfo is not None else t.replace(tzinfo=tz)


def iso(t: datetime, tz: tzinfo) -> str:
    return t.astimezone(tz).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Entry:
    id: str
    status: DossierStatus
    at: datetime          # when it happened (the sender's word)
    by: str
    applied_at: datetime  # when this service took it
    note: str | None = None
    department: str | None = None
    arrival: int = 0      # the order entries were applied in: the tie-break of equal times

    def view(self, tz: tzinfo) -> dict[str, Any]:
        return {"id": self.id, "status": str(self.status), "at": iso(self.at, tz), "note": self.note,
                "department": self.department, "by": self.by, "applied_at": iso(self.applied_at, tz)}


@dataclass(frozen=True)
class Rating:
    """The citizen's rating of the service at the counter (the core's event/rated), tied to the
    dossier that ticket recorded."""

    score: int
    level: str | None
    ticket: str
    at: datetime

    def view(self, tz: tzinfo) -> dict[str, Any]:
        return {"score": self.score, "level": self.level, "ticket": self.ticket, "at": iso(self.at, tz)}


@dataclass(frozen=True)
class Dossier:
    code: str
    procedure_name: str
    received_at: datetime
    due_at: date
    source: DossierSource
    by: str
    created_at: datetime
    procedure_code: str | None = None
    field: str | None = None
    documents: tuple[str, ...] = ()
    ticket: str | None = None
    officer: str | None = None
    counter: str | None = None
    phone: str | None = None   # private: never in a public view; erased phone_days after finishing
    entries: tuple[Entry, ...] = ()  # in the order they were applied
    rating: Rating | None = None
    version: int = 1
    updated_ts: float = 0.0  # Unix time of the last change this service made (for `list`)

    # ------------------------------------------------------------ derived

    @property
    def timeline(self) -> list[Entry]:
        return sorted(self.entries, key=lambda e: (e.at, e.arrival))

    @property
    def last(self) -> Entry:
        return self.timeline[-1]

    @property
    def status(self) -> DossierStatus:
        return self.last.status

    def entry(self, entry_id: str) -> Entry | None:
        return next((e for e in self.entries if e.id == entry_id), None)

    @property
    def done_at(self) -> datetime | None:
        """When the result was ready: the first `done` (or `returned`) of the run of results the
        timeline ends with. A dossier sent back to work after a result (more documents asked for
        after all) has no result until it gets one again."""
        ready: datetime | None = None
        for e in self.timeline:
            if e.status in (DossierStatus.DONE, DossierStatus.RETURNED):
                ready = ready or e.at
            elif e.status is not DossierStatus.REFUSED:
                ready = None
        return ready

    @property
    def finished_at(self) -> datetime | None:
        """When the dossier was closed (returned or refused), while it is: its phone is kept
        phone_days after this."""
        return self.last.at if self.status in FINISHED_DOSSIER_STATUSES else None

    def _end(self) -> datetime | None:
        """Where lateness stops counting: the result (done_at), or a refusal."""
        if self.done_at is not None:
            return self.done_at
        return self.last.at if self.status is DossierStatus.REFUSED else None

    def lateness(self, today: date, cal: BusinessCalendar, tz: tzinfo) -> tuple[bool, bool, int]:
        """(early, overdue, late_days) in the site's zone and business days."""
        end = self._end()
        end_day = end.astimezone(tz).date() if end is not None else today
        done = self.done_at
        early = done is not None and done.astimezone(tz).date() < self.due_at
        overdue = end_day > self.due_at
        return early, overdue, late_business_days(self.due_at, end_day, cal)

    def view(self, today: date, cal: BusinessCalendar, tz: tzinfo) -> dict[str, Any]:
        """The dossier as the contract shows it (docs/protocol.md): no phone, whether it has one."""
        timeline = self.timeline
        last = timeline[-1]
        needs = reason = None
        if last.status is DossierStatus.NEEDS_DOCUMENTS:
            needs = last.note
        elif last.status is DossierStatus.REFUSED:
            reason = last.note
        early, overdue, late_days = self.lateness(today, cal, tz)
        done = self.done_at
        return {
            "code": self.code, "procedure": {"code": self.procedure_code, "name": self.procedure_name},
            "field": self.field, "received_at": iso(self.received_at, tz), "due_at": self.due_at.isoformat(),
            "status": str(last.status), "department": last.department, "needs": needs, "reason": reason,
            "documents": list(self.documents), "ticket": self.ticket, "officer": self.officer,
            "counter": self.counter, "source": str(self.source), "has_phone": self.phone is not None,
            "timeline": [e.view(tz) for e in timeline],
            "done_at": iso(done, tz) if done is not None else None,
            "early": early, "overdue": overdue, "late_days": late_days,
            "rating": self.rating.view(tz) if self.rating is not None else None, "version": self.version,
        }


# ---------------------------------------------------------------- changes


def create(req: DossierCreate, now: datetime, tz: tzinfo) -> Dossier:
    """A new dossier with its first entry, `received` at its received time."""
    received_at = aware(req.received_at, tz) if req.received_at is not None else now
    if received_at - now > MAX_FUTURE:
        raise bad_request("“received_at” ở tương lai.")
    if req.due_at < received_at.astimezone(tz).date():
        raise bad_request("ngày hẹn trả (“due_at”) trước ngày tiếp nhận.")
    first = Entry(RECEIVED_ID, DossierStatus.RECEIVED, received_at, req.by, now, arrival=0)
    return Dossier(code=req.code, procedure_name=req.procedure_name, procedure_code=req.procedure_code,
                   received_at=received_at, due_at=req.due_at, source=req.source, by=req.by, created_at=now,
                   field=req.field, documents=req.documents, ticket=req.ticket, officer=req.officer,
                   counter=req.counter, phone=req.phone, entries=(first,), updated_ts=now.timestamp())


def apply_event(d: Dossier, req: DossierEvent, now: datetime, tz: tzinfo) -> tuple[Dossier, Entry] | None:
    """The dossier with this event's entry; None when an entry of this id is there already (a
    replay: nothing changes, whatever the replay says)."""
    if d.entry(req.id) is not None:
        return None
    if len(d.entries) >= MAX_ENTRIES:
        raise bad_request(f"hồ sơ “{d.code}” đã có {MAX_ENTRIES} cập nhật, không nhận thêm.")
    at = aware(req.at, tz)
    if at - now > MAX_FUTURE:
        raise bad_request("thời điểm “at” ở tương lai.")
    if at < d.received_at:
        raise bad_request("thời điểm “at” trước lúc hồ sơ được tiếp nhận.")
    entry = Entry(req.id, req.status, at, req.by, now, note=req.note, department=req.department,
                  arrival=max(e.arrival for e in d.entries) + 1)
    return replace(d, entries=(*d.entries, entry), version=d.version + 1, updated_ts=now.timestamp()), entry


def attach_rating(d: Dossier, rating: Rating) -> Dossier | None:
    """The dossier with this rating; None when it changes nothing (the same rating heard again,
    or one older than what the dossier has)."""
    held = d.rating
    if held == rating or (held is not None and held.at > rating.at):
        return None
    return replace(d, rating=rating, version=d.version + 1)


def phone_expired(d: Dossier, today: date, phone_days: int, tz: tzinfo) -> bool:
    """Its phone is kept `phone_days` after the dossier is finished (returned or refused)."""
    finished = d.finished_at
    return (d.phone is not None and finished is not None
            and finished.astimezone(tz).date() + timedelta(days=phone_days) < today)

