"""The province service: every office's events, presence and state from the central broker into PostgreSQL.

One MQTT session with a persistent session on the central broker, acknowledging each QoS 1 message
only once PostgreSQL has it: killed at any moment, the service gets again from the broker whatever
it had not written, and the store's (site, seq) key drops whatever it had.

What the bridge's queue could not hold is asked of the office again (province/backfill.py): after
a seq gap (debounced: gaps are also normal) and whenever an office comes back online.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiomqtt

from province.backfill import BackfillClient, BackfillFailed
from province.gaps import SiteTrack
from province.settings import ProvinceSettings
from province.store import Message, PresenceChange, ProvinceStore
from qms_common.mqtt import MqttSession, message_topic
from qms_common.protocol import SLUG_RE, ProtocolError, loads_object

log = logging.getLogger("province")

SUBSCRIPTIONS = ("qms/+/event/#", "qms/+/status/#", "qms/+/state/#", "qms/+/reply/province/#")
# the broker keeps our subscriptions and unacknowledged messages this long while we are away
SESSION_EXPIRY_S = 7 * 24 * 3600
PRESENCE = {"status/core": ("online", "offline"), "status/bridge": ("1", "0")}
# The province does not know each office's time zone or day start: a backfill reaches one
# calendar day further on both sides of what it must cover (records are written idempotently).
DAY_MARGIN = timedelta(days=1)


def parse_message(topic: str, payload: bytes | bytearray | str | None) -> Message | None:
    """An office message from its topic and payload; None for what is not ours to store."""
    parts = topic.split("/", 2)
    if len(parts) < 3 or parts[0] != "qms" or not SLUG_RE.match(parts[1]):
        return None
    site, rest = parts[1], parts[2]
    if rest.startswith("status/"):
        text = bytes(payload or b"").decode("utf-8", errors="replace") if not isinstance(payload, str) else payload
        return Message(site, rest, text) if text in PRESENCE.get(rest, ("online", "offline")) else None
    if not payload:
        return None  # a retained message removed
    body = loads_object(payload)  # ProtocolError for anything but a JSON object
    return Message(site, rest, body)


def _at(body: dict[str, object]) -> datetime | None:
    value = body.get("at")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass
class ProvinceService:
    settings: ProvinceSettings
    store: ProvinceStore
    written: int = 0  # messages newly stored by this process (a repeat is not counted)
    backfills: int = 0  # backfills completed by this process
    # presence has no seq to order it by: its writes are applied one at a time, in arrival order
    # (asyncio.Lock is first come, first served), so an online right after an offline stays online
    _presence: asyncio.Lock = field(default_factory=asyncio.Lock)
    # per configured office only: bounded by the province's size, not by its traffic
    tracks: dict[str, SiteTrack] = field(default_factory=dict)
    _wake: dict[str, asyncio.Event] = field(default_factory=dict)
    _workers: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.session = MqttSession(
            self.settings.mqtt, identifier=f"qms-province-{self.settings.id}", name="province",
            subscriptions=SUBSCRIPTIONS, on_message=self._on_message, session_expiry_s=SESSION_EXPIRY_S,
            manual_ack=True)
        b = self.settings.backfill
        self.backfill = BackfillClient(self._publish, timeout_s=b.timeout_s, page_limit=b.page)
        self.tracks = {s.id: SiteTrack() for s in self.settings.sites}

    async def run(self) -> None:
        await self.store.ensure_sites([(s.id, s.name, s.district) for s in self.settings.sites])
        for row in await self.store.tracks():
            track = self.tracks.get(row["site"])
            if track is not None:
                track.last_seq, track.last_at, track.online = int(row["last_seq"]), row["at"], bool(row["online"])
        try:
            await self.session.run()
        finally:
            for task in self._workers.values():
                task.cancel()

    async def _publish(self, topic: str, payload: bytes) -> None:
        await self.session.publish(topic, payload)

    async def _on_message(self, message: aiomqtt.Message) -> asyncio.Future[None] | None:
        topic = message_topic(message)
        if topic.split("/", 3)[2:3] == ["reply"]:  # the backfill's answers: qms/{site}/reply/province/…
            payload = message.payload if isinstance(message.payload, (bytes, bytearray)) else b""
            self.backfill.handle(topic, bytes(payload))
            return None
        try:
            m = parse_message(topic, message.payload)  # type: ignore[arg-type]
        except ProtocolError as exc:
            log.warning("Bỏ tin trên %s: %s", topic, exc.message)
            return None
        if m is None:
            return None
        track = self.tracks.get(m.site)
        if track is not None and isinstance(m.body, dict):
            seq = m.body.get("seq")
            if isinstance(seq, int) and not isinstance(seq, bool) and seq > 0:
                # in arrival order, here, not in the concurrent writes
                gap = track.observe(seq, _at(m.body), self.settings.backfill.gap_min)
                if gap is not None:
                    before, big = gap
                    self._owe(m.site, before, forced=False, small=not big)
        return asyncio.ensure_future(self._write(m))

    async def _write(self, m: Message) -> None:
        # an exception leaves the message unacknowledged: the broker sends it again on reconnect
        if m.topic.startswith("status/"):
            async with self._presence:
                change = await self.store.presence_of(m)
                if change is not None:
                    self._presence_changed(m.site, change)
            return
        if await self.store.write(m):
            self.written += 1

    def _presence_changed(self, site: str, change: PresenceChange) -> None:
        track = self.tracks.get(site)
        if track is None:
            return
        track.online = change.online
        if change.came_back and change.since is not None:
            # what its bridge could not queue while it was away: the days since it left
            self._owe(site, change.since, forced=True)
        self._wake_worker(site)

    def _owe(self, site: str, since: datetime, *, forced: bool, small: bool = False) -> None:
        self.tracks[site].owe(since, forced=forced, small=small, now=time.monotonic())
        worker = self._workers.get(site)
        if worker is None or worker.done():
            self._workers[site] = asyncio.ensure_future(self._worker(site))
        self._wake_worker(site)

    def _wake_worker(self, site: str) -> None:
        event = self._wake.get(site)
        if event is not None:
            event.set()

    async def _worker(self, site: str) -> None:
        """One per office with a backfill owed; ends when nothing is owed."""
        track = self.tracks[site]
        wake = self._wake.setdefault(site, asyncio.Event())
        b = self.settings.backfill
        while track.owed_since is not None:
            delay = track.due_in(time.monotonic(), b.every_s, b.small_gap_every_s)
            if delay is None or delay > 0:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), delay)
                continue
            since = track.take(time.monotonic())
            try:
                await self._backfill(site, since)
                track.succeeded()
            except BackfillFailed as exc:
                wait = track.failed(since, time.monotonic(), b.retry_s, b.retry_max_s)
                log.warning("Bù dữ liệu điểm %s chưa được: %s; thử lại sau %g giây", site, exc, wait)
            except Exception:
                # the database away: the same as an office that did not answer
                wait = track.failed(since, time.monotonic(), b.retry_s, b.retry_max_s)
                log.exception("Lỗi khi bù dữ liệu điểm %s; thử lại sau %g giây", site, wait)

    async def _backfill(self, site: str, since: datetime) -> None:
        day_from = (since - DAY_MARGIN).date()
        day_to = (datetime.now(UTC) + DAY_MARGIN).date()
        started = time.monotonic()
        pages = records = changed = seq = 0
        async for page in self.backfill.pages(site, day_from, day_to):
            changed += await self.store.apply_records(site, page.seq, page.tickets)
            pages, records, seq = pages + 1, records + len(page.tickets), max(seq, page.seq)
        self.backfills += 1
        log.info("Bù dữ liệu điểm %s, ngày %s đến %s: %d trang, %d vé, %d vé được bổ sung hoặc cập nhật "
                 "(seq %d), %.1f giây", site, day_from, day_to, pages, records, changed, seq,
                 time.monotonic() - started)

    async def close(self) -> None:
        for task in self._workers.values():
            task.cancel()
        with contextlib.suppress(Exception):
            await self.store.close()
