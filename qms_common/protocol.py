"""Protocol v1: the MQTT contract between the core, counter agents, displays and integrations.

This module is the one place the contract lives in code. docs/protocol.md describes the same
thing for people; change both in the same commit.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from qms_common.phones import PhoneError, normalize_phone

PROTOCOL_VERSION = 1
# Larger payloads are refused unread: no request of the contract comes near this.
MAX_PAYLOAD_BYTES = 64 * 1024
# Replies come from the core and may be larger (a page of ticket records); this is the production
# broker's max_packet_size (broker_config/production.conf), beyond which no message gets through.
MAX_REPLY_BYTES = 256 * 1024
MAX_ID_LEN = 128
MAX_TOPIC_LEN = 256
MAX_TEXT_LEN = 64

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


class Action(StrEnum):
    CALL_NEXT = "call_next"
    CALL = "call"
    RECALL = "recall"
    SKIP = "skip"
    FINISH = "finish"
    TRANSFER = "transfer"
    PAUSE = "pause"
    RESUME = "resume"
    OPEN = "open"
    CLOSE = "close"
    DOSSIER = "dossier"


class TicketStatus(StrEnum):
    WAITING = "waiting"
    SERVING = "serving"
    DONE = "done"
    NO_SHOW = "no_show"
    TRANSFERRED = "transferred"
    EXPIRED = "expired"


# A transferred ticket waits again, at its new field or counter.
CALLABLE_STATUSES = frozenset({TicketStatus.WAITING, TicketStatus.TRANSFERRED})


class CounterStatus(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    SERVING = "serving"
    PAUSED = "paused"


class EventKind(StrEnum):
    ISSUED = "issued"
    CALLED = "called"
    SKIPPED = "skipped"
    FINISHED = "finished"
    TRANSFERRED = "transferred"
    RATED = "rated"
    # the dossier service's (dossiers/), not the core's: a dossier's status changed
    DOSSIER = "dossier"


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNKNOWN_FIELD = "unknown_field"
    UNKNOWN_COUNTER = "unknown_counter"
    UNKNOWN_TICKET = "unknown_ticket"
    QUEUE_EMPTY = "queue_empty"
    INVALID_STATE = "invalid_state"
    RANGE_EXHAUSTED = "range_exhausted"
    COUNTER_CLOSED = "counter_closed"
    EXPIRED = "expired"
    RATING_CLOSED = "rating_closed"
    FORBIDDEN = "forbidden"
    INTERNAL = "internal"
    # remote tickets and appointments (issue 12)
    SLOT_FULL = "slot_full"
    OUTSIDE_HOURS = "outside_hours"
    QUOTA_REACHED = "quota_reached"
    TOO_EARLY = "too_early"
    TOO_LATE = "too_late"
    UNKNOWN_BOOKING = "unknown_booking"
    # dossiers (issue 13), answered by the dossier service
    UNKNOWN_DOSSIER = "unknown_dossier"


class Via(StrEnum):
    """How a ticket came: printed at the kiosk (or by a keypad), taken from a phone, or given at
    the check-in of an appointment."""

    KIOSK = "kiosk"
    REMOTE = "remote"
    APPOINTMENT = "appointment"


class BookingStatus(StrEnum):
    BOOKED = "booked"
    CANCELLED = "cancelled"
    CHECKED_IN = "checked_in"
    NO_SHOW = "no_show"


class AppointmentAction(StrEnum):
    BOOK = "book"
    CANCEL = "cancel"
    MOVE = "move"
    GET = "get"


# The web server's broker user: the only sender of remote tickets, bookings and check-ins (it
# verifies phones), and the only one the broker lets publish on cmd/appointment and cmd/checkin.
WEB_USER = "web"
# Check-in and booking codes: no 0/O, 1/I/L, 2/Z, 5/S, 8/B, so a code read aloud or typed is not mistaken.
CODE_ALPHABET = "ACDEFGHJKLMNPQRTUVWXY34679"
TICKET_CODE_LEN = 6
BOOKING_CODE_LEN = 8


class ProtocolError(Exception):
    """A request the core refuses: the code is for programs, the message (Vietnamese) for people;
    `extra`: more keys of the error reply (e.g. `from` of too_early)."""

    def __init__(self, code: ErrorCode, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


def bad_request(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_REQUEST, f"Yêu cầu không hợp lệ: {message}")


@dataclass(frozen=True)
class Topics:
    """Every topic of one site. Site, field and counter ids are slugs."""

    site: str

    @property
    def root(self) -> str:
        return f"qms/{self.site}"

    # requests
    @property
    def cmd_ticket(self) -> str:
        return f"{self.root}/cmd/ticket"

    def cmd_counter(self, counter: str) -> str:
        return f"{self.root}/cmd/counter/{counter}"

    @property
    def cmd_rating(self) -> str:
        return f"{self.root}/cmd/rating"

    @property
    def cmd_query(self) -> str:
        return f"{self.root}/cmd/query"

    @property
    def cmd_appointment(self) -> str:
        return f"{self.root}/cmd/appointment"

    @property
    def cmd_checkin(self) -> str:
        return f"{self.root}/cmd/checkin"

    @property
    def cmd_dossier(self) -> str:
        """Commands to the dossier service (dossiers/); the core subscribes cmd/# and ignores these."""
        return f"{self.root}/cmd/dossier"

    @property
    def cmd_backfill(self) -> str:
        """The province's backfill request, brought in only by the office's bridge ([bridge] in)."""
        return f"{self.root}/cmd/backfill"

    @property
    def cmd_all(self) -> str:
        return f"{self.root}/cmd/#"

    def reply(self, client_id: str) -> str:
        """Where a client of this site asks for its replies (the ACLs allow it to read here)."""
        return f"{self.root}/reply/{client_id}"

    def reply_owner(self, topic: str) -> str | None:
        """The user whose reply namespace `qms/{site}/reply/{user}[/...]` holds this topic, or
        None for a topic outside every namespace: the only topics the core answers on. The broker
        lets only {user} read there, so this names who can read the answer."""
        prefix = f"{self.root}/reply/"
        if not topic.startswith(prefix) or len(topic) > MAX_TOPIC_LEN or any(c in topic for c in "#+\0"):
            return None
        levels = topic[len(prefix):].split("/")
        if not SLUG_RE.match(levels[0]) or "" in levels:
            return None
        return levels[0]

    # private: only the core and the notifier's broker user may read here (phone numbers)
    @property
    def private_contact(self) -> str:
        return f"{self.root}/private/contact"

    @property
    def private_booking(self) -> str:
        return f"{self.root}/private/booking"

    @property
    def private_otp(self) -> str:
        """The web server asks the notifier to send a one-time code (the web server writes, only
        the notifier and the core read)."""
        return f"{self.root}/private/otp"

    @property
    def private_dossier(self) -> str:
        """A dossier's newly applied entry with the citizen's phone, for the notifier."""
        return f"{self.root}/private/dossier"

    @property
    def private_all(self) -> str:
        return f"{self.root}/private/#"

    # the notifier's own reports (no phone numbers)
    @property
    def notify_stats(self) -> str:
        return f"{self.root}/notify/stats"

    @property
    def notify_all(self) -> str:
        return f"{self.root}/notify/#"

    # retained state
    @property
    def state_site(self) -> str:
        return f"{self.root}/state/site"

    def state_queue(self, field: str) -> str:
        return f"{self.root}/state/queue/{field}"

    def state_counter(self, counter: str) -> str:
        return f"{self.root}/state/counter/{counter}"

    def state_appointments(self, field: str) -> str:
        return f"{self.root}/state/appointments/{field}"

    @property
    def state_all(self) -> str:
        return f"{self.root}/state/#"

    @property
    def status_core(self) -> str:
        return f"{self.root}/status/core"

    @property
    def status_bridge(self) -> str:
        """The bridge to the province's central broker: `1` connected, `0` its will."""
        return f"{self.root}/status/bridge"

    def status_agent(self, agent: str) -> str:
        return f"{self.root}/status/agent/{agent}"

    def status_display(self, display: str) -> str:
        return f"{self.root}/status/display/{display}"

    @property
    def status_notify(self) -> str:
        return f"{self.root}/status/notify"

    @property
    def status_dossiers(self) -> str:
        return f"{self.root}/status/dossiers"

    def status_web(self, server: str) -> str:
        """The web server's presence (it serves the TV pages whose status/display it publishes)."""
        return f"{self.root}/status/web/{server}"

    @property
    def status_all(self) -> str:
        return f"{self.root}/status/#"

    # health of the hardware (retained JSON): what a supervisor's dashboard shows
    def health_agent(self, agent: str) -> str:
        return f"{self.root}/health/agent/{agent}"

    @property
    def health_core(self) -> str:
        """The core's own health (disk commits, free space, clock): retained JSON, queue_core.health."""
        return f"{self.root}/health/core"

    @property
    def health_all(self) -> str:
        return f"{self.root}/health/#"

    # events
    def event(self, kind: EventKind | str) -> str:
        return f"{self.root}/event/{kind}"

    @property
    def event_all(self) -> str:
        return f"{self.root}/event/#"

    def split(self, topic: str) -> tuple[str, ...]:
        """The parts after qms/{site}/, or () for a topic of another site."""
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            return ()
        return tuple(topic[len(prefix):].split("/"))


