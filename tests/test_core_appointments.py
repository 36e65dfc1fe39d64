"""Remote tickets and appointments in the core: only the web server may ask, what is written,
replied and published (state, private messages), the day's turn, restarts and the migration."""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from qms_common.config import load_site_config
from queue_core.clock import ManualClock
from queue_core.service import Outgoing, QueueService
from queue_core.store import MIGRATIONS, Store
from tests.support.appointments import appointment_site
from tests.support.site import write_site

# Friday 20 November 2026, 08:00 in Hà Nội
FRIDAY = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
PHONE = "84912345678"


class Core:
    """The service as the MQTT adapter drives it, with the web server's reply namespace."""

    def __init__(self, svc: QueueService) -> None:
        self.svc = svc
        self.t = svc.topics
        self.n = 0
        self.prefix = uuid.uuid4().hex[:6]  # a restarted test core must not replay earlier requests

    @property
    def clock(self) -> ManualClock:
        assert isinstance(self.svc.clock, ManualClock)
        return self.svc.clock

    async def send(self, topic: str, body: dict[str, Any], reply_to: str | None = "web") -> tuple[dict[str, Any],
                                                                                                list[Outgoing]]:
        self.n += 1
        body = {"request_id": f"{self.prefix}{self.n}", **body}
        answer = self.t.reply(reply_to) + "/x" if reply_to else None
        result = await self.svc.handle(topic, json.dumps(body).encode(), answer)
        assert result.reply is not None
        return result.reply, result.messages + self.svc.flush_state()

    async def book(self, day: str, slot: str, phone: str = PHONE, **kw: Any) -> tuple[dict[str, Any], list[Outgoing]]:
        return await self.send(self.t.cmd_appointment, {"action": "book", "field": "dat-dai", "day": day,
                                                        "slot": slot, "phone": phone}, **kw)

    async def checkin(self, code: str, **kw: Any) -> dict[str, Any]:
        reply, _ = await self.send(self.t.cmd_checkin, {"code": code}, **kw)
        return reply

    async def call_next(self, counter: str = "1") -> tuple[dict[str, Any], list[Outgoing]]:
        return await self.send(self.t.cmd_counter(counter), {"action": "call_next"}, reply_to="tang-1")


def on(messages: list[Outgoing], topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in messages if m.topic == topic]


def db_rows(svc: QueueService, sql: str) -> list[Any]:
    with sqlite3.connect(svc.store.path) as conn:
        return conn.execute(sql).fetchall()


async def open_core(path: Path, clock: ManualClock) -> tuple[Core, Store]:
    site = load_site_config(path)
    store = await Store.open(site.storage_path)
    svc = QueueService(site, store, clock)
    await svc.load()
    return Core(svc), store


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra=appointment_site(notify=True))
    c, store = await open_core(path, ManualClock(FRIDAY))
    yield c
    await store.close()


async def test_only_the_web_server_takes_remote_tickets_bookings_and_checkins(core: Core) -> None:
    t = core.t
    for sender in ("tang-1", "notify", None):
        reply, _ = await core.book("2026-11-23", "08:00", reply_to=sender)
        if sender is not None:
            assert reply["error"]["code"] == "forbidden"
        reply, _ = await core.send(t.cmd_ticket, {"field": "dat-dai", "phone": PHONE, "remote": True},
                                   reply_to=sender)
        if sender is not None:
            assert reply["error"]["code"] == "forbidden"
        reply, _ = await core.send(t.cmd_checkin, {"code": "ACDEFG"}, reply_to=sender)
        if sender is not None:
            assert reply["error"]["code"] == "forbidden"
        reply, _ = await core.send(t.cmd_appointment, {"action": "get", "code": "ACDEFGHJ"}, reply_to=sender)
        if sender is not None:
            assert reply["error"]["code"] == "forbidden"
    assert not core.svc.book.tickets and not core.svc.book.bookings.by_code
    assert db_rows(core.svc, "SELECT COUNT(*) FROM bookings") == [(0,)]
    assert db_rows(core.svc, "SELECT COUNT(*) FROM tickets") == [(0,)]


