"""The queue rules as pure functions: (book, request, now) -> Change, or ProtocolError.

No I/O and no mutation: the service commits the Change, then applies it to the book.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from qms_common.config import FieldConfig
from qms_common.protocol import (
    CALLABLE_STATUSES,
    Action,
    AppointmentRequest,
    BookingStatus,
    CheckinRequest,
    CounterRequest,
    CounterStatus,
    ErrorCode,
    EventKind,
    ProtocolError,
    RatingRequest,
    TicketRequest,
    TicketStatus,
    Via,
    bad_request,
)
from queue_core import appointments as appt
from queue_core.book import Book, Change, Event
from queue_core.model import Booking, Counter, Ticket

STATUS_VI = {
    TicketStatus.WAITING: "đang chờ",
    TicketStatus.SERVING: "đang được phục vụ",
    TicketStatus.DONE: "đã phục vụ xong",
    TicketStatus.NO_SHOW: "vắng mặt",
    TicketStatus.TRANSFERRED: "đã chuyển",
    TicketStatus.EXPIRED: "đã hết hạn",
}


def ticket_id(day: str, field_id: str, number: str) -> str:
    return f"{day.replace('-', '')}-{field_id}-{number.lower()}"


# ---------------------------------------------------------------- tickets


def issue_ticket(book: Book, req: TicketRequest, now: datetime, *, code: str | None = None) -> Change:
    """A ticket from the kiosk (or a keypad, an integration); `req.remote`: from a phone, with
    its check-in `code` (the caller checked that the web server sent it)."""
    f = _field(book, req.field)
    if not req.remote:
        return _new_ticket(book, f, now, priority=req.priority, source=req.source, phone=req.phone)
    remote = book.site.remote
    local = now.astimezone(book.site.tz)
    issued = live = 0
    for t in book.tickets.values():
        if t.via is Via.REMOTE and t.origin_field == f.id:
            issued += 1
            if t.phone == req.phone and (t.status in CALLABLE_STATUSES or t.status is TicketStatus.SERVING):
                live += 1
    appt.check_remote(remote, f.id, f.name, local.hour * 60 + local.minute, issued, live)
    assert remote is not None and code is not None
    change = _new_ticket(book, f, now, priority=req.priority, source=req.source, phone=req.phone, via=Via.REMOTE,
                         code=code, awaiting_checkin=remote.checkin_required)
    change.extra = {"code": code}
    return change


def _field(book: Book, field_id: str) -> FieldConfig:
    f = book.site.field(field_id)
    if f is None:
        raise ProtocolError(ErrorCode.UNKNOWN_FIELD, f"Không có lĩnh vực “{field_id}”.")
    return f


def _new_ticket(book: Book, f: FieldConfig, now: datetime, *, priority: bool = False, **kw: object) -> Change:
    value = book.last_number.get(f.id, f.first - 1) + 1
    if value > f.last:
        raise ProtocolError(ErrorCode.RANGE_EXHAUSTED,
                            f"Lĩnh vực {f.name} đã phát hết số của ngày hôm nay "
                            f"({f.format_number(f.first)}–{f.format_number(f.last)}).")
    number = f.format_number(value)
    t = Ticket(id=ticket_id(book.day, f.id, number), day=book.day, number=number, value=value,
               origin_field=f.id, field=f.id, priority=priority, status=TicketStatus.WAITING,
               issued_at=now, order=book.next_order, **kw)  # type: ignore[arg-type]
    return Change(tickets=[t], numbers={f.id: value}, next_order=book.next_order + 1,
                  events=[Event(EventKind.ISSUED, t, None)], ticket=t, show_ahead=True)


# ---------------------------------------------------------------- counters


def counter_action(book: Book, counter_id: str, req: CounterRequest, now: datetime) -> Change:
    cc = book.site.counter(counter_id)
    if cc is None:
        raise ProtocolError(ErrorCode.UNKNOWN_COUNTER, f"Không có quầy “{counter_id}”.")
    c = book.counters[counter_id]
    handler = _HANDLERS[req.action]
    return handler(book, c, req, now)


def _closed(book: Book, c: Counter) -> ProtocolError:
    cc = book.site.counter(c.id)
    return ProtocolError(ErrorCode.COUNTER_CLOSED,
                         f"{cc.name if cc else c.id} đang đóng. Hãy mở quầy trước.")


def _current(book: Book, c: Counter) -> Ticket:
    """The ticket the counter serves, or invalid_state."""
    if c.status is CounterStatus.CLOSED:
        raise _closed(book, c)
    if c.ticket is None:
        raise ProtocolError(ErrorCode.INVALID_STATE, "Quầy chưa gọi vé nào.")
    return book.tickets[c.ticket]


def _with_status(c: Counter, status: CounterStatus, now: datetime, **kw: object) -> Counter:
    since = now if status is not c.status else c.since
    return replace(c, status=status, since=since, **kw)  # type: ignore[arg-type]


def _finish_current(book: Book, c: Counter, now: datetime, change: Change) -> Counter:
    """End the current service, if any: the ticket is done and becomes the one a rating goes to."""
    if c.ticket is None:
        return c
    t = book.tickets[c.ticket]
    if t.status is not TicketStatus.SERVING:
        return replace(c, ticket=None)
    done = replace(t, status=TicketStatus.DONE, finished_at=now)
    change.tickets.append(done)
    change.events.append(Event(EventKind.FINISHED, done, c.id))
    return replace(c, ticket=None, last_served=done.id)


def _officer(book: Book, c: Counter) -> str | None:
    """Who a call at this counter names. A counter keeps the last officer who opened it by name,
    also when closed; a keypad's N on a closed counter names the counter's configured officer,
    else that last one, so the statistics always know who served."""
    cc = book.site.counter(c.id)
    default = cc.officer if cc else None
    if c.status is CounterStatus.CLOSED:
        return default or c.officer
    return c.officer or default


def _serve(book: Book, c: Counter, t: Ticket, now: datetime, change: Change) -> Change:
    officer = _officer(book, c)
    served = replace(t, status=TicketStatus.SERVING, called_at=now, counter=c.id,
                     officer=officer, calls=t.calls + 1, finished_at=None, awaiting_checkin=False)
    # a call ends the rating by counter of the one before: the citizen at the counter is another
    c = _with_status(c, CounterStatus.SERVING, now, ticket=served.id, officer=officer,
                     last_served=None)
    change.tickets.append(served)
    change.counters.append(c)
    change.events.append(Event(EventKind.CALLED, served, c.id))
    change.ticket, change.counter = served, c
    return change


def _call_next(book: Book, c: Counter, req: CounterRequest, now: datetime) -> Change:
    # An officer who presses "next" wants to serve: it opens a closed counter and ends a pause.
    change = Change()
    after = _finish_current(book, c, now, change)
    nxt = book.find_next(c.id, now)
    for t in book.passed_over(c.id, nxt):
        # its turn came, but it has not checked in: it keeps its place, and is told once
        change.tickets.append(replace(t, passed_over=True))
        change.passed_over.add(t.id)
    if nxt is None:
        after = _with_status(after, CounterStatus.OPEN, now)
        if after != c:
            change.counters.append(after)
        err = ProtocolError(ErrorCode.QUEUE_EMPTY, "Không còn công dân nào đang chờ.")
        if change.empty:
            raise err
        change.counter, change.error = after, err
        return change
    return _serve(book, after, nxt, now, change)


def _call(book: Book, c: Counter, req: CounterRequest, now: datetime) -> Change:
    assert req.ticket is not None
    t = book.find_ticket(req.ticket, c.id)
    if t is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TICKET, f"Không tìm thấy vé số {req.ticket} hôm nay.")
    if t.status not in CALLABLE_STATUSES and t.status is not TicketStatus.NO_SHOW:
        where = f" tại quầy {t.counter}" if t.status is TicketStatus.SERVING and t.counter else ""
        raise ProtocolError(ErrorCode.INVALID_STATE,
                            f"Vé số {t.number} {STATUS_VI[t.status]}{where}, không gọi lại được.")
    change = Change()
    after = _finish_current(book, c, now, change)
    return _serve(book, after, t, now, change)


def _recall(book: Book, c: Counter, req: CounterRequest, now: datetime) -> Change:
    t = _current(book, c)
    if c.status is CounterStatus.PAUSED:
        raise ProtocolError(ErrorCode.INVALID_STATE, "Quầy đang tạm dừng. Hãy tiếp tục trước khi gọi lại.")
    again = replace(t, calls=t.calls + 1)
    return Change(tickets=[again], events=[Event(EventKind.CALLED, again, c.id, recall=True)],
                  ticket=again, counter=c)


def _skip(book: Book, c: Counter, req: CounterRequest, now: datetime) -> Change:
    t = _current(book, c)
    gone = replace(t, status=TicketStatus.NO_SHOW)
    after = _with_status(c, CounterStatus.OPEN if c.status is not CounterStatus.PAUSED else c.status,
                         now, ticket=None)
    return Change(tickets=[gone], counters=[after], events=[Event(EventKind.SKIPPED, gone, c.id)],
                  ticket=gone, counter=after)


def _finish(book: Book, c: Counter, req: CounterRequest, now: datetime) -> Change:
    t = _current(book, c)
    change = Change()
    after = _finish_current(book, c, now, change)
    if after.status is CounterStatus.SERVING:
        after = _with_status(after, CounterStatus.OPEN, now)
    change.counters.append(after)
    change.ticket, change.counter = change.tickets[0] if change.tickets else t, after
    return change


def _transfer(book: Book, c: Counter, req: CounterRequest, now: datetime) -> Change:
    t = _current(book, c)
    if req.to_field is not None:
        f = book.site.field(req.to_field)
        if f is None:
            raise ProtocolError(ErrorCode.UNKNOWN_FIELD, f"Không có lĩnh vực “{req.to_field}”.")
        moved = replace(t, status=TicketStatus.TRANSFERRED, field=f.id, counter=None)
    else:
        assert req.to_counter is not None
        target = book.site.counter(req.to_counter)
        if target is None:
            raise ProtocolError(ErrorCode.UNKNOWN_COUNTER, f"Không có quầy “{req.to_counter}”.")
        if target.id == c.id:
            raise ProtocolError(ErrorCode.INVALID_STATE, "Không thể chuyển vé về chính quầy này.")
        moved = replace(t, status=TicketStatus.TRANSFERRED, counter=target.id)
    after = _with_status(c, CounterStatus.OPEN if c.status is CounterStatus.SERVING else c.status,
                         now, ticket=None)
    return Change(tickets=[moved], counters=[after],
                  events=[Event(EventKind.TRANSFERRED, moved, c.id)], ticket=moved, counter=after)


def _pause(book: Book, c: Counter, req: CounterRequest, now: datetime) -> Change:
    if c.status is CounterStatus.CLOSED:
        raise _closed(book, c)
    if c.status is CounterStatus.PAUSED:
        return Change(counter=c)
    after = _with_status(c, CounterStatus.PAUSED, now)
    return Change(counters=[after], counter=after)


def _resume(book: Book, c: Counter, req: CounterRequest, now: datetime) -> Change:
    if c.status is CounterStatus.CLOSED:
        raise _closed(book, c)
    if c.status is not CounterStatus.PAUSED:
        return Change(counter=c)
    after = _with_status(c, CounterStatus.SERVING if c.ticket else CounterStatus.OPEN, now)
    return Change(counters=[after], counter=after)


def _open(book: Book, c: Counter, req: CounterRequest, now: datetime) -> Change:
    status = CounterStatus.OPEN if c.status is CounterStatus.CLOSED else c.status
    after = _with_status(c, status, now, officer=req.officer if req.officer else _officer(book, c))
    if after == c:
        return Change(counter=c)
    return Change(counters=[after], counter=after)


def _close(book: Book, c: Counter, req: CounterRequest, now: datetime) -> Change:
    if c.status is CounterStatus.CLOSED:
        return Change(counter=c)
    change = Change()
    after = _finish_current(book, c, now, change)
    after = _with_status(after, CounterStatus.CLOSED, now)  # the officer stays: see _officer
    change.counters.append(after)
    change.counter = after
    return change


def _dossier(book: Book, c: Counter, req: CounterRequest, now: datetime) -> Change:
    if req.ticket is not None:
        t = book.find_ticket(req.ticket, c.id)
        if t is None:
            raise ProtocolError(ErrorCode.UNKNOWN_TICKET, f"Không tìm thấy vé số {req.ticket} hôm nay.")
    elif c.ticket is not None:
        t = book.tickets[c.ticket]
    elif c.last_served is not None:
        t = book.tickets[c.last_served]
    else:
        raise ProtocolError(ErrorCode.INVALID_STATE, "Quầy chưa phục vụ vé nào để gắn mã hồ sơ.")
    if t.counter != c.id:
        raise ProtocolError(ErrorCode.INVALID_STATE, f"Vé số {t.number} không do quầy này phục vụ.")
    tagged = replace(t, dossier=req.dossier)
    return Change(tickets=[tagged], ticket=tagged, counter=c)


_HANDLERS = {
    Action.CALL_NEXT: _call_next,
    Action.CALL: _call,
    Action.RECALL: _recall,
    Action.SKIP: _skip,
    Action.FINISH: _finish,
    Action.TRANSFER: _transfer,
    Action.PAUSE: _pause,
    Action.RESUME: _resume,
    Action.OPEN: _open,
    Action.CLOSE: _close,
    Action.DOSSIER: _dossier,
}


# ---------------------------------------------------------------- ratings


def rate(book: Book, req: RatingRequest, now: datetime) -> Change:
    levels = book.site.rating_levels
    if not 1 <= req.score <= len(levels):
        raise bad_request(f"“score” phải từ 1 đến {len(levels)}.")
    if req.counter is not None:
        cc = book.site.counter(req.counter)
        if cc is None:
            raise ProtocolError(ErrorCode.UNKNOWN_COUNTER, f"Không có quầy “{req.counter}”.")
        last = book.counters[cc.id].last_served
        if last is None:  # nothing finished there since its last call
            raise ProtocolError(ErrorCode.INVALID_STATE, f"{cc.name} chưa phục vụ xong lượt nào để đánh giá.")
        t = book.tickets[last]
    else:
        assert req.ticket is not None
        found = book.find_ticket(req.ticket)
        if found is None:
            raise ProtocolError(ErrorCode.UNKNOWN_TICKET, f"Không tìm thấy vé “{req.ticket}” hôm nay.")
        t = found
    if t.status is not TicketStatus.DONE:
        raise ProtocolError(ErrorCode.INVALID_STATE,
                            f"Vé số {t.number} {STATUS_VI[t.status]}, chưa đánh giá được.")
    if t.rating is not None:
        raise ProtocolError(ErrorCode.INVALID_STATE, f"Vé số {t.number} đã được đánh giá.")
    window = book.site.rating_window_s
    if t.finished_at is None or (now - t.finished_at).total_seconds() > window:
        raise ProtocolError(ErrorCode.RATING_CLOSED, f"Đã hết thời gian đánh giá vé số {t.number} "
                                                     f"({window // 60} phút sau khi phục vụ xong).")
    rated = replace(t, rating=req.score, rated_at=now)
    return Change(tickets=[rated], events=[Event(EventKind.RATED, rated, t.counter)], ticket=rated)


# ---------------------------------------------------------------- the day


def rollover(book: Book, new_day: str, now: datetime) -> Change:
    """End the business day: waiting tickets expire, services end, every counter closes, and
    bookings of the ended days never checked in become no-shows."""
    change = Change(day=new_day)
    for t in book.tickets.values():
        if t.status in CALLABLE_STATUSES or t.status is TicketStatus.NO_SHOW:
            change.tickets.append(replace(t, status=TicketStatus.EXPIRED))
        elif t.status is TicketStatus.SERVING:
            change.tickets.append(replace(t, status=TicketStatus.DONE, finished_at=now))
    for c in book.counters.values():
        change.counters.append(Counter(c.id, CounterStatus.CLOSED, officer=c.officer, since=now))
    for b in book.bookings.by_code.values():
        if b.day < new_day and b.status is BookingStatus.BOOKED:
            change.bookings.append(replace(b, status=BookingStatus.NO_SHOW, updated_at=now))
    return change


# ---------------------------------------------------------------- appointments


def _booking(book: Book, code: str) -> Booking:
    b = book.bookings.get(code)
    if b is None:
        raise ProtocolError(ErrorCode.UNKNOWN_BOOKING, f"Không tìm thấy lịch hẹn mã {code}.")
    return b


BOOKING_VI = {
    BookingStatus.BOOKED: "đã đặt",
    BookingStatus.CANCELLED: "đã huỷ",
    BookingStatus.CHECKED_IN: "đã xác nhận có mặt",
    BookingStatus.NO_SHOW: "đã quá hạn (không đến)",
}


def _still_booked(b: Booking) -> None:
    if b.status is not BookingStatus.BOOKED:
        raise ProtocolError(ErrorCode.INVALID_STATE, f"Lịch hẹn {b.code} {BOOKING_VI[b.status]}, không thay đổi được.")


def appointment(book: Book, req: AppointmentRequest, now: datetime, *, code: str | None = None) -> Change:
    """book (with a fresh `code`), cancel or move; `get` only reads."""
    today = date.fromisoformat(book.day)
    settings = book.site.appointments
    if req.code is not None:
        b = _booking(book, req.code)
        if req.action == "get":
            return Change(booking=b)
        _still_booked(b)
        if req.action == "cancel":
            gone = replace(b, status=BookingStatus.CANCELLED, updated_at=now)
            return Change(bookings=[gone], booking=gone)
        assert req.day is not None and req.slot is not None
        if (req.day, req.slot) == (b.day, b.slot):
            return Change(booking=b)
        f = _field(book, b.field)
        capacity = appt.place_capacity(settings, f.id, f.name, req.day, req.slot, today)
        appt.check_free(capacity, book.bookings.used(f.id, req.day, req.slot), req.slot, req.day)
        moved = replace(b, day=req.day, slot=req.slot, updated_at=now)
        return Change(bookings=[moved], booking=moved)
    assert req.field is not None and req.day is not None and req.slot is not None and req.phone is not None
    assert code is not None
    f = _field(book, req.field)
    capacity = appt.place_capacity(settings, f.id, f.name, req.day, req.slot, today)
    assert settings is not None
    appt.check_phone_bookings(settings, book.bookings.booked_for_phone(req.phone))
    appt.check_free(capacity, book.bookings.used(f.id, req.day, req.slot), req.slot, req.day)
    new = Booking(code=code, field=f.id, day=req.day, slot=req.slot, phone=req.phone, status=BookingStatus.BOOKED,
                  created_at=now, updated_at=now)
    return Change(bookings=[new], booking=new)


def checkin(book: Book, req: CheckinRequest, now: datetime) -> Change:
    """At the kiosk: a remote ticket's code makes it callable; a booking's code of today, in its
    window, gives an appointment ticket. Again with the same code: the same answer."""
    for t in book.tickets.values():
        if t.code == req.code:
            if t.awaiting_checkin and t.status in CALLABLE_STATUSES:
                present = replace(t, awaiting_checkin=False)
                return Change(tickets=[present], ticket=present, show_ahead=True)
            return Change(ticket=t, show_ahead=t.status in CALLABLE_STATUSES)
    b = _booking(book, req.code)
    if b.status is BookingStatus.CHECKED_IN:
        t = book.tickets.get(b.ticket) if b.ticket else None
        if t is None:
            raise ProtocolError(ErrorCode.INVALID_STATE, f"Lịch hẹn {b.code} đã xác nhận có mặt.")
        return Change(ticket=t, booking=b, show_ahead=t.status in CALLABLE_STATUSES,
                      extra={"late": True} if t.appointment is None else {})
    if b.status is not BookingStatus.BOOKED:
        raise ProtocolError(ErrorCode.INVALID_STATE, f"Lịch hẹn {b.code} {BOOKING_VI[b.status]}.")
    settings = book.site.appointments
    if settings is None:
        raise ProtocolError(ErrorCode.OUTSIDE_HOURS, "Bộ phận Một cửa không còn nhận lịch hẹn.")
    tz = book.site.tz
    when = appt.checkin_time(settings, b.day, b.slot, tz, now)
    opens, closes = (m.astimezone(tz).strftime("%H:%M") for m in (when.opens, when.closes))
    if b.day > book.day:
        raise ProtocolError(ErrorCode.TOO_EARLY,
                            f"Lịch hẹn của ông/bà vào {appt.day_vi(date.fromisoformat(b.day))} lúc {b.slot}. "
                            f"Mời ông/bà quay lại ngày đó từ {opens}.", **{"from": opens, "day": b.day})
    if b.day < book.day or when.window is appt.Window.LATE:
        if settings.late == "refuse" or b.day < book.day:
            raise ProtocolError(ErrorCode.TOO_LATE, f"Đã quá giờ xác nhận của lịch hẹn {b.slot} "
                                                    f"(đến {closes}). "
                                                    "Mời ông/bà lấy số tại ki-ốt.")
        f = _field(book, b.field)
        change = _new_ticket(book, f, now, phone=b.phone, via=Via.KIOSK)
        change.extra = {"late": True}
    elif when.window is appt.Window.EARLY:
        raise ProtocolError(ErrorCode.TOO_EARLY, f"Chưa đến giờ xác nhận lịch hẹn {b.slot}. "
                                                 f"Mời ông/bà quay lại từ {opens}.", **{"from": opens})
    else:
        f = _field(book, b.field)
        change = _new_ticket(book, f, now, phone=b.phone, via=Via.APPOINTMENT, appointment=b.code,
                             slot_at=appt.slot_moment(b.day, b.slot, tz))
    assert change.ticket is not None
    done = replace(b, status=BookingStatus.CHECKED_IN, ticket=change.ticket.id, updated_at=now)
    change.bookings.append(done)
    change.booking = done
    return change
