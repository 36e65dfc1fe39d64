"""The web server over a real broker and a real core, through its HTTP and WebSocket interfaces:
the live feed, announcements and their clips, presence, bad input, shutdown and the command line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from display_server.tv.announcer import CHIME_URL
from qms_common.devbroker import Broker, free_port
from qms_common.protocol import Topics
from tests.support.core import InProcessCore, running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site
from tests.support.web import Feed, WebServer, running_web, web_extra


@dataclass
class Rig:
    core: InProcessCore
    web: WebServer
    probe: Probe
    topics: Topics
    http: aiohttp.ClientSession
    broker: Broker

    async def ticket(self, field: str = "dat-dai") -> dict[str, Any]:
        reply = await self.probe.request(self.topics.cmd_ticket, {"request_id": new_id(), "field": field})
        assert reply["ok"], reply
        return reply["ticket"]

    async def counter(self, cid: str, action: str, **kw: Any) -> dict[str, Any]:
        return await self.probe.request(self.topics.cmd_counter(cid), {"request_id": new_id(), "action": action, **kw})

    async def feed(self, query: str = "") -> Feed:
        ws = await self.http.ws_connect(f"{self.web.url}/display/ws{query}")
        return Feed(ws)


# the site's own TVs: their presence stays, offline, when they go
LISTED_TVS = '[display]\nids = ["phong-cho-1", "hall", "ghost"]\n'


@pytest.fixture
async def rig(broker: Broker, tmp_path: Path) -> AsyncIterator[Rig]:
    path, site_id = write_site(tmp_path, broker.url, extra=web_extra(tmp_path, free_port(), more=LISTED_TVS))
    topics = Topics(site_id)
    async with Probe(broker.url) as probe, running_core(path) as core, running_web(path) as web, \
            aiohttp.ClientSession() as http:
        await probe.subscribe(topics.status_all)
        yield Rig(core, web, probe, topics, http, broker)


async def test_snapshot_on_connect(rig: Rig) -> None:
    feed = await rig.feed()
    view = await feed.view(lambda v: v["online"])
    assert view["office"] == "Bộ phận Một cửa thử nghiệm"
    assert [(c["name"], c["status"]) for c in view["counters"]] == [
        ("Quầy 1", "closed"), ("Quầy 2", "closed"), ("Quầy 3", "closed")]
    assert [q["name"] for q in view["queues"]] == ["Đất đai", "Hộ tịch", "Chứng thực"]
    assert view["latest"] is None


async def test_a_call_is_pushed_with_its_announcement_and_clips(rig: Rig) -> None:
    t = await rig.ticket()
    # the ticket's number is rendered when it is issued (or before), ahead of any call
    async with asyncio.timeout(20):
        await rig.web.speech.wait_cached("một nghìn không trăm linh một")
    feed = await rig.feed()
    await feed.view(lambda v: v["online"] and v["queues"][0]["waiting"] == 1)
    reply = await rig.counter("1", "call_next")
    assert reply["ok"] and reply["ticket"]["number"] == t["number"] == "1001"

    # the event comes before the counter's state: the view catches up with both
    view = await feed.view(lambda v: v["latest"] is not None and v["counters"][0]["number"] is not None)
    assert view["latest"]["number"] == "1001" and view["latest"]["counter_name"] == "Quầy 1"
    assert view["counters"][0]["number"] == "1001" and view["counters"][0]["status"] == "serving"
    a = await feed.announcement("1001")
    assert a["text"] == "Mời công dân có số thứ tự một nghìn không trăm linh một đến quầy số một"
    assert a["counter_name"] == "Quầy 1" and a["recall"] is False
    assert a["clips"][0] == CHIME_URL and len(a["clips"]) == 4 and a["short"] == a["clips"][2:]
    assert rig.web.speech.renders_now == 0  # every clip of the call was on disk already
    for url in a["clips"]:
        async with rig.http.get(rig.web.url + url) as resp:
            assert resp.status == 200 and resp.content_type == "audio/wav"
            assert (await resp.read())[:4] == b"RIFF"
    await feed.view(lambda v: v["queues"][0]["waiting"] == 0)

    # a recall announces again
    assert (await rig.counter("1", "recall"))["ok"]
    again = await feed.announcement("1001")
    assert again["recall"] is True and again["clips"] == a["clips"]


async def test_a_tv_for_one_area_hears_only_its_calls(rig: Rig) -> None:
    await rig.ticket("dat-dai")
    await rig.ticket("ho-tich")
    land = await rig.feed("?fields=dat-dai")
    await land.view(lambda v: v["online"])
    assert (await rig.counter("3", "call_next"))["ticket"]["number"] == "2001"
    assert (await rig.counter("1", "call_next"))["ticket"]["number"] == "1001"
    first = await land.announcement()
    assert first["number"] == "1001"  # 2001 (hộ tịch at counter 3) was not for this TV
    view = await land.view(lambda v: v["latest"] is not None)
    assert [c["id"] for c in view["counters"]] == ["1", "2"]
    assert [q["field"] for q in view["queues"]] == ["dat-dai"]


async def test_tv_presence_online_and_offline(rig: Rig) -> None:
    status = rig.topics.status_display("phong-cho-1")
    feed = await rig.feed("?id=phong-cho-1")
    await feed.view()
    await rig.probe.wait_for(lambda m: m.topic == status and m.text == "online")
    second = await rig.feed("?id=phong-cho-1")  # two pages with one id: online until both go
    await second.view()
    mark = rig.probe.mark()
    await feed.ws.close()
    await second.ws.close()
    await rig.probe.wait_for(lambda m: m.topic == status and m.text == "offline", start=mark)
    assert [m.text for m in rig.probe.since(mark, status)] == ["offline"]
    # retained: a newcomer (the supervisor dashboard) sees it at once
    async with Probe(rig.broker.url) as late:
        await late.subscribe(status)
        m = await late.wait_for(lambda m: m.topic == status)
        assert m.text == "offline" and m.retain


async def test_web_server_presence(rig: Rig) -> None:
    status = rig.topics.status_web("web-test")
    await rig.probe.wait_for(lambda m: m.topic == status and m.text == "online")
    mark = rig.probe.mark()
    await rig.web.stop()
    await rig.probe.wait_for(lambda m: m.topic == status and m.text == "offline", start=mark)


async def test_shutdown_closes_pages_with_going_away(rig: Rig) -> None:
    feed = await rig.feed("?id=hall")
    await feed.view()
    stop = asyncio.create_task(rig.web.stop())
    async with asyncio.timeout(5):
        while True:
            msg = await feed.ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                break
    # closed by the server, saying why (a shutdown timeout would cut it: 1006)
    assert feed.ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
    await stop
    await rig.probe.wait_for(lambda m: m.topic == rig.topics.status_display("hall") and m.text == "offline")


async def test_a_tv_left_online_by_a_dead_server_is_marked_offline(broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, broker.url, extra=web_extra(tmp_path, free_port(), more=LISTED_TVS))
    topics = Topics(site_id)
    async with Probe(broker.url) as probe:
        await probe.publish(topics.status_display("ghost"), "online", retain=True)
        await probe.subscribe(topics.status_all)
        await probe.wait_for(lambda m: m.topic == topics.status_display("ghost") and m.text == "online")
        async with running_web(path):
            await probe.wait_for(lambda m: m.topic == topics.status_display("ghost") and m.text == "offline")


@pytest.mark.parametrize("path", ["/display?fields=khong-co", "/display?counters=1,99", "/display?id=Phòng",
                                  "/display?fields="])
async def test_bad_display_parameters(rig: Rig, path: str) -> None:
    async with rig.http.get(rig.web.url + path) as resp:
        assert resp.status == 400
        assert resp.charset == "utf-8"
        text = await resp.text()
        assert "không" in text or "Tham số" in text or "Mã màn hình" in text
    ws_path = path.replace("/display", "/display/ws")
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await rig.http.ws_connect(rig.web.url + ws_path)
    assert err.value.status == 400


@pytest.mark.parametrize("name", ["x.wav", "../../etc/passwd", "%2e%2e%2fsite.toml", "a" * 40 + ".wav",
                                  "a" * 40 + ".toml"])
async def test_audio_serves_only_clips(rig: Rig, name: str) -> None:
    async with rig.http.get(f"{rig.web.url}/audio/{name}") as resp:
        assert resp.status == 404


async def test_pages_are_utf8_vietnamese(rig: Rig) -> None:
    async with rig.http.get(rig.web.url + "/display?counters=1,2&id=hall-2") as resp:
        assert resp.status == 200 and resp.charset == "utf-8"
        html = await resp.text()
    assert "Bộ phận Một cửa thử nghiệm" in html and "Số vừa gọi" in html and "bật âm thanh" in html
    assert '"/display/ws?counters=1,2&id=hall-2"' in html
    async with rig.http.get(rig.web.url + "/") as resp:
        assert 'href="/display"' in await resp.text()
    async with rig.http.get(rig.web.url + CHIME_URL) as resp:
        assert resp.status == 200 and (await resp.read())[:4] == b"RIFF"


async def test_a_client_sending_garbage_changes_nothing(rig: Rig) -> None:
    feed = await rig.feed()
    await feed.view(lambda v: v["online"])
    await feed.ws.send_str("{not json")
    await feed.ws.send_bytes(b"\xff" * 1000)
    await rig.ticket()
    await feed.view(lambda v: v["queues"][0]["waiting"] == 1)  # still served


# ---------------------------------------------------------------- the command line


def test_bad_configuration_exits_with_one_line(tmp_path: Path) -> None:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra='[speech]\nrepeat = 7')
    out = subprocess.run([sys.executable, "-m", "display_server", "--config", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "speech.repeat" in out.stderr and str(path) in out.stderr and "Traceback" not in out.stderr


def test_port_in_use_is_a_clear_message(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra=web_extra(tmp_path, port))
        out = subprocess.run([sys.executable, "-m", "display_server", "--config", str(path)],
                             capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "[web] port" in out.stderr and "Traceback" not in out.stderr
