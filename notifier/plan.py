"""What a citizen should be told, and when a message no longer makes sense: pure rules, no I/O.

The notifier learns of a ticket with a phone number from the core (`private/contact`, or the
`contacts` query after a restart) and asks these rules, for each kind it has not yet decided,
whether to send it now, wait, or drop it with a reason. Decided kinds are never decided again,
so each kind goes out at most once, however often the core repeats itself."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from qms_common.protocol import CALLABLE_STATUSES

ISSUED, NEARS, CALLED, RATE = "issued", "nears", "called", "rate"
KINDS = (ISSUED, NEARS, CALLED, RATE)

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
    if kind == RATE:
        if c.rated:
            return "công dân đã đánh giá"
        if c.finished_at is not None and now >= c.finished_at + timedelta(seconds=rating_window_s):
            return "đã hết thời hạn đánh giá"
    return None
