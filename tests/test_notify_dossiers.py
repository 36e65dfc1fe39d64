"""The notifier's dossier messages end to end: a real broker and core, the notifier, the stand-in
providers; the dossier service's messages on private/dossier, its `contacts` answer after a
reconnect. Received, needs documents and done each reach the phone once, with the dossier's link."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import aiomqtt
import pytest

from notifier.outbox import idempotency_key
from qms_common.config import load_site_config
from qms_common.devbroker import Broker, free_port
from qms_common.mqtt import response_properties
from qms_common.protocol import Topics
from qms_common.signing import DOSSIER, Signer, load_secret, web_secret_file
from tests import test_notify
from tests.support.core import running_core
from tests.support.dossiers import DossierClient, running_dossiers
from tests.support.mqtt import Probe
from tests.support.site import write_site
from tests.support.web import running_web, web_extra
from tests.test_notify import Standin, notify_toml, phone, running_notifier
from tests.test_web_dossiers import KEY, api_keys

standin = test_notify.standin  # the stand-in provider server, as a fixture here too

ZNS = {"dossier_received": "111", "dossier_needs": "112", "dossier_done": "113"}
PUBLIC = "https://xephang.example.vn"


def dossier_toml(standin: Standin, *, dossiers: bool = False) -> str:
    """The notifier's usual test settings with ZNS templates for the dossier kinds too."""
    extra = notify_toml(standin).replace('rate = "104" }', 'rate = "104", '
                                         + ", ".join(f'{k} = "{v}"' for k, v in ZNS.items()) + " }")
    assert "dossier_done" in extra
    return extra + ("\n[dossiers]\n" if dossiers else "")


def now() -> datetime:
    return datetime.now().astimezone()


class Dossier:
    """A dossier as the dossier service describes it on private/dossier (the contract's shape)."""

    def __init__(self, code: str, *, phone_: str, due: str = "2026-12-31", procedure: str = "Đăng ký kết hôn") -> None:
        self.code, self.phone, self.due, self.procedure = code, phone_, due, procedure
        self.timeline: list[dict[str, Any]] = []
        self.early = False

    def news(self, id_: str, status: str, *, note: str | None = None, applied: datetime | None = None,
             early: bool = False) -> dict[str, Any]:
        at = (applied or now()).isoformat()
        entry = {"id": id_, "status": status, "at": at, "note": note, "department": None, "by": "web",
                 "applied_at": at}
        if all(e["id"] != id_ for e in self.timeline):
            self.timeline.append(entry)
        self.early = self.early or (early and status == "done")
        needs = [e for e in self.timeline if e["status"] == "needs_documents"]
        current = self.timeline[-1]["status"]
        view = {"code": self.code, "procedure": {"code": "1.000894", "name": self.procedure}, "field": None,
                "received_at": self.timeline[0]["at"], "due_at": self.due, "status": current, "department": None,
                "needs": needs[-1]["note"] if needs and current == "needs_documents" else None, "reason": None,
                "documents": [], "ticket": None, "officer": None, "counter": None, "source": "counter",
                "has_phone": True, "timeline": list(self.timeline), "done_at": None, "early": self.early,
                "overdue": False, "late_days": 0, "rating": None, "version": len(self.timeline)}
        return {"dossier": view, "entry": entry, "phone": self.phone, "at": at}


def dkey(site: str, code: str, rest: str) -> str:
    return idempotency_key(site, f"d:{code}:{rest}")


def attempts(standin: Standin, key: str) -> list[dict[str, Any]]:
    """Every request the providers saw for this message (a repeat would show, even one they drop)."""
    return [e for e in standin.state.log if e["key"] == key]


@pytest.fixture
async def office(broker: Broker, tmp_path: Path, standin: Standin) -> AsyncIterator[tuple[Probe, Topics, Path]]:
    config, site = write_site(tmp_path, broker.url, extra=dossier_toml(standin))
    async with running_core(config), Probe(broker.url) as probe:
        yield probe, Topics(site), config


def zns_text(standin: Standin, template: str) -> list[str]:
    return [d.text for d in standin.state.inbox if d.text.startswith(f"Mẫu ZNS {template} ")]