ONLINE = b"online"
OFFLINE = b"offline"


# json.dumps() with arguments builds a new encoder at every call; several messages per command
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(obj: Any) -> bytes:
    """UTF-8 JSON with the diacritics as they are (no \\u escapes), compact."""
    return _ENCODER.encode(obj).encode("utf-8")


# Only a \u escape of a surrogate (D800–DFFF) can put a string into a decoded object that has
# no UTF-8 form: UTF-8 bytes never decode to one. Payloads without it skip the walk.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def loads_object(payload: bytes | bytearray | str | None, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """Decode a request payload; ProtocolError(bad_request) for anything that is not a JSON object,
    or that holds a string (key or value, at any depth) with no UTF-8 form, such as a lone
    surrogate: such a string can be neither stored nor sent on."""
    if payload is None:
        raise bad_request("nội dung rỗng.")
    if isinstance(payload, str):
        try:
            payload = payload.encode("utf-8")
        except UnicodeEncodeError:
            raise bad_request("nội dung không phải UTF-8.") from None
    if len(payload) > max_bytes:
        raise bad_request(f"nội dung quá lớn ({len(payload)} byte, tối đa {max_bytes}).")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("nội dung không phải UTF-8.") from None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):  # ValueError: also an integer of more than 4300 digits
        raise bad_request("nội dung không phải JSON.") from None
    if not isinstance(obj, dict):
        raise bad_request("nội dung phải là một đối tượng JSON.")
    if _SURROGATE_ESCAPE.search(text) and not _all_utf8(obj):
        raise bad_request("nội dung chứa ký tự không hợp lệ (ký tự thay thế UTF-16 đứng lẻ, không có dạng UTF-8).")
    return obj


def _all_utf8(obj: Any) -> bool:
    """Every string in a decoded JSON value, keys included, has a UTF-8 form."""
    stack = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


# ---------------------------------------------------------------- request validation


def _opt_str(obj: dict[str, Any], key: str, max_len: int = MAX_TEXT_LEN) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"trường “{key}” phải là chuỗi.")
    value = value.strip()
    if len(value) > max_len:
        raise bad_request(f"trường “{key}” quá dài (tối đa {max_len} ký tự).")
    if any(ord(c) < 0x20 for c in value):
        raise bad_request(f"trường “{key}” chứa ký tự điều khiển.")
    return value or None


def _req_str(obj: dict[str, Any], key: str, max_len: int = MAX_TEXT_LEN) -> str:
    value = _opt_str(obj, key, max_len)
    if value is None:
        raise bad_request(f"thiếu trường “{key}”.")
    return value


def _opt_bool(obj: dict[str, Any], key: str, default: bool = False) -> bool:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"trường “{key}” phải là true hoặc false.")
    return value


def _slug(obj: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise bad_request(f"thiếu trường “{key}”.")
        return None
    if not isinstance(value, str) or not SLUG_RE.match(value):
        raise bad_request(f"trường “{key}” phải là một mã (chữ thường, số, gạch ngang).")
    return value


def request_id_of(obj: dict[str, Any]) -> str | None:
    """The request id if it is usable, so even a refused request can be answered by id."""
    rid = obj.get("request_id")
    if isinstance(rid, str) and 0 < len(rid) <= MAX_ID_LEN:
        return rid
    return None


def reply_to_of(obj: dict[str, Any]) -> str | None:
    """The MQTT 3.1.1 clients' reply topic as given, None when there is none. Not checked here:
    Topics.reply_owner says whether the core may answer there (a non-string is no topic at all)."""
    value = obj.get("reply_to")
    if value is None:
        return None
    return value if isinstance(value, str) else ""


def _require_request_id(obj: dict[str, Any]) -> str:
    rid = request_id_of(obj)
    if rid is None:
        raise bad_request(f"thiếu “request_id” (chuỗi 1–{MAX_ID_LEN} ký tự).")
    return rid


# ---------------------------------------------------------------- deadlines

# A command carries the moment its sender stops waiting for it: `deadline`, Unix time in seconds.
# The core refuses it after that moment, on its own clock, so that a command its sender has given
# up on never takes effect later. The clocks of the core and of every client must agree within
# CLOCK_TOLERANCE_S (NTP, docs/protocol.md).
DEADLINE_KEY = "deadline"
CLOCK_TOLERANCE_S = 0.5
# A sender waits this much longer than the deadline it writes: the clocks' disagreement, then half
# a second for the commit and the reply's way back.
REPLY_MARGIN_S = CLOCK_TOLERANCE_S + 0.5


def command_deadline(sent: float, timeout: float) -> float:
    """The deadline of a command sent at `sent` (Unix time) by a sender that waits `timeout`
    seconds for the reply: early enough that a command the core takes at its deadline is answered
    before the sender gives up."""
    return sent + timeout - min(REPLY_MARGIN_S, timeout / 2)


def deadline_of(obj: dict[str, Any]) -> float | None:
    """The command's deadline; None for a sender that gives none (no check then)."""
    value = obj.get(DEADLINE_KEY)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad_request(f"“{DEADLINE_KEY}” phải là một thời điểm Unix (số giây).")
    return float(value)


