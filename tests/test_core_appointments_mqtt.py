"""Appointments over a real Mosquitto: a slot is never overbooked whatever the concurrency, and
bookings survive kill -9."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from qms_common.config import business_day, load_site_config
from qms_common.devbroker import Broker
from qms_common.protocol import Topics
from queue_core import appointments as appt
from tests.support.appointments import appointment_site
from tests.support.core import CoreProcess, running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site


def a_bookable_day(config: Path) -> str:
    """The first day one may book from today (real time: the core runs on the system clock)."""
    site = load_site_config(config)
    assert site.appointments is not None
    today = date.fromisoformat(business_day(datetime.now(UTC), site.tz, site.day_starts))
    return appt.bookable_days(site.appointments, today)[0].isoformat()


def book(day: str, slot: str, phone: str) -> dict[str, Any]:
    return {"request_id": new_id(), "action": "book", "field": "dat-dai", "day": day, "slot": slot, "phone": phone}


def live_in_db(db: Path, day: str, slot: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM bookings WHERE day = ? AND slot = ? AND status = 'booked'",
                            (day, slot)).fetchone()[0]


async def test_fifty_simultaneous_bookings_for_the_last_five_places_give_exactly_five(
        broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, broker.url,
                               extra=appointment_site(capacity=8, per_phone=1, closed="[]"))
    t = Topics(site_id)
    day = a_bookable_day(path)
    async with running_core(path) as core:
        probes = [Probe(broker.url) for _ in range(5)]
        for p in probes:
            await p.__aenter__()
        try:
            answer = [t.reply("web") + f"/race-{i}" for i in range(5)]
            for i in range(3):  # three places taken before
                first = await probes[0].request(t.cmd_appointment, book(day, "08:00", f"8498000000{i}"),
                                                reply_topic=answer[0])
                assert first["ok"], first
            await probes[0].subscribe(t.state_appointments("dat-dai"))
            requests = [book(day, "08:00", f"849100000{i:02d}") for i in range(50)]
            replies = await asyncio.gather(*(probes[i % 5].request(t.cmd_appointment, r, reply_topic=answer[i % 5],
                                                                   timeout=15)
                                             for i, r in enumerate(requests)))
            view = await probes[0].wait_topic(
                t.state_appointments("dat-dai"),
                lambda v: any(s["slot"] == "08:00" and s["free"] == 0 for d in v["days"] if d["day"] == day
                              for s in d["slots"]))
        finally:
            for p in probes:
                await p.__aexit__(None, None, None)
        ok = [r for r in replies if r["ok"]]
        assert len(ok) == 5
        assert {r["error"]["code"] for r in replies if not r["ok"]} == {"slot_full"}
        assert len({r["appointment"]["code"] for r in ok}) == 5
        assert core.service.book.bookings.used("dat-dai", day, "08:00") == 8
    assert live_in_db(tmp_path / f"{site_id}.sqlite3", day, "08:00") == 8
    [slot] = [s for d in view["days"] if d["day"] == day for s in d["slots"] if s["slot"] == "08:00"]
    assert slot == {"slot": "08:00", "capacity": 8, "free": 0, "checked_in": 0}


async def test_bookings_survive_kill_9(broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, broker.url, extra=appointment_site(capacity=2, per_phone=1, closed="[]"))
    t = Topics(site_id)
    day = a_bookable_day(path)
    core = CoreProcess(path, tmp_path / "core.log", env={"QMS_MQTT_URL": broker.url})
    answer = t.reply("web") + "/kill"
    async with Probe(broker.url) as probe:
        await probe.subscribe(t.status_all)
        core.start()
        try:
            await probe.wait_for(lambda m: m.topic == t.status_core and m.text == "online", timeout=20)
            a = await probe.request(t.cmd_appointment, book(day, "09:00", "84912000001"), reply_topic=answer)
            b = await probe.request(t.cmd_appointment, book(day, "09:00", "84912000002"), reply_topic=answer)
            assert a["ok"] and b["ok"]
            core.kill9()  # right after the replies: what was answered was written
            mark = probe.mark()
            core.start()
            await probe.wait_for(lambda m: m.topic == t.status_core and m.text == "online", timeout=20, start=mark)
            full = await probe.request(t.cmd_appointment, book(day, "09:00", "84912000003"), reply_topic=answer)
            assert full["error"]["code"] == "slot_full"
            got = await probe.request(t.cmd_appointment, {"request_id": new_id(), "action": "get",
                                                          "code": a["appointment"]["code"]}, reply_topic=answer)
            assert got["appointment"] == a["appointment"]
            await probe.subscribe(t.state_appointments("dat-dai"))
            view = await probe.wait_topic(t.state_appointments("dat-dai"))
            [slot] = [s for d in view["days"] if d["day"] == day for s in d["slots"] if s["slot"] == "09:00"]
            assert slot["free"] == 0
        finally:
            core.stop()
