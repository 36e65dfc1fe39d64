"""The queue rules as pure functions: (book, request, now) -> Change, or ProtocolError.

No I/O and no mutation: the service commits the Change, then applies it to the book.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta, tzinfo

from qms_common.protocol import (
    CALLABLE_STATUSES,
    Action,
    CounterRequest,
    CounterStatus,
    ErrorCode,
    EventKind,
    ProtocolError,
    RatingRequest,
    TicketRequest,
    TicketStatus,
    bad_request,
)
from queue_core.book import Book, Change, Event
from queue_core.model import Counter, Ticket

STATUS_VI = {
    TicketStatus.WAITING: "đang chờ",
    TicketStatus.SERVING: "đang được phục vụ",
    TicketStatus.DONE: "đã phục vụ xong",
    TicketStatus.NO_SHOW: "vắng mặt",
    TicketStatus.TRANSFERRED: "đã chuyển",
    TicketStatus.EXPIRED: "đã hết hạn",
}


def business_day(now: datetime, tz: tzinfo, day_starts: time) -> str:
    """The business day a moment belongs to, in the site's zone; the day starts at day_starts."""
    local = now.astimezone(tz)
    shifted = local - timedelta(hours=day_starts.hour, minutes=day_starts.minute)
    return shifted.date().isoformat()


def ticket_id(day: str, field_id: str, number: str) -> str:
    return f"{day.replace('-', '')}-{field_id}-{number.lower()}"


def check_deadline(deadline: float | None, now: datetime) -> None:
    """A command past its deadline is refused: its sender has stopped waiting and told its user
    it failed, so doing it now would be a ticket or a call nobody expects. No deadline, no check
    (integrations written before deadlines existed)."""
    if deadline is not None and now.timestamp() > deadline:
        raise ProtocolError(ErrorCode.EXPIRED, "Lệnh đến quá hạn, người gửi đã thôi chờ: lệnh không được thực hiện. "
                                               "Vui lòng thử lại.")


# ---------------------------------------------------------------- tickets


def issue_ticket(book: Book, req: TicketRequest, now: datetime) -> Change:
    f = book.site.field(req.field)
    if f is None:
        raise ProtocolError(ErrorCode.UNKNOWN_FIELD, f"Không có lĩnh vực “{req.field}”.")
    value = book.last_number.get(f.id, f.first - 1) + 1
    if value > f.last:
        raise ProtocolError(ErrorCode.RANGE_EXHAUSTED,
                            f"Lĩnh vực {f.name} đã phát hết số của ngày hôm nay "
                            f"({f.format_number(f.first)}–{f.format_number(f.last)}).")
    number = f.format_number(value)
    t = Ticket(id=ticket_id(book.day, f.id, number), day=book.day, number=number, value=value,
               origin_field=f.id, field=f.id, priority=req.priority, status=TicketStatus.WAITING,
               issued_at=now, order=book.next_order, source=req.source, phone=req.phone)
    return Change(tickets=[t], numbers={f.id: value}, next_order=book.next_order + 1,
                  events=[Event(EventKind.ISSUED, t, None)], ticket=t)


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
                     officer=officer, calls=t.calls + 1, finished_at=None)
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
    nxt = book.find_next(c.id)
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
    """End the business day: waiting tickets expire, services end, every counter closes."""
    change = Change(day=new_day)
    for t in book.tickets.values():
        if t.status in CALLABLE_STATUSES or t.status is TicketStatus.NO_SHOW:
            change.tickets.append(replace(t, status=TicketStatus.EXPIRED))
        elif t.status is TicketStatus.SERVING:
            change.tickets.append(replace(t, status=TicketStatus.DONE, finished_at=now))
    for c in book.counters.values():
        change.counters.append(Counter(c.id, CounterStatus.CLOSED, officer=c.officer, since=now))
    return change