async def test_a_booking_is_written_published_and_told_privately(core: Core) -> None:
    t = core.t
    full = await core.svc.full_state()
    [view] = on(full, t.state_appointments("dat-dai"))
    assert [d["day"] for d in view["days"]][:3] == ["2026-11-20", "2026-11-23", "2026-11-24"]  # not the weekend
    # Friday: 1 place
    assert view["days"][0]["slots"][0] == {"slot": "08:00", "capacity": 1, "free": 1, "checked_in": 0}
    assert on(full, t.state_appointments("ho-tich")) == []  # no appointments there
    reply, messages = await core.book("2026-11-23", "08:00")
    assert reply["ok"] and reply["appointment"]["status"] == "booked"
    code = reply["appointment"]["code"]
    assert reply["appointment"] == {"code": code, "field": "dat-dai", "day": "2026-11-23", "slot": "08:00",
                                    "status": "booked"}
    assert PHONE not in json.dumps(reply)
    [private] = on(messages, t.private_booking)
    assert private["phone"] == PHONE and private["appointment"] == reply["appointment"] and private["seq"] > 0
    [view] = on(messages, t.state_appointments("dat-dai"))
    monday = next(d for d in view["days"] if d["day"] == "2026-11-23")
    assert monday["slots"][0] == {"slot": "08:00", "capacity": 2, "free": 1, "checked_in": 0}
    assert all(PHONE.encode() not in m.payload for m in messages if not m.topic.startswith(f"{t.root}/private/"))
    assert db_rows(core.svc, "SELECT code, day, slot, phone, status FROM bookings") == [
        (code, "2026-11-23", "08:00", PHONE, "booked")]
    got, _ = await core.send(t.cmd_appointment, {"action": "get", "code": code.lower()})
    assert got["appointment"] == reply["appointment"]
    # the same request again: the same answer, nothing more booked
    again = await core.svc.handle(t.cmd_appointment, json.dumps(
        {"request_id": reply["request_id"], "action": "book", "field": "dat-dai", "day": "2026-11-23",
         "slot": "08:00", "phone": PHONE}).encode(), t.reply("web") + "/x")
    assert again.reply == reply and len(core.svc.book.bookings.by_code) == 1


async def test_bad_bookings_change_nothing(core: Core) -> None:
    t = core.t
    await core.svc.full_state()
    bad = [("2026-11-19", "08:00", "outside_hours"), ("2026-11-20", "09:00", "outside_hours"),
           ("2026-11-21", "08:00", "outside_hours"), ("2026-11-23", "08:10", "outside_hours"),
           ("2026-11-26", "08:00", "outside_hours"), ("2026-11-23", "8h", "bad_request")]
    for day, slot, code in bad:
        reply, messages = await core.book(day, slot)
        assert reply["error"]["code"] == code, (day, slot, reply)
        assert on(messages, t.private_booking) == [] and on(messages, t.state_appointments("dat-dai")) == []
    reply, _ = await core.send(t.cmd_appointment, {"action": "book", "field": "ho-tich", "day": "2026-11-23",
                                                   "slot": "08:00", "phone": PHONE})
    assert reply["error"]["code"] == "outside_hours" and "Hộ tịch" in reply["error"]["message"]
    assert db_rows(core.svc, "SELECT COUNT(*) FROM bookings") == [(0,)]


async def test_the_notifier_alone_gets_the_live_bookings(core: Core) -> None:
    t = core.t
    codes = [(await core.book("2026-11-23", slot, phone=f"8490000000{i}"))[0]["appointment"]["code"]
             for i, slot in enumerate(["09:00", "08:00", "08:30"])]
    await core.send(t.cmd_appointment, {"action": "cancel", "code": codes[2]})
    reply, _ = await core.send(t.cmd_query, {"query": "bookings"}, reply_to="web")
    assert reply["error"]["code"] == "forbidden"
    reply, _ = await core.send(t.cmd_query, {"query": "bookings", "limit": 1}, reply_to="notify")
    assert [(b["appointment"]["code"], b["phone"]) for b in reply["bookings"]] == [(codes[1], "84900000001")]
    reply, _ = await core.send(t.cmd_query, {"query": "bookings", "after": reply["next"]}, reply_to="notify")
    assert [b["appointment"]["slot"] for b in reply["bookings"]] == ["09:00"] and reply["next"] is None


