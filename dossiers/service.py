"""The dossier service: the single writer of dossier state.

- Commands on cmd/dossier (create, event, get, contacts), answered only in the sender's reply
  namespace; the sender is the owner of that namespace (the broker lets only it read there).
  create/event only from the web server (console and HTTP API), get from the web server and the
  notifier, contacts from the notifier alone.
- Each change is one transaction; the reply, event/dossier and private/dossier (the citizen's
  phone, for the notifier) leave only after it is committed. A create of a known code, an event
  of a known (code, id): nothing changes, and the answer says so.
- The core's event/rated: a rating of a ticket that recorded a dossier is stored on it (held
  until the dossier is created if it is not here yet). The broker keeps this service's session
  and its QoS 1 messages while it is away, and a message is acknowledged only after it is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

import aiomqtt

from dossiers import model
from dossiers.model import Dossier, Entry, Rating
from dossiers.settings import DossierSettings
from dossiers.store import DossierStore
from qms_common.config import SiteConfig
from qms_common.mqtt import MqttSession, Presence, message_topic, response_properties
from qms_common.protocol import (
    DOSSIER_CODE_RE,
    MAX_REPLY_BYTES,
    WEB_USER,
    DossierCommand,
    DossierContacts,
    DossierCreate,
    DossierEvent,
    DossierGet,
    DossierList,
    ErrorCode,
    EventKind,
    ProtocolError,
    Topics,
    check_deadline,
    deadline_of,
    dumps,
    error_reply,
    loads_object,
    parse_dossier_command,
    reply_to_of,
    request_id_of,
)

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 24 * 3600   # the broker keeps our messages (ratings) this long while we are away
HOUSEKEEPING_EVERY_S = 60.0
PENDING_RATING_DAYS = 30       # a rating for a dossier never created is forgotten after this
CONTACTS_LIMIT = 1000
# A contacts answer stops here, within a broker packet (MAX_REPLY_BYTES); `next` says where to go on.
_CONTACTS_BUDGET = MAX_REPLY_BYTES - 32 * 1024


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes


@dataclass
class Answer:
    """A command's reply and what to publish once it is written."""

    reply: dict[str, Any]
    messages: list[Outgoing] = field(default_factory=list)