def check_deadline(deadline: float | None, now: datetime) -> None:
    """A command past its deadline is refused: its sender has stopped waiting and told its user
    it failed, so doing it now would be a ticket or a call nobody expects. No deadline, no check
    (integrations written before deadlines existed)."""
    if deadline is not None and now.timestamp() > deadline:
        raise ProtocolError(ErrorCode.EXPIRED, "Lệnh đến quá hạn, người gửi đã thôi chờ: lệnh không được thực hiện. "
                                               "Vui lòng thử lại.")


@dataclass(frozen=True)
class TicketRequest:
    request_id: str
    field: str
    priority: bool = False
    source: str | None = None
    phone: str | None = None
    remote: bool = False  # taken from a phone (the web server only); needs a phone

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> TicketRequest:
        req = cls(
            request_id=_require_request_id(obj),
            field=_slug(obj, "field") or "",
            priority=_opt_bool(obj, "priority"),
            source=_opt_str(obj, "source"),
            phone=_opt_phone(obj),
            remote=_opt_bool(obj, "remote"),
        )
        if req.remote and req.phone is None:
            raise bad_request("vé lấy từ xa cần số điện thoại (“phone”).")
        return req


@dataclass(frozen=True)
class CounterRequest:
    request_id: str
    action: Action
    ticket: str | None = None  # for call: a number ("1005", "A005") or a ticket id
    to_field: str | None = None
    to_counter: str | None = None
    officer: str | None = None
    dossier: str | None = None

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> CounterRequest:
        rid = _require_request_id(obj)
        action_s = obj.get("action")
        try:
            action = Action(action_s)
        except ValueError:
            raise bad_request(
                f"“action” phải là một trong: {', '.join(a.value for a in Action)}.") from None
        ticket: str | None = None
        to_field = to_counter = officer = dossier = None
        if action is Action.CALL:
            raw = obj.get("ticket")
            if isinstance(raw, bool) or not isinstance(raw, (str, int)):
                raise bad_request("lệnh “call” cần trường “ticket” (số vé hoặc mã vé).")
            ticket = str(raw).strip()
            if not ticket or len(ticket) > MAX_ID_LEN:
                raise bad_request("trường “ticket” không hợp lệ.")
        elif action is Action.TRANSFER:
            to_field = _slug(obj, "to_field", required=False)
            to_counter = _slug(obj, "to_counter", required=False)
            if (to_field is None) == (to_counter is None):
                raise bad_request("lệnh “transfer” cần đúng một trong “to_field” hoặc “to_counter”.")
        elif action is Action.OPEN:
            officer = _opt_str(obj, "officer")
        elif action is Action.DOSSIER:
            dossier = _req_str(obj, "dossier", 64)
            raw = obj.get("ticket")
            if raw is not None:
                if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_ID_LEN:
                    raise bad_request("trường “ticket” không hợp lệ.")
                ticket = raw.strip()
        return cls(request_id=rid, action=action, ticket=ticket, to_field=to_field,
                   to_counter=to_counter, officer=officer, dossier=dossier)