async def test_a_remote_ticket_is_passed_over_told_once_and_called_after_checkin(core: Core) -> None:
    t = core.t
    walk_in, _ = await core.send(t.cmd_ticket, {"field": "dat-dai"})
    remote, messages = await core.send(t.cmd_ticket, {"field": "dat-dai", "phone": PHONE, "remote": True})
    code = remote["code"]
    assert len(code) == 6 and remote["ahead"] == 1 and "est_wait_s" in remote
    assert remote["ticket"]["via"] == "remote" and remote["ticket"]["awaiting_checkin"] is True
    assert code not in json.dumps(remote["ticket"])
    assert all(code.encode() not in m.payload for m in messages if m.topic != t.private_contact)
    [contact] = on(messages, t.private_contact)
    assert contact["code"] == code and "passed_over" not in contact
    [queue] = on(messages, t.state_queue("dat-dai"))
    assert queue["awaiting_checkin"] == 1 and queue["waiting"] == 1 and queue["next"] == [walk_in["ticket"]["number"]]
    late, _ = await core.send(t.cmd_ticket, {"field": "dat-dai"})
    called, _ = await core.call_next()
    assert called["ticket"]["number"] == walk_in["ticket"]["number"]
    called, messages = await core.call_next()
    assert called["ticket"]["number"] == late["ticket"]["number"]
    [contact] = [c for c in on(messages, t.private_contact) if c["ticket"]["id"] == remote["ticket"]["id"]]
    assert contact["passed_over"] is True and contact["ahead"] == 0
    called, _ = await core.call_next()
    assert called["error"]["code"] == "queue_empty"
    again = await core.checkin(code.lower())
    assert again["ok"] and again["ticket"]["awaiting_checkin"] is False and again["ahead"] == 0
    assert await core.checkin(code) == {**again, "request_id": f"{core.prefix}{core.n}"}  # twice: the same ticket
    called, _ = await core.call_next()
    assert called["ticket"]["number"] == remote["ticket"]["number"]


async def test_appointment_checkin_is_called_before_walk_ins(core: Core) -> None:
    t = core.t
    booked, _ = await core.book("2026-11-23", "09:00")
    code = booked["appointment"]["code"]
    core.clock.set(FRIDAY + timedelta(days=3, minutes=45))  # Monday 08:45
    walk_in, _ = await core.send(t.cmd_ticket, {"field": "dat-dai"})
    reply = await core.checkin(code)
    assert reply["ok"] and reply["ticket"]["via"] == "appointment" and reply["ticket"]["appointment"] == code
    assert reply["appointment"]["status"] == "checked_in" and reply["ahead"] == 0
    called, _ = await core.call_next()
    assert called["ticket"]["number"] == reply["ticket"]["number"]
    called, _ = await core.call_next()
    assert called["ticket"]["number"] == walk_in["ticket"]["number"]


async def test_too_early_answers_when_to_come_back(core: Core) -> None:
    booked, _ = await core.book("2026-11-23", "09:00")
    core.clock.set(FRIDAY + timedelta(days=3))  # Monday 08:00
    reply = await core.checkin(booked["appointment"]["code"])
    assert reply["error"]["code"] == "too_early" and reply["from"] == "08:30"
    assert "Mời ông/bà quay lại từ 08:30" in reply["error"]["message"]
    assert not core.svc.book.tickets


