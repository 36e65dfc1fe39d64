"""The dossier service over a real Mosquitto (and the real core for ratings): idempotent create
and events, time order, refusals that change nothing, who may do what, restarts, ratings heard
while it was stopped, the phone only on private/dossier, and its erasure."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from qms_common.devbroker import Broker, stop_process
from qms_common.protocol import Topics
from tests.support.core import running_core
from tests.support.dossiers import DossierClient, running_dossiers
from tests.support.mqtt import Probe, new_id, response_topic
from tests.support.site import write_site

ROOT = Path(__file__).resolve().parents[1]
PHONE = "0912 345 678"
PHONE_84 = "84912345678"


@dataclass
class Office:
    config: Path
    topics: Topics
    probe: Probe
    web: DossierClient

    async def marker(self) -> None:
        """A get of an unknown code: its answer comes after everything the service published
        for the commands before it (one message at a time), so a test can check what did not
        arrive without sleeping."""
        reply = await self.web.get(f"MARK-{new_id()[:8]}")
        assert reply["error"]["code"] == "unknown_dossier"

    def published(self, mark: int, topic: str) -> list[dict]:
        return [m.json for m in self.probe.since(mark) if m.topic == topic]


@pytest.fixture
async def office(broker: Broker, tmp_path: Path) -> AsyncIterator[Office]:
    config, site_id = write_site(tmp_path, broker.url)
    topics = Topics(site_id)
    async with Probe(broker.url) as probe:
        await probe.subscribe(topics.event_all, topics.private_all, topics.status_all)
        yield Office(config, topics, probe, DossierClient(probe, topics))


async def test_created_twice_is_one_dossier(office: Office) -> None:
    async with running_dossiers(office.config) as service:
        await office.probe.wait_for(lambda m: m.topic == office.topics.status_dossiers and m.payload == b"online")
        mark = office.probe.mark()
        first = await office.web.create("HS-001", phone=PHONE, ticket="20261123-ho-tich-2001", counter="3",
                                        officer="Nguyễn Thị Hoa", field="ho-tich")
        assert first["ok"] and first["created"] is True
        d = first["dossier"]
        assert (d["code"], d["status"], d["version"], d["has_phone"]) == ("HS-001", "received", 1, True)
        assert d["procedure"] == {"code": "1.000894", "name": "Đăng ký kết hôn"}
        assert d["timeline"][0]["id"] == "received" and d["timeline"][0]["at"] == "2026-11-23T08:30:00+07:00"
        again = await office.web.create("HS-001", procedure={"name": "Khác"}, phone="0987654321",
                                        due_at="2027-01-01")
        assert again["ok"] and again["created"] is False and again["dossier"] == first["dossier"]
        await office.marker()
        events = office.published(mark, office.topics.event("dossier"))
        assert [(e["kind"], e["dossier"]["code"], e["entry"]["id"]) for e in events] == [
            ("dossier", "HS-001", "received")]
        private = office.published(mark, office.topics.private_dossier)
        assert [(p["phone"], p["entry"]["id"]) for p in private] == [(PHONE_84, "received")]
        stored = await service.store.get("HS-001")
        assert stored is not None and stored.phone == PHONE_84 and stored.procedure_name == "Đăng ký kết hôn"


async def test_a_replayed_event_id_is_applied_once(office: Office) -> None:
    async with running_dossiers(office.config):
        await office.web.create("HS-002")
        mark = office.probe.mark()
        first = await office.web.event("HS-002", "tinh-1", "processing", "2026-11-24T10:00:00+07:00",
                                       department="Phòng Tư pháp")
        assert first["applied"] is True and first["dossier"]["version"] == 2
        replay = await office.web.event("HS-002", "tinh-1", "refused", "2026-11-25T10:00:00+07:00", note="khác")
        assert replay["ok"] and replay["applied"] is False
        assert replay["dossier"] == first["dossier"]
        assert replay["dossier"]["status"] == "processing" and replay["dossier"]["department"] == "Phòng Tư pháp"
        await office.marker()
        assert [e["entry"]["id"] for e in office.published(mark, office.topics.event("dossier"))] == ["tinh-1"]
        assert office.published(mark, office.topics.private_dossier) == []  # no phone: nothing private


async def test_events_out_of_order_keep_the_timeline_in_time_order(office: Office) -> None:
    async with running_dossiers(office.config):
        await office.web.create("HS-003")
        await office.web.event("HS-003", "e-done", "done", "2026-11-26T15:00:00+07:00")
        await office.web.event("HS-003", "e-need", "needs_documents", "2026-11-24T09:00:00+07:00",
                               note="Bản sao giấy khai sinh")
        reply = await office.web.event("HS-003", "e-proc", "processing", "2026-11-25T08:00:00+07:00",
                                       department="Phòng Tư pháp")
        d = reply["dossier"]
        assert [e["id"] for e in d["timeline"]] == ["received", "e-need", "e-proc", "e-done"]
        assert d["status"] == "done" and d["needs"] is None
        assert d["done_at"] == "2026-11-26T15:00:00+07:00" and d["early"] is True and d["overdue"] is False
        # a time with another offset is the same moment, shown in the site's zone
        reply = await office.web.event("HS-003", "e-ret", "returned", "2026-11-27T02:00:00Z")
        assert reply["dossier"]["timeline"][-1]["at"] == "2026-11-27T09:00:00+07:00"
        assert reply["dossier"]["status"] == "returned"


async def test_bad_input_is_refused_and_changes_nothing(office: Office) -> None:
    async with running_dossiers(office.config) as service:
        await office.web.create("HS-004", phone=PHONE)
        mark = office.probe.mark()
        for status, at in (("finished", "2026-11-24T10:00:00+07:00"), ("done", "hôm qua"), ("done", None)):
            reply = await office.web.event("HS-004", f"x-{status}", status, at)  # type: ignore[arg-type]
            assert reply["ok"] is False and reply["error"]["code"] == "bad_request", reply
            assert "Yêu cầu không hợp lệ" in reply["error"]["message"]
        unknown = await office.web.event("HS-404", "e1", "done", "2026-11-24T10:00:00+07:00")
        assert unknown["error"]["code"] == "unknown_dossier" and "HS-404" in unknown["error"]["message"]
        assert (await office.web.get("HS-404"))["error"]["code"] == "unknown_dossier"
        bad_phone = await office.web.create("HS-005", phone="12345")
        assert bad_phone["error"]["code"] == "bad_request" and "Số điện thoại" in bad_phone["error"]["message"]
        late = await office.web.create("HS-005", due_at="2026-11-01")
        assert late["error"]["code"] == "bad_request" and "hẹn trả" in late["error"]["message"]
        unreadable = await office.probe.request(office.topics.cmd_dossier, b"{not json",
                                                reply_topic=f"{office.topics.reply('web')}/t")
        assert unreadable["error"]["code"] == "bad_request"
        expired = await office.web.send("event", code="HS-004", id="late", status="done",
                                        at="2026-11-24T10:00:00+07:00", by="x", deadline=1.0)
        assert expired["error"]["code"] == "expired"
        await office.marker()
        assert office.published(mark, office.topics.event("dossier")) == []
        held = await service.store.get("HS-004")
        assert held is not None and [e.id for e in held.entries] == ["received"] and held.version == 1
        assert await service.store.get("HS-005") is None


async def test_only_the_web_server_changes_dossiers_and_only_the_notifier_lists_contacts(office: Office) -> None:
    async with running_dossiers(office.config):
        notify, other = office.web.as_user("notify"), office.web.as_user("readonly")
        for client in (notify, other):
            refused = await client.create("HS-006", phone=PHONE)
            assert refused["error"]["code"] == "forbidden" and "web" in refused["error"]["message"]
        assert (await office.web.get("HS-006"))["error"]["code"] == "unknown_dossier"
        await office.web.create("HS-006", phone=PHONE)
        assert (await notify.event("HS-006", "e1", "done", "2026-11-24T10:00:00+07:00"))["error"]["code"] == "forbidden"
        assert (await notify.get("HS-006"))["dossier"]["code"] == "HS-006"
        assert (await other.get("HS-006"))["error"]["code"] == "forbidden"
        assert (await office.web.send("contacts", since="2000-01-01T00:00:00+07:00"))["error"]["code"] == "forbidden"
        await office.web.event("HS-006", "e1", "done", "2026-11-24T10:00:00+07:00")
        contacts = await notify.send("contacts", since="2000-01-01T00:00:00+07:00")
        assert [(c["dossier"]["code"], c["entry"]["id"], c["phone"]) for c in contacts["contacts"]] == [
            ("HS-006", "received", PHONE_84), ("HS-006", "e1", PHONE_84)]
        assert contacts["next"] is None
        later = await notify.send("contacts", since=contacts["contacts"][-1]["at"])
        assert [c["entry"]["id"] for c in later["contacts"]][-1:] == ["e1"]
        future = datetime.now().astimezone() + timedelta(minutes=5)
        assert (await notify.send("contacts", since=future.isoformat()))["contacts"] == []


async def test_a_request_answered_outside_every_reply_namespace_is_not_executed(office: Office) -> None:
    async with running_dossiers(office.config) as service:
        body = {"request_id": new_id(), "action": "create", "code": "HS-007", "procedure": {"name": "X"},
                "due_at": "2026-11-27", "received_at": "2026-11-23T08:00:00+07:00", "source": "api", "by": "x"}
        await office.probe.publish(office.topics.cmd_dossier, body,
                                   properties=response_topic(office.topics.status_dossiers))
        await office.probe.publish(office.topics.cmd_dossier, body)  # no reply topic: nobody to say it is web
        await office.marker()
        assert await service.store.get("HS-007") is None


async def test_a_restart_keeps_everything(office: Office) -> None:
    async with running_dossiers(office.config):
        await office.web.create("HS-008", phone=PHONE)
        before = await office.web.event("HS-008", "e1", "needs_documents", "2026-11-24T10:00:00+07:00",
                                        note="Bản sao sổ hộ khẩu")
    async with running_dossiers(office.config):
        got = await office.web.get("HS-008")
        assert got["dossier"] == before["dossier"]
        assert got["dossier"]["needs"] == "Bản sao sổ hộ khẩu" and got["dossier"]["has_phone"] is True
        assert (await office.web.create("HS-008"))["created"] is False
        replay = await office.web.event("HS-008", "e1", "done", "2026-11-25T10:00:00+07:00")
        assert replay["applied"] is False and replay["dossier"] == before["dossier"]


async def test_a_rating_given_while_the_service_is_stopped_is_attached_after_it_restarts(office: Office) -> None:
    t = office.topics
    async with running_core(office.config) as core:
        async def counter(action: str, **kw: object) -> dict:
            return await office.probe.request(t.cmd_counter("3"), {"request_id": new_id(), "action": action, **kw})

        async with running_dossiers(office.config):
            await office.web.create("HS-009", phone=PHONE)
        # the service is away; the broker keeps its session and the rating for it
        ticket = await office.probe.request(t.cmd_ticket, {"request_id": new_id(), "field": "ho-tich"})
        await counter("open", officer="Nguyễn Thị Hoa")
        await counter("call_next")
        assert (await counter("dossier", dossier="HS-009"))["ok"]
        await counter("finish")
        rated = await office.probe.request(t.cmd_rating, {"request_id": new_id(), "ticket": ticket["ticket"]["id"],
                                                          "score": 1})
        assert rated["ok"], rated
        # and one for a dossier not created yet: held until it is
        ticket2 = await office.probe.request(t.cmd_ticket, {"request_id": new_id(), "field": "ho-tich"})
        await counter("call_next")
        await counter("dossier", dossier="HS-010")
        await counter("finish")
        await office.probe.request(t.cmd_rating, {"request_id": new_id(), "ticket": ticket2["ticket"]["id"],
                                                  "score": 3})
        assert core.service.book.tickets[ticket2["ticket"]["id"]].rating == 3
        async with running_dossiers(office.config) as service:
            async with asyncio.timeout(10), service.written:
                await service.written.wait_for(lambda: service.writes >= 2)
            rating = (await office.web.get("HS-009"))["dossier"]["rating"]
            assert rating is not None
            assert (rating["score"], rating["level"], rating["ticket"]) == (1, "Không hài lòng", ticket["ticket"]["id"])
            created = await office.web.create("HS-010")
            assert created["dossier"]["rating"]["score"] == 3
            assert created["dossier"]["rating"]["level"] == "Rất hài lòng"


async def test_the_phone_goes_only_to_private_dossier_and_is_erased_after_phone_days(office: Office) -> None:
    clock = [datetime.now().astimezone()]
    async with running_dossiers(office.config, now=lambda: clock[0]) as service:
        mark = office.probe.mark()
        await office.web.create("HS-011", phone=PHONE)
        await office.web.event("HS-011", "kq", "done", "2026-11-26T15:00:00+07:00")
        await office.web.event("HS-011", "tra", "returned", "2026-11-27T09:00:00+07:00")
        await office.marker()
        public = [m for m in office.probe.since(mark) if m.topic.startswith(office.topics.event_all[:-1])]
        assert len(public) == 3 and all(b"84912" not in m.payload and b"0912" not in m.payload for m in public)
        private = [m.json for m in office.probe.since(mark) if m.topic == office.topics.private_dossier]
        assert [(p["entry"]["id"], p["phone"]) for p in private] == [
            ("received", PHONE_84), ("kq", PHONE_84), ("tra", PHONE_84)]
        # 30 days ([notify] phone_days' default) after it was returned, the phone is kept; the day after, gone
        clock[0] = datetime.fromisoformat("2026-12-27T12:00:00+07:00")
        assert await service.forget_phones() == 0
        clock[0] = datetime.fromisoformat("2026-12-28T12:00:00+07:00")
        assert await service.forget_phones() == 1
        got = await office.web.get("HS-011")
        assert got["dossier"]["has_phone"] is False and got["dossier"]["status"] == "returned"
        with sqlite3.connect(service.settings.database) as db:
            assert db.execute("SELECT phone FROM dossiers WHERE code = 'HS-011'").fetchone() == (None,)
        mark = office.probe.mark()
        await office.web.event("HS-011", "them", "returned", "2026-11-28T09:00:00+07:00")
        await office.marker()
        assert office.published(mark, office.topics.private_dossier) == []


def spawn_dossiers(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "dossiers", "--config", str(config)], env=env,
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL)


async def test_what_was_answered_survives_kill_9(office: Office, tmp_path: Path) -> None:
    """The real process (python -m dossiers), killed without a chance to close: every dossier and
    entry it confirmed is there when it starts again."""
    t = office.topics

    async def start() -> subprocess.Popen[bytes]:
        mark = office.probe.mark()
        proc = spawn_dossiers(office.config, tmp_path / "dossiers.log")
        await office.probe.wait_for(lambda m: m.topic == t.status_dossiers and m.payload == b"online",
                                    start=mark, timeout=20)
        return proc

    proc = await start()
    try:
        codes = [f"HS-K{i}" for i in range(5)]
        for code in codes:
            assert (await office.web.create(code, phone=PHONE))["created"]
            assert (await office.web.event(code, "e1", "done", "2026-11-26T10:00:00+07:00"))["applied"]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = await start()
        for code in codes:
            d = (await office.web.get(code))["dossier"]
            assert [e["id"] for e in d["timeline"]] == ["received", "e1"] and d["has_phone"], code
    finally:
        stop_process(proc)


async def test_list_pages_dossiers_changed_since_a_moment_for_the_web_alone(office: Office) -> None:
    """`list` (the web's report warehouse): views without phones, changed at or after `since`, by
    code, paged with `next`; a rating or an event makes a dossier changed again."""
    async with running_dossiers(office.config):
        start = datetime.now().astimezone() - timedelta(seconds=1)
        for code in ("HS-L1", "HS-L2", "HS-L3"):
            await office.web.create(code, phone=PHONE)
        first = await office.web.send("list", since=start.isoformat(), limit=2)
        assert [d["code"] for d in first["dossiers"]] == ["HS-L1", "HS-L2"] and first["next"] == "HS-L2"
        assert all("phone" not in d and d["has_phone"] for d in first["dossiers"])
        rest = await office.web.send("list", since=start.isoformat(), limit=2, after=first["next"])
        assert [d["code"] for d in rest["dossiers"]] == ["HS-L3"] and rest["next"] is None
        later = datetime.now().astimezone()
        assert (await office.web.send("list", since=(later + timedelta(seconds=1)).isoformat()))["dossiers"] == []
        await office.web.event("HS-L2", "e1", "done", "2026-11-24T10:00:00+07:00")
        changed = await office.web.send("list", since=later.isoformat())
        assert [(d["code"], d["status"]) for d in changed["dossiers"]] == [("HS-L2", "done")]
        notify = office.web.as_user("notify")
        assert (await notify.send("list", since=start.isoformat()))["error"]["code"] == "forbidden"
        for bad in ({}, {"since": "hôm qua"}, {"since": start.isoformat(), "limit": 0},
                    {"since": start.isoformat(), "after": "mã có dấu"}):
            refused = await office.web.send("list", **bad)
            assert refused["error"]["code"] == "bad_request", bad