@dataclass
class DossierService:
    site: SiteConfig
    settings: DossierSettings
    store: DossierStore
    now: Callable[[], datetime] = field(default=lambda: datetime.now().astimezone())
    # set after each write (for tests and tools that wait for one without sleeping)
    written: asyncio.Condition = field(default_factory=asyncio.Condition)
    writes: int = 0

    def __post_init__(self) -> None:
        self.topics = Topics(self.site.id)
        self.tz = self.site.tz
        self.cal = self.settings.calendar
        self._lock = asyncio.Lock()
        self.session = MqttSession(
            # the production broker names the client after its user (`dossiers`) whatever it asks
            self.site.mqtt, identifier=f"qms-dossiers-{self.site.id}", name="dossiers",
            subscriptions=[self.topics.cmd_dossier, self.topics.event(EventKind.RATED)],
            presence=Presence(self.topics.status_dossiers), on_message=self._on_message,
            session_expiry_s=SESSION_EXPIRY_S, manual_ack=True)

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.session.run(), name="mqtt"),
                 asyncio.create_task(self._housekeeping(), name="housekeeping")]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.session.drain()
            await self.session.say_offline()

    def _today(self) -> date:
        return self.now().astimezone(self.tz).date()

    async def _housekeeping(self) -> None:
        last_day: date | None = None
        while True:
            today = self._today()
            if today != last_day:
                last_day = today
                await self.forget_phones()
            await asyncio.sleep(HOUSEKEEPING_EVERY_S)  # a period, not a wait for an event

    async def forget_phones(self) -> int:
        """Erase the phones of dossiers finished more than phone_days ago (once a day)."""
        today = self._today()
        days = self.settings.phone_days
        # a day of margin: the store's time is a moment, the rule counts the site's dates
        before = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), self.tz).timestamp()
        erased = 0
        try:
            async with self._lock:
                for code in await self.store.finished_with_phone(before):
                    d = await self.store.get(code)
                    if d is not None and model.phone_expired(d, today, days, self.tz):
                        await self.store.update(replace(d, phone=None, version=d.version + 1,
                                                        updated_ts=self.now().timestamp()))
                        erased += 1
                cutoff = (self.now() - timedelta(days=PENDING_RATING_DAYS)).timestamp()
                await self.store.forget_pending_ratings(cutoff)
        except Exception as exc:  # a full disk must not stop the service; it is tried again tomorrow
            log.error("Không xoá được số điện thoại cũ của hồ sơ (%s)", exc)
            return erased
        if erased:
            log.info("Đã xoá số điện thoại của %d hồ sơ đã kết thúc quá %d ngày", erased, days)
        return erased

    # ------------------------------------------------------------ messages

    async def _on_message(self, message: aiomqtt.Message) -> asyncio.Future[None] | None:
        """One message at a time, written before this returns: the session acknowledges it then."""
        topic = message_topic(message)
        payload = message.payload if isinstance(message.payload, (bytes, bytearray)) else None
        if topic == self.topics.event(EventKind.RATED):
            try:
                await self.hear_rating(bytes(payload) if payload is not None else None)
            except Exception as exc:
                # not acknowledged (a failed future): the broker sends it again after a reconnect
                log.error("Không ghi được đánh giá vào hồ sơ (%s); chờ broker gửi lại", exc)
                failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                failed.set_exception(exc)
                return failed
            return None
        if topic != self.topics.cmd_dossier:
            return None
        if message.retain:
            # a retained command would run again at every (re)subscription: never executed
            log.warning("Bỏ qua lệnh hồ sơ được giữ lại (retained) trên %s", topic)
            return None
        props = message.properties
        response_topic = getattr(props, "ResponseTopic", None) if props else None
        correlation = getattr(props, "CorrelationData", None) if props else None
        try:
            reply_to, answer = await self.handle(bytes(payload) if payload is not None else None, response_topic)
        except Exception:
            log.exception("Lỗi không mong đợi khi xử lý lệnh hồ sơ")
            reply_to, answer = response_topic, Answer(error_reply(None, ErrorCode.INTERNAL,
                                                                  "Lỗi hệ thống, vui lòng thử lại."))
        for m in answer.messages:
            self.session.publish_soon(m.topic, m.payload)
        if reply_to and self.topics.reply_owner(reply_to) is not None:
            self.session.publish_soon(reply_to, dumps(answer.reply), properties=response_properties(correlation))
        return None

    async def handle(self, payload: bytes | None, response_topic: str | None = None) -> tuple[str | None, Answer]:
        """One command: (where to answer, the answer). Never raises for bad input: it answers it."""
        try:
            obj = loads_object(payload)
        except ProtocolError as exc:
            log.warning("Từ chối lệnh hồ sơ: %s", exc.message)
            sender = self._sender(response_topic, None)
            return (response_topic if sender else None), Answer(error_reply(None, exc.code, exc.message))
        rid = request_id_of(obj)
        reply_to = response_topic if response_topic is not None else reply_to_of(obj)
        sender = self._sender(reply_to, rid)
        if sender is None:  # refused, answered nowhere, nothing changed
            return None, Answer(error_reply(rid, ErrorCode.FORBIDDEN, "Chủ đề trả lời không hợp lệ."))
        try:
            check_deadline(deadline_of(obj), self.now())
            cmd = parse_dossier_command(obj)
            self._allowed(cmd, sender)
            async with self._lock:
                answer = await self._decide(cmd)
        except ProtocolError as exc:
            level = logging.WARNING if exc.code is ErrorCode.BAD_REQUEST else logging.INFO
            log.log(level, "Từ chối lệnh hồ sơ %s của %s: %s (%s)", rid, sender or "?", exc.message, exc.code)
            return reply_to, Answer(error_reply(rid, exc.code, exc.message, **exc.extra))
        return reply_to, answer

    def _sender(self, reply_to: str | None, rid: str | None) -> str | None:
        """The owner of the reply namespace the answer goes to; "" for no answer wanted; None for
        an answer asked outside every namespace (refused, answered nowhere)."""
        if reply_to is None:
            return ""
        owner = self.topics.reply_owner(reply_to)
        if owner is None:
            log.warning("Từ chối lệnh hồ sơ %s: chủ đề trả lời %r nằm ngoài %s/reply/{người dùng}",
                        rid, reply_to[:300], self.topics.root)
        return owner

    def _allowed(self, cmd: DossierCommand, sender: str) -> None:
        if isinstance(cmd, (DossierCreate, DossierEvent)):
            allowed = {WEB_USER}
        elif isinstance(cmd, DossierGet):
            allowed = {WEB_USER, self.site.notify_user}
        elif isinstance(cmd, DossierList):
            allowed = {WEB_USER}
        else:
            allowed = {self.site.notify_user}
        if sender not in allowed:
            raise ProtocolError(ErrorCode.FORBIDDEN, "Không được phép: lệnh hồ sơ này chỉ dành cho "
                                + ", ".join(sorted(allowed)) + ".")

    async def _decide(self, cmd: DossierCommand) -> Answer:
        if isinstance(cmd, DossierCreate):
            return await self._create(cmd)
        if isinstance(cmd, DossierEvent):
            return await self._event(cmd)
        if isinstance(cmd, DossierGet):
            d = await self._known(cmd.code)
            return Answer({"ok": True, "request_id": cmd.request_id, "dossier": self.view(d)})
        if isinstance(cmd, DossierList):
            return await self._list(cmd)
        assert isinstance(cmd, DossierContacts)
        return await self._contacts(cmd)

    async def _known(self, code: str) -> Dossier:
        d = await self.store.get(code)
        if d is None:
            raise ProtocolError(ErrorCode.UNKNOWN_DOSSIER, f"Không có hồ sơ mã “{code}”.")
        return d

    def view(self, d: Dossier) -> dict[str, Any]:
        return d.view(self._today(), self.cal, self.tz)

    async def _create(self, req: DossierCreate) -> Answer:
        held = await self.store.get(req.code)
        if held is not None:
            return Answer({"ok": True, "request_id": req.request_id, "created": False, "dossier": self.view(held)})
        d = model.create(req, self.now(), self.tz)
        rating = await self.store.pending_rating(req.code)
        if rating is not None:
            d = model.attach_rating(d, rating) or d
        await self.store.create(d)
        await self._tell_written()
        log.info("Đã tiếp nhận hồ sơ %s (%s)", d.code, d.procedure_name)
        view = self.view(d)
        return Answer({"ok": True, "request_id": req.request_id, "created": True, "dossier": view},
                      self._news(d, view, d.entries[0]))

    async def _event(self, req: DossierEvent) -> Answer:
        d = await self._known(req.code)
        applied = model.apply_event(d, req, self.now(), self.tz)
        if applied is None:
            return Answer({"ok": True, "request_id": req.request_id, "applied": False, "dossier": self.view(d)})
        d, entry = applied
        await self.store.add_entry(d, entry)
        await self._tell_written()
        log.info("Hồ sơ %s: %s (%s)", d.code, entry.status, entry.id)
        view = self.view(d)
        return Answer({"ok": True, "request_id": req.request_id, "applied": True, "dossier": view},
                      self._news(d, view, entry))

    def _news(self, d: Dossier, view: dict[str, Any], entry: Entry) -> list[Outgoing]:
        """event/dossier for everyone (no phone); private/dossier for the notifier when it has one."""
        at = model.iso(self.now(), self.tz)
        entry_view = entry.view(self.tz)
        out = [Outgoing(self.topics.event(EventKind.DOSSIER),
                        dumps({"kind": str(EventKind.DOSSIER), "at": at, "dossier": view, "entry": entry_view}))]
        if d.phone is not None:
            out.append(Outgoing(self.topics.private_dossier,
                                dumps({"dossier": view, "entry": entry_view, "phone": d.phone, "at": at})))
        return out

    async def _contacts(self, req: DossierContacts) -> Answer:
        since = model.aware(req.since, self.tz)
        contacts: list[dict[str, Any]] = []
        size = 0
        following: str | None = None
        for a in await self.store.applied_since(since, CONTACTS_LIMIT + 1):
            body = {"dossier": self.view(a.dossier), "entry": a.entry.view(self.tz), "phone": a.dossier.phone,
                    "at": model.iso(a.entry.applied_at, self.tz)}
            size += len(dumps(body))
            # the first always goes: a page that could hold none would be asked for again forever
            if contacts and (size > _CONTACTS_BUDGET or len(contacts) == CONTACTS_LIMIT):
                following = a.entry.applied_at.astimezone(self.tz).isoformat(timespec="microseconds")
                break
            contacts.append(body)
        return Answer({"ok": True, "request_id": req.request_id, "contacts": contacts, "next": following})

    async def _list(self, req: DossierList) -> Answer:
        """Views (no phones) of dossiers changed at or after `since`, by code; `next` is the code
        to pass as `after` for the next page (None: the last page)."""
        since = model.aware(req.since, self.tz)
        dossiers = await self.store.changed_since(since, req.after, req.limit + 1)
        views: list[dict[str, Any]] = []
        size = 0
        following: str | None = None
        for d in dossiers:
            view = self.view(d)
            size += len(dumps(view))
            # the first always goes: a page that could hold none would be asked for again forever
            if views and (size > _CONTACTS_BUDGET or len(views) == req.limit):
                following = views[-1]["code"]
                break
            views.append(view)
        return Answer({"ok": True, "request_id": req.request_id, "dossiers": views, "next": following})

    # ------------------------------------------------------------ ratings

    async def hear_rating(self, payload: bytes | None) -> None:
        """The core's event/rated: the rating goes to the dossier its ticket recorded."""
        try:
            body = loads_object(payload)
            ticket = body["ticket"]
            code, score, tid = ticket.get("dossier"), ticket.get("rating"), str(ticket["id"])
            rated_at = model.aware(datetime.fromisoformat(str(body["at"])), self.tz)
        except (ProtocolError, KeyError, TypeError, AttributeError, ValueError) as exc:
            log.warning("Bỏ tin đánh giá không đúng dạng (%s)", exc)
            return
        if not isinstance(code, str) or not DOSSIER_CODE_RE.match(code):
            return  # no dossier recorded on that ticket (or one that cannot be a dossier's code)
        if isinstance(score, bool) or not isinstance(score, int):
            return
        levels = self.site.rating_levels
        rating = Rating(score, levels[score - 1] if 1 <= score <= len(levels) else None, tid, rated_at)
        async with self._lock:
            d = await self.store.get(code)
            if d is None:
                held = await self.store.pending_rating(code)
                if held is None or held.at <= rating.at:
                    await self.store.hold_rating(code, rating, self.now())
                    log.info("Giữ đánh giá của vé %s cho hồ sơ %s (chưa có hồ sơ)", tid, code)
            else:
                rated = model.attach_rating(d, rating)
                if rated is not None:
                    await self.store.update(replace(rated, updated_ts=self.now().timestamp()))
                    log.info("Đã gắn đánh giá %d của vé %s vào hồ sơ %s", score, tid, code)
        await self._tell_written()

    async def _tell_written(self) -> None:
        async with self.written:
            self.writes += 1
            self.written.notify_all()


async def build(site: SiteConfig, settings: DossierSettings,
                now: Callable[[], datetime] | None = None) -> DossierService:
    store = await DossierStore.open(settings.database)
    if now is None:
        return DossierService(site, settings, store)
    return DossierService(site, settings, store, now=now)
