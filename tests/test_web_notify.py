"""The citizen's phone number on the web pages (docs/web.md): the kiosk's optional entry (checked
before the core hears of it, never in an answer), the tracking page's promise of a message, and
the supervisor's panel of the notifier's retained stats, over a real broker, core and web server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from display_server.feed.state import SiteState
from display_server.notify import notify_channels, notify_panel, tracking_notice
from qms_common.config import load_site_config
from qms_common.devbroker import Broker, free_port
from qms_common.phones import PHONE_HINT
from qms_common.protocol import Topics
from tests.support.core import running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site
from tests.support.web import Feed, WebServer, accounts_extra, login, page_config, running_web, web_extra

NOTIFY = '[notify]\nahead = 3\nphone_days = 30\n'
PHONE = "84912345678"
# what the notifier publishes (notifier/service.py, Notifier.stats): 02:05 UTC is 09:05 in Hà Nội
STATS = {
    "day": "2026-11-21",
    "channels": {"zalo": {"sent": 4, "delivered": 6, "failed": 1, "pending": 2, "sending": 1},
                 "sms": {"sent": 3, "dropped": 2}, "webhook:0": {"delivered": 5}},
    "failures": [{"at": 1795226700, "channel": "zalo", "kind": "nears", "phone": "09x…x78",
                  "reason": "-124: người dùng chưa quan tâm OA", "state": "failed"}],
    "zalo_quota_left": 487,
    "at": "2026-11-21T09:06:00+07:00",
}


@dataclass
class Rig:
    web: WebServer
    probe: Probe
    topics: Topics
    http: aiohttp.ClientSession

    async def post(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self.http.post(self.web.url + "/api/tickets", json=body) as resp:
            return resp.status, await resp.json()

    async def issued(self) -> list[dict[str, Any]]:
        reply = await self.probe.request(self.topics.cmd_query, {"request_id": new_id(), "query": "tickets"})
        assert reply["ok"], reply
        return reply["tickets"]


@pytest.fixture
async def rig(broker: Broker, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    more = getattr(request, "param", NOTIFY)
    path, site_id = write_site(tmp_path, broker.url,
                               extra=web_extra(tmp_path, free_port(), more=more + accounts_extra()))
    topics = Topics(site_id)
    async with Probe(broker.url) as probe, running_core(path), running_web(path) as web, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        # the test broker has no ACL: the probe hears the core's private topic as the notifier would
        await probe.subscribe(topics.private_contact)
        follower = web.follower
        with follower.hub.subscribe() as sub:
            while not (follower.state.core_online and follower.state.site is not None):
                await sub.get()
        yield Rig(web, probe, topics, http)


# ---------------------------------------------------------------- the kiosk


async def test_a_wrong_number_issues_nothing_and_a_right_one_reaches_the_core_only(rig: Rig) -> None:
    for wrong in ("12345", "0212345678", "+1 202 555 0100", "09123456789", "٠٩١٢٣٤٥٦٧٨", 912345678):
        status, body = await rig.post({"field": "dat-dai", "kiosk": "kiosk-1", "phone": wrong})
        assert status == 400 and body["error"]["code"] in ("bad_phone", "bad_request"), body
        if isinstance(wrong, str):
            assert body["error"] == {"code": "bad_phone", "message": PHONE_HINT}
    assert await rig.issued() == []
    status, body = await rig.post({"field": "dat-dai", "kiosk": "kiosk-1", "phone": "0912 345 678",
                                   "request_id": "tap-1"})
    assert status == 200 and body["ok"], body
    # the answer (what the kiosk shows and prints) never holds the number
    assert "912345678" not in json.dumps(body) and "has_phone" not in body["ticket"]
    contact = await rig.probe.wait_topic(rig.topics.private_contact)
    assert contact["phone"] == PHONE and contact["ticket"]["id"] == body["ticket"]["id"]
    # a retry of the same tap gets the same ticket, not a second one
    status, again = await rig.post({"field": "dat-dai", "kiosk": "kiosk-1", "phone": "0912 345 678",
                                    "request_id": "tap-1"})
    assert status == 200 and again["ticket"]["id"] == body["ticket"]["id"]
    # an empty entry ("Bỏ qua") issues without a phone
    status, skipped = await rig.post({"field": "dat-dai", "kiosk": "kiosk-1", "phone": ""})
    assert status == 200 and skipped["ok"]
    assert [t["has_phone"] for t in await rig.issued()] == [True, False]
    # in English, the same refusal in English
    async with rig.http.post(rig.web.url + "/api/tickets?lang=en", json={"field": "dat-dai", "phone": "1"}) as resp:
        assert resp.status == 400 and (await resp.json())["error"]["message"].startswith("The phone number")


async def test_the_kiosk_offers_the_phone_entry_with_its_consent(rig: Rig) -> None:
    async with rig.http.get(rig.web.url + "/kiosk?id=kiosk-1") as resp:
        html = await resp.text()
    phone = page_config(html)["phone"]
    assert phone["consent"] == ("Nhập số điện thoại nếu ông/bà muốn nhận tin Zalo hoặc tin nhắn SMS khi sắp đến "
                                "lượt. Số chỉ dùng để báo lượt và được xoá sau 30 ngày.")
    assert 'id="keypad"' in html and "Bỏ qua" in html and "Lấy số" in html


@pytest.mark.parametrize("rig", [""], indirect=True)
async def test_without_notify_no_phone_is_asked_or_taken(rig: Rig) -> None:
    async with rig.http.get(rig.web.url + "/kiosk?id=kiosk-1") as resp:
        html = await resp.text()
    assert page_config(html)["phone"] is None and 'id="keypad"' not in html
    status, body = await rig.post({"field": "dat-dai", "kiosk": "kiosk-1", "phone": "0912345678"})
    assert status == 400 and body["error"]["message"].startswith("Nơi này không gửi tin nhắn"), body
    assert await rig.issued() == []
    status, body = await rig.post({"field": "dat-dai", "kiosk": "kiosk-1", "phone": None})
    assert status == 200 and body["ok"]


# ---------------------------------------------------------------- the tracking page


async def test_the_tracking_page_says_which_message_will_come_and_when(rig: Rig) -> None:
    for _ in range(4):
        await rig.post({"field": "dat-dai", "kiosk": "kiosk-1"})
    _, mine = await rig.post({"field": "dat-dai", "kiosk": "kiosk-1", "phone": "0912345678"})
    _, other = await rig.post({"field": "dat-dai", "kiosk": "kiosk-1"})
    feed = Feed(await rig.http.ws_connect(rig.web.url + urlsplit(mine["tracking_url"]).path + "/ws"))
    view = await feed.view(lambda v: v["found"] and v["ahead"] == 4)
    assert view["notify"] == {"channel": "zalo", "ahead": 3}
    await feed.ws.close()
    feed = Feed(await rig.http.ws_connect(rig.web.url + urlsplit(other["tracking_url"]).path + "/ws"))
    view = await feed.view(lambda v: v["found"] and v["ahead"] == 5)
    assert view["notify"] is None
    await feed.ws.close()


def test_the_tracking_notice_follows_the_channel_order(tmp_path: Path) -> None:
    def site(extra: str) -> Any:
        return load_site_config(write_site(tmp_path, "mqtt://127.0.0.1:1", extra=extra)[0])

    waiting = {"status": "waiting", "has_phone": True}
    sms_first = site('[notify]\nahead = 2\nchannels = ["sms", "zalo"]\n')
    assert notify_channels(sms_first) == ("sms", "zalo")
    assert tracking_notice(waiting, 5, sms_first) == {"channel": "sms", "ahead": 2}
    assert tracking_notice(waiting, 2, sms_first) is None  # that near, the message is out already
    assert tracking_notice({**waiting, "status": "serving"}, None, sms_first) is None
    assert tracking_notice({**waiting, "has_phone": False}, 5, sms_first) is None
    assert tracking_notice(waiting, 5, site('[notify]\nchannels = []\n')) is None  # webhooks only
    assert tracking_notice(waiting, 5, site("")) is None
    assert notify_channels(site("[notify]\n")) == ("zalo", "sms")
    # the promise is the "turn nears" message: its own order when the site gives it one
    nears_by_sms = site('[notify]\nchannels = ["zalo", "sms"]\n[notify.kind_channels]\nnears = ["sms"]\n')
    assert tracking_notice(waiting, 5, nears_by_sms) == {"channel": "sms", "ahead": 3}
    assert notify_channels(nears_by_sms) == ("zalo", "sms")


# ---------------------------------------------------------------- the supervisor


def test_the_panel_takes_what_it_can_of_any_stats(tmp_path: Path) -> None:
    site = load_site_config(write_site(tmp_path, "mqtt://127.0.0.1:1", extra=NOTIFY)[0])
    panel = notify_panel(STATS, "online", site)
    assert panel is not None and panel["status"] == "online" and panel["quota_left"] == 487
    assert [c["route"] for c in panel["channels"]] == ["zalo", "sms", "webhook:0"]
    assert panel["channels"][0] == {"route": "zalo", "sent": 10, "delivered": 6, "failed": 1, "dropped": 0,
                                    "pending": 3}
    assert panel["failures"] == [{"time": "09:05", "channel": "zalo", "kind": "nears", "phone": "09x…x78",
                                  "reason": "-124: người dùng chưa quan tâm OA", "state": "failed"}]
    junk = {"channels": {"zalo": "x", "sms": {"sent": -1, "failed": True}}, "failures": [1, {"at": "hôm qua"}],
            "zalo_quota_left": "nhiều"}
    panel = notify_panel(junk, None, site)
    assert panel is not None and panel["status"] == "unknown" and panel["quota_left"] is None
    assert panel["channels"][1] == {"route": "sms", "sent": 0, "delivered": 0, "failed": 0, "dropped": 0, "pending": 0}
    assert panel["failures"] == [{"time": None, "channel": None, "kind": None, "phone": None, "reason": None,
                                  "state": None}]
    assert notify_panel(STATS, "online", load_site_config(write_site(tmp_path, "mqtt://127.0.0.1:1")[0])) is None
    state = SiteState()
    assert state.apply(("notify", "stats"), b"not json") is None and state.notify_stats is None
    assert state.apply(("notify", "stats"), json.dumps(STATS).encode()) is not None
    assert state.notify_stats == STATS
    assert state.apply(("notify", "stats"), b"") is not None and state.notify_stats is None


async def test_the_dashboard_shows_the_notifier_s_retained_stats(rig: Rig) -> None:
    await rig.probe.publish(rig.topics.notify_stats, STATS, retain=True)
    await rig.probe.publish(rig.topics.status_notify, b"online", retain=True)
    assert (await login(rig.http, rig.web.url, "giamsat")).status == 303
    async with rig.http.get(rig.web.url + "/supervisor") as resp:
        assert "Tin nhắn cho công dân" in await resp.text()
    feed = Feed(await rig.http.ws_connect(rig.web.url + "/supervisor/ws"))
    view = await feed.view(lambda v: v["notify"]["status"] == "online" and bool(v["notify"]["channels"]))
    assert view["notify"]["quota_left"] == 487 and view["notify"]["failures"][0]["time"] == "09:05"
    # live: the notifier goes away, its next figures come
    await rig.probe.publish(rig.topics.status_notify, b"offline", retain=True)
    await rig.probe.publish(rig.topics.notify_stats, {**STATS, "zalo_quota_left": 486}, retain=True)
    await feed.view(lambda v: v["notify"]["status"] == "offline" and v["notify"]["quota_left"] == 486)
    await feed.ws.close()


@pytest.mark.parametrize("rig", [""], indirect=True)
async def test_without_notify_the_dashboard_has_no_messages_panel(rig: Rig) -> None:
    await rig.probe.publish(rig.topics.notify_stats, STATS, retain=True)
    assert (await login(rig.http, rig.web.url, "giamsat")).status == 303
    async with rig.http.get(rig.web.url + "/supervisor") as resp:
        assert "Tin nhắn cho công dân" not in await resp.text()
    feed = Feed(await rig.http.ws_connect(rig.web.url + "/supervisor/ws"))
    view = await feed.view()
    assert view["notify"] is None
    await feed.ws.close()
