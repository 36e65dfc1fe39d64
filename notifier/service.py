"""The notifier: hears the core, decides what each citizen and integrator is told, and sends it
from the durable outbox.

- Citizens: the core tells this service alone (broker ACL) of every ticket with a phone number
  (`private/contact`); after a restart or a lost connection it asks the core for today's
  (`contacts`), so nothing is missed. The rules in plan.py decide each kind once.
- Dossiers: the dossier service tells this service alone of each newly applied entry of a dossier
  with a phone (`private/dossier`); after a (re)connection it asks for the last day's
  (`contacts` on cmd/dossier). Received, needs documents and done are each sent once.
- Integrators: the core's public events, as signed webhooks, one row per (subscriber, event).
- The broker keeps this service's session (and its QoS 1 messages) while it is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

import aiomqtt
from aiohttp import web

from notifier import plan
from notifier.dispatcher import RateLimit, Worker
from notifier.outbox import DROPPED, NewMessage, Outbox, Row, idempotency_key
from notifier.plan import BookingInfo, Contact, DossierInfo, DossierNews, Step
from notifier.providers import Channel, Message, Outcome, Verdict, sms_channel
from notifier.providers.tokens import ZaloTokens
from notifier.providers.webhook import WebhookTarget
from notifier.providers.zalo import ZaloChannel
from notifier.receipts import receipt_routes
from notifier.settings import EVENT_KINDS, NotifySettings
from notifier.texts import dossier_timing, format_day, format_wait, render_sms, render_text, zns_data
from qms_common.config import SiteConfig, business_day
from qms_common.mqtt import MqttSession, NotConnected, Presence, Requester, RequestTimeout, message_topic
from qms_common.phones import PhoneError, normalize_phone
from qms_common.protocol import (
    MAX_PAYLOAD_BYTES,
    MAX_REPLY_BYTES,
    ONLINE,
    ProtocolError,
    Topics,
    dumps,
    loads_object,
)
from qms_common.signing import Signer, booking_path, dossier_path, load_secret, tracking_path, web_secret_file

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 24 * 3600   # the broker keeps our messages this long while we are away
STATS_EVERY_S = 5.0
CONTACTS_PAGE = 200
OTP_VALID_S = 300     # the web server's one-time codes expire after 5 minutes: a late one is useless
# How long the catch-up waits for the dossier service: a site may run without one (or it is down),
# and that must not hold the notifier up.
DOSSIER_DEADLINE_S = 10.0
# How long the first sends wait for the core's catch-up answer after a start.
CATCH_UP_WAIT_S = 10.0


@dataclass
class Notifier:
    site: SiteConfig
    settings: NotifySettings
    outbox: Outbox
    channels: dict[str, Channel]
    webhooks: dict[str, WebhookTarget]
    signer: Signer
    now: Callable[[], datetime] = field(default=lambda: datetime.now().astimezone())
    workers: dict[str, Worker] = field(default_factory=dict)
    latest: dict[str, Contact] = field(default_factory=dict)         # ticket -> what the core last said
    decided: dict[str, set[str]] = field(default_factory=dict)       # ticket or booking place -> kinds decided
    bookings: dict[str, BookingInfo] = field(default_factory=dict)   # code -> what the core last said
    dossiers: dict[str, DossierInfo] = field(default_factory=dict)   # code -> what the dossier service last said
    dossier_heard: dict[str, datetime] = field(default_factory=dict)  # code -> its newest entry's applied_at
    dossier_decided: dict[str, set[str]] = field(default_factory=dict)  # code -> message keys decided
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    dossiers_caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    written: asyncio.Condition = field(default_factory=asyncio.Condition)  # after each outbox write
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _stats_dirty: bool = True
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _connection: int = 0          # counts our connections to the broker
    _dossiers_asking: int = -1    # the connection on which the dossier service was last asked
    _dossiers_answered: int = -1  # ... and the one on which it answered
    _dossiers_silent: bool = False  # its silence is logged once, until it answers again

    def __post_init__(self) -> None:
        self.topics = Topics(self.site.id)
        # status/dossiers: the dossier service's retained presence says a site has one
        subs = [self.topics.private_contact, self.topics.private_booking, self.topics.private_otp,
                self.topics.private_dossier, self.topics.status_dossiers]
        if self.webhooks:
            subs.append(self.topics.event_all)
        self.session = MqttSession(
            # the production broker names the client after its user (`notify`) whatever it asks
            self.site.mqtt, identifier=f"qms-notify-{self.site.id}", name="notifier", subscriptions=subs,
            presence=Presence(self.topics.status_notify), on_message=self._on_message,
            on_connect=self._on_connect, session_expiry_s=SESSION_EXPIRY_S, manual_ack=True)
        self.requester = Requester(self.session, self.topics, self.settings.user)
        for name, channel in self.channels.items():
            self.workers[name] = self._worker(name, channel.deduplicates, self._send_citizen,
                                              self._rate(name))
        for name in self.webhooks:
            # at least once: a receiver drops a repeated X-QMS-Delivery (docs/notify.md), so a
            # delivery cut short by a crash is sent again rather than lost
            self.workers[name] = self._worker(name, True, self._send_webhook, self._rate(name))

    def _rate(self, route: str) -> float:
        if route == "zalo" and self.settings.zalo:
            return self.settings.zalo.rate_per_s
        if route == "sms" and self.settings.sms:
            return self.settings.sms.rate_per_s
        i = int(route.split(":", 1)[1]) if route.startswith("webhook:") else -1
        return self.settings.webhooks[i].rate_per_s if 0 <= i < len(self.settings.webhooks) else 10.0

    def _worker(self, route: str, dedup: bool, send: Callable[[Row], Any], per_s: float) -> Worker:
        return Worker(route=route, outbox=self.outbox, send=send, deduplicates=dedup, rate=RateLimit(per_s),
                      check=self._stale, next_route=self._next_route, moved=self._wake,
                      retry_max_s=self.settings.retry_max_s, give_up_s=self.settings.give_up_s,
                      on_sent=self._sent)

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        dedup = {name for name, w in self.workers.items() if w.deduplicates}
        resumed, failed = await self.outbox.recover(dedup)
        if resumed or failed:
            log.warning("Sau lần dừng đột ngột: gửi lại %d tin (nhà cung cấp chống trùng), bỏ %d tin", resumed, failed)
        tasks = [asyncio.create_task(self.session.run(), name="mqtt")]
        tasks += [asyncio.create_task(self._after_catch_up(w), name=f"worker-{w.route}") for w in self.workers.values()]
        tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _after_catch_up(self, worker: Worker) -> None:
        """What waited for us in the broker while we were stopped is judged on the core's answer
        to the catch-up (a ticket served meanwhile: its 'issued' is late news), not sent before
        that answer came: the workers start once it has, or after CATCH_UP_WAIT_S without it (a
        core that does not answer holds nothing up for longer)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CATCH_UP_WAIT_S):
                await self.caught_up.wait()
        await worker.run()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.session.say_offline()
        for ch in [*self.channels.values(), *self.webhooks.values()]:
            with contextlib.suppress(Exception):
                await ch.close()

    def _wake(self, route: str) -> None:
        worker = self.workers.get(route)
        if worker is not None:
            worker.wake()

    async def _housekeeping(self) -> None:
        last_day = ""
        while True:
            today = self._today()
            if today != last_day:
                last_day = today
                await self._forget_phones()
                self._prune(today)
            if self._stats_dirty:
                self._stats_dirty = False
                with contextlib.suppress(Exception):
                    await self.publish_stats()
            await asyncio.sleep(STATS_EVERY_S)  # a period, not a wait for an event

    def _today(self) -> str:
        return business_day(self.now(), self.site.tz, self.site.day_starts)

    def _day_start(self) -> float:
        day = date.fromisoformat(self._today())
        return datetime.combine(day, self.site.day_starts, tzinfo=self.site.tz).timestamp()

    def _prune(self, today: str) -> None:
        """Forget what the core said of earlier days: the outbox keeps what was decided."""
        for tid in [t for t, c in self.latest.items() if c.day < today]:
            del self.latest[tid]
        for code in [c for c, b in self.bookings.items() if b.day < today]:
            del self.bookings[code]
        for key in [k for k in self.decided if _day_of(k) < today]:
            del self.decided[key]
        # a dossier lives for weeks: forget those not heard of for longer than their news stays
        # fresh (the outbox still holds what was decided, read again if one comes back)
        horizon = self.now() - plan.DOSSIER_FRESH - timedelta(days=1)
        for code in [c for c, at in self.dossier_heard.items() if at < horizon]:
            del self.dossier_heard[code]
            self.dossiers.pop(code, None)
            self.dossier_decided.pop(code, None)

    async def _forget_phones(self) -> None:
        cutoff = (date.fromisoformat(self._today()) - timedelta(days=self.settings.phone_days)).isoformat()
        try:
            n = await self.outbox.forget_phones(cutoff)
        except Exception as exc:
            log.error("Không xoá được số điện thoại cũ trong hộp thư đi (%s)", exc)
            return
        if n:
            log.info("Đã xoá số điện thoại của %d tin trước ngày %s", n, cutoff)

    # ------------------------------------------------------------ hearing the core

    async def _on_connect(self) -> None:
        # not awaited here: the catch-up's replies arrive through this same connection's loop
        self._connection += 1
        self._spawn(self._catch_up())
        if "dossiers" in self.site.raw:
            # apart from the core's: a dossier service that does not answer holds nothing up
            self._spawn(self._catch_up_dossiers())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # a task nobody holds may be collected before it is done
        task.add_done_callback(self._tasks.discard)

    async def _catch_up_dossiers(self, *, again: bool = False) -> None:
        """The last day's dossier entries with a phone, from the dossier service: what happened
        while we were away (the broker's copy of our session covers the same day, but not a
        lost session). Asked once per connection when the site has a dossier service; `again`
        when the service has just come up while a question may have been lost."""
        connection = self._connection
        if self._dossiers_answered == connection or (self._dossiers_asking == connection and not again):
            return
        self._dossiers_asking = connection
        since = self.now() - plan.DOSSIER_FRESH
        seen = 0
        while True:
            ask = {"action": "contacts", "since": since.isoformat(timespec="microseconds")}
            try:
                reply = await self.requester.request(self.topics.cmd_dossier, ask, timeout=DOSSIER_DEADLINE_S)
            except ProtocolError as exc:  # no answer in time, not connected, or an answer too large
                if self._dossiers_answered == connection:
                    return  # asked twice, answered the other time
                if not self._dossiers_silent:
                    self._dossiers_silent = True
                    log.warning("Dịch vụ hồ sơ chưa trả lời (%s); tin về hồ sơ vẫn nhận qua broker, "
                                "sẽ hỏi lại khi kết nối lại", exc)
                return
            if not reply.get("ok"):
                error = reply.get("error") or {}
                log.error("Dịch vụ hồ sơ không trả lời truy vấn contacts: %s",
                          error.get("message") if isinstance(error, dict) else error)
                return
            self._dossiers_silent = False
            writes = []
            for body in reply.get("contacts") or []:
                try:
                    writes.append(await self.dossier_soon(body))
                except (KeyError, ValueError, TypeError, AttributeError) as exc:
                    log.warning("Bỏ một cập nhật hồ sơ không đúng dạng (%s)", exc)
            await asyncio.gather(*(w for w in writes if w is not None))
            seen += len(writes)
            # a long answer comes in pages: `next` is where the following one starts
            try:
                following = datetime.fromisoformat(str(reply["next"])) if reply.get("next") else None
            except ValueError:
                following = None
            if following is None or following.tzinfo is None or following <= since:
                break
            since = following
        self._dossiers_answered = connection
        log.info("Đã đối chiếu %d cập nhật hồ sơ với dịch vụ hồ sơ", seen)
        self.dossiers_caught_up.set()

    async def _catch_up(self) -> None:
        """Today's tickets with a phone and the live bookings, from the core: what happened while
        we were away."""
        try:
            tickets = await self._catch_up_query("contacts", self.hear_soon)
            bookings = await self._catch_up_query("bookings", self.booking_soon)
        except (RequestTimeout, NotConnected) as exc:
            log.warning("Chưa hỏi được lõi hàng đợi (%s); sẽ hỏi lại khi kết nối lại", exc)
            return
        if tickets is None or bookings is None:
            return
        log.info("Đã đối chiếu %d vé có số điện thoại và %d lịch hẹn với lõi hàng đợi", tickets, bookings)
        self.caught_up.set()

    async def _catch_up_query(self, query: str, hear: Callable[..., Any]) -> int | None:
        after: str | None = None
        seen = 0
        while True:
            ask: dict[str, Any] = {"query": query, "limit": CONTACTS_PAGE}
            if after is not None:
                ask["after"] = after
            reply = await self.requester.request(self.topics.cmd_query, ask, timeout=10)
            if not reply.get("ok"):
                log.error("Lõi hàng đợi không trả lời truy vấn %s: %s", query, reply.get("error"))
                return None
            seq = int(reply.get("seq") or 0)
            writes = [await hear(body, seq=seq) for body in reply.get(query) or []]
            await asyncio.gather(*(w for w in writes if w is not None))
            seen += len(writes)
            after = reply.get("next")
            if after is None:
                return seen

    async def _on_message(self, message: aiomqtt.Message) -> asyncio.Future[None] | None:
        """Decide at once; the broker's copy is acknowledged once the outbox has it on disk."""
        topic = message_topic(message)
        if topic == self.topics.status_dossiers:
            if message.payload == ONLINE:
                # a dossier service is there: its retained presence (ask, if not asked yet), or it
                # has just started (ask again: a question sent while it was away is lost)
                self._spawn(self._catch_up_dossiers(again=not message.retain))
            return None
        try:
            # a dossier's view carries its whole timeline and documents: the reply-sized limit
            limit = MAX_REPLY_BYTES if topic == self.topics.private_dossier else MAX_PAYLOAD_BYTES
            body = loads_object(message.payload, max_bytes=limit)  # type: ignore[arg-type]
        except ProtocolError as exc:
            log.warning("Bỏ tin trên %s: %s", topic, exc.message)
            return None
        try:
            if topic == self.topics.private_contact:
                return await self.hear_soon(body)
            if topic == self.topics.private_booking:
                return await self.booking_soon(body)
            if topic == self.topics.private_otp:
                return self.otp_soon(body)
            if topic == self.topics.private_dossier:
                return await self.dossier_soon(body)
            if topic.startswith(self.topics.root + "/event/"):
                return self.event_soon(topic.rsplit("/", 1)[1], body)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            log.warning("Bỏ tin không đúng dạng trên %s (%s)", topic, exc)
        return None

    def _store(self, new: list[NewMessage]) -> asyncio.Future[None] | None:
        """Write the new messages (one group commit with whatever else is being written), then
        wake the workers that send them."""
        if not new:
            asyncio.get_running_loop().create_task(self._tell_written())
            return None
        new = [m if m.state != "pending" or m.routes != [""] else
               replace(m, state="failed", reason="không có kênh nào gửi được loại tin này") for m in new]
        self._stats_dirty = True

        async def write() -> None:
            await self.outbox.add(new)
            for route in {m.routes[0] for m in new if m.state == "pending"}:
                self._wake(route)
            await self._tell_written()
        return asyncio.ensure_future(write())

    async def hear_soon(self, body: dict[str, Any], seq: int | None = None) -> asyncio.Future[None] | None:
        """What the core says of a ticket with a phone number: decide what is now due."""
        c = Contact.parse(body, seq)
        async with self._lock:
            known = self.latest.get(c.ticket_id)
            if known is not None and known.seq > c.seq:
                return None  # older news than what we have
            self.latest[c.ticket_id] = c
            if c.ticket_id not in self.decided:
                self.decided[c.ticket_id] = await self.outbox.kinds_of(c.ticket_id)
            decided = self.decided[c.ticket_id]
            decisions = plan.decide(c, decided, ahead=self.settings.ahead,
                                    rating_window_s=self.site.rating_window_s, now=self.now())
            new = [self._citizen_message(c, d) for d in decisions if d.step is not Step.WAIT]
            decided.update(d.kind for d in decisions if d.step is not Step.WAIT)
            return self._store(new)

    def _citizen_message(self, c: Contact, d: plan.Decision) -> NewMessage:
        routes = self._routes(d.kind)
        f = self.site.field(c.field)
        values = {
            "office": self.site.name, "number": c.number, "field": f.name if f else c.field,
            "ahead": str(c.ahead if c.ahead is not None else 0),
            "wait": format_wait(c.est_wait_s, self.settings.language),
            "link": self.settings.public_url + tracking_path(self.signer, c.ticket_id),
        }
        if c.counter:
            cc = self.site.counter(c.counter)
            values["counter"] = cc.name if cc else f"quầy {c.counter}"
        state, reason = ("pending", None) if d.step is Step.SEND else (DROPPED, d.reason)
        return NewMessage(key=f"c:{c.ticket_id}:{d.kind}", day=c.day, ticket=c.ticket_id, kind=d.kind,
                          routes=routes, body=values, phone=c.phone, state=state, reason=reason)

    async def booking_soon(self, body: dict[str, Any], seq: int | None = None) -> asyncio.Future[None] | None:
        """A booking changed (or the catch-up lists it): schedule its reminders."""
        b = BookingInfo.parse(body, seq)
        place = f"{b.code}@{b.place}"
        async with self._lock:
            known = self.bookings.get(b.code)
            if known is not None and known.seq > b.seq:
                return None
            self.bookings[b.code] = b
            if place not in self.decided:
                self.decided[place] = await self.outbox.kinds_of(place, "b:")
            decided = self.decided[place]
            steps = plan.reminders(b, decided, tz=self.site.tz, now=self.now())
            decided.update(r.kind for r in steps)
            return self._store([self._reminder(b, place, r) for r in steps])

    def _reminder(self, b: BookingInfo, place: str, r: plan.Reminder) -> NewMessage:
        f = self.site.field(b.field)
        day = date.fromisoformat(b.day)
        values = {"office": self.site.name, "field": f.name if f else b.field, "day": day.strftime("%d/%m/%Y"),
                  "slot": b.slot, "code": b.code,
                  "link": self.settings.public_url + booking_path(self.signer, b.code)}
        return NewMessage(key=f"b:{place}:{r.kind}", day=b.day, ticket=place, kind=r.kind,
                          routes=self._routes(r.kind), body=values, phone=b.phone,
                          state="pending" if r.step is Step.SEND else DROPPED, reason=r.reason or None,
                          not_before=r.at.timestamp() if r.at else None)

    async def dossier_soon(self, body: dict[str, Any]) -> asyncio.Future[None] | None:
        """A dossier's newly applied entry (or the catch-up lists it): decide its message, once."""
        news = DossierNews.parse(body)
        code = news.dossier.code
        try:
            phone = normalize_phone(news.phone)
        except PhoneError:
            log.warning("Bỏ cập nhật hồ sơ %s: số điện thoại không hợp lệ", code)
            return None
        async with self._lock:
            known = self.dossiers.get(code)
            if known is None or news.dossier.version >= known.version:
                self.dossiers[code] = news.dossier
            heard = self.dossier_heard.get(code)
            self.dossier_heard[code] = news.applied_at if heard is None else max(heard, news.applied_at)
            if code not in self.dossier_decided:
                self.dossier_decided[code] = await self.outbox.keys_of(code, "d:")
            decided = self.dossier_decided[code]
            d = plan.decide_dossier(news, decided, latest=known, now=self.now())
            if d is None:
                return self._store([])
            decided.add(d.key)
            return self._store([self._dossier_message(news, phone, d)])

    def _dossier_message(self, news: DossierNews, phone: str, d: plan.DossierDecision) -> NewMessage:
        info = news.dossier
        values = {"office": self.site.name, "dossier": info.code, "procedure": info.procedure,
                  "due": format_day(info.due_at), "needs": news.note or info.needs or "",
                  "timing": dossier_timing(info.early, info.due_at, self.settings.language),
                  "link": self.settings.public_url + dossier_path(self.signer, info.code)}
        state, reason = ("pending", None) if d.step is Step.SEND else (DROPPED, d.reason)
        return NewMessage(key=d.key, day=self._today(), ticket=info.code, kind=d.kind, routes=self._routes(d.kind),
                          body=values, phone=phone, state=state, reason=reason)

    def otp_soon(self, body: dict[str, Any]) -> asyncio.Future[None] | None:
        """The web server asks for a one-time code to be sent to a phone, now."""
        rid = str(body["request_id"])[:64]
        code = str(body["code"])
        if not code.isdigit() or len(code) > 8:
            raise ValueError("mã không hợp lệ")
        try:
            phone = normalize_phone(str(body["phone"]))
        except PhoneError:
            log.warning("Bỏ yêu cầu gửi mã xác nhận %s: số điện thoại không hợp lệ", rid)
            return None
        return self._store([NewMessage(key=f"o:{rid}", day=self._today(), ticket=f"otp:{rid}", kind="otp",
                                       routes=self._routes("otp"), body={"office": self.site.name, "code": code},
                                       phone=phone)])

    def _routes(self, kind: str) -> list[str]:
        routes = [ch for ch in self.settings.channels_for(kind) if ch in self.channels]
        if kind not in self._zalo_kinds() and "zalo" in routes:
            routes.remove("zalo")  # no ZNS template for this kind: SMS only
        return routes or [""]

    async def _tell_written(self) -> None:
        async with self.written:
            self.written.notify_all()

    async def until_written(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Until what the notifier has decided and written satisfies predicate (for tests and tools)."""
        async with asyncio.timeout(timeout), self.written:
            await self.written.wait_for(predicate)

    def _zalo_kinds(self) -> set[str]:
        return {str(k) for k in self.settings.zalo.templates} if self.settings.zalo else set()

    def event_soon(self, kind: str, body: dict[str, Any]) -> asyncio.Future[None] | None:
        """A public event of the core, for the webhook subscribers that listed its kind."""
        if kind not in EVENT_KINDS:
            return None
        seq = int(body["seq"])
        ticket = body.get("ticket") or {}
        tid = str(ticket.get("id", ""))
        new = []
        for i, w in enumerate(self.settings.webhooks):
            if kind in w.events:
                payload = {"site": self.site.id, "kind": kind, "ticket": ticket, "counter": body.get("counter"),
                           "recall": bool(body.get("recall")), "seq": seq, "at": body.get("at")}
                new.append(NewMessage(key=f"w:{i}:{seq}", day=self._today(), ticket=tid, kind=kind,
                                      routes=[f"webhook:{i}"], body=payload))
        return self._store(new)

    # ------------------------------------------------------------ sending

    def _stale(self, row: Row) -> str | None:
        if row.key.startswith("o:"):
            return "mã xác nhận đã hết hạn" if time.time() - row.created_at > OTP_VALID_S else None
        if row.key.startswith("b:"):
            code, _, place = row.ticket.partition("@")
            return plan.booking_stale(place, self.bookings.get(code))
        if row.key.startswith("d:"):
            # d:{code}:needs:{entry id}; a code has no ":" (the contract's alphabet)
            parts = row.key.split(":", 3)
            return plan.dossier_stale(row.kind, parts[3] if len(parts) > 3 else None, self.dossiers.get(row.ticket),
                                      now=self.now())
        if not row.key.startswith("c:"):
            return None
        c = self.latest.get(row.ticket)
        if c is None:
            return None  # not heard since a restart: the catch-up will tell
        return plan.stale(row.kind, c, rating_window_s=self.site.rating_window_s, now=self.now())

    def _next_route(self, row: Row) -> tuple[str, list[str]] | None:
        rest = [r for r in row.fallback if r in self.workers]
        return (rest[0], rest[1:]) if rest else None

    def _sent(self, row: Row, outcome: Outcome) -> None:
        self._stats_dirty = True

    async def _send_citizen(self, row: Row) -> Outcome:
        if not row.phone:
            return Outcome(Verdict.PERMANENT, "số điện thoại đã bị xoá")
        values = {k: str(v) for k, v in row.body.items()}
        template = self.settings.template(row.kind)
        try:
            text = render_sms(template, values, kind=row.kind)
        except ValueError as exc:
            if row.route == "sms":
                return Outcome(Verdict.PERMANENT, f"không dựng được nội dung tin: {exc}")
            # e.g. a dossier code far longer than usual: ZNS carries its own template's data
            text = render_text(template, values)
        msg = Message(key=idempotency_key(self.site.id, row.key), phone=row.phone, kind=row.kind, text=text,
                      template_data=zns_data(row.kind, values))
        return await self.channels[row.route].send(msg)

    async def _send_webhook(self, row: Row) -> Outcome:
        return await self.webhooks[row.route].send(idempotency_key(self.site.id, row.key), row.body)

    # ------------------------------------------------------------ reports

    async def stats(self) -> dict[str, Any]:
        since = self._day_start()
        counts = await self.outbox.counts(since)
        zalo = self.workers.get("zalo")
        return {"day": self._today(), "channels": counts,
                "failures": await self.outbox.last_failures(since),
                "zalo_quota_left": zalo.stats.quota_left if zalo else None,
                "at": self.now().astimezone(self.site.tz).isoformat(timespec="seconds")}

    async def publish_stats(self) -> None:
        if self.session.is_connected:
            await self.session.publish(self.topics.notify_stats, dumps(await self.stats()), retain=True)

    async def delivered(self, msg_id: str, delivery_time: str) -> None:
        if await self.outbox.delivered(msg_id):
            self._stats_dirty = True


def _day_of(key: str) -> str:
    """The day of a `decided` key: a booking's place ("CODE@2026-11-24T09:00") or a ticket id
    ("20261124-dat-dai-1001")."""
    if "@" in key:
        return key.split("@", 1)[1][:10]
    return f"{key[:4]}-{key[4:6]}-{key[6:8]}"


async def build(site: SiteConfig, settings: NotifySettings) -> Notifier:
    """The notifier with its store, its channels and the web server's signing secret."""
    outbox = await Outbox.open(settings.store)
    channels: dict[str, Channel] = {}
    if settings.zalo is not None:
        z = settings.zalo
        channels["zalo"] = ZaloChannel(base_url=z.base_url, oauth_url=z.oauth_url, app_id=z.app_id,
                                       secret_key=z.secret_key, first_refresh_token=z.refresh_token or "",
                                       templates={str(k): v for k, v in z.templates.items()},
                                       tokens=ZaloTokens(settings.store))
    if settings.sms is not None:
        s = settings.sms
        kw: dict[str, Any] = {"base_url": s.base_url}
        if s.provider == "esms":
            kw.update(api_key=s.api_key, secret_key=s.secret_key, brandname=s.brandname)
        else:
            kw.update(token=s.token, sender=s.brandname)
        channels["sms"] = sms_channel(s.provider, **kw)
    webhooks = {f"webhook:{i}": WebhookTarget(url=w.url, secret=w.secret) for i, w in enumerate(settings.webhooks)}
    signer = Signer(await _web_secret(site))
    return Notifier(site, settings, outbox, channels, webhooks, signer)


async def _web_secret(site: SiteConfig) -> bytes:
    """The web server's secret (made by whichever of the two starts first)."""
    path = web_secret_file(site)
    for _ in range(50):
        try:
            return load_secret(path)
        except ValueError:
            await asyncio.sleep(0.1)  # the web server is writing it this instant
    return load_secret(path)


def receipt_app(n: Notifier) -> web.Application | None:
    if n.settings.zalo is None:
        return None
    app = web.Application(client_max_size=64 * 1024)
    receipt_routes(app, app_id=n.settings.zalo.app_id, secret_key=n.settings.zalo.oa_secret_key,
                   on_delivered=n.delivered)
    return app
