"""The web pages' APIs over a real broker and a real core, through HTTP as the pages use them:
issuing at the kiosk (and its rate limit), the tracking page, the officer console, the rating
tablet, the supervisor's dashboard and exports; bad input on each, which changes nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from qms_common.devbroker import Broker, free_port
from qms_common.protocol import Topics
from tests.support.core import InProcessCore, running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site
from tests.support.web import WebServer, accounts_extra, login, running_web, web_extra


@dataclass
class Rig:
    core: InProcessCore
    web: WebServer
    probe: Probe
    topics: Topics
    http: aiohttp.ClientSession
    path: Path

    @property
    def url(self) -> str:
        return self.web.url

    async def post(self, path: str, body: Any, *, headers: dict[str, str] | None = None,
                   raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
        data = raw if raw is not None else json.dumps(body).encode()
        async with self.http.post(self.url + path, data=data,
                                  headers={"Content-Type": "application/json", **(headers or {})}) as resp:
            return resp.status, await resp.json()

    async def take(self, field: str = "dat-dai", **kw: Any) -> dict[str, Any]:
        status, body = await self.post("/api/tickets", {"field": field, **kw})
        assert status == 200 and body["ok"], body
        return body

    async def act(self, counter: str, action: str, **kw: Any) -> dict[str, Any]:
        reply = await self.probe.request(self.topics.cmd_counter(counter),
                                         {"request_id": new_id(), "action": action, **kw})
        return reply

    async def issued_count(self) -> int:
        reply = await self.probe.request(self.topics.cmd_query, {"request_id": new_id(), "query": "tickets"})
        assert reply["ok"], reply
        return len(reply["tickets"])

    async def logged_in(self, user: str) -> aiohttp.ClientSession:
        """A second browser, logged in as `user`."""
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        resp = await login(http, self.url, user)
        assert resp.status == 303, resp.status
        return http


def rig_site(tmp_path: Path, broker: Broker, more: str = "") -> Path:
    path, _ = write_site(tmp_path, broker.url, extra=web_extra(tmp_path, free_port(), more=more + accounts_extra()))
    return path


@pytest.fixture
async def rig(broker: Broker, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    more = getattr(request, "param", "")
    path = rig_site(tmp_path, broker, more)
    site_id = path.stem
    topics = Topics(site_id)
    async with Probe(broker.url) as probe, running_core(path) as core, running_web(path) as web, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await probe.subscribe(topics.state_all, topics.event_all)
        await wait_until(web, lambda: web.follower.state.core_online and web.follower.state.site is not None)
        yield Rig(core, web, probe, topics, http, path)


async def wait_until(web: WebServer, predicate: Callable[[], bool], timeout: float = 10) -> None:
    """For the server's own state: checked again at each change its hub publishes."""
    with web.follower.hub.subscribe() as sub:
        async with asyncio.timeout(timeout):
            while not predicate():
                await sub.get()


# ---------------------------------------------------------------- the kiosk


async def test_kiosk_issues_and_answers_with_the_wait(rig: Rig) -> None:
    first = await rig.take("dat-dai")
    assert first["ticket"]["number"] == "1001" and first["ahead"] == 0 and first["est_wait_s"] == 0
    second = await rig.take("dat-dai", priority=False)
    assert second["ticket"]["number"] == "1002" and second["ahead"] == 1 and second["est_wait_s"] == 300
    assert second["field_name"] == "Đất đai"
    assert second["tracking_url"] == f"{rig.url}/t/{second['ticket']['id']}"
    assert second["print"] == {"mode": "browser", "ok": True, "message": None}
    prio = await rig.take("dat-dai", priority=True)
    assert prio["ticket"]["priority"] is True and prio["ahead"] == 0
    assert await rig.issued_count() == 3


async def test_pages_render(rig: Rig) -> None:
    t = await rig.take()
    for path in ("/kiosk", "/kiosk?id=kiosk-2&lang=en", f"/t/{t['ticket']['id']}", "/rate/1", "/login", "/"):
        async with rig.http.get(rig.url + path) as resp:
            assert resp.status == 200, (path, await resp.text())
            assert resp.charset == "utf-8"
    async with rig.http.get(rig.url + f"/t/{t['ticket']['id']}/qr.svg") as resp:
        assert resp.status == 200 and resp.content_type == "image/svg+xml"
    assert (await login(rig.http, rig.url, "giamsat")).status == 303
    for path in ("/supervisor", "/counter", "/counter/1", "/counter/3?lang=en"):
        async with rig.http.get(rig.url + path) as resp:
            assert resp.status == 200, (path, await resp.text())