async def test_bookings_survive_a_restart_and_the_turn_of_the_day(tmp_path: Path) -> None:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra=appointment_site(notify=True))
    clock = ManualClock(FRIDAY)
    c, store = await open_core(path, clock)
    kept = (await c.book("2026-11-23", "08:00"))[0]["appointment"]["code"]
    missed = (await c.book("2026-11-20", "10:00"))[0]  # today: refused
    assert missed["error"]["code"] == "outside_hours"
    gone = (await c.book("2026-11-24", "08:00", phone="84900000009"))[0]["appointment"]["code"]
    await store.close()
    c, store = await open_core(path, clock)  # a restart: from the database alone
    try:
        assert {b.code for b in c.svc.book.bookings.live_from("2026-11-20")} == {kept, gone}
        other = (await c.book("2026-11-23", "08:00", phone="84900000008"))[0]["appointment"]["code"]
        reply, _ = await c.book("2026-11-23", "08:00", phone="84900000007")
        assert reply["error"]["code"] == "slot_full"  # 2 places, the one before the restart counted
        clock.set(FRIDAY + timedelta(days=3, hours=17))  # Tuesday 01:00: Monday's bookings ended
        messages = await c.svc.tick()
        no_shows = on(messages, c.t.private_booking)
        assert sorted(m["appointment"]["code"] for m in no_shows) == sorted([kept, other])
        assert all(m["appointment"]["status"] == "no_show" for m in no_shows)
        assert db_rows(c.svc, f"SELECT status FROM bookings WHERE code = '{kept}'") == [("no_show",)]
        assert db_rows(c.svc, f"SELECT status FROM bookings WHERE code = '{gone}'") == [("booked",)]
        [view] = on(messages, c.t.state_appointments("dat-dai"))
        assert view["days"][0]["day"] == "2026-11-24"
        assert view["days"][0]["slots"][0] == {"slot": "08:00", "capacity": 2, "free": 1, "checked_in": 0}
        reply = await c.checkin(kept)
        assert reply["error"]["code"] == "unknown_booking"  # an ended day's booking is no longer checked in
        got, _ = await c.send(c.t.cmd_appointment, {"action": "get", "code": kept})
        assert got["appointment"]["status"] == "no_show"  # but the page still shows it
    finally:
        await store.close()


class Scripted(random.Random):
    """Draws these codes first (one character at a time, as appointments.fresh_code draws), then
    random ones."""

    def __init__(self, *codes: str) -> None:
        super().__init__(7)
        self.script = list("".join(codes))

    def choice(self, seq: Any) -> Any:
        return self.script.pop(0) if self.script else super().choice(seq)


async def test_a_code_is_never_given_twice_though_only_live_bookings_are_in_memory(tmp_path: Path) -> None:
    """Years of bookings do not stay in the core's memory (issue 14): an ended day's booking is
    forgotten at the turn of the day and not read at start-up, and its code is still never given
    again (its link would open the new booking): the store is asked."""
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra=appointment_site(notify=True))
    clock = ManualClock(FRIDAY)
    c, store = await open_core(path, clock)
    old = (await c.book("2026-11-23", "08:00"))[0]["appointment"]["code"]
    live = (await c.book("2026-11-24", "08:00", phone="84900000009"))[0]["appointment"]["code"]
    clock.set(FRIDAY + timedelta(days=3, hours=17))  # Tuesday 01:00: Monday's booking ended
    await c.svc.tick()
    assert not c.svc.book.bookings.taken(old) and c.svc.book.bookings.taken(live)  # not in memory
    await store.close()
    site = load_site_config(path)
    store = await Store.open(site.storage_path)
    try:
        # a restart: the ended day's code is not loaded; the drawing hits it, then the live one, then a fresh one
        svc = QueueService(site, store, clock, rng=Scripted(old, live, "ACDEFGHJ"))
        await svc.load()
        assert set(svc.book.bookings.by_code) == {live}
        c = Core(svc)
        reply, _ = await c.book("2026-11-25", "08:00", phone="84900000008")
        assert reply["ok"] and reply["appointment"]["code"] == "ACDEFGHJ", reply
        assert db_rows(c.svc, "SELECT COUNT(*) FROM bookings") == [(3,)]
    finally:
        await store.close()


async def test_a_schema_2_database_gains_the_new_columns_and_keeps_its_tickets(tmp_path: Path) -> None:
    db = tmp_path / "v2.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.executescript(MIGRATIONS[0] + ";" + MIGRATIONS[1] + """;
            CREATE TABLE schema_version (version INTEGER NOT NULL);
            INSERT INTO schema_version VALUES (2);
            INSERT INTO meta VALUES ('day', '2026-11-20');
            INSERT INTO tickets (id, day, number, value, origin_field, field, priority, status, issued_at, ord,
                                 calls, phone)
            VALUES ('20261120-dat-dai-1001', '2026-11-20', '1001', 1001, 'dat-dai', 'dat-dai', 0, 'waiting',
                    '2026-11-20T01:00:00+00:00', 1, 0, '84912345678');
        """)
    conn.close()
    store = await Store.open(db)
    try:
        snap = await store.load()
        [ticket] = snap.tickets
        assert ticket.number == "1001" and ticket.phone == PHONE and ticket.via == "kiosk"
        assert not ticket.awaiting_checkin and ticket.code is None and ticket.appointment is None
        assert snap.bookings == []
    finally:
        await store.close()
