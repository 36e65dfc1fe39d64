"""The notifier's part of remote tickets and appointments: one-time codes, "mời xác nhận có mặt"
for a remote ticket whose turn came, and booking reminders (the evening before, 30 minutes
before), dropped when the booking was cancelled or moved."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from notifier import plan
from notifier.plan import BookingInfo, Contact, Step
from notifier.service import Notifier
from qms_common.devbroker import Broker, free_port
from qms_common.protocol import Topics
from queue_core.clock import ManualClock
from tests import test_notify
from tests.support.appointments import appointment_site
from tests.support.core import running_core
from tests.support.mqtt import Probe
from tests.support.site import write_site
from tests.support.web import running_web, web_extra
from tests.test_notify import Standin, key, notify_toml, phone, running_notifier

standin = test_notify.standin  # the stand-in provider server, as a fixture here too

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def booking(day: str = "2026-11-24", slot: str = "09:00", status: str = "booked", seq: int = 1) -> BookingInfo:
    return BookingInfo(code="ABCD2345", field="dat-dai", day=day, slot=slot, status=status, phone="84912345678",
                       seq=seq)


def test_reminders_go_the_evening_before_and_half_an_hour_before() -> None:
    now = datetime(2026, 11, 23, 10, 0, tzinfo=TZ)
    steps = {r.kind: r for r in plan.reminders(booking(), set(), tz=TZ, now=now)}
    assert steps["remind_eve"].at == datetime(2026, 11, 23, 19, 0, tzinfo=TZ)
    assert steps["remind_soon"].at == datetime(2026, 11, 24, 8, 30, tzinfo=TZ)
    assert plan.reminders(booking(), {"remind_eve", "remind_soon"}, tz=TZ, now=now) == []
    assert plan.reminders(booking(status="cancelled"), set(), tz=TZ, now=now) == []


def test_a_reminder_that_cannot_come_in_time_is_dropped_with_why() -> None:
    late_evening = datetime(2026, 11, 23, 21, 0, tzinfo=TZ)
    steps = {r.kind: r for r in plan.reminders(booking(), set(), tz=TZ, now=late_evening)}
    assert steps["remind_eve"].step is Step.DROP and "tối hôm trước" in steps["remind_eve"].reason
    assert steps["remind_soon"].step is Step.SEND
    # the notifier was down until 08:45: the "soon" one still goes, at once
    at_845 = datetime(2026, 11, 24, 8, 45, tzinfo=TZ)
    soon = {r.kind: r for r in plan.reminders(booking(), {"remind_eve"}, tz=TZ, now=at_845)}["remind_soon"]
    assert soon.step is Step.SEND and soon.at == at_845
    after = datetime(2026, 11, 24, 9, 1, tzinfo=TZ)
    [gone] = plan.reminders(booking(), {"remind_eve"}, tz=TZ, now=after)
    assert gone.step is Step.DROP and "qua giờ hẹn" in gone.reason


def test_a_queued_reminder_is_stale_once_the_booking_changed() -> None:
    place = booking().place
    assert plan.booking_stale(place, booking()) is None
    assert plan.booking_stale(place, booking(status="cancelled")) == "lịch hẹn đã huỷ"
    assert "đổi" in (plan.booking_stale(place, booking(slot="10:00")) or "")
    assert "xác nhận" in (plan.booking_stale(place, booking(status="checked_in")) or "")


def contact(**ticket: Any) -> Contact:
    t = {"id": "20261123-dat-dai-1001", "day": "2026-11-23", "number": "1001", "field": "dat-dai",
         "status": "waiting", "counter": None, "rating": None, "finished_at": None, **ticket}
    return Contact.parse({"ticket": t, "phone": "84912345678", "ahead": 0, "est_wait_s": 0, "passed_over": True})


def test_a_remote_ticket_passed_over_is_asked_to_check_in_once() -> None:
    now = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)
    c = contact(awaiting_checkin=True)
    kinds = {d.kind: d.step for d in plan.decide(c, {"issued", "nears"}, ahead=2, rating_window_s=600, now=now)}
    assert kinds == {"checkin": Step.SEND}
    assert plan.decide(c, {"issued", "nears", "checkin"}, ahead=2, rating_window_s=600, now=now) == []
    assert plan.stale("checkin", contact(awaiting_checkin=False), rating_window_s=600, now=now)


# ---------------------------------------------------------------- with the core and the stand-in

AT_9 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # a Monday, 09:00 in Hà Nội: remote tickets are open


@contextlib.asynccontextmanager
async def office12(broker: Broker, tmp_path: Path, standin: Standin
                   ) -> AsyncIterator[tuple[Probe, Topics, Notifier, ManualClock, str]]:
    clock = ManualClock(AT_9)
    extra = notify_toml(standin) + appointment_site().replace("[notify]\nahead = 2\n", "")
    config, site = write_site(tmp_path, broker.url, extra=extra)
    async with running_core(config, clock), running_notifier(config) as n, Probe(broker.url) as probe:
        n.now = clock.now
        yield probe, Topics(site), n, clock, site


async def as_web(probe: Probe, topic: str, body: dict[str, Any]) -> dict[str, Any]:
    """The web server's commands: the core answers them only in its reply namespace."""
    root = "/".join(topic.split("/")[:2])
    return await probe.request(topic, body, reply_topic=f"{root}/reply/web/test-{id(probe)}")