async def test_received_needs_and_done_each_reach_the_phone_once_with_the_dossier_link(
        office: tuple[Probe, Topics, Path], standin: Standin) -> None:
    probe, t, config = office
    site = t.root.split("/")[1]
    d = Dossier("000.00.12.H23-261129-0001", phone_=phone(501))
    async with running_notifier(config) as n:
        # what is not the contract's shape is dropped, and changes nothing
        for junk in (b"not json", {"dossier": "x"}, {**d.news("x", "received"), "phone": "0123"},
                     {**d.news("x", "received"), "entry": ["received"]}):
            await probe.publish(t.private_dossier, junk)
        d.timeline.clear()
        await probe.publish(t.private_dossier, d.news("received", "received"))
        await standin.wait(lambda: bool(standin.delivered(dkey(site, d.code, "received"))))
        await probe.publish(t.private_dossier, d.news("ev-2", "needs_documents", note="Bản sao CCCD của hai bên"))
        await standin.wait(lambda: bool(standin.delivered(dkey(site, d.code, "needs:ev-2"))))
        await probe.publish(t.private_dossier, d.news("ev-3", "processing"))
        done = d.news("ev-4", "done", early=True)
        await probe.publish(t.private_dossier, done)
        await standin.wait(lambda: bool(standin.delivered(dkey(site, d.code, "done"))))
        # the broker delivering the same message again, and a second "done" (a corrected result)
        await probe.publish(t.private_dossier, done)
        await probe.publish(t.private_dossier, d.news("ev-5", "done", early=True))
        await probe.publish(t.private_dossier, d.news("ev-6", "returned"))
        # the notifier handles its messages in order: once another dossier's news is out, those were seen
        other = Dossier("000.00.12.H23-261129-0002", phone_=phone(502))
        await probe.publish(t.private_dossier, other.news("received", "received"))
        await standin.wait(lambda: bool(standin.delivered(dkey(site, other.code, "received"))))
        rows = [r for r in await n.outbox.all_rows() if r.ticket == d.code]
    assert sorted(r.key for r in rows) == sorted(f"d:{d.code}:{k}" for k in ("received", "needs:ev-2", "done"))
    for rest in ("received", "needs:ev-2", "done"):
        assert len(attempts(standin, dkey(site, d.code, rest))) == 1, rest
    [received] = zns_text(standin, ZNS["dossier_received"])[:1]
    [needs] = zns_text(standin, ZNS["dossier_needs"])
    [done_text] = zns_text(standin, ZNS["dossier_done"])
    assert "procedure: Đăng ký kết hôn" in received and "due: 31/12/2026" in received
    assert "needs: Bản sao CCCD của hai bên" in needs
    assert "timing: trước hẹn" in done_text
    # the link opens the dossier's own page: the web server's token for this code
    signer = Signer(load_secret(web_secret_file(load_site_config(config))))
    for text in (received, needs, done_text):
        link = text.split("link: ", 1)[1].split(";")[0].strip()
        parts = urlsplit(link)
        assert f"{parts.scheme}://{parts.netloc}" == PUBLIC and parts.path == f"/hs/{d.code}"
        assert signer.check(DOSSIER, d.code, parse_qs(parts.query)["k"][0])


async def test_by_sms_the_done_message_says_truoc_hen_without_diacritics_in_one_part(
        office: tuple[Probe, Topics, Path], standin: Standin) -> None:
    probe, t, config = office
    site = t.root.split("/")[1]
    d = Dossier("HS-2026-000777", phone_=phone(503),
                procedure="Cấp Giấy chứng nhận quyền sử dụng đất, quyền sở hữu nhà ở và tài sản khác gắn liền với đất")
    await standin.fault({"provider": "zalo", "error": -118, "phones": [d.phone]})  # no Zalo account
    async with running_notifier(config):
        await probe.publish(t.private_dossier, d.news("received", "received"))
        await probe.publish(t.private_dossier, d.news("done-1", "done", early=True))
        await standin.wait(lambda: bool(standin.delivered(dkey(site, d.code, "done"))))
    [entry] = standin.delivered(dkey(site, d.code, "done"))
    assert entry["provider"] == "esms"
    [sms] = [x.text for x in standin.state.inbox if "truoc hen" in x.text]
    assert len(sms) <= 160 and sms.isascii() and "/hs/HS-2026-000777?k=" in sms
    assert "da co ket qua (truoc hen)" in sms and "Cap Giay" in sms