@dataclass(frozen=True)
class RatingRequest:
    request_id: str
    score: int
    counter: str | None = None
    ticket: str | None = None

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> RatingRequest:
        rid = _require_request_id(obj)
        score = obj.get("score")
        if isinstance(score, bool) or not isinstance(score, int):
            raise bad_request("“score” phải là một số nguyên.")
        counter = _slug(obj, "counter", required=False)
        ticket = obj.get("ticket")
        if ticket is not None and (not isinstance(ticket, str) or not ticket or len(ticket) > MAX_ID_LEN):
            raise bad_request("trường “ticket” không hợp lệ.")
        if (counter is None) == (ticket is None):
            raise bad_request("cần đúng một trong “counter” hoặc “ticket”.")
        return cls(request_id=rid, score=score, counter=counter, ticket=ticket)


class QueryKind(StrEnum):
    TICKET = "ticket"
    TICKETS = "tickets"
    CONTACTS = "contacts"   # today's tickets with a phone: answered to the notifier's user alone
    BOOKINGS = "bookings"   # live bookings of today and later with their phones: the notifier alone


MAX_QUERY_LIMIT = 1000
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _opt_day(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _DAY_RE.match(value):
        raise bad_request(f"trường “{key}” phải là ngày dạng YYYY-MM-DD.")
    return value


def _opt_phone(obj: dict[str, Any]) -> str | None:
    """A citizen's mobile number, normalised to 84…; anything else is refused, not stored."""
    raw = _opt_str(obj, "phone", 20)
    if raw is None or not raw.strip():
        return None
    try:
        return normalize_phone(raw)
    except PhoneError as exc:
        raise bad_request(str(exc)) from None


@dataclass(frozen=True)
class QueryRequest:
    """A read-only question to the core: answered from its records, never stored, changes nothing."""

    request_id: str
    query: QueryKind
    ticket: str | None = None    # for "ticket": an id (any day) or a number of today
    day_from: str | None = None  # for "tickets": business days, inclusive
    day_to: str | None = None
    after: str | None = None     # for "tickets": the cursor from the previous page
    limit: int = 500

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> QueryRequest:
        rid = _require_request_id(obj)
        try:
            query = QueryKind(obj.get("query"))
        except ValueError:
            raise bad_request(f"“query” phải là một trong: {', '.join(q.value for q in QueryKind)}.") from None
        if query is QueryKind.TICKET:
            return cls(rid, query, ticket=_req_str(obj, "ticket", MAX_ID_LEN))
        limit = obj.get("limit", 500)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_QUERY_LIMIT:
            raise bad_request(f"“limit” phải là số nguyên từ 1 đến {MAX_QUERY_LIMIT}.")
        return cls(rid, query, day_from=_opt_day(obj, "from"), day_to=_opt_day(obj, "to"),
                   after=_opt_str(obj, "after", MAX_ID_LEN), limit=limit)


_SLOT_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _day(obj: dict[str, Any], key: str) -> str:
    value = _opt_day(obj, key)
    if value is None:
        raise bad_request(f"thiếu trường “{key}” (ngày dạng YYYY-MM-DD).")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise bad_request(f"ngày “{value}” không có thật.") from None
    return value


def _slot(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not _SLOT_RE.match(value):
        raise bad_request(f"trường “{key}” phải là giờ dạng HH:MM.")
    return value


def _code(obj: dict[str, Any]) -> str:
    """A check-in or booking code as typed: case and spaces do not matter."""
    raw = _req_str(obj, "code", 32)
    code = "".join(raw.split()).upper()
    if not code or any(c not in CODE_ALPHABET for c in code):
        raise bad_request("mã không hợp lệ.")
    return code


@dataclass(frozen=True)
class AppointmentRequest:
    request_id: str
    action: AppointmentAction
    field: str | None = None    # book
    day: str | None = None      # book, move
    slot: str | None = None     # book, move
    phone: str | None = None    # book
    code: str | None = None     # cancel, move, get

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> AppointmentRequest:
        rid = _require_request_id(obj)
        try:
            action = AppointmentAction(obj.get("action"))
        except ValueError:
            raise bad_request(
                f"“action” phải là một trong: {', '.join(a.value for a in AppointmentAction)}.") from None
        if action is AppointmentAction.BOOK:
            phone = _opt_phone(obj)
            if phone is None:
                raise bad_request("đặt lịch cần số điện thoại (“phone”).")
            return cls(rid, action, field=_slug(obj, "field"), day=_day(obj, "day"), slot=_slot(obj, "slot"),
                       phone=phone)
        code = _code(obj)
        if action is AppointmentAction.MOVE:
            return cls(rid, action, day=_day(obj, "day"), slot=_slot(obj, "slot"), code=code)
        return cls(rid, action, code=code)


@dataclass(frozen=True)
class CheckinRequest:
    request_id: str
    code: str

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> CheckinRequest:
        return cls(_require_request_id(obj), _code(obj))


# ---------------------------------------------------------------- dossiers (issue 13)
# Commands on cmd/dossier, answered by the dossier service (dossiers/), never by the core.


class DossierStatus(StrEnum):
    RECEIVED = "received"
    PROCESSING = "processing"
    NEEDS_DOCUMENTS = "needs_documents"
    DONE = "done"
    RETURNED = "returned"
    REFUSED = "refused"


# What citizens and officers read for each status.
DOSSIER_STATUS_VI: dict[DossierStatus, str] = {
    DossierStatus.RECEIVED: "Đã tiếp nhận",
    DossierStatus.PROCESSING: "Đang xử lý",
    DossierStatus.NEEDS_DOCUMENTS: "Cần bổ sung hồ sơ",
    DossierStatus.DONE: "Đã có kết quả",
    DossierStatus.RETURNED: "Đã trả kết quả",
    DossierStatus.REFUSED: "Từ chối giải quyết",
}
# A dossier with one of these is finished: its phone is erased `phone_days` later.
FINISHED_DOSSIER_STATUSES = frozenset({DossierStatus.RETURNED, DossierStatus.REFUSED})


class DossierAction(StrEnum):
    CREATE = "create"
    EVENT = "event"
    GET = "get"
    CONTACTS = "contacts"
    LIST = "list"


class DossierSource(StrEnum):
    COUNTER = "counter"   # recorded at the counter, from the console
    API = "api"           # received elsewhere (online, the national portal), created through the HTTP API


# A dossier code as the province's one-stop system writes it ("000.00.12.H23-261120-0001").
DOSSIER_CODE_RE = re.compile(r"^[A-Za-z0-9._/-]{1,64}$")
MAX_DOSSIER_ID_LEN = 64
MAX_PROCEDURE_NAME_LEN = 500
MAX_DOCUMENT_LEN = 200
MAX_DOCUMENTS = 30
MAX_DOSSIER_NOTE_LEN = 500
MAX_DEPARTMENT_LEN = 100


def dossier_code_of(obj: dict[str, Any], key: str = "code") -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not DOSSIER_CODE_RE.match(value.strip()):
        raise bad_request(f"“{key}” phải là mã hồ sơ 1–64 ký tự (chữ, số, “.”, “_”, “/”, “-”).")
    return value.strip()


def _moment(obj: dict[str, Any], key: str, *, required: bool) -> datetime | None:
    """An ISO 8601 moment; one without an offset is read in the site's zone by the service."""
    value = obj.get(key)
    if value is None:
        if required:
            raise bad_request(f"thiếu trường “{key}” (thời điểm ISO 8601, ví dụ 2026-11-20T09:30:00+07:00).")
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise bad_request(f"trường “{key}” phải là thời điểm ISO 8601, ví dụ 2026-11-20T09:30:00+07:00.")
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise bad_request(f"“{key}” không phải thời điểm ISO 8601 hợp lệ, "
                          "ví dụ 2026-11-20T09:30:00+07:00.") from None


def _dossier_status(obj: dict[str, Any]) -> DossierStatus:
    try:
        return DossierStatus(obj.get("status"))
    except ValueError:
        raise bad_request(f"“status” phải là một trong: {', '.join(s.value for s in DossierStatus)}.") from None


@dataclass(frozen=True)
class DossierCreate:
    request_id: str
    code: str
    procedure_name: str
    due_at: date
    source: DossierSource
    by: str
    procedure_code: str | None = None
    field: str | None = None
    received_at: datetime | None = None     # None: now
    documents: tuple[str, ...] = ()
    phone: str | None = None                # normalised 84…
    ticket: str | None = None
    officer: str | None = None
    counter: str | None = None


@dataclass(frozen=True)
class DossierEvent:
    request_id: str
    code: str
    id: str
    status: DossierStatus
    at: datetime
    by: str
    note: str | None = None
    department: str | None = None


@dataclass(frozen=True)
class DossierGet:
    request_id: str
    code: str


@dataclass(frozen=True)
class DossierContacts:
    request_id: str
    since: datetime


@dataclass(frozen=True)
class DossierList:
    """Dossiers changed at or after `since` (the web's report warehouse), by code, a page at a time."""

    request_id: str
    since: datetime
    after: str | None = None   # the `next` of the previous page: the last code it held
    limit: int = 200


MAX_DOSSIER_LIST_LIMIT = 1000

DossierCommand = DossierCreate | DossierEvent | DossierGet | DossierContacts | DossierList


def parse_dossier_command(obj: dict[str, Any]) -> DossierCommand:
    """A command of cmd/dossier, checked whole: ProtocolError(bad_request) names the first fault."""
    rid = _require_request_id(obj)
    try:
        action = DossierAction(obj.get("action"))
    except ValueError:
        raise bad_request(f"“action” phải là một trong: {', '.join(a.value for a in DossierAction)}.") from None
    if action is DossierAction.CONTACTS:
        since = _moment(obj, "since", required=True)
        assert since is not None
        return DossierContacts(rid, since)
    if action is DossierAction.LIST:
        since = _moment(obj, "since", required=True)
        assert since is not None
        limit = obj.get("limit", 200)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_DOSSIER_LIST_LIMIT:
            raise bad_request(f"“limit” phải là số nguyên từ 1 đến {MAX_DOSSIER_LIST_LIMIT}.")
        after = dossier_code_of(obj, "after") if obj.get("after") is not None else None
        return DossierList(rid, since, after=after, limit=limit)
    code = dossier_code_of(obj)
    if action is DossierAction.GET:
        return DossierGet(rid, code)
    by = _req_str(obj, "by", MAX_TEXT_LEN)
    if action is DossierAction.EVENT:
        at = _moment(obj, "at", required=True)
        assert at is not None
        return DossierEvent(rid, code, id=_req_str(obj, "id", MAX_DOSSIER_ID_LEN), status=_dossier_status(obj),
                            at=at, by=by, note=_opt_str(obj, "note", MAX_DOSSIER_NOTE_LEN),
                            department=_opt_str(obj, "department", MAX_DEPARTMENT_LEN))
    procedure = obj.get("procedure")
    if not isinstance(procedure, dict):
        raise bad_request("thiếu trường “procedure” ({\"code\": …, \"name\": …}).")
    try:
        source = DossierSource(obj.get("source"))
    except ValueError:
        raise bad_request(f"“source” phải là một trong: {', '.join(s.value for s in DossierSource)}.") from None
    documents = obj.get("documents") or []
    if not isinstance(documents, list) or len(documents) > MAX_DOCUMENTS:
        raise bad_request(f"“documents” phải là danh sách tối đa {MAX_DOCUMENTS} giấy tờ.")
    docs: list[str] = []
    for item in documents:
        doc = _opt_str({"documents": item}, "documents", MAX_DOCUMENT_LEN)
        if doc is not None:
            docs.append(doc)
    return DossierCreate(
        request_id=rid, code=code,
        procedure_name=_req_str(procedure, "name", MAX_PROCEDURE_NAME_LEN),
        procedure_code=_opt_str(procedure, "code", MAX_DOSSIER_ID_LEN),
        due_at=date.fromisoformat(_day(obj, "due_at")), source=source, by=by,
        field=_opt_str(obj, "field"), received_at=_moment(obj, "received_at", required=False),
        documents=tuple(docs), phone=_opt_phone(obj), ticket=_opt_str(obj, "ticket", MAX_ID_LEN),
        officer=_opt_str(obj, "officer"), counter=_opt_str(obj, "counter"),
    )


def dossier_command(request_id: str, action: DossierAction | str, **fields: Any) -> dict[str, Any]:
    return {"request_id": request_id, "action": str(action), **{k: v for k, v in fields.items() if v is not None}}


# ---------------------------------------------------------------- replies


def ok_reply(request_id: str, ticket: dict[str, Any] | None = None,
             counter: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"ok": True, "request_id": request_id, "ticket": ticket, "counter": counter, **extra}


def error_reply(request_id: str | None, code: ErrorCode | str, message: str,
                **extra: Any) -> dict[str, Any]:
    return {"ok": False, "request_id": request_id,
            "error": {"code": str(code), "message": message}, **extra}


# ---------------------------------------------------------------- requests, for clients


def counter_command(request_id: str, action: Action | str, **fields: Any) -> dict[str, Any]:
    return {"request_id": request_id, "action": str(action),
            **{k: v for k, v in fields.items() if v is not None}}


def ticket_command(request_id: str, field: str, *, priority: bool = False,
                   source: str | None = None, phone: str | None = None) -> dict[str, Any]:
    return {"request_id": request_id, "field": field, "priority": priority,
            "source": source, "phone": phone}


def query_command(request_id: str, query: QueryKind | str, **fields: Any) -> dict[str, Any]:
    return {"request_id": request_id, "query": str(query), **{k: v for k, v in fields.items() if v is not None}}


def rating_command(request_id: str, score: int, *, counter: str | None = None,
                   ticket: str | None = None) -> dict[str, Any]:
    cmd: dict[str, Any] = {"request_id": request_id, "score": score}
    if counter is not None:
        cmd["counter"] = counter
    if ticket is not None:
        cmd["ticket"] = ticket
    return cmd