async def test_a_one_time_code_goes_out_at_once(broker: Broker, tmp_path: Path, standin: Standin) -> None:
    async with office12(broker, tmp_path, standin) as (probe, t, n, _, _site):
        await probe.publish(t.private_otp, {"phone": "0912 000 111", "code": "482913", "purpose": "remote",
                                           "request_id": "otp-1"})
        await standin.wait(lambda: any("482913" in d.text for d in standin.state.inbox))
        [sent] = [d for d in standin.state.inbox if "482913" in d.text]
        assert "Zalo" not in sent.channel  # the site has no ZNS template for codes: by SMS
        await probe.publish(t.private_otp, {"phone": "0912 000 111", "code": "482913", "purpose": "remote",
                                           "request_id": "otp-1"})  # the same request again: not twice
        rows = [r for r in await n.outbox.all_rows() if r.kind == "otp"]
        assert len(rows) == 1


async def test_a_remote_ticket_whose_turn_came_is_told_to_check_in(broker: Broker, tmp_path: Path,
                                                                  standin: Standin) -> None:
    async with office12(broker, tmp_path, standin) as (probe, t, _, _, site):
        remote = await as_web(probe, t.cmd_ticket, {"request_id": "r1", "field": "dat-dai", "remote": True,
                                                    "phone": phone(90)})
        assert remote["ok"], remote
        walk_in = await probe.request(t.cmd_ticket, {"request_id": "w1", "field": "dat-dai"})
        await probe.request(t.cmd_counter("1"), {"request_id": "o1", "action": "open"})
        called = await probe.request(t.cmd_counter("1"), {"request_id": "c1", "action": "call_next"})
        assert called["ticket"]["id"] == walk_in["ticket"]["id"]  # the remote one is passed over
        k = key(site, remote["ticket"]["id"], "checkin")
        await standin.wait(lambda: bool(standin.delivered(k)))
        assert len(standin.delivered(k)) == 1


async def test_a_booking_gets_its_reminders_scheduled_and_a_cancelled_one_none(broker: Broker, tmp_path: Path,
                                                                              standin: Standin) -> None:
    async with office12(broker, tmp_path, standin) as (probe, t, n, clock, _):
        booked = await as_web(probe, t.cmd_appointment, {"request_id": "b1", "action": "book", "field": "dat-dai",
                                                         "day": "2026-11-24", "slot": "09:00", "phone": phone(91)})
        assert booked["ok"], booked
        code = booked["appointment"]["code"]

        async def rows() -> dict[str, Any]:
            return {r.kind: r for r in await n.outbox.all_rows() if r.ticket.startswith(code)}

        await n.until_written(lambda: len(n.decided.get(f"{code}@2026-11-24T09:00", ())) == 2)
        got = await rows()
        assert got["remind_eve"].next_at == datetime(2026, 11, 23, 19, 0, tzinfo=TZ).timestamp()
        assert got["remind_soon"].next_at == datetime(2026, 11, 24, 8, 30, tzinfo=TZ).timestamp()
        cancelled = await as_web(probe, t.cmd_appointment, {"request_id": "b2", "action": "cancel", "code": code})
        assert cancelled["ok"]
        await n.until_written(lambda: n.bookings[code].status == "cancelled")
        assert n._stale(got["remind_eve"]) == "lịch hẹn đã huỷ"
        assert clock.now() < datetime(2026, 11, 23, 19, 0, tzinfo=TZ)


async def test_a_phone_is_verified_by_the_code_the_notifier_delivered(broker: Broker, tmp_path: Path,
                                                                      standin: Standin) -> None:
    """The whole chain of /lay-so: the web server makes a code, the notifier sends it, the citizen
    reads it on the phone (the stand-in's inbox) and takes a remote number with it."""
    clock = ManualClock(AT_9)
    public = 'public_url = "https://xephang.example.vn"'
    extra = (notify_toml(standin).replace(f"[web]\n{public}\n", "") + appointment_site()
             + web_extra(tmp_path, free_port(), web=public))
    config, site = write_site(tmp_path, broker.url, extra=extra)
    async with running_core(config, clock), running_notifier(config), running_web(config) as web, \
            aiohttp.ClientSession() as http:
        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            async with http.post(web.url + path, json=body) as resp:
                answer: dict[str, Any] = await resp.json()
                assert resp.status == 200, answer
                return answer

        await post("/api/otp/send", {"phone": "0912 777 888", "purpose": "remote"})
        await standin.wait(lambda: any(re.search(r"\b\d{6}\b", d.text) for d in standin.state.inbox))
        [text] = [d.text for d in standin.state.inbox if re.search(r"\b\d{6}\b", d.text)]
        code = re.search(r"\b(\d{6})\b", text).group(1)  # type: ignore[union-attr]
        proof = (await post("/api/otp/verify", {"phone": "0912777888", "purpose": "remote", "code": code}))["proof"]
        taken = await post("/api/lay-so", {"field": "dat-dai", "proof": proof})
        assert taken["ok"] and taken["code"]
        k = key(site, taken["ticket"]["id"], "issued")
        await standin.wait(lambda: bool(standin.delivered(k)))
