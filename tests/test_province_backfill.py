"""The province's backfill and presence with real parts: an office (a real core on its own
production-configured Mosquitto, bridged) and a real central broker (qms-broker central), a real
PostgreSQL and the real ProvinceService. The link between the office and the centre runs through a
TCP relay of the test's own, which the test cuts and restores as a network would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from broker_config.central import write_central
from broker_config.tool import main as qms_broker
from province.gaps import SiteTrack
from province.service import ProvinceService, parse_message
from province.settings import load_province
from province.store import Message, ProvinceStore
from qms_common.devbroker import Broker, free_port
from qms_common.protocol import Topics
from tests.support.core import InProcessCore, running_core
from tests.support.mqtt import Probe, Received, new_id
from tests.support.province import OfficeHands, broker_passwords, eventually, write_province
from tests.support.site import write_site

log = logging.getLogger(__name__)


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


class Relay:
    """A TCP relay standing for the office's link to the centre: cut() closes every connection
    and refuses new ones (the central broker sees the bridge's socket close), restore() opens it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


def province_toml(tmp: Path, port: int, password: str, dsn: str, sites: list[str], backfill: str) -> Path:
    return write_province(tmp, f"p{uuid.uuid4().hex[:8]}", f"mqtt://province:{password}@127.0.0.1:{port}", dsn, sites,
                          extra=f"[backfill]\n{backfill}\n")


@dataclass
class Centre:
    broker: Broker
    passwords: dict[str, str]
    config: Path

    def url(self, user: str) -> str:
        return f"mqtt://{user}:{self.passwords[user]}@127.0.0.1:{self.broker.port}"


def start_centre(tmp: Path, dsn: str, sites: list[str], backfill: str) -> Centre:
    port = free_port()
    out = tmp / "central"
    # the province.toml the service reads is the one the central broker's users come from
    config = province_toml(tmp, port, "x", dsn, sites, backfill)
    pw = write_central(load_province(config), out, port=port, tls_port=free_port(), run_as="root",
                       service_write=("cmd/backfill",))
    config = province_toml(tmp, port, pw["province"], dsn, sites, backfill)
    broker = Broker(port=port, conf=out / "mosquitto.conf", workdir=out, log_path=tmp / "central.log").start()
    return Centre(broker, pw, config)


@contextlib.asynccontextmanager
async def running_service(config: Path) -> AsyncIterator[ProvinceService]:
    settings = load_province(config)
    store = await ProvinceStore.open(settings.postgres_dsn)
    service = ProvinceService(settings, store)
    task = asyncio.create_task(service.run())
    try:
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await service.close()


@dataclass
class Office(OfficeHands):
    site: str
    core: InProcessCore
    relay: Relay
    broker: Broker

    async def records(self) -> list[dict[str, Any]]:
        """The core's own records, from its own database."""
        tickets = await self.core.store.tickets(day_from=None, day_to=None, after_order=0, limit=100_000)
        return [t.record(self.core.service.tz) for t in tickets]


@contextlib.asynccontextmanager
async def bridged_office(tmp: Path, centre: Centre, site: str, *, queue: int) -> AsyncIterator[Office]:
    """A real core on its own broker (qms-broker's production configuration with a bridge
    through the relay to the centre, `[bridge] in` = cmd/backfill), its bridge queue made tiny."""
    relay = Relay(centre.broker.port)
    await relay.restore()
    port, tls_port = free_port(), free_port()
    config, _ = write_site(tmp, f"mqtt://127.0.0.1:{port}", site_id=site,
                           extra="[bridge]\nretry_s = 1\nretry_max_s = 1\nkeepalive_s = 5\n")
    pw_file = tmp / f"{site}.pw"
    pw_file.write_text(centre.passwords[site] + "\n", encoding="utf-8")
    out = tmp / f"office-{site}"
    assert qms_broker(["--config", str(config), "--out", str(out), "--port", str(port), "--tls-port",
                       str(tls_port), "--run-as", "root", "--bridge", f"mqtt://127.0.0.1:{relay.port}",
                       "--bridge-password-file", str(pw_file), "--bridge-in", f"qms/{site}/cmd/backfill"]) == 0
    # test only: a bridge queue of a few messages, so an outage of a few tickets outlasts it
    conf = out / "mosquitto.conf"
    text = conf.read_text(encoding="utf-8")
    assert "max_queued_messages 200000\n" in text
    conf.write_text(text.replace("max_queued_messages 200000\n", f"max_queued_messages {queue}\n"),
                    encoding="utf-8")
    pw = broker_passwords(out)
    write_site(tmp, f"mqtt://core:{pw['core']}@127.0.0.1:{port}", site_id=site,
               extra="[bridge]\nretry_s = 1\nretry_max_s = 1\nkeepalive_s = 5\n")
    broker = Broker(port=port, conf=conf, workdir=out, log_path=tmp / f"office-{site}.log").start()
    topics = Topics(site)
    try:
        async with running_core(config) as core, Probe(f"mqtt://web:{pw['web']}@127.0.0.1:{port}") as probe:
            await probe.subscribe(topics.state_all, topics.event_all)
            yield Office(probe, topics, site=site, core=core, relay=relay, broker=broker)
    finally:
        broker.stop()
        if relay._server is not None:
            await relay.cut()


async def site_row(dsn: str, site: str) -> asyncpg.Record | None:
    rows = await fetch(dsn, "SELECT * FROM sites WHERE site = $1", site) if await has_schema(dsn) else []
    return rows[0] if rows else None


async def has_schema(dsn: str) -> bool:
    return bool((await fetch(dsn, "SELECT to_regclass('sites') IS NOT NULL AS ok"))[0]["ok"])


async def is_online(dsn: str, site: str, online: bool = True) -> bool:
    row = await site_row(dsn, site)
    return row is not None and row["online"] is online


async def matches_core(dsn: str, o: Office) -> bool:
    """Every ticket of the core in PostgreSQL as the core has it, every rating once."""
    records = await o.records()
    tickets = {r["id"]: r for r in await fetch(dsn, "SELECT * FROM tickets WHERE site = $1", o.site)}
    ratings = {r["ticket"]: r for r in await fetch(dsn, "SELECT * FROM ratings WHERE site = $1", o.site)}
    want_ratings = {r["id"]: r["rating"] for r in records if r["rating"] is not None}
    return (set(tickets) == {r["id"] for r in records}
            and all((tickets[r["id"]]["status"], tickets[r["id"]]["rating"], tickets[r["id"]]["counter"])
                    == (r["status"], r["rating"], r["counter"]) for r in records)
            and {t: r["rating"] for t, r in ratings.items()} == want_ratings)


async def test_an_office_down_past_its_bridge_queue_is_repaired_by_the_backfill(
        tmp_path: Path, pg_dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="province")
    site = f"xa-{uuid.uuid4().hex[:6]}"
    centre = start_centre(tmp_path, pg_dsn, [site], "timeout_s = 5\nretry_s = 1\n")
    try:
        async with bridged_office(tmp_path, centre, site, queue=5) as o, \
                running_service(centre.config) as service:
            await eventually(lambda: is_online(pg_dsn, site), timeout=20.0)
            served = [await o.serve_one(score) for score in (3, 2)]
            await eventually(lambda: matches_core(pg_dsn, o), timeout=20.0)
            online_since = (await site_row(pg_dsn, site))["status_at"]  # type: ignore[index]

            # the link is cut: the central broker publishes the bridge's will, 0
            await o.relay.cut()
            await eventually(lambda: is_online(pg_dsn, site, False), timeout=20.0)
            offline = await site_row(pg_dsn, site)
            assert offline is not None and offline["status_at"] > online_since and offline["bridge_online"] is False
            # the office keeps working alone, far past its bridge's queue of 5 messages
            served += [await o.serve_one(score) for score in (1, 3, 2, 3, 1, 2)]
            await o.relay.restore()

            await eventually(lambda: is_online(pg_dsn, site), timeout=30)
            await eventually(lambda: matches_core(pg_dsn, o), timeout=30)
            assert len(await o.records()) == len(served)
            # the queue did lose messages: only the backfill brought those tickets
            stored = {r["seq"] for r in await fetch(pg_dsn, "SELECT seq FROM events WHERE site = $1", site)}
            assert not o.seqs() <= stored
            assert service.backfills >= 1
            assert "Bù dữ liệu điểm " + site in caplog.text
            # exactly once: one row per ticket and per rating
            n = await fetch(pg_dsn, "SELECT count(*) AS n, count(DISTINCT id) AS d FROM tickets WHERE site = $1", site)
            assert (n[0]["n"], n[0]["d"]) == (len(served), len(served))
            r = await fetch(pg_dsn, "SELECT count(*) AS n FROM ratings WHERE site = $1", site)
            assert r[0]["n"] == len(served)
            # later events still update the rows the backfill wrote (by seq)
            served.append(await o.serve_one(3))
            await eventually(lambda: matches_core(pg_dsn, o), timeout=20.0)
    finally:
        centre.broker.stop()


@dataclass
class FakeOfficeLink:
    """The office end of the central broker for the tests of the province's side: a client
    logged in as the office's user (what its bridge uses), which publishes what a bridge would
    forward and answers cmd/backfill with what the test gives it."""

    probe: Probe
    site: str
    answers: list[Callable[[dict[str, Any]], bytes | None]] = field(default_factory=list)
    requests: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    async def serve(self) -> None:
        seen = 0
        while True:
            m = await self.probe.wait_for(lambda m: m.topic.endswith("/cmd/backfill"), start=seen, timeout=3600)
            seen = self.probe.received.index(m) + 1
            body = m.json
            self.requests.append((time.monotonic(), body))
            answer = self.answers.pop(0) if self.answers else None
            payload = answer(body) if answer else None
            if payload is not None:
                await self.probe.publish(body["reply_to"], payload)

    async def event(self, seq: int, kind: str = "issued", ticket: dict[str, Any] | None = None) -> None:
        body = {"kind": kind, "seq": seq, "at": datetime.now(UTC).isoformat(), "ticket": ticket}
        await self.probe.publish(f"qms/{self.site}/event/{kind}", body)


def record(tid: str, *, rating: int | None = 4, status: str = "done") -> dict[str, Any]:
    return {"id": tid, "number": "1001", "field": "dat-dai", "status": status, "counter": "1",
            "priority": False, "via": None, "calls": 1, "rating": rating, "issued_at": "2026-11-21T09:00:00+07:00",
            "called_at": "2026-11-21T09:05:00+07:00", "finished_at": "2026-11-21T09:15:00+07:00",
            "rated_at": "2026-11-21T09:16:00+07:00" if rating else None, "day": "2026-11-21", "order": 1,
            "has_phone": False}


def good(seq: int, tickets: list[dict[str, Any]]) -> Callable[[dict[str, Any]], bytes]:
    return lambda body: json.dumps({"ok": True, "request_id": body["request_id"], "ticket": None,
                                    "counter": None, "tickets": tickets, "next": None, "seq": seq}).encode()


@contextlib.asynccontextmanager
async def fake_office(tmp: Path, dsn: str, backfill: str) -> AsyncIterator[tuple[FakeOfficeLink, ProvinceService]]:
    site = f"xa-{uuid.uuid4().hex[:6]}"
    centre = start_centre(tmp, dsn, [site], backfill)
    try:
        async with Probe(centre.url(site)) as probe, running_service(centre.config) as service:
            await probe.subscribe(f"qms/{site}/cmd/backfill")
            link = FakeOfficeLink(probe, site)
            server = asyncio.create_task(link.serve())
            try:
                await probe.publish(f"qms/{site}/status/core", b"online", retain=True)
                await eventually(lambda: is_online(dsn, site), timeout=20.0)
                yield link, service
            finally:
                server.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await server
    finally:
        centre.broker.stop()


async def ticket_ids(dsn: str, site: str) -> list[tuple[str, int | None, int]]:
    return [(r["id"], r["rating"], r["seq"])
            for r in await fetch(dsn, "SELECT id, rating, seq FROM tickets WHERE site = $1 ORDER BY id", site)]


async def test_a_seq_gap_asks_for_a_backfill_at_most_once_per_debounce(tmp_path: Path, pg_dsn: str) -> None:
    async with fake_office(tmp_path, pg_dsn, "every_s = 3\ntimeout_s = 5\ngap_min = 1\n") as (link, service):
        link.answers += [good(50, [record("a")]), good(60, [record("b")])]
        for seq in (1, 2):
            await link.event(seq)
        await link.event(5)  # a gap: one backfill at once
        await eventually(lambda: _has_ticket(pg_dsn, link.site, "a"), timeout=20.0)
        await link.event(9)  # another gap within the debounce: owed, not asked yet
        await eventually(lambda: _true(service.tracks[link.site].owed_since is not None), timeout=20.0)
        await eventually(lambda: _seq_stored(pg_dsn, link.site, 9), timeout=20.0)
        assert len(link.requests) == 1
        await eventually(lambda: _has_ticket(pg_dsn, link.site, "b"), timeout=10)
        (t1, first), (t2, second) = link.requests
        assert t2 - t1 >= 2.5  # the debounce (3 s), from the start of the first
        # the days from the last event before the gap (one day of margin: the office's zone is its own)
        today = datetime.now(UTC).date()
        assert first["from"] <= today.isoformat() <= first["to"] and first["reply_to"].endswith(first["request_id"])
        assert first["reply_to"].startswith(f"qms/{link.site}/reply/province/") and second["limit"] == 200
        assert service.backfills == 2


async def test_a_bad_or_huge_backfill_reply_changes_nothing(
        tmp_path: Path, pg_dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="province")

    def raw(payload: bytes) -> Callable[[dict[str, Any]], bytes]:
        return lambda body: payload

    def changed(**kw: Any) -> Callable[[dict[str, Any]], bytes]:
        def answer(body: dict[str, Any]) -> bytes:
            reply = {"ok": True, "request_id": body["request_id"], "tickets": [record("x")], "next": None, "seq": 9}
            return json.dumps({**reply, **kw}).encode()
        return answer

    settings = "every_s = 1\ntimeout_s = 1\nretry_s = 1\nretry_max_s = 1\npage = 5\ngap_min = 1\n"
    async with fake_office(tmp_path, pg_dsn, settings) as (link, service):
        link.answers += [
            lambda body: None,  # no answer at all: timed out, asked again
            raw(b"not json"),
            changed(tickets=[record(f"h{i}") for i in range(6)]),  # more than the page asked for
            changed(tickets=[record("x"), {"number": "1002"}]),  # a record without an id: none of them
            changed(tickets=[{**record("x"), "phone": "0912345678"}]),
            changed(seq="9"),
            changed(request_id="someone-else"),
            changed(next="a9"),
            changed(ok=False, error={"code": "bad_request", "message": "Yêu cầu không hợp lệ"}),
            good(70, [record("ok", rating=5)]),
        ]
        n_bad = len(link.answers) - 1
        for seq in (1, 3):
            await link.event(seq)
        await eventually(lambda: _has_ticket(pg_dsn, link.site, "ok"), timeout=60)
        assert await ticket_ids(pg_dsn, link.site) == [("ok", 5, 70)]
        assert len(link.requests) == n_bad + 1
        assert "không hợp lệ" in caplog.text and "không trả lời" in caplog.text
        assert service.backfills == 1
        ratings = await fetch(pg_dsn, "SELECT ticket, rating, seq FROM ratings WHERE site = $1", link.site)
        assert [(r["ticket"], r["rating"], r["seq"]) for r in ratings] == [("ok", 5, 70)]


async def test_records_never_overwrite_newer_events_and_ratings_stay_once(tmp_path: Path, pg_dsn: str) -> None:
    async with fake_office(tmp_path, pg_dsn, "every_s = 1\ntimeout_s = 5\ngap_min = 1\n") as (link, _service):
        # an event newer than the reply's seq: the record (older) must not replace it
        await link.event(100, "rated", {**record("t1", rating=2), "status": "done"})
        await eventually(lambda: _has_ticket(pg_dsn, link.site, "t1"), timeout=20.0)
        link.answers += [good(40, [record("t1", rating=5), record("t2", rating=3)])]
        await link.event(103)  # a gap
        await eventually(lambda: _has_ticket(pg_dsn, link.site, "t2"), timeout=20.0)
        assert await ticket_ids(pg_dsn, link.site) == [("t1", 2, 100), ("t2", 3, 40)]
        ratings = await fetch(pg_dsn, "SELECT ticket, rating FROM ratings WHERE site = $1 ORDER BY ticket", link.site)
        assert [(r["ticket"], r["rating"]) for r in ratings] == [("t1", 2), ("t2", 3)]


async def test_presence_follows_the_bridge_and_the_core(pg_dsn: str) -> None:
    store = await ProvinceStore.open(pg_dsn)
    try:
        first = await store.set_presence("xa-b", bridge=True)
        assert (first.was_online, first.online) == (False, False)  # its core not heard of yet
        assert (await store.set_presence("xa-b", core=True)).since is None  # first contact: no return
        core = await store.set_presence("xa-a", core=True)
        assert (core.was_online, core.online) == (False, True)  # no bridge heard of: the core decides
        down = await store.set_presence("xa-a", bridge=False)
        assert (down.was_online, down.online) == (True, False)
        row = await store.site_row("xa-a")
        assert row is not None and row["online"] is False
        assert (await store.set_presence("xa-a", core=True)).online is False  # its retained online, again
        back = await store.set_presence("xa-a", bridge=True)
        assert back.came_back and back.since == row["status_at"]  # offline since then
        again = await store.set_presence("xa-a", bridge=True)
        assert not again.came_back
        gone = await store.set_presence("xa-a", core=False)
        assert not gone.online
    finally:
        await store.close()


def test_parse_message_reads_the_bridge_notification() -> None:
    for payload in (b"1", b"0"):
        m = parse_message("qms/xa-a/status/bridge", payload)
        assert m is not None and m.body == payload.decode()
    assert parse_message("qms/xa-a/status/bridge", b"online") is None
    assert parse_message("qms/xa-a/status/core", b"1") is None
    assert parse_message("qms/xa-a/status/bridge", b"") is None


def test_a_site_track_is_a_few_values_and_debounces() -> None:
    t = SiteTrack(online=True)
    at = datetime(2026, 11, 21, 9, tzinfo=UTC)
    assert t.observe(1, at) is None and t.observe(2, at) is None
    later = datetime(2026, 11, 22, 9, tzinfo=UTC)
    assert t.observe(7, later) == (at, True)  # the last event before the gap
    assert t.observe(3, later) is None  # an older one again: no news
    assert t.observe(10, later, gap_min=3) == (later, False)  # two skipped: the office's private messages
    assert t.observe(14, at, gap_min=3) == (later, True)  # three: maybe lost
    # small gaps alone: asked after small_every_s from when first owed, then from the last backfill
    small = SiteTrack(online=True)
    small.owe(at, forced=False, small=True, now=100.0)
    small.owe(later, forced=False, small=True, now=500.0)
    assert small.due_in(600.0, 300, 3600) == 3100.0
    small.owe(later, forced=False, now=700.0)  # a big gap too: the short debounce
    assert small.due_in(700.0, 300, 3600) == 0
    assert small.take(700.0) == at and not small.small_only
    small.owe(later, forced=False, small=True, now=800.0)
    assert small.due_in(800.0, 300, 3600) == 3500.0  # an hour after the last backfill
    t.owe(at, forced=False)
    assert t.due_in(100.0, 300) == 0
    assert t.take(100.0) == at and t.owed_since is None
    t.owe(later, forced=False)
    assert t.due_in(200.0, 300) == 200.0  # the debounce
    t.owe(later, forced=True)
    assert t.due_in(200.0, 300) == 0  # the office came back: at once
    t.online = False
    assert t.due_in(200.0, 300) is None
    t.online = True
    since = t.take(200.0)
    assert t.failed(since, 210.0, 60, 3600) == 60
    assert t.due_in(215.0, 1) == 55.0
    assert [t.failed(t.take(0.0), 0.0, 60, 3600) for _ in range(8)] == [120, 240, 480, 960, 1920, 3600, 3600, 3600]
    t.succeeded()
    assert t.failed(t.take(0.0), 0.0, 60, 3600) == 60
    assert len(vars(t)) == 10  # no set of seqs, whatever the traffic


def dossier_event(code: str, entry: str, status: str, version: int) -> dict[str, Any]:
    return {"kind": "dossier", "at": "2026-11-24T10:00:03+07:00",
            "dossier": {"code": code, "procedure": {"code": "1.000894", "name": "Đăng ký kết hôn"},
                        "field": "ho-tich", "received_at": "2026-11-23T08:30:00+07:00", "due_at": "2026-11-27",
                        "status": status, "done_at": None, "version": version},
            "entry": {"id": entry, "status": status, "at": "2026-11-24T10:00:00+07:00",
                      "applied_at": "2026-11-24T10:00:03+07:00"}}


async def test_dossier_events_are_stored_once(tmp_path: Path, pg_dsn: str) -> None:
    async with fake_office(tmp_path, pg_dsn, "") as (link, _service):
        topic = f"qms/{link.site}/event/dossier"
        await link.probe.publish(topic, dossier_event("HS-1", "received", "received", 1))
        await link.probe.publish(topic, dossier_event("HS-1", "mc-2", "processing", 2))
        await link.probe.publish(topic, dossier_event("HS-1", "mc-2", "processing", 2))  # sent again
        await link.probe.publish(topic, dossier_event("HS-1", "received", "received", 1))  # late and old
        await link.probe.publish(topic, dossier_event("HS-2", "received", "received", 1))
        await link.probe.publish(topic, b"not json")  # refused, nothing else changes
        await eventually(lambda: _count(pg_dsn, "dossier_entries", link.site, 3), timeout=20.0)
        await eventually(lambda: _count(pg_dsn, "dossiers", link.site, 2), timeout=20.0)
        rows = await fetch(pg_dsn, "SELECT * FROM dossiers WHERE site = $1 ORDER BY code", link.site)
        first = rows[0]
        assert (first["code"], first["status"], first["version"], first["procedure"]) == (
            "HS-1", "processing", 2, "Đăng ký kết hôn")
        assert first["due_at"] == datetime.fromisoformat("2026-11-27T00:00:00+07:00")
    store = await ProvinceStore.open(pg_dsn)
    try:  # the same through the store: a repeat is False, a bad shape is nothing
        assert not await store.write(Message(link.site, "event/dossier", dossier_event("HS-1", "mc-2", "x", 2)))
        assert not await store.write(Message(link.site, "event/dossier", {"dossier": {"code": 5}, "entry": {}}))
        assert await store.migrate() == 2
    finally:
        await store.close()


async def test_the_core_answers_a_backfill_like_a_tickets_query(broker: Broker, tmp_path: Path) -> None:
    config, site = write_site(tmp_path, broker.url)
    t = Topics(site)
    async with running_core(config) as core, Probe(broker.url) as probe:
        await probe.subscribe(t.event_all)
        ids = []
        for _ in range(3):
            reply = await probe.request(t.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            ids.append(reply["ticket"]["id"])
        last = await probe.wait_for(lambda m: m.topic.endswith("/event/issued") and m.json["ticket"]["id"] == ids[-1])
        query = await probe.request(t.cmd_query, {"request_id": new_id(), "query": "tickets", "limit": 2})
        answer = f"{t.root}/reply/province/{new_id()}"
        await probe.subscribe(answer)
        rid = new_id()
        await probe.publish(f"{t.root}/cmd/backfill", {"request_id": rid, "reply_to": answer, "limit": 2})
        m: Received = await probe.wait_for(lambda m: m.topic == answer)
        body = m.json
        # every record is at least as new as the seq: here, the last ticket's issue
        assert body["ok"] and body["request_id"] == rid and last.json["seq"] <= body["seq"] <= core.service.seq
        assert body["tickets"] == query["tickets"] and body["next"] == query["next"] == "2"
        assert [r["id"] for r in body["tickets"]] == ids[:2]
        assert all("phone" not in r and r["has_phone"] is False for r in body["tickets"])
        # always the tickets query: never the notifier's contacts (phones)
        await probe.publish(f"{t.root}/cmd/backfill", {"request_id": "c1", "reply_to": answer, "query": "contacts"})
        contacts = await probe.wait_for(lambda m: m.topic == answer and m.json["request_id"] == "c1")
        assert "contacts" not in contacts.json and [r["id"] for r in contacts.json["tickets"]] == ids
        # a bad one gets the query's own Vietnamese error, no seq
        await probe.publish(f"{t.root}/cmd/backfill", {"request_id": "b1", "reply_to": answer, "limit": 0})
        bad = await probe.wait_for(lambda m: m.topic == answer and m.json["request_id"] == "b1")
        assert bad.json["ok"] is False and "limit" in bad.json["error"]["message"] and "seq" not in bad.json


async def _true(value: bool) -> bool:
    return value


async def _has_ticket(dsn: str, site: str, tid: str) -> bool:
    return bool(await fetch(dsn, "SELECT 1 FROM tickets WHERE site = $1 AND id = $2", site, tid))


async def _seq_stored(dsn: str, site: str, seq: int) -> bool:
    return bool(await fetch(dsn, "SELECT 1 FROM events WHERE site = $1 AND seq = $2", site, seq))


async def _count(dsn: str, table: str, site: str, n: int) -> bool:
    return (await fetch(dsn, f"SELECT count(*) AS n FROM {table} WHERE site = $1", site))[0]["n"] == n


def test_no_local_user_of_an_office_may_send_a_backfill(tmp_path: Path) -> None:
    """Only the bridge brings cmd/backfill in: on the office broker no user but the core (which
    owns the site's namespace) may write it, nor read the answers to the province."""
    from broker_config.tool import site_users
    from qms_common.config import load_site_config
    config, site = write_site(tmp_path, "mqtt://127.0.0.1:1883", extra="[notify]\nprovider = \"log\"\n")
    users = site_users(load_site_config(config, env={}))
    assert len(users) > 4

    def covers(rule: str, topic: str) -> bool:
        prefix = rule.removesuffix("#")
        return rule == topic or (rule.endswith("#") and topic.startswith(prefix)) or (
            "+" in rule and all(a in ("+", b) for a, b in zip(rule.split("/"), topic.split("/"), strict=False))
            and len(rule.split("/")) == len(topic.split("/")))

    for u in users:
        if u.name == "core":
            continue
        writes = [t for a, t in u.rules if a in ("write", "readwrite") and covers(t, f"qms/{site}/cmd/backfill")]
        reads = [t for a, t in u.rules if a in ("read", "readwrite") and covers(t, f"qms/{site}/reply/province/x")]
        assert (u.name, writes, reads) == (u.name, [], [])


@pytest.mark.parametrize(("backfill", "key"), [
    ("every_s = 0", "backfill.every_s"),
    ("page = 5000", "backfill.page"),
    ("gap_min = 0", "backfill.gap_min"),
    ("timeout = 5", "backfill.timeout"),
    ("retry_s = \"một phút\"", "backfill.retry_s"),
])
def test_bad_backfill_settings_name_the_key(tmp_path: Path, backfill: str, key: str) -> None:
    from province.settings import ConfigError
    with pytest.raises(ConfigError) as info:
        load_province(province_toml(tmp_path, 1883, "x", "postgresql://qms@db/p", ["xa-a"], backfill))
    assert info.value.key == key and str(info.value).startswith("Lỗi cấu hình ") and "khóa " + key in str(info.value)
    defaults = load_province(province_toml(tmp_path, 1883, "x", "postgresql://qms@db/p", ["xa-a"], "")).backfill
    assert (defaults.every_s, defaults.timeout_s, defaults.retry_s, defaults.retry_max_s, defaults.page,
            defaults.gap_min, defaults.small_gap_every_s) == (300, 30, 60, 3600, 200, 16, 3600)


async def test_the_client_follows_next_and_refuses_a_cursor_that_does_not_move_on() -> None:
    from datetime import date

    from province.backfill import BackfillClient, BackfillFailed
    pages: list[str | None] = ["200", "400", None]
    asked: list[dict[str, Any]] = []

    async def answer(topic: str, payload: bytes) -> None:
        body = json.loads(payload)
        asked.append(body)
        reply = {"ok": True, "request_id": body["request_id"], "tickets": [record(f"r{len(asked)}")],
                 "next": pages[len(asked) - 1], "seq": 7}
        assert topic == "qms/xa-a/cmd/backfill"
        client.handle(body["reply_to"], json.dumps(reply).encode())

    client = BackfillClient(answer, timeout_s=1, page_limit=50)
    got = [p async for p in client.pages("xa-a", date(2026, 11, 20), date(2026, 11, 22))]
    assert [p.tickets[0]["id"] for p in got] == ["r1", "r2", "r3"]
    assert [b.get("after") for b in asked] == [None, "200", "400"]
    assert asked[0]["from"] == "2026-11-20" and asked[0]["to"] == "2026-11-22" and asked[0]["limit"] == 50

    asked.clear()
    pages[:] = ["200", "200"]
    with pytest.raises(BackfillFailed, match="không tiến lên"):
        _ = [p async for p in client.pages("xa-a", date(2026, 11, 20), date(2026, 11, 22))]
    assert len(asked) == 2