async def test_a_dossier_done_while_the_notifier_was_stopped_is_sent_after_its_restart(
        office: tuple[Probe, Topics, Path], standin: Standin) -> None:
    probe, t, config = office
    site = t.root.split("/")[1]
    d = Dossier("000.00.12.H23-261129-0042", phone_=phone(504))
    async with running_notifier(config):
        await probe.publish(t.private_dossier, d.news("received", "received"))
        await standin.wait(lambda: bool(standin.delivered(dkey(site, d.code, "received"))))
    # stopped: the broker keeps its session and what comes for it
    await probe.publish(t.private_dossier, d.news("ev-9", "done"))
    async with running_notifier(config):
        await standin.wait(lambda: bool(standin.delivered(dkey(site, d.code, "done"))))
    [done_text] = zns_text(standin, ZNS["dossier_done"])
    assert "timing: hẹn trả 31/12/2026" in done_text  # not early: the promised date
    assert len(attempts(standin, dkey(site, d.code, "received"))) == 1


# ---------------------------------------------------------------- catching up with the dossier service


@contextlib.asynccontextmanager
async def dossier_service_answering(broker: Broker, t: Topics, contacts: list[dict[str, Any]],
                                    asked: list[dict[str, Any]], *, page: int = 100) -> AsyncIterator[None]:
    """The dossier service's `contacts` answer, as the contract gives it (in pages of `page`, each
    naming where the next starts), to whoever asks."""
    s = broker.url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(s[0], int(s[1]), protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe(t.cmd_dossier, qos=1)

        async def answer() -> None:
            async for m in client.messages:
                body = json.loads(m.payload)  # type: ignore[arg-type]
                asked.append(body)
                since = datetime.fromisoformat(body["since"])
                due = [c for c in contacts if datetime.fromisoformat(c["entry"]["applied_at"]) >= since]
                following = due[page]["entry"]["applied_at"] if len(due) > page else None
                reply = {"ok": True, "request_id": body["request_id"], "contacts": due[:page], "next": following}
                await client.publish(m.properties.ResponseTopic, json.dumps(reply), qos=1,  # type: ignore[union-attr]
                                     properties=response_properties(m.properties.CorrelationData))  # type: ignore[union-attr]

        task = asyncio.create_task(answer())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_the_dossier_service_is_asked_for_the_last_day_page_by_page_and_day_old_news_dropped(
        broker: Broker, tmp_path: Path, standin: Standin) -> None:
    config, site = write_site(tmp_path, broker.url, extra=dossier_toml(standin, dossiers=True))
    t = Topics(site)
    first, second = Dossier("HS-FRESH-1", phone_=phone(505)), Dossier("HS-FRESH-2", phone_=phone(510))
    contacts = [first.news("done-1", "done", applied=now() - timedelta(hours=3), early=True),
                second.news("received", "received", applied=now() - timedelta(hours=2))]
    asked: list[dict[str, Any]] = []
    old = Dossier("HS-OLD-1", phone_=phone(506))
    async with running_core(config), dossier_service_answering(broker, t, contacts, asked, page=1), \
            running_notifier(config) as n, Probe(broker.url) as probe:
        async with asyncio.timeout(10):
            await n.dossiers_caught_up.wait()
        await standin.wait(lambda: bool(standin.delivered(dkey(site, first.code, "done")))
                           and bool(standin.delivered(dkey(site, second.code, "received"))))
        # news a day old (say, kept by the broker for a notifier stopped that long): dropped
        await probe.publish(t.private_dossier, old.news("done-1", "done", applied=now() - timedelta(hours=25)))
        # written in order: once a later message is out, the earlier one is in the outbox
        later = Dossier("HS-FRESH-3", phone_=phone(511))
        await probe.publish(t.private_dossier, later.news("received", "received"))
        await standin.wait(lambda: bool(standin.delivered(dkey(site, later.code, "received"))))
        rows = {r.key: r for r in await n.outbox.all_rows()}
    assert [a["action"] for a in asked] == ["contacts", "contacts"]  # two pages, the second from `next`
    since = datetime.fromisoformat(asked[0]["since"])
    assert timedelta(hours=23) < now() - since < timedelta(hours=25)  # the window news stays fresh
    assert datetime.fromisoformat(asked[1]["since"]) == datetime.fromisoformat(contacts[1]["entry"]["applied_at"])
    assert rows[f"d:{old.code}:done"].state == "dropped"
    with sqlite3.connect(n.outbox.path) as conn:
        [(reason,)] = conn.execute("SELECT reason FROM messages WHERE key = ?", (f"d:{old.code}:done",))
    assert "24 giờ" in reason
    assert not attempts(standin, dkey(site, old.code, "done"))


async def test_a_site_whose_dossier_service_is_silent_still_gets_its_queue_messages(
        broker: Broker, tmp_path: Path, standin: Standin) -> None:
    config, site = write_site(tmp_path, broker.url, extra=dossier_toml(standin, dossiers=True))
    t = Topics(site)
    async with running_core(config), running_notifier(config) as n, Probe(broker.url) as probe:
        assert not n.dossiers_caught_up.is_set()
        reply = await probe.request(t.cmd_ticket, {"request_id": "i1", "field": "dat-dai", "phone": phone(507)})
        assert reply["ok"], reply
        await standin.wait(lambda: bool(standin.delivered(test_notify.key(site, reply["ticket"]["id"], "issued"))))
        # the dossier service comes up later: its presence has the notifier ask it then
        asked: list[dict[str, Any]] = []
        d = Dossier("HS-LATE-1", phone_=phone(508))
        async with dossier_service_answering(broker, t, [d.news("received", "received")], asked):
            await probe.publish(t.status_dossiers, "online", retain=True)
            await standin.wait(lambda: bool(standin.delivered(dkey(site, d.code, "received"))))
        await probe.publish(t.status_dossiers, b"", retain=True)  # the broker is shared: clear it
    assert len(asked) == 1


async def test_kind_channels_choose_the_dossier_messages_channels(broker: Broker, tmp_path: Path,
                                                                 standin: Standin) -> None:
    extra = dossier_toml(standin) + '\n[notify.kind_channels]\ndossier_done = ["sms"]\n'
    config, site = write_site(tmp_path, broker.url, extra=extra)
    t = Topics(site)
    d = Dossier("HS-SMS-ONLY-1", phone_=phone(509))
    async with running_core(config), running_notifier(config), Probe(broker.url) as probe:
        await probe.publish(t.private_dossier, d.news("received", "received"))
        # (a "received" still waiting when the dossier is done would be dropped as late news)
        await standin.wait(lambda: bool(standin.delivered(dkey(site, d.code, "received"))))
        await probe.publish(t.private_dossier, d.news("done-1", "done"))
        await standin.wait(lambda: bool(standin.delivered(dkey(site, d.code, "done"))))
    assert standin.delivered(dkey(site, d.code, "received"))[0]["provider"] == "zalo"
    assert standin.delivered(dkey(site, d.code, "done"))[0]["provider"] == "esms"


# ---------------------------------------------------------------- through the real dossier service


async def test_through_the_dossier_service_each_message_reaches_the_phone_once(
        broker: Broker, tmp_path: Path, standin: Standin) -> None:
    """The console records a dossier with the citizen's phone, the department asks for a document,
    the result comes a day early: three messages, each once, whatever is sent again."""
    config, site = write_site(tmp_path, broker.url, extra=dossier_toml(standin))
    t = Topics(site)
    code = "000.00.12.H23-261123-0107"
    async with running_core(config), running_dossiers(config), running_notifier(config), \
            Probe(broker.url) as probe:
        web = DossierClient(probe, t)
        created = await web.create(code, phone="0912 000 601", due_at="2026-11-27")
        assert created["ok"] and created["created"], created
        await standin.wait(lambda: bool(standin.delivered(dkey(site, code, "received"))))
        needs = await web.event(code, "tp-1", "needs_documents", "2026-11-24T09:00:00+07:00",
                                note="Bản sao giấy khai sinh")
        assert needs["applied"], needs
        await standin.wait(lambda: bool(standin.delivered(dkey(site, code, "needs:tp-1"))))
        for eid, status, at in (("tp-2", "processing", "2026-11-24T15:00:00+07:00"),
                                ("tp-3", "done", "2026-11-26T10:00:00+07:00")):
            assert (await web.event(code, eid, status, at))["applied"]
        await standin.wait(lambda: bool(standin.delivered(dkey(site, code, "done"))))
        # the integrator sends the same event again, then corrects the result: nothing more
        assert not (await web.event(code, "tp-3", "done", "2026-11-26T10:00:00+07:00"))["applied"]
        assert (await web.event(code, "tp-4", "done", "2026-11-26T11:00:00+07:00"))["applied"]
        other = "000.00.12.H23-261123-0108"
        assert (await web.create(other, phone="0912 000 602"))["ok"]
        await standin.wait(lambda: bool(standin.delivered(dkey(site, other, "received"))))
    for rest in ("received", "needs:tp-1", "done"):
        assert len(attempts(standin, dkey(site, code, rest))) == 1, rest
    [done_text] = zns_text(standin, ZNS["dossier_done"])
    assert "timing: trước hẹn" in done_text and f"/hs/{code}?k=" in done_text
    [needs_text] = zns_text(standin, ZNS["dossier_needs"])
    assert "needs: Bản sao giấy khai sinh" in needs_text


async def test_a_dossier_done_while_the_notifier_had_lost_its_session_is_caught_up(
        broker: Broker, tmp_path: Path, standin: Standin) -> None:
    config, site = write_site(tmp_path, broker.url, extra=dossier_toml(standin))
    t = Topics(site)
    code = "HS-2026-0815"
    async with running_core(config), running_dossiers(config), Probe(broker.url) as probe:
        web = DossierClient(probe, t)
        async with running_notifier(config) as n:
            assert (await web.create(code, phone="0912 000 603", due_at="2026-11-27"))["ok"]
            await standin.wait(lambda: bool(standin.delivered(dkey(site, code, "received"))))
            identifier = n.session.identifier
        # the broker loses the notifier's session (restarted without persistence, say): a clean
        # start under its client id drops it, and what comes for it meanwhile is lost
        async with Probe(broker.url, identifier=identifier):
            pass
        assert (await web.event(code, "r-1", "done", "2026-11-28T10:00:00+07:00"))["applied"]
        async with running_notifier(config) as n:
            # the site file has no [dossiers]: the service's retained presence has it asked
            async with asyncio.timeout(10):
                await n.dossiers_caught_up.wait()
            await standin.wait(lambda: bool(standin.delivered(dkey(site, code, "done"))))
    assert len(attempts(standin, dkey(site, code, "done"))) == 1
    assert len(attempts(standin, dkey(site, code, "received"))) == 1
    [done_text] = zns_text(standin, ZNS["dossier_done"])
    assert "timing: hẹn trả 27/11/2026" in done_text  # a day late: the promised date, not "trước hẹn"


async def test_over_the_http_api_the_done_message_reaches_the_phone_once(
        broker: Broker, tmp_path: Path, standin: Standin) -> None:
    """The province's system, as an integrator does it: the dossier created over HTTP with the
    citizen's phone, the result posted, posted again after a lost answer, then corrected: the
    citizen hears "received" once and "done" once, early, with the link the API answered."""
    notify = dossier_toml(standin).replace(f'[web]\npublic_url = "{PUBLIC}"\n', "")
    assert "[web]" not in notify  # the web server's own [web] carries the public address
    config, site = write_site(tmp_path, broker.url, extra=web_extra(
        tmp_path, free_port(), web=f'public_url = "{PUBLIC}"', more=notify + api_keys()))
    code, other = "000.00.12.H23-261129-0201", "000.00.12.H23-261129-0202"
    today = now().date()
    async with running_core(config), running_dossiers(config), running_notifier(config), \
            running_web(config) as web, aiohttp.ClientSession() as http:
        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            async with http.post(web.url + path, json=body, headers={"Authorization": f"Bearer {KEY}"}) as resp:
                answer = await resp.json()
                assert resp.status in (200, 201), answer
                return answer

        created = await post("/api/v1/dossiers", {"code": code, "procedure": "Đăng ký kết hôn",
                                                  "due_at": (today + timedelta(days=10)).isoformat(),
                                                  "phone": "0912 000 701"})
        await standin.wait(lambda: bool(standin.delivered(dkey(site, code, "received"))))
        result = {"id": "tinh-kq-1", "status": "done", "at": now().isoformat()}
        assert (await post(f"/api/v1/dossiers/{code}/events", result))["applied"] is True
        await standin.wait(lambda: bool(standin.delivered(dkey(site, code, "done"))))
        # the integrator lost the answer and sends it again; then corrects the result
        assert (await post(f"/api/v1/dossiers/{code}/events", result))["applied"] is False
        corrected = {"id": "tinh-kq-2", "status": "done", "at": now().isoformat(), "note": "Bản đã sửa"}
        assert (await post(f"/api/v1/dossiers/{code}/events", corrected))["applied"] is True
        # the notifier handles its messages in order: once another dossier's news is out, those were seen
        await post("/api/v1/dossiers", {"code": other, "procedure": "Đăng ký kết hôn",
                                        "due_at": (today + timedelta(days=10)).isoformat(), "phone": "0912 000 702"})
        await standin.wait(lambda: bool(standin.delivered(dkey(site, other, "received"))))
    assert len(attempts(standin, dkey(site, code, "received"))) == 1
    assert len(attempts(standin, dkey(site, code, "done"))) == 1
    [done_text] = zns_text(standin, ZNS["dossier_done"])
    assert "timing: trước hẹn" in done_text
    assert f"link: {created['url']}" in done_text and created["url"] == f"{PUBLIC}/hs/{code}?k={created['token']}"
