"""What a citizen sees of a dossier, from the dossier service's view (CONTRACT-13): the public page
/hs/{code}, the kiosk's "Tra cứu hồ sơ" and the printed receipt all show this. Pure: a view and
the texts in, the lines out.

Only what the receipt's holder needs: the procedure, the dates, the status and the timeline. The
officer, the ticket, who wrote each entry and whether there is a phone stay inside the office.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from display_server.texts import Texts
from display_server.timefmt import date_text, day_text, local

STATUSES = ("received", "processing", "needs_documents", "done", "returned", "refused")
FINISHED = ("returned", "refused")
# what a status must say, from the console and the API alike: who handles it now, what the
# citizen is to bring, why it was refused (an entry without it tells the citizen nothing)
REQUIRED_DETAIL = {"processing": "department", "needs_documents": "note", "refused": "note"}


def missing_detail(status: str, *, note: str | None, department: str | None) -> str | None:
    """The detail this status must say and the entry lacks ("note" or "department"), else None."""
    needed = REQUIRED_DETAIL.get(status)
    return needed if needed is not None and {"note": note, "department": department}[needed] is None else None


# a dossier code of the contract: 1–64 characters of [A-Za-z0-9._/-]
CODE_RE = re.compile(r"^[A-Za-z0-9._/-]{1,64}$")


def valid_code(value: Any) -> bool:
    return isinstance(value, str) and bool(CODE_RE.match(value))


def typed_code(value: Any) -> str | None:
    """A dossier code as a citizen typed it, spaces dropped ("H23.26 - 0042" → "H23.26-0042");
    None if it cannot be one. Its case stays: the service keeps codes as the office wrote them."""
    if not isinstance(value, str) or len(value) > 200:
        return None
    code = "".join(value.split())
    return code if valid_code(code) else None


def moment_text(value: Any, tz: tzinfo) -> str:
    """HH:MM dd/mm/yyyy in the site's zone; '' if it is not a moment."""
    moment = local(value, tz)
    return f"{moment:%H:%M} {date_text(moment)}" if moment is not None else ""


def _text(value: Any, limit: int = 500) -> str:
    return value[:limit] if isinstance(value, str) else ""


def status_text(status: str, t: Texts, *, department: str | None = None, note: str | None = None) -> str:
    """"Đang xử lý (Phòng Tài nguyên và Môi trường)", "Cần bổ sung: bản sao sổ hộ khẩu"…"""
    base = t.get(f"hs_status_{status}", status)
    if status == "processing" and department:
        return f"{base} ({department})"
    if status in ("needs_documents", "refused") and note:
        return f"{base}: {note}"
    return base


def lateness(view: dict[str, Any], t: Texts) -> dict[str, str] | None:
    """Overdue ("trễ hẹn 2 ngày làm việc", counted by the service in business days of the site),
    early ("trước hẹn") or on time once finished; None while there is nothing to say yet."""
    late_days = view.get("late_days")
    n = late_days if isinstance(late_days, int) and not isinstance(late_days, bool) and late_days > 0 else 0
    if view.get("overdue") is True:
        return {"kind": "overdue", "text": t.plural("hs_late_days", n).format(n=n) if n else t.hs_late}
    if view.get("early") is True:
        return {"kind": "early", "text": t.hs_early}
    if view.get("done_at"):
        return {"kind": "on_time", "text": t.hs_on_time}
    return None


def _sort_key(entry: dict[str, Any]) -> tuple[int, float]:
    moment = local(entry.get("at"), UTC)
    return (0, moment.timestamp()) if moment is not None else (1, 0.0)


def public_view(view: dict[str, Any], t: Texts, tz: tzinfo) -> dict[str, Any]:
    """The page's model: every text ready to show, in the site's zone."""
    procedure = view.get("procedure") if isinstance(view.get("procedure"), dict) else {}
    status = str(view.get("status") or "received")
    entries = [e for e in view.get("timeline") or [] if isinstance(e, dict)]
    # in time order whatever order they came in (the service sorts too; offsets may differ)
    entries.sort(key=_sort_key)
    timeline = [{"status": str(e.get("status")), "at": moment_text(e.get("at"), tz),
                 "text": status_text(str(e.get("status")), t, department=e.get("department") or None),
                 "note": _text(e.get("note")) or None} for e in entries]
    documents = [d for d in view.get("documents") or [] if isinstance(d, str)]
    return {
        "code": str(view.get("code") or ""),
        "procedure": _text(procedure.get("name"), 300),
        "procedure_code": procedure.get("code") if isinstance(procedure.get("code"), str) else None,
        "received": moment_text(view.get("received_at"), tz),
        "due": day_text(view.get("due_at")),
        "status": status,
        "status_text": status_text(status, t, department=view.get("department") or None,
                                   note=view.get("needs" if status == "needs_documents" else "reason") or None),
        "finished": status in FINISHED,
        "done": moment_text(view.get("done_at"), tz) if view.get("done_at") else None,
        "lateness": lateness(view, t),
        "documents": documents,
        "timeline": timeline,
        "version": view.get("version") if isinstance(view.get("version"), int) else 0,
    }


def received_day(view: dict[str, Any], tz: tzinfo) -> date | None:
    moment = local(view.get("received_at"), tz)
    return moment.date() if moment is not None else None


def parse_moment(value: Any, tz: tzinfo) -> datetime | None:
    """An ISO moment from a client; a naive one is taken in the site's zone (an integrator's
    "2026-11-30T09:00:00" means the office's nine o'clock)."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment



def kiosk_summary(view: dict[str, Any], t: Texts, tz: tzinfo) -> dict[str, Any]:
    """What the kiosk shows for a typed code, which anyone can type: the procedure, the status, the
    dates, the lateness and, while the office waits for them, the documents asked for. Not the
    timeline, its notes or departments, the reason of a refusal, the officer or the address with
    its token: a code guessed at the kiosk must not open the receipt's page or say more than
    where a dossier of that procedure stands."""
    procedure = view.get("procedure") if isinstance(view.get("procedure"), dict) else {}
    status = str(view.get("status") or "received")
    if status not in STATUSES:
        status = "received"
    needs = _text(view.get("needs")) if status == "needs_documents" else ""
    received = local(view.get("received_at"), tz)
    return {
        "code": str(view.get("code") or ""),
        "procedure": _text(procedure.get("name"), 300),
        "received": date_text(received) if received is not None else "",
        "due": day_text(view.get("due_at")),
        "status": status,
        "status_text": status_text(status, t, note=needs or None),
        "lateness": lateness(view, t),
        "needs": needs or None,
    }
