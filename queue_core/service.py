"""The core's command handling: parse, decide, commit, then say what to publish.

One command at a time (the single writer): decide with the pure rules, apply to the book, write
the effects, the reply and the new seq in one transaction, and only then hand the reply and the
messages to the MQTT adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from qms_common.codes import DATABASE_ERROR, log_code
from qms_common.config import SiteConfig, business_day
from qms_common.protocol import (
    BOOKING_CODE_LEN,
    CALLABLE_STATUSES,
    MAX_REPLY_BYTES,
    PROTOCOL_VERSION,
    TICKET_CODE_LEN,
    WEB_USER,
    AppointmentAction,
    AppointmentRequest,
    CheckinRequest,
    CounterRequest,
    CounterStatus,
    ErrorCode,
    ProtocolError,
    QueryKind,
    QueryRequest,
    RatingRequest,
    TicketRequest,
    Topics,
    bad_request,
    check_deadline,
    deadline_of,
    dumps,
    error_reply,
    loads_object,
    ok_reply,
    reply_to_of,
    request_id_of,
)
from queue_core import appointments as appt
from queue_core import rules
from queue_core.book import Book, Change
from queue_core.bookings import BookingIndex
from queue_core.clock import Clock
from queue_core.model import Booking, Counter, Ticket, iso
from queue_core.store import Rows, Store, StoreFailed, Unstorable

log = logging.getLogger(__name__)

RequestKey = tuple[str, str]  # (sender, request_id): request ids are per sender

# Replies to these are not stored: they depend only on the request and the configuration,
# and storing them would let garbage grow the database. (`expired` is stored: a retry of a request
# refused as late must be refused again, not done with its fresh deadline.)
_NOT_STORED = frozenset({ErrorCode.BAD_REQUEST, ErrorCode.UNKNOWN_FIELD, ErrorCode.UNKNOWN_COUNTER,
                         ErrorCode.INTERNAL})
SEQ_BLOCK = 10_000
# Records of a page stop here, well inside MAX_REPLY_BYTES (the production broker's packet limit).
_QUERY_REPLY_BUDGET = MAX_REPLY_BYTES - 32 * 1024
# Commands decided while earlier ones are still being written: the next is decided while the
# disk syncs the last. At most this many transactions wait for the disk.
MAX_IN_FLIGHT = 64
_RECENT_REPLIES = 4096


@dataclass(frozen=True)
class ReplyRetention:
    """How long a request's reply is kept, so that the same request_id sent again gets it again
    (docs/protocol.md). Disk and memory stay bounded under a flood of request ids: a reply is
    kept `keep` long, but only the newest `max_replies` are; a retry is recognised as long as
    fewer than `max_replies` requests came after it: 5.5 hours at a steady request a second, and
    still 20 s (the longest any client of this project retries) at the core's full speed."""

    keep: timedelta = timedelta(days=3)
    max_replies: int = 20_000
    # Beyond max_replies, the oldest are dropped this many at a time, with the next transaction.
    prune_batch: int = 500


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes
    retain: bool


@dataclass
class Result:
    reply: dict[str, Any] | None
    reply_to: str | None = None          # a topic of the sender's reply namespace, or None: no answer
    messages: list[Outgoing] = field(default_factory=list)


@dataclass
class Pending:
    """A command decided and applied to the book, its transaction queued but maybe not yet
    committed. complete() turns it into the Result to send: nothing leaves before the commit."""

    result: Result
    commit: asyncio.Future[None] | None = None
    change: Change | None = None
    rid: str | None = None
    sender: str = ""                     # whose request id it is (Topics.reply_owner)
    kind: str = ""
    fields: set[str] = field(default_factory=set)
    counters: set[str] = field(default_factory=set)
    reserved: int = 0
    moment: datetime | None = None
    replay: asyncio.Future[dict[str, Any]] | None = None  # the same request_id is in flight
    contacts: list[dict[str, Any]] = field(default_factory=list)  # for the notifier, once written
    booking_fields: set[str] = field(default_factory=set)  # whose state/appointments changes
    request: tuple[tuple[str, ...], dict[str, Any], str] | None = None  # to decide it again


