"""What a citizen should be told, and when a message no longer makes sense: pure rules, no I/O.

The notifier learns of a ticket with a phone number from the core (`private/contact`, or the
`contacts` query after a restart) and asks these rules, for each kind it has not yet decided,
whether to send it now, wait, or drop it with a reason. Decided kinds are never decided again,
so each kind goes out at most once, however often the core repeats itself."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from qms_common.protocol import CALLABLE_STATUSES, DOSSIER_CODE_RE

ISSUED, NEARS, CALLED, RATE, CHECKIN = "issued", "nears", "called", "rate", "checkin"
KINDS = (ISSUED, NEARS, CALLED, RATE, CHECKIN)
REMIND_EVE, REMIND_SOON = "remind_eve", "remind_soon"
EVENING = time(19, 0)              # the evening before a booking
SOON = timedelta(minutes=30)       # before a booking's slot

_STATUS_VI = {
    "waiting": "đang chờ", "transferred": "đã chuyển", "serving": "đã được gọi", "done": "đã phục vụ xong",
    "no_show": "đã bị bỏ qua (vắng mặt)", "expired": "đã hết hạn",
}


class Step(StrEnum):
    SEND = "send"
    WAIT = "wait"
    DROP = "drop"


@dataclass(frozen=True)
class Decision:
    kind: str
    step: Step
    reason: str = ""


@dataclass(frozen=True)
class Contact:
    """A ticket with a phone number, as the core last described it."""

    ticket_id: str
    day: str
    number: str
    field: str
    status: str
    counter: str | None
    phone: str
    ahead: int | None
    est_wait_s: int | None
    finished_at: datetime | None
    rated: bool
    seq: int
    awaiting_checkin: bool = False     # a remote ticket not yet confirmed at the kiosk
    passed_over: bool = False          # its turn came while it awaited check-in

    @classmethod
    def parse(cls, body: dict[str, Any], seq: int | None = None) -> Contact:
        """From a `private/contact` message or a `contacts` entry; KeyError/ValueError/TypeError
        for anything else."""
        t = body["ticket"]
        finished = t.get("finished_at")
        return cls(
            ticket_id=str(t["id"]), day=str(t["day"]), number=str(t["number"]), field=str(t["field"]),
            status=str(t["status"]), counter=t.get("counter"), phone=str(body["phone"]),
            ahead=_opt_int(body.get("ahead")), est_wait_s=_opt_int(body.get("est_wait_s")),
            finished_at=datetime.fromisoformat(finished) if finished else None,
            rated=t.get("rating") is not None, seq=int(seq if seq is not None else body.get("seq", 0)),
            awaiting_checkin=bool(t.get("awaiting_checkin")), passed_over=bool(body.get("passed_over")),
        )

    @property
    def waiting(self) -> bool:
        return self.status in CALLABLE_STATUSES


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("not an integer")
    return value


def decide(c: Contact, decided: Iterable[str], *, ahead: int, rating_window_s: int,
           now: datetime) -> list[Decision]:
    """For each kind not yet decided for this ticket: send it, wait, or drop it (with why)."""
    done = set(decided)
    out: list[Decision] = []
    status_vi = _STATUS_VI.get(c.status, c.status)
    issued_now = False
    if ISSUED not in done:
        if c.waiting:
            out.append(Decision(ISSUED, Step.SEND))
            issued_now = True
        else:
            out.append(Decision(ISSUED, Step.DROP, f"báo muộn: vé {status_vi} trước khi kịp báo số"))
    if NEARS not in done:
        if not c.waiting:
            out.append(Decision(NEARS, Step.DROP, f"báo muộn: vé {status_vi}"))
        elif c.ahead is not None and c.ahead <= ahead:
            if issued_now:
                out.append(Decision(NEARS, Step.DROP, f"không cần: lúc lấy số chỉ còn {c.ahead} người phía trước"))
            else:
                out.append(Decision(NEARS, Step.SEND))
    if CALLED not in done:
        if c.status == "serving":
            out.append(Decision(CALLED, Step.SEND))
        elif c.status in ("done", "no_show", "expired"):
            out.append(Decision(CALLED, Step.DROP, f"báo muộn: vé {status_vi}"))
    if CHECKIN not in done and c.passed_over and c.awaiting_checkin and c.waiting:
        out.append(Decision(CHECKIN, Step.SEND))
    if RATE not in done:
        if c.status == "done":
            if c.rated:
                out.append(Decision(RATE, Step.DROP, "công dân đã đánh giá"))
            elif c.finished_at is not None and now >= c.finished_at + timedelta(seconds=rating_window_s):
                out.append(Decision(RATE, Step.DROP, "đã hết thời hạn đánh giá"))
            else:
                out.append(Decision(RATE, Step.SEND))
        elif c.status in ("no_show", "expired"):
            out.append(Decision(RATE, Step.DROP, f"vé {status_vi}"))
    return out


def stale(kind: str, c: Contact, *, rating_window_s: int, now: datetime) -> str | None:
    """Why a message queued earlier should no longer go out, given what the ticket is now; None
    while it still makes sense (checked again before every attempt)."""
    status_vi = _STATUS_VI.get(c.status, c.status)
    if kind in (ISSUED, NEARS) and not c.waiting:
        return f"báo muộn: vé {status_vi}"
    if kind == CALLED and c.status != "serving":
        return f"báo muộn: vé {status_vi}"
    if kind == CHECKIN and not (c.awaiting_checkin and c.waiting):
        return "vé đã được xác nhận có mặt" if c.waiting else f"báo muộn: vé {status_vi}"
    if kind == RATE:
        if c.rated:
            return "công dân đã đánh giá"
        if c.finished_at is not None and now >= c.finished_at + timedelta(seconds=rating_window_s):
            return "đã hết thời hạn đánh giá"
    return None


# ---------------------------------------------------------------- bookings


@dataclass(frozen=True)
class BookingInfo:
    """A booking as the core last described it (`private/booking`, or the `bookings` query)."""

    code: str
    field: str
    day: str
    slot: str
    status: str
    phone: str | None
    seq: int

    @classmethod
    def parse(cls, body: dict[str, Any], seq: int | None = None) -> BookingInfo:
        a = body["appointment"]
        time.fromisoformat(str(a["slot"]))
        date.fromisoformat(str(a["day"]))
        return cls(code=str(a["code"]), field=str(a["field"]), day=str(a["day"]), slot=str(a["slot"]),
                   status=str(a["status"]), phone=body.get("phone"),
                   seq=int(seq if seq is not None else body.get("seq", 0)))

    @property
    def place(self) -> str:
        """Where it is: a moved booking is another place, with reminders of its own."""
        return f"{self.day}T{self.slot}"

    def start(self, tz: tzinfo) -> datetime:
        return datetime.combine(date.fromisoformat(self.day), time.fromisoformat(self.slot), tzinfo=tz)


@dataclass(frozen=True)
class Reminder:
    kind: str
    step: Step
    at: datetime | None = None     # when to send it
    reason: str = ""


def reminders(b: BookingInfo, decided: Iterable[str], *, tz: tzinfo, now: datetime) -> list[Reminder]:
    """The evening before (19:00) and 30 minutes before the slot, for a booking still booked;
    one that can no longer come in time is dropped with why."""
    if b.status != "booked" or not b.phone:
        return []
    done = set(decided)
    start = b.start(tz)
    out: list[Reminder] = []
    if REMIND_EVE not in done:
        eve = datetime.combine(date.fromisoformat(b.day) - timedelta(days=1), EVENING, tzinfo=tz)
        if now < eve:
            out.append(Reminder(REMIND_EVE, Step.SEND, eve))
        else:
            out.append(Reminder(REMIND_EVE, Step.DROP, reason="đặt lịch sau giờ nhắc tối hôm trước"))
    if REMIND_SOON not in done:
        if now < start:
            out.append(Reminder(REMIND_SOON, Step.SEND, max(now, start - SOON)))
        else:
            out.append(Reminder(REMIND_SOON, Step.DROP, reason="đã qua giờ hẹn"))
    return out


def booking_stale(place: str, b: BookingInfo | None) -> str | None:
    """Why a reminder queued for a booking at `place` should not go out now."""
    if b is None:
        return None
    if b.status == "cancelled":
        return "lịch hẹn đã huỷ"
    if b.status != "booked":
        return f"lịch hẹn đã {'xác nhận có mặt' if b.status == 'checked_in' else 'quá hạn'}"
    if b.place != place:
        return "lịch hẹn đã đổi sang giờ khác"
    return None


# ---------------------------------------------------------------- dossiers

DOSSIER_RECEIVED, DOSSIER_NEEDS, DOSSIER_DONE = "dossier_received", "dossier_needs", "dossier_done"
# News of a dossier applied longer ago than this is not sent: a "received" or "needs documents"
# a day late misleads more than it helps (the dossier's page, on its receipt, is always current).
# It is also how long the broker keeps the notifier's session, and the window the catch-up asks
# the dossier service for after a reconnect: what is older was decided before, or is too late.
DOSSIER_FRESH = timedelta(hours=24)

_DOSSIER_STATUS_VI = {
    "received": "mới tiếp nhận", "processing": "đang xử lý", "needs_documents": "đang chờ bổ sung",
    "done": "đã có kết quả", "returned": "đã trả kết quả", "refused": "bị từ chối giải quyết",
}
_FINISHED = frozenset({"done", "returned", "refused"})


@dataclass(frozen=True)
class DossierInfo:
    """A dossier as the dossier service last described it (the contract's view)."""

    code: str
    procedure: str
    due_at: str                    # YYYY-MM-DD, the promised return date
    status: str
    needs: str | None
    early: bool
    version: int
    last_needs: str | None         # the id of the latest needs_documents entry of its timeline

    @classmethod
    def parse(cls, view: dict[str, Any]) -> DossierInfo:
        date.fromisoformat(str(view["due_at"]))
        code = str(view["code"])
        if not DOSSIER_CODE_RE.match(code):
            raise ValueError("not a dossier code")  # it is part of the outbox keys
        procedure = view.get("procedure") or {}
        timeline = view.get("timeline") or []
        if not isinstance(procedure, dict) or not isinstance(timeline, list) or \
                not all(isinstance(e, dict) for e in timeline):
            raise TypeError("not the contract's dossier view")
        needs_ids = [str(e["id"]) for e in timeline if e.get("status") == "needs_documents"]
        return cls(code=code, procedure=str(procedure.get("name") or ""),
                   due_at=str(view["due_at"]), status=str(view["status"]),
                   needs=view.get("needs") if isinstance(view.get("needs"), str) else None,
                   early=view.get("early") is True, version=int(view.get("version") or 0),
                   last_needs=needs_ids[-1] if needs_ids else None)


@dataclass(frozen=True)
class DossierNews:
    """One newly applied entry of a dossier with a phone (`private/dossier`, or a `contacts` row)."""

    dossier: DossierInfo
    entry_id: str
    entry_status: str
    note: str | None
    applied_at: datetime
    phone: str

    @classmethod
    def parse(cls, body: dict[str, Any]) -> DossierNews:
        """KeyError/ValueError/TypeError for anything but the contract's shape."""
        entry = body["entry"]
        if not isinstance(entry, dict) or not isinstance(body["dossier"], dict):
            raise TypeError("not the contract's dossier message")
        applied = datetime.fromisoformat(str(entry.get("applied_at") or body["at"]))
        if applied.tzinfo is None:
            raise ValueError("applied_at without a time zone")
        note = entry.get("note")
        return cls(dossier=DossierInfo.parse(body["dossier"]), entry_id=str(entry["id"]),
                   entry_status=str(entry["status"]), note=note if isinstance(note, str) else None,
                   applied_at=applied, phone=str(body["phone"]))


@dataclass(frozen=True)
class DossierDecision:
    key: str          # the outbox key: d:{code}:received, d:{code}:needs:{entry id}, d:{code}:done
    kind: str
    step: Step
    reason: str = ""


def dossier_key(news: DossierNews) -> tuple[str, str] | None:
    """The message an entry would bring (key, kind), or None: being processed, returned or
    refused tells the citizen nothing new by message (the page shows it)."""
    code = news.dossier.code
    if news.entry_status == "received":
        return f"d:{code}:received", DOSSIER_RECEIVED
    if news.entry_status == "needs_documents":
        # each request for documents is news of its own
        return f"d:{code}:needs:{news.entry_id}", DOSSIER_NEEDS
    if news.entry_status == "done":
        # once per dossier: a second "done" (a corrected result) is not a second message
        return f"d:{code}:done", DOSSIER_DONE
    return None


def decide_dossier(news: DossierNews, decided: Iterable[str], *, latest: DossierInfo | None = None,
                   now: datetime) -> DossierDecision | None:
    """What this entry brings: a message to send, one to drop (with why), or None (nothing, or
    already decided). `latest` is the newest view known, when newer than the news' own."""
    found = dossier_key(news)
    if found is None:
        return None
    key, kind = found
    if key in set(decided):
        return None  # a repeated message, or a second "done"
    info = latest if latest is not None and latest.version > news.dossier.version else news.dossier
    why = dossier_stale(kind, news.entry_id, info, applied_at=news.applied_at, now=now)
    if why is not None:
        return DossierDecision(key, kind, Step.DROP, why)
    return DossierDecision(key, kind, Step.SEND)


def dossier_stale(kind: str, entry_id: str | None, info: DossierInfo | None, *, applied_at: datetime | None = None,
                  now: datetime) -> str | None:
    """Why a dossier's message should not go out (now or any more), given what the dossier is now;
    None while it still makes sense (checked again before every attempt)."""
    if applied_at is not None and now - applied_at > DOSSIER_FRESH:
        hours = int(DOSSIER_FRESH.total_seconds() // 3600)
        return f"báo muộn: hồ sơ cập nhật hơn {hours} giờ trước"
    if info is None:
        return None
    status_vi = _DOSSIER_STATUS_VI.get(info.status, info.status)
    if kind == DOSSIER_RECEIVED and info.status in _FINISHED:
        return f"báo muộn: hồ sơ {status_vi}"
    if kind == DOSSIER_NEEDS:
        if info.status != "needs_documents":
            return f"báo muộn: hồ sơ {status_vi}"
        if entry_id is not None and info.last_needs is not None and info.last_needs != entry_id:
            return "đã có yêu cầu bổ sung mới hơn"
    if kind == DOSSIER_DONE and info.status != "done":
        return f"báo muộn: hồ sơ {status_vi}"
    return None