class QueueService:
    def __init__(self, site: SiteConfig, store: Store, clock: Clock,
                 retention: ReplyRetention = ReplyRetention(), rng: random.Random | None = None) -> None:
        self.site = site
        # check-in and booking codes are guessed by nobody: the system's randomness (tests may seed)
        self._rng = rng or random.SystemRandom()
        self.topics = Topics(site.id)
        self.store = store
        self.clock = clock
        self.tz = site.tz
        self.seq = 0                # the last seq stamped on a message
        self._seq_reserved = 0      # asked of the store: no seq up to here was used before a restart
        self.book = Book(site, "")
        self._lock = asyncio.Lock()
        self.retention = retention
        # Request ids are per sender: keys are (sender, request_id) (docs/security.md)
        self._known_ids: OrderedDict[RequestKey, float] = OrderedDict()  # -> stored at, oldest first
        self._forget: list[RequestKey] = []  # whose replies the next transaction deletes
        self._recent: OrderedDict[RequestKey, dict[str, Any]] = OrderedDict()
        self._queue_views: dict[str, dict[str, Any]] = {}
        self._counter_views: dict[str, dict[str, Any]] = {}
        self._dirty_fields: set[str] = set()
        self._dirty_counters: set[str] = set()
        self._appointment_views: dict[str, dict[str, Any]] = {}
        self._dirty_appointments: set[str] = set()
        # one command sees one moment, and shows each ticket version once (reply, events, state)
        self._moment: datetime | None = None
        self._publics: dict[int, tuple[Ticket, dict[str, Any]]] = {}
        self._in_flight: dict[RequestKey, asyncio.Future[dict[str, Any]]] = {}  # -> its reply
        self._commits: set[asyncio.Future[None]] = set()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        # tickets with a phone already told to the notifier as near the front (today, this run)
        self._neared: set[str] = set()

    # ------------------------------------------------------------ start

    async def load(self) -> None:
        now = self.clock.now()
        snap = await self.store.load()
        # Start after everything reserved before: seq stays increasing across restarts, even
        # after kill -9, without a write per message.
        self.seq = self._seq_reserved = snap.seq
        self._known_ids = OrderedDict(snap.request_ids)
        self._forget = []
        self._prune_replies(now)
        today = self._today(now)
        self.book = Book(self.site, snap.day or today, tickets=snap.tickets, counters=snap.counters,
                         last_numbers=snap.numbers, next_order=snap.next_order,
                         bookings=BookingIndex(snap.bookings))
        self._neared = set()
        log.info("Đã nạp ngày làm việc %s: %d vé, seq %d", self.book.day, len(self.book.tickets), self.seq)
        await self._forget_phones(self.book.day)

    async def _forget_phones(self, today: str) -> None:
        """Citizens' phone numbers are kept `[notify] phone_days` after their business day."""
        cutoff = (date.fromisoformat(today) - timedelta(days=self.site.phone_days)).isoformat()
        try:
            n = await self.store.forget_phones(before_day=cutoff)
        except Exception as exc:  # a full disk must not stop the office; it is tried again tomorrow
            log.error("Không xoá được số điện thoại cũ (%s)", exc)
            return
        if n:
            log.info("Đã xoá số điện thoại của %d vé trước ngày %s", n, cutoff)

    def _today(self, now: datetime) -> str:
        return business_day(now, self.tz, self.site.day_starts)

    # ------------------------------------------------------------ commands

    async def handle(self, topic: str, payload: bytes | None, response_topic: str | None = None) -> Result:
        """One request from any cmd topic, committed. Never raises for bad input: it answers it."""
        return await self.complete(await self.accept(topic, payload, response_topic))

    async def accept(self, topic: str, payload: bytes | None, response_topic: str | None = None) -> Pending:
        """Decide a command and apply it to the book; its transaction is queued, not awaited.
        Commands are decided strictly one after another; complete() waits for the commit.

        `response_topic` is the MQTT 5 Response Topic; without one, the payload's `reply_to`."""
        parts = self.topics.split(topic)
        if parts == ("cmd", "dossier"):
            # cmd/# reaches the core, but dossiers have their own single writer (dossiers/)
            return Pending(Result(None))
        try:
            obj = loads_object(payload)
        except ProtocolError as exc:
            log.warning("Từ chối yêu cầu trên %s: %s", topic, exc.message)
            answer = response_topic if self._sender(topic, None, response_topic) is not None else None
            return Pending(Result(error_reply(None, exc.code, exc.message), reply_to=answer))
        rid = request_id_of(obj)
        reply_to = response_topic if response_topic is not None else reply_to_of(obj)
        sender = self._sender(topic, rid, reply_to)
        if sender is None:
            return Pending(Result(None))  # refused, answered nowhere, nothing changed
        result = Result(None, reply_to=reply_to)
        if parts == ("cmd", "query"):
            result.reply = await self._query(obj, sender)
            return Pending(result)
        if parts == ("cmd", "backfill"):
            result.reply = await self._backfill(obj, sender)
            return Pending(result)
        if parts == ("cmd", "appointment") and obj.get("action") == AppointmentAction.GET:
            result.reply = await self._get_booking(obj, sender)
            return Pending(result)
        await self._slots.acquire()
        try:
            async with self._lock:
                with self._command():
                    pending = await self._accept_locked(parts, obj, rid, sender, result, topic)
        except BaseException:
            self._slots.release()
            raise
        if pending.commit is None:
            self._slots.release()
        return pending

    def _sender(self, topic: str, rid: str | None, reply_to: str | None) -> str | None:
        """Whose request this is: the owner of the reply namespace (qms/{site}/reply/{user}/...)
        it is answered in, which the broker lets only that user read; "" for a request that asks
        for no answer. None for one whose answer would go anywhere else (another client's state,
        presence, ...): it is refused, answered nowhere."""
        if reply_to is None:
            return ""
        owner = self.topics.reply_owner(reply_to)
        if owner is None:
            log.warning("Từ chối yêu cầu %s trên %s: chủ đề trả lời %r nằm ngoài %s/reply/{người dùng}; "
                        "không trả lời", rid, topic, reply_to[:300], self.topics.root)
        return owner

    async def _accept_locked(self, parts: tuple[str, ...], obj: dict[str, Any], rid: str | None,
                             sender: str, result: Result, topic: str, *, again: bool = False) -> Pending:
        await self._recover_if_broken()
        result.messages = await self._roll_if_needed()
        if rid is not None:
            key = (sender, rid)
            if key in self._in_flight and not again:
                return Pending(result, replay=self._in_flight[key])
            previous = await self._previous_reply(key)
            if previous is not None:
                log.info("Yêu cầu %s đã xử lý trước đó: gửi lại câu trả lời cũ", rid)
                result.reply = previous
                return Pending(result)
        request = (parts, obj, topic)
        try:
            # after the replay above: a late copy of a request already answered changes nothing
            check_deadline(deadline_of(obj), self._now())
            code = await self._booking_code() if parts == ("cmd", "appointment") and obj.get("action") == "book" \
                else None
            change, kind = self._decide(parts, obj, sender, booking_code=code)
            rows = self._rows(change, rid, sender)
        except ProtocolError as exc:
            # bad input is worth a warning; "nobody waiting" is an ordinary answer
            level = logging.WARNING if exc.code in _NOT_STORED else logging.INFO
            log.log(level, "Từ chối yêu cầu %s trên %s: %s (%s)", rid, topic, exc.message, exc.code)
            result.reply = error_reply(rid, exc.code, exc.message, **exc.extra)
            if rid is not None and exc.code not in _NOT_STORED:
                return self._queue_commit(result, Rows.of(Change(), rid, sender), Change(), "refusal", set(),
                                          request)
            return Pending(result)
        fields = self._fields_touched(change)
        self.book.apply(change)
        result.reply = self._reply(change, rid)
        contacts = self._contacts_after(change, fields) if self.site.notify_enabled else []
        pending = self._queue_commit(result, rows, change, kind, fields, request,
                                     extra=len(contacts) + len(change.bookings))
        pending.contacts = contacts
        pending.booking_fields = {b.field for b in change.bookings}
        return pending

    @staticmethod
    def _rows(change: Change, rid: str | None, sender: str) -> Rows:
        """What the command writes; whatever the database could not hold is bad input, refused
        before the book changes (a failed transaction would also fail those queued behind it)."""
        try:
            return Rows.of(change, rid, sender)
        except Unstorable as exc:
            raise bad_request(f"nội dung không lưu được ({exc}).") from None

    def _queue_commit(self, result: Result, rows: Rows, change: Change, kind: str, fields: set[str],
                      request: tuple[tuple[str, ...], dict[str, Any], str], *, extra: int = 0) -> Pending:
        rid, sender = rows.request_id, rows.sender
        reserved = self._reserve(len(change.events) + extra)
        commit = asyncio.ensure_future(self.store.commit(
            rows, day=self.book.day, seq=reserved, now=self._now(), reply=result.reply,
            forget=self._take_forget()))
        self._commits.add(commit)
        commit.add_done_callback(self._commits.discard)
        if rid is not None and (sender, rid) not in self._in_flight:  # decided again: its waiters stay
            self._in_flight[(sender, rid)] = asyncio.get_running_loop().create_future()
        return Pending(result, commit=commit, change=change, rid=rid, sender=sender, kind=kind, fields=fields,
                       counters=self._counters_touched(change), reserved=reserved, moment=self._moment,
                       request=request)

    async def complete(self, p: Pending) -> Result:
        """Wait for the command's commit; then, and only then, its reply and events exist."""
        if p.replay is not None:
            log.info("Yêu cầu trùng đang xử lý: gửi cùng câu trả lời")
            return Result(await asyncio.shield(p.replay), reply_to=p.result.reply_to)
        if p.commit is None:
            return p.result
        rid = p.rid
        key = (p.sender, rid) if rid is not None else None
        try:
            p, written = await self._written(p)
        except BaseException:
            self._answer_duplicates(key, error_reply(rid, ErrorCode.INTERNAL, "Lỗi hệ thống, vui lòng thử lại."))
            raise
        finally:
            self._slots.release()
        self._answer_duplicates(key, p.result.reply or {})
        if not written:
            return p.result
        assert p.change is not None and p.result.reply is not None
        self._seq_reserved = max(self._seq_reserved, p.reserved)
        if p.rid is not None:
            self._remember((p.sender, p.rid), p.result.reply, p.moment or self.clock.now())
        self._dirty_fields |= p.fields
        self._dirty_counters |= p.counters
        self._dirty_appointments |= p.booking_fields
        p.result.messages += self._event_messages(p.change, p.moment)
        p.result.messages += self._contact_messages(p.contacts, p.moment)
        p.result.messages += self._booking_messages(p.change.bookings, p.moment)
        t = p.change.ticket
        if t is not None:
            what = f"vé {t.number} {rules.STATUS_VI[t.status]}" + (f", quầy {t.counter}" if t.counter else "")
        elif p.change.booking is not None:
            b = p.change.booking
            what = f"lịch hẹn {b.code} {b.field} {b.day} {b.slot}: {b.status}"
        elif p.change.counter is not None:
            what = f"quầy {p.change.counter.id}: {p.change.counter.status}"
        else:
            what = p.result.reply.get("error", {}).get("code", "ok")
        log.info("%s%s: %s", p.kind, f" ({p.rid})" if p.rid else "", what)
        return p.result

    async def settle(self) -> None:
        """Until every queued transaction is written (or has failed)."""
        if self._commits:
            await asyncio.wait(set(self._commits))

    async def _written(self, p: Pending) -> tuple[Pending, bool]:
        """The command once its transaction is written (True), or answered without a write."""
        while True:
            try:
                assert p.commit is not None
                await p.commit
                return p, True
            except StoreFailed:
                # Refused only because an earlier write failed: this command was decided on a
                # state that held the lost one. It stands alone: decide it again on what the
                # database holds, and give it its own answer.
                p = await self._decide_again(p)
                if p.commit is None:
                    return p, False
            except Exception as exc:
                await self._write_failed(exc)
                p.result.reply = error_reply(p.rid, ErrorCode.INTERNAL, "Lỗi lưu dữ liệu, vui lòng thử lại.")
                return p, False

    def _answer_duplicates(self, key: RequestKey | None, reply: dict[str, Any]) -> None:
        waiter = self._in_flight.pop(key, None) if key is not None else None
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    async def _decide_again(self, p: Pending) -> Pending:
        assert p.request is not None
        parts, obj, topic = p.request
        async with self._lock:
            with self._command():
                return await self._accept_locked(parts, obj, p.rid, p.sender,
                                                 Result(None, reply_to=p.result.reply_to),
                                                 topic, again=True)

    async def _write_failed(self, exc: Exception) -> None:
        """A transaction failed (the disk, or a value no check foresaw): only its own command
        fails. The core reloads at once, so what it serves and publishes is what is written."""
        log_code(log, DATABASE_ERROR, error=exc)
        async with self._lock:
            await self._recover_if_broken()

    async def _recover_if_broken(self) -> None:
        """Called under the lock before anything reads the book to decide or to publish."""
        if self.store.failed:
            await self._recover()

    async def _recover(self) -> None:
        """After a failed write: the book may hold what the disk does not. Wait for the writes
        queued after it (the store refuses them), then start again from the database."""
        await self.settle()
        self.store.reset_after_failure()
        await self.load()
        self._dirty_fields.update(f.id for f in self.site.fields)
        self._dirty_counters.update(self.book.counters)
        self._dirty_appointments.update(self._appointment_fields())
        log.warning("Đã nạp lại trạng thái từ cơ sở dữ liệu")

    @contextlib.contextmanager
    def _command(self) -> Iterator[None]:
        self._moment = self.clock.now()
        try:
            yield
        finally:
            self._moment = None
            self._publics.clear()

    def _now(self) -> datetime:
        return self._moment or self.clock.now()

    def _public(self, t: Ticket) -> dict[str, Any]:
        hit = self._publics.get(id(t))
        if hit is not None and hit[0] is t:
            return hit[1]
        view = t.public(self.tz)
        if self._moment is not None:
            self._publics[id(t)] = (t, view)
        return view

    async def _query(self, obj: dict[str, Any], sender: str) -> dict[str, Any]:
        """Read-only questions: answered from the book and the database, never stored."""
        try:
            q = QueryRequest.parse(obj)
            if q.query is QueryKind.TICKET:
                return await self._query_ticket(q)
            after = 0
            if q.after is not None:
                if not q.after.isdigit():
                    raise bad_request("“after” phải là giá trị “next” của trang trước.")
                after = int(q.after)
            if q.query is QueryKind.CONTACTS:
                return self._query_contacts(q, sender, after)
            if q.query is QueryKind.BOOKINGS:
                return self._query_bookings(q, sender, after)
            tickets = await self.store.tickets(day_from=q.day_from, day_to=q.day_to, after_order=after,
                                               limit=q.limit)
            records, size = [], 0
            for t in tickets:
                record = t.record(self.tz)
                size += len(dumps(record))
                if records and size > _QUERY_REPLY_BUDGET:
                    break  # a shorter page: a reply larger than a broker's packet limit is never delivered
                records.append(record)
            full = len(records) < len(tickets) or len(tickets) == q.limit
            nxt = str(tickets[len(records) - 1].order) if full and records else None
            return ok_reply(q.request_id, tickets=records, next=nxt)
        except ProtocolError as exc:
            return error_reply(request_id_of(obj), exc.code, exc.message)

    async def _backfill(self, obj: dict[str, Any], sender: str) -> dict[str, Any]:
        """The province's backfill (brought in by the bridge): a "tickets" query whose reply adds
        `seq`, the last seq stamped before the records were read. Events are stamped only once
        written, so every record is at least as new as every event up to that seq."""
        seq = self.seq
        reply = await self._query({**obj, "query": QueryKind.TICKETS.value}, sender)
        return {**reply, "seq": seq} if reply.get("ok") else reply

    async def _query_ticket(self, q: QueryRequest) -> dict[str, Any]:
        assert q.ticket is not None
        t = self.book.find_ticket(q.ticket)
        if t is None:
            t = await self.store.ticket(q.ticket)
        if t is None:
            raise ProtocolError(ErrorCode.UNKNOWN_TICKET, f"Không tìm thấy vé “{q.ticket}”.")
        ahead = est = None
        if t.day == self.book.day and t.status in CALLABLE_STATUSES:
            ahead = self.book.ahead(t)
            est = self.book.est_wait_s(t.field, ahead)
        holder = self.book.counters.get(t.counter) if t.counter and t.day == self.book.day else None
        counter = self.counter_view(holder) if holder is not None else None
        return ok_reply(q.request_id, t.record(self.tz), counter, ahead=ahead, est_wait_s=est)

    def _only_notifier(self, sender: str) -> None:
        """Only the notifier's broker user can read its reply namespace, and only it is answered."""
        if not self.site.notify_enabled or sender != self.site.notify_user:
            log.warning("Từ chối truy vấn số điện thoại từ %r: chỉ bộ gửi tin (%s) được hỏi", sender,
                        self.site.notify_user)
            raise ProtocolError(ErrorCode.FORBIDDEN, "Chỉ bộ gửi tin nhắn được hỏi số điện thoại.")

    @staticmethod
    def _only_web(sender: str, what: str) -> None:
        """Remote tickets, bookings and check-ins come from the web server alone: it verified the
        phone (one-time code) or stands at the kiosk."""
        if sender != WEB_USER:
            log.warning("Từ chối %s từ %r: chỉ máy chủ web được gửi", what, sender)
            raise ProtocolError(ErrorCode.FORBIDDEN, f"Chỉ máy chủ web được gửi lệnh {what}.")

    def _query_bookings(self, q: QueryRequest, sender: str, after: int) -> dict[str, Any]:
        """Live bookings of today and later with their phones, for the notifier's reminders."""
        self._only_notifier(sender)
        live = self.book.bookings.live_from(self.book.day)[after:after + q.limit]
        nxt = str(after + len(live)) if len(live) == q.limit else None
        return ok_reply(q.request_id, bookings=[{"appointment": b.public(), "phone": b.phone} for b in live],
                        next=nxt, day=self.book.day, seq=self.seq)

    async def _get_booking(self, obj: dict[str, Any], sender: str) -> dict[str, Any]:
        """`get`: a booking as it is now, for the booking page; read-only, never stored."""
        try:
            self._only_web(sender, "lịch hẹn")
            req = AppointmentRequest.parse(obj)
            assert req.code is not None
            b = self.book.bookings.get(req.code) or await self.store.booking(req.code)
            if b is None:
                raise ProtocolError(ErrorCode.UNKNOWN_BOOKING, f"Không tìm thấy lịch hẹn mã {req.code}.")
            return ok_reply(req.request_id, appointment=b.public())
        except ProtocolError as exc:
            return error_reply(request_id_of(obj), exc.code, exc.message, **exc.extra)

    def _query_contacts(self, q: QueryRequest, sender: str, after: int) -> dict[str, Any]:
        """Today's tickets with a phone number, for the notifier to catch up after a restart."""
        self._only_notifier(sender)
        tickets = sorted((t for t in self.book.tickets.values() if t.phone and t.order > after),
                         key=lambda t: t.order)[:q.limit]
        contacts = [self._contact(t) for t in tickets]
        nxt = str(tickets[-1].order) if len(tickets) == q.limit else None
        return ok_reply(q.request_id, contacts=contacts, next=nxt, day=self.book.day, seq=self.seq)

    def _contact(self, t: Ticket) -> dict[str, Any]:
        """A ticket with its phone, as only the notifier sees it."""
        ahead = est = None
        if t.status in CALLABLE_STATUSES:
            ahead = self.book.ahead(t)
            est = self.book.est_wait_s(t.field, ahead)
        contact = {"ticket": t.record(self.tz), "phone": t.phone, "ahead": ahead, "est_wait_s": est}
        if t.code:
            contact["code"] = t.code
        return contact

    def _contacts_after(self, change: Change, fields: set[str]) -> list[dict[str, Any]]:
        """What the notifier hears of a command: every changed ticket with a phone, and each
        waiting one that came within `[notify] ahead` of the front (once a day per ticket)."""
        out: dict[str, dict[str, Any]] = {}
        for t in change.tickets:
            current = self.book.tickets.get(t.id)
            if current is not None and current.phone:
                out[t.id] = self._contact(current)
                if t.id in change.passed_over:
                    out[t.id]["passed_over"] = True
        for fid in fields:
            for t in self.book.front(fid, self.site.notify_ahead + 1):
                if t.phone and t.id not in self._neared:
                    self._neared.add(t.id)
                    out.setdefault(t.id, self._contact(t))
        return list(out.values())

    def _contact_messages(self, contacts: list[dict[str, Any]], moment: datetime | None) -> list[Outgoing]:
        if not contacts:
            return []
        at = iso(moment or self._now(), self.tz)
        return [self._stamp(self.topics.private_contact, body, False, at) for body in contacts]

    def _booking_messages(self, bookings: list[Booking], moment: datetime | None) -> list[Outgoing]:
        """private/booking after every change of a booking, for the notifier's reminders."""
        if not bookings or not self.site.notify_enabled:
            return []
        at = iso(moment or self._now(), self.tz)
        return [self._stamp(self.topics.private_booking, {"appointment": b.public(), "phone": b.phone}, False, at)
                for b in bookings]

    async def _booking_code(self) -> str:
        """A booking code never given before: not one of the bookings in memory, nor one the store
        holds (every booking ever made, found by its primary key). Decided under the command lock,
        so no other booking takes it before this one is applied."""
        while True:
            code = appt.fresh_code(BOOKING_CODE_LEN, self.book.bookings.taken, self._rng)
            if await self.store.booking(code) is None:
                return code

    def _decide(self, parts: tuple[str, ...], obj: dict[str, Any], sender: str, *,
                booking_code: str | None = None) -> tuple[Change, str]:
        now = self._now()
        match parts:
            case ("cmd", "ticket"):
                if obj.get("remote") is True:
                    self._only_web(sender, "lấy số từ xa")
                    req = TicketRequest.parse(obj)
                    codes = self.book.live_codes()
                    code = appt.fresh_code(TICKET_CODE_LEN, codes.__contains__, self._rng)
                    return rules.issue_ticket(self.book, req, now, code=code), "remote ticket"
                return rules.issue_ticket(self.book, TicketRequest.parse(obj), now), "ticket"
            case ("cmd", "appointment"):
                self._only_web(sender, "lịch hẹn")
                areq = AppointmentRequest.parse(obj)
                code = booking_code if areq.action is AppointmentAction.BOOK else None
                return rules.appointment(self.book, areq, now, code=code), f"appointment {areq.action}"
            case ("cmd", "checkin"):
                self._only_web(sender, "xác nhận có mặt")
                return rules.checkin(self.book, CheckinRequest.parse(obj), now), "checkin"
            case ("cmd", "counter", counter_id):
                req = CounterRequest.parse(obj)
                return rules.counter_action(self.book, counter_id, req, now), str(req.action)
            case ("cmd", "rating"):
                return rules.rate(self.book, RatingRequest.parse(obj), now), "rating"
        raise bad_request("chủ đề không phải một lệnh của giao thức v1.")

    def _reply(self, change: Change, rid: str | None) -> dict[str, Any]:
        counter = self.counter_view(change.counter) if change.counter else None
        if change.error is not None:
            return error_reply(rid, change.error.code, change.error.message, counter=counter)
        ticket = self._public(change.ticket) if change.ticket else None
        extra: dict[str, Any] = dict(change.extra)
        if change.booking is not None:
            extra["appointment"] = change.booking.public()
        if change.ticket is not None and change.show_ahead and change.ticket.status in CALLABLE_STATUSES:
            current = self.book.tickets.get(change.ticket.id, change.ticket)
            ahead = self.book.ahead(current)
            extra |= {"ahead": ahead, "est_wait_s": self.book.est_wait_s(current.field, ahead)}
        return ok_reply(rid or "", ticket, counter, **extra)

    async def _previous_reply(self, key: RequestKey) -> dict[str, Any] | None:
        if key in self._recent:
            return self._recent[key]
        if key in self._known_ids:
            return await self.store.reply_for(*key)
        return None

    def _reserve(self, messages: int) -> int:
        """The seq reservation a transaction writes: enough for its events, the events of every
        command in flight and a full state publish, so no seq is used twice after a restart."""
        need = self.seq + messages + MAX_IN_FLIGHT * 8 + self._state_topics()
        if need >= self._seq_reserved:
            self._seq_reserved = need + SEQ_BLOCK
        return self._seq_reserved

    def _remember(self, key: RequestKey, reply: dict[str, Any], at: datetime) -> None:
        self._known_ids[key] = at.timestamp()
        self._known_ids.move_to_end(key)  # a forgotten id used again is stored again, as new
        self._recent[key] = reply
        if len(self._recent) > _RECENT_REPLIES:
            self._recent.popitem(last=False)
        self._prune_replies(at)

    def _prune_replies(self, now: datetime) -> None:
        """Forget the oldest stored replies: those older than `keep`, and those beyond
        `max_replies` (a batch at a time). The next transaction deletes them from disk."""
        known, r = self._known_ids, self.retention
        cutoff = (now - r.keep).timestamp()
        excess = len(known) - r.max_replies if len(known) > r.max_replies + r.prune_batch else 0
        while known:
            key, at = next(iter(known.items()))
            if excess <= 0 and at >= cutoff:
                break
            known.popitem(last=False)
            self._recent.pop(key, None)
            self._forget.append(key)
            excess -= 1

    def _take_forget(self) -> list[RequestKey]:
        forget, self._forget = self._forget, []
        return forget

    async def _commit_now(self, change: Change, messages: int = 0) -> None:
        """A transaction of the core's own (a new day, a reservation), awaited at once."""
        await self.settle()
        await self.store.commit(Rows.of(change), day=self.book.day, seq=self._reserve(messages), now=self._now(),
                                forget=self._take_forget())

    # ------------------------------------------------------------ messages

    def _fields_touched(self, change: Change) -> set[str]:
        fields: set[str] = set()
        for t in change.tickets:
            fields.add(t.field)
            old = self.book.tickets.get(t.id)
            if old is not None:
                fields.add(old.field)
        for c in change.counters:
            cc = self.site.counter(c.id)
            if cc:
                fields.update(cc.fields)
        return fields

    def _counters_touched(self, change: Change) -> set[str]:
        counters = {c.id for c in change.counters}
        for t in change.tickets:
            holder = self.book.counters.get(t.counter) if t.counter else None
            if holder is not None and holder.ticket == t.id:
                counters.add(holder.id)  # its state shows the ticket (a recall, a dossier code)
        return counters

    def _state_topics(self) -> int:
        return 1 + len(self.site.fields) + len(self.site.counters) + len(self._appointment_fields())

    def _appointment_fields(self) -> list[str]:
        s = self.site.appointments
        return [af.field for af in s.fields if self.site.field(af.field)] if s else []

    def appointments_view(self, field_id: str) -> dict[str, Any]:
        """Free places per slot of today and of the days one may book, without seq and time."""
        settings = self.site.appointments
        af = settings.field(field_id) if settings else None
        assert settings is not None and af is not None
        today = date.fromisoformat(self.book.day)
        used, arrived = self.book.bookings.used, self.book.bookings.checked_in
        days = []
        for d in [today, *appt.bookable_days(settings, today)]:
            slots = appt.slots_of(settings, af, d)
            if slots:
                day = d.isoformat()
                days.append({"day": day, "slots": [{"slot": slot, "capacity": cap,
                                                    "free": max(0, cap - used(field_id, day, slot)),
                                                    "checked_in": arrived(field_id, day, slot)}
                                                   for slot, cap in slots]})
        return {"field": field_id, "days": days}

    def _stamp(self, topic: str, body: dict[str, Any], retain: bool, at: str | None) -> Outgoing:
        self.seq += 1
        return Outgoing(topic, dumps({**body, "seq": self.seq, "at": at}), retain)

    def _event_messages(self, change: Change, moment: datetime | None = None) -> list[Outgoing]:
        at = iso(moment or self._now(), self.tz)
        return [self._stamp(self.topics.event(ev.kind),
                            {"kind": str(ev.kind), "ticket": self._public(ev.ticket), "counter": ev.counter,
                             "recall": ev.recall}, False, at)
                for ev in change.events]

    def flush_state(self) -> list[Outgoing]:
        """The retained state that changed since the last flush, one message per topic.

        The adapter calls this when no command is waiting (or every so many commands), so
        under a burst a field's queue state goes out once rather than after every ticket."""
        if not (self._dirty_counters or self._dirty_fields or self._dirty_appointments):
            return []
        at = iso(self._now(), self.tz)
        out: list[Outgoing] = []
        for cid in sorted(self._dirty_counters):
            view = self.counter_view(self.book.counters[cid])
            if self._counter_views.get(cid) != view:
                self._counter_views[cid] = view
                out.append(self._stamp(self.topics.state_counter(cid), view, True, at))
        for fid in sorted(self._dirty_fields):
            view = self.book.queue_view(fid)
            if self._queue_views.get(fid) != view:
                self._queue_views[fid] = view
                out.append(self._stamp(self.topics.state_queue(fid), view, True, at))
        for fid in sorted(self._dirty_appointments & set(self._appointment_fields())):
            view = self.appointments_view(fid)
            if self._appointment_views.get(fid) != view:
                self._appointment_views[fid] = view
                out.append(self._stamp(self.topics.state_appointments(fid), view, True, at))
        self._dirty_counters.clear()
        self._dirty_fields.clear()
        self._dirty_appointments.clear()
        return out

    def counter_view(self, c: Counter) -> dict[str, Any]:
        cc = self.site.counter(c.id)
        t = self.book.tickets.get(c.ticket) if c.ticket else None
        return {"counter": c.id, "name": cc.name if cc else c.id, "status": str(c.status),
                "ticket": self._public(t) if t else None,
                # a closed counter remembers its last officer (rules._officer); nobody is there now
                "officer": c.officer if c.status is not CounterStatus.CLOSED else None,
                "fields": list(cc.fields) if cc else [], "since": iso(c.since, self.tz)}

    def site_view(self) -> dict[str, Any]:
        s = self.site
        return {
            "site": s.id, "name": s.name, "day": self.book.day, "timezone": s.timezone,
            "protocol": PROTOCOL_VERSION,
            "fields": [{"id": f.id, "name": f.name, "first": f.first, "last": f.last,
                        "prefix": f.prefix or None} for f in s.fields],
            "counters": [{"id": c.id, "name": c.name, "fields": list(c.fields), "spoken": c.spoken}
                         for c in s.counters],
            "rating_levels": list(s.rating_levels),
        }

    async def full_state(self) -> list[Outgoing]:
        """Every retained state topic, with fresh seqs: after a (re)connect, a broker that lost
        its memory, or a new day."""
        async with self._lock:
            await self._recover_if_broken()
            msgs = await self._roll_if_needed()
            if msgs:
                return msgs
            return await self._full_state_locked()

    async def _full_state_locked(self) -> list[Outgoing]:
        await self.settle()  # views of the book show only what is written
        now_s = iso(self._now(), self.tz)
        bodies: list[tuple[str, dict[str, Any]]] = [(self.topics.state_site, self.site_view())]
        for f in self.site.fields:
            view = self.book.queue_view(f.id)
            self._queue_views[f.id] = view
            bodies.append((self.topics.state_queue(f.id), view))
        for cc in self.site.counters:
            view = self.counter_view(self.book.counters[cc.id])
            self._counter_views[cc.id] = view
            bodies.append((self.topics.state_counter(cc.id), view))
        for fid in self._appointment_fields():
            view = self.appointments_view(fid)
            self._appointment_views[fid] = view
            bodies.append((self.topics.state_appointments(fid), view))
        try:
            await self._commit_now(Change())
        except Exception as exc:
            # The disk refuses even the seq reservation. The state is still what the database
            # holds and the devices need it: publish it; commands get `internal` until writes work.
            log.error("Không ghi được phần dành trước của seq (%s); vẫn phát trạng thái", exc)
            await self._recover()
        self._dirty_counters.clear()
        self._dirty_fields.clear()
        self._dirty_appointments.clear()
        return [self._stamp(topic, body, True, now_s) for topic, body in bodies]

    # ------------------------------------------------------------ the business day

    async def tick(self) -> list[Outgoing]:
        """Called every second or so: starts a new business day when the clock says so."""
        async with self._lock:
            await self._recover_if_broken()
            self._prune_replies(self.clock.now())
            return await self._roll_if_needed()

    async def _roll_if_needed(self) -> list[Outgoing]:
        now = self._now()
        today = self._today(now)
        if today == self.book.day:
            return []
        if today < self.book.day:
            # The clock went back (NTP fix, wrong RTC): keep the day we have rather than
            # reissue numbers of a day that already had them.
            return []
        old_day = self.book.day
        await self.settle()  # the old day's commands are written before the new day begins
        change = rules.rollover(self.book, today, now)
        self.book.apply(change)
        bookings = self.book.bookings
        bookings.forget_before(today)
        self.book = Book(self.site, today, counters=self.book.counters,
                         next_order=self.book.next_order, bookings=bookings)
        await self._commit_now(change, messages=len(change.bookings))
        self._neared = set()
        await self._forget_phones(today)
        expired = sum(1 for t in change.tickets if t.status == "expired")
        log.info("Sang ngày làm việc mới %s (ngày %s: %d vé hết hạn, %d lịch hẹn không đến)", today, old_day,
                 expired, len(change.bookings))
        no_shows = self._booking_messages(change.bookings, now)
        return no_shows + await self._full_state_locked()
