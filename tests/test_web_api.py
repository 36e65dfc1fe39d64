"""The web pages' APIs over a real broker and a real core, through HTTP as the pages use them:
issuing at the kiosk (and its rate limit), the tracking page, the officer console, the rating
tablet, the supervisor's dashboard and exports; bad input on each, which changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import pytest
from yarl import URL

from display_server.accounts.auth import AUTH
from display_server.base import RECORDS
from display_server.feed.records import iter_records
from qms_common.devbroker import Broker, free_port
from qms_common.protocol import Topics
from tests.support.core import InProcessCore, running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site
from tests.support.web import (
    ACCOUNTS,
    Feed,
    WebServer,
    accounts_extra,
    csrf_of,
    login,
    pairing_code,
    running_web,
    web_extra,
)


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

    @contextlib.asynccontextmanager
    async def browser(self, user: str | None = None) -> AsyncIterator[aiohttp.ClientSession]:
        """Another browser, logged in as `user` if given."""
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            if user is not None:
                resp = await login(http, self.url, user)
                assert resp.status == 303, resp.status
            yield http

    @contextlib.asynccontextmanager
    async def tablet(self, counter: str) -> AsyncIterator[aiohttp.ClientSession]:
        """A rating tablet paired with this counter, the way an office does it: a supervisor makes
        a code on /supervisor/pairing, the tablet enters it on its "chưa ghép nối" page."""
        async with self.browser("giamsat") as boss:
            code = await pairing_code(boss, self.url, counter)
        async with self.browser() as http:
            async with http.post(f"{self.url}/rate/{counter}/pair", data={"code": code},
                                 allow_redirects=False) as resp:
                assert resp.status == 303, await resp.text()
            yield http

    async def feed(self, http: aiohttp.ClientSession, path: str) -> Feed:
        return Feed(await http.ws_connect(self.url + path))

    def counter_state(self, counter: str) -> dict[str, Any]:
        return self.web.follower.state.counters.get(counter, {})


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
    # the ticket's page, with its token: a ticket id alone is easy to guess
    assert re.fullmatch(rf"{rig.url}/t/{second['ticket']['id']}/[\w-]{{16}}", second["tracking_url"])
    assert second["qr_url"] == urlsplit(second["tracking_url"]).path + "/qr.svg"
    assert second["print"] == {"mode": "browser", "ok": True, "message": None}
    prio = await rig.take("dat-dai", priority=True)
    assert prio["ticket"]["priority"] is True and prio["ahead"] == 0
    assert await rig.issued_count() == 3


async def test_pages_render(rig: Rig) -> None:
    t = await rig.take()
    for path in ("/kiosk", "/kiosk?id=kiosk-2&lang=en", urlsplit(t["tracking_url"]).path, "/login", "/"):
        async with rig.http.get(rig.url + path) as resp:
            assert resp.status == 200, (path, await resp.text())
            assert resp.charset == "utf-8"
    async with rig.tablet("1") as tablet, tablet.get(rig.url + "/rate/1") as resp:
        assert resp.status == 200
    async with rig.http.get(rig.url + t["qr_url"]) as resp:
        assert resp.status == 200 and resp.content_type == "image/svg+xml"
    assert (await login(rig.http, rig.url, "giamsat")).status == 303
    for path in ("/supervisor", "/counter", "/counter/1", "/counter/3?lang=en"):
        async with rig.http.get(rig.url + path) as resp:
            assert resp.status == 200, (path, await resp.text())


async def call(http: aiohttp.ClientSession, url: str, body: Any = None, *, csrf: str | None = None,
               raw: bytes | None = None, content_type: str = "application/json",
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    h = {"Content-Type": content_type, **(headers or {})}
    if csrf is not None:
        h["X-CSRF-Token"] = csrf
    data = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode()
    async with http.post(url, data=data, headers=h, allow_redirects=False) as resp:
        return resp.status, await resp.json()


def vietnamese(message: str) -> bool:
    """A message for people: some letter only Vietnamese has."""
    return any(ch in message for ch in "ăâđêôơưàảãáạằắặầấậèẻẽéẹềếệìỉĩíịòỏõóọồốộờớợùủũúụừứựỳỷỹýỵ")


@pytest.mark.parametrize(("raw", "content_type", "status", "code"), [
    (b"{broken", "application/json", 400, "bad_request"),
    (b"[1, 2]", "application/json", 400, "bad_request"),
    (b"\xff\xfe{}", "application/json", 400, "bad_request"),
    (b"", "application/json", 400, "bad_request"),
    (b'{"field": 5}', "application/json", 400, "bad_request"),
    (b'{"field": "\xc4\x90\xe1\xba\xa5t \xc4\x91ai"}', "application/json", 400, "bad_request"),
    (b'{"field": "dat-dai", "priority": "yes"}', "application/json", 400, "bad_request"),
    (b'{"field": "dat-dai", "phone": "0912345678"}', "application/json", 400, "bad_request"),
    (b'{"field": "dat-dai", "kiosk": "Ki \xe1\xbb\x91t"}', "application/json", 400, "bad_request"),
    (b'{"field": "dat-dai", "request_id": 5}', "application/json", 400, "bad_request"),
    (b'{"field": "khong-co"}', "application/json", 404, "unknown_field"),
    (b'{"field": "dat-dai"}', "text/plain", 415, "bad_request"),
    (b'{"field": "dat-dai", "x": "' + b"a" * 100_000 + b'"}', "application/json", 413, "too_large"),
])
async def test_kiosk_bad_input_issues_nothing(rig: Rig, raw: bytes, content_type: str, status: int,
                                             code: str) -> None:
    got, body = await call(rig.http, rig.url + "/api/tickets", raw=raw, content_type=content_type)
    assert (got, body["ok"], body["error"]["code"]) == (status, False, code), body
    assert vietnamese(body["error"]["message"]), body
    assert await rig.issued_count() == 0
    english = await call(rig.http, rig.url + "/api/tickets?lang=en", raw=raw, content_type=content_type)
    assert english[0] == status and not vietnamese(english[1]["error"]["message"])


@pytest.mark.parametrize("rig", ['[kiosk]\nids = ["kiosk-1", "kiosk-2"]\ntickets_per_minute = 3\n'], indirect=True)
async def test_kiosk_rate_limit(rig: Rig) -> None:
    for _ in range(3):
        await rig.take(kiosk="kiosk-1")
    async with rig.http.post(rig.url + "/api/tickets", json={"field": "dat-dai", "kiosk": "kiosk-1"}) as resp:
        body = await resp.json()
        assert resp.status == 429 and 1 <= int(resp.headers["Retry-After"]) <= 20
    assert body["error"]["code"] == "rate_limited"
    assert "quá 3 số trong một phút" in body["error"]["message"], body
    assert await rig.issued_count() == 3  # the fourth tap issued nothing
    await rig.take(kiosk="kiosk-2")  # another kiosk has its own allowance
    assert await rig.issued_count() == 4


@pytest.mark.parametrize("rig", ['[kiosk]\nids = ["kiosk-1"]\n'], indirect=True)
async def test_only_declared_kiosks_issue(rig: Rig) -> None:
    status, body = await call(rig.http, rig.url + "/api/tickets", {"field": "dat-dai", "kiosk": "kiosk-9"})
    assert status == 403 and "kiosk-1" in body["error"]["message"]
    status, _ = await call(rig.http, rig.url + "/api/tickets", {"field": "dat-dai"})  # no id: not declared either
    assert status == 403
    async with rig.http.get(rig.url + "/kiosk?id=kiosk-9") as resp:
        assert resp.status == 403 and "kiosk-1" in await resp.text()
    assert await rig.issued_count() == 0
    await rig.take(kiosk="kiosk-1")


async def test_a_repeated_request_issues_one_ticket(rig: Rig) -> None:
    a = await rig.take(request_id="tap-1", kiosk="kiosk-1")
    b = await rig.take(request_id="tap-1", kiosk="kiosk-1")
    assert a["ticket"] == b["ticket"]
    c = await rig.take(request_id="tap-1", kiosk="kiosk-2")  # another kiosk's tap-1 is another tap
    assert c["ticket"]["number"] == "1002"
    assert await rig.issued_count() == 2


async def test_a_post_from_another_site_is_refused(rig: Rig) -> None:
    status, body = await call(rig.http, rig.url + "/api/tickets", {"field": "dat-dai"},
                              headers={"Origin": "http://evil.example"})
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, _ = await call(rig.http, rig.url + "/api/rate/1", {"score": 3}, headers={"Origin": "null"})
    assert status == 403
    assert await rig.issued_count() == 0
    status, _ = await call(rig.http, rig.url + "/api/tickets", {"field": "dat-dai"}, headers={"Origin": rig.url})
    assert status == 200


async def test_kiosk_without_the_core_says_so_clearly(broker: Broker, own_broker: Broker, tmp_path: Path) -> None:
    path = rig_site(tmp_path, own_broker)
    async with running_web(path) as web, aiohttp.ClientSession() as http:
        # the broker is there but no core answers
        status, body = await call(http, web.url + "/api/tickets", {"field": "dat-dai"})
        assert status == 503 and body["error"]["message"] == "Máy chủ hàng đợi không trả lời. Vui lòng thử lại."
        own_broker.stop()
        status, body = await call(http, web.url + "/api/tickets", {"field": "dat-dai"})
        assert status == 503
        assert body["error"]["message"] == "Mất kết nối tới máy chủ hàng đợi. Vui lòng thử lại sau ít phút."
        async with http.get(web.url + "/kiosk") as resp:
            assert resp.status == 200  # the page itself is served, and says the system is away


# ---------------------------------------------------------------- the tracking page


async def test_tracking_page_follows_its_ticket(rig: Rig) -> None:
    await rig.take()
    path = urlsplit((await rig.take())["tracking_url"]).path
    feed = await rig.feed(rig.http, f"{path}/ws")
    view = await feed.view(lambda v: v["found"] and v["online"])
    assert (view["ticket"]["number"], view["ticket"]["status"], view["ahead"]) == ("1002", "waiting", 1)
    assert view["ticket"]["field_name"] == "Đất đai" and view["est_wait_s"] == 300
    assert (await rig.act("1", "call_next"))["ok"]
    view = await feed.view(lambda v: v["ahead"] == 0)
    assert (await rig.act("2", "call_next"))["ticket"]["number"] == "1002"
    view = await feed.view(lambda v: v["ticket"]["status"] == "serving")
    assert (view["ticket"]["counter"], view["ticket"]["counter_name"], view["ahead"]) == ("2", "Quầy 2", None)
    await rig.act("2", "finish")
    await feed.view(lambda v: v["ticket"]["status"] == "done")
    await feed.ws.close()
    async with rig.http.get(rig.url + path) as resp:
        assert resp.status == 200


@pytest.mark.parametrize("path", ["/t/khong-phai-ma-ve/AAAAAAAAAAAAAAAA", "/t/20261121-dat-dai-9999/AAAAAAAAAAAAAAAA",
                                  "/t/..%2F..%2Fetc/x", "/t/" + "1" * 200 + "/x", "/t/MINE", "/t/MINE/AAAAAAAAAAAAAAAA",
                                  "/t/MINE/AAAAAAAAAAAAAAAA/qr.svg", "/t/MINE/AAAAAAAAAAAAAAAA/ws", "/t/x/y/ws"])
async def test_tracking_a_ticket_without_its_token(rig: Rig, path: str) -> None:
    """Only the address on the ticket's own slip opens its page (on main, the ticket id did)."""
    mine = (await rig.take())["ticket"]["id"]
    async with rig.http.get(rig.url + path.replace("MINE", mine)) as resp:
        assert resp.status == 404
        if path.count("/") == 3:
            assert "Không tìm thấy phiếu này" in await resp.text()


# ---------------------------------------------------------------- accounts


async def test_without_a_session(rig: Rig) -> None:
    for path in ("/counter/1", "/counter", "/supervisor"):
        async with rig.http.get(rig.url + path, allow_redirects=False) as resp:
            assert resp.status == 302 and unquote(resp.headers["Location"]) == "/login?next=" + path
    status, body = await call(rig.http, rig.url + "/api/counter/1", {"action": "call_next"})
    assert status == 401 and body["error"]["message"] == "Cần đăng nhập."
    for path in ("/api/me", "/supervisor/export/tickets.csv"):
        async with rig.http.get(rig.url + path) as resp:
            assert resp.status == 401
    for path in ("/counter/1/ws", "/supervisor/ws"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await rig.http.ws_connect(rig.url + path)
        assert err.value.status == 401
    assert rig.counter_state("1").get("status") == "closed"


async def test_login_lands_where_asked_or_on_the_account_s_page(rig: Rig) -> None:
    async with rig.browser() as http:
        resp = await login(http, rig.url, "canbo3")
        assert resp.status == 303 and resp.headers["Location"] == "/counter/3"
        cookie = resp.cookies["qms_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    async with rig.browser() as http:
        assert (await login(http, rig.url, "giamsat")).headers["Location"] == "/supervisor"
    async with rig.browser() as http:
        assert (await login(http, rig.url, "canbo1")).headers["Location"] == "/counter"
    async with rig.browser() as http:
        assert (await login(http, rig.url, "canbo1", next_path="/counter/2")).headers["Location"] == "/counter/2"
    for evil in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        async with rig.browser() as http:
            assert (await login(http, rig.url, "canbo1", next_path=evil)).headers["Location"] == "/counter"


async def test_wrong_passwords_are_refused_then_limited(rig: Rig) -> None:
    async with rig.browser() as http:
        resp = await login(http, rig.url, "canbo1", "sai-mat-khau")
        assert resp.status == 401 and "qms_session" not in resp.cookies
        resp = await login(http, rig.url, "khong-co-ai", "sai-mat-khau")
        assert resp.status == 401
        for _ in range(4):
            assert (await login(http, rig.url, "canbo1", "sai-mat-khau")).status == 401
        # five wrong for this name within the window: even the right password waits now
        resp = await login(http, rig.url, "canbo1")
        assert resp.status == 429 and "qms_session" not in resp.cookies
        async with http.get(rig.url + "/api/me") as me:
            assert me.status == 401
    auth = rig.web.app[AUTH]
    later = auth.clock() + 301
    auth.clock = lambda: later  # the window has passed
    async with rig.browser() as http:
        assert (await login(http, rig.url, "canbo1")).status == 303


async def test_the_login_form_s_own_token(rig: Rig) -> None:
    form = {"username": "canbo1", "password": ACCOUNTS["canbo1"][0]}
    async with rig.http.post(rig.url + "/login", data=form, allow_redirects=False) as resp:
        assert resp.status == 403 and "hết hạn" in await resp.text()
    async with rig.http.post(rig.url + "/login", data={**form, "csrf": "doan-bua"}, allow_redirects=False) as resp:
        assert resp.status == 403
    async with rig.http.post(rig.url + "/login", data=b"x" * 10_000,
                             headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
        assert resp.status == 413 and "quá lớn" in await resp.text()
    async with rig.http.get(rig.url + "/api/me") as me:
        assert me.status == 401


async def test_an_officer_uses_only_their_counters(rig: Rig) -> None:
    async with rig.browser("canbo1") as http:
        csrf = await csrf_of(http, rig.url + "/counter/1")
        for path in ("/counter/3", "/supervisor"):
            async with http.get(rig.url + path) as resp:
                assert resp.status == 403 and resp.charset == "utf-8"
                assert "Tài khoản này không được dùng quầy này" in await resp.text() or path == "/supervisor"
        status, body = await call(http, rig.url + "/api/counter/3", {"action": "open"}, csrf=csrf)
        assert status == 403 and body["error"]["message"] == "Tài khoản này không được dùng quầy này."
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(rig.url + "/counter/3/ws")
        assert err.value.status == 403
        async with http.get(rig.url + "/supervisor/export/tickets.csv") as resp:
            assert resp.status == 403
        async with http.get(rig.url + "/counter") as resp:
            html = await resp.text()
        assert 'href="/counter/1"' in html and 'href="/counter/2"' in html and 'href="/counter/3"' not in html
        async with http.get(rig.url + "/api/me") as resp:
            assert (await resp.json())["counters"] == ["1", "2"]
    assert rig.counter_state("3").get("status") == "closed"
    async with rig.browser("giamsat") as http:  # a supervisor may use every counter
        csrf = await csrf_of(http, rig.url + "/counter/3")
        status, body = await call(http, rig.url + "/api/counter/3", {"action": "open"}, csrf=csrf)
        assert status == 200 and body["counter"]["officer"] == "Lê Quang Hải"


async def test_every_console_command_needs_the_session_s_csrf_token(rig: Rig) -> None:
    async with rig.browser("canbo1") as http:
        csrf = await csrf_of(http, rig.url + "/counter/1")
        for token in (None, "", "doan-bua", csrf[:-1]):
            status, body = await call(http, rig.url + "/api/counter/1", {"action": "open"}, csrf=token)
            assert status == 403 and body["error"]["code"] == "csrf", token
        assert rig.counter_state("1").get("status") == "closed"
        status, body = await call(http, rig.url + "/api/counter/1", {"action": "open"}, csrf=csrf,
                                  headers={"Origin": "http://evil.example"})
        assert status == 403
        status, body = await call(http, rig.url + "/api/counter/1", {"action": "open"}, csrf=csrf)
        assert status == 200 and body["counter"]["status"] == "open"
        assert body["counter"]["officer"] == "Nguyễn Thị Hoa"  # the account's name, not anything the page sends
        # logging out needs the token too
        async with http.post(rig.url + "/logout", data={"csrf": "sai"}, allow_redirects=False) as resp:
            assert resp.status == 403
        async with http.get(rig.url + "/api/me") as resp:
            assert resp.status == 200


async def test_logout_and_expiry_end_the_session_and_its_live_pages(rig: Rig) -> None:
    async with rig.browser("canbo1") as http:
        csrf = await csrf_of(http, rig.url + "/counter/1")
        feed = await rig.feed(http, "/counter/1/ws")
        await feed.view()
        async with http.post(rig.url + "/logout", data={"csrf": csrf}, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/login"
        await rig.take()  # a change: the feed looks at its session again, and closes
        async with asyncio.timeout(10):
            while (await feed.ws.receive()).type == aiohttp.WSMsgType.TEXT:
                pass
        assert feed.ws.close_code == 4401
        status, _ = await call(http, rig.url + "/api/counter/1", {"action": "open"}, csrf=csrf)
        assert status == 401
    async with rig.browser("canbo1") as http:
        csrf = await csrf_of(http, rig.url + "/counter/1")
        auth = rig.web.app[AUTH]
        later = auth.clock() + 12 * 3600 + 1
        auth.clock = lambda: later
        status, _ = await call(http, rig.url + "/api/counter/1", {"action": "open"}, csrf=csrf)
        assert status == 401
        async with http.get(rig.url + "/counter/1", allow_redirects=False) as resp:
            assert resp.status == 302


# ---------------------------------------------------------------- the console


async def test_the_console_runs_a_counter(rig: Rig) -> None:
    async with rig.browser("canbo1") as http:
        csrf = await csrf_of(http, rig.url + "/counter/1")

        async def act(action: str, **kw: Any) -> tuple[int, dict[str, Any]]:
            return await call(http, rig.url + "/api/counter/1", {"action": action, **kw}, csrf=csrf)

        feed = await rig.feed(http, "/counter/1/ws")
        view = await feed.view(lambda v: v["online"])
        assert view["counter"]["name"] == "Quầy 1" and [q["field"] for q in view["queues"]] == ["dat-dai"]
        assert {c["id"] for c in view["transfer_counters"]} == {"2", "3"}
        status, body = await act("call_next")
        assert status == 409 and body["error"]["message"] == "Không còn công dân nào đang chờ."
        assert body["counter"]["status"] == "open"  # "next" opened it, as a keypad's would
        for _ in range(3):
            await rig.take()
        await feed.view(lambda v: v["queues"][0]["waiting"] == 3 and v["queues"][0]["next"] == ["1001", "1002", "1003"])
        status, body = await act("call_next")
        assert status == 200 and body["ticket"]["number"] == "1001" and body["counter"]["status"] == "serving"
        assert (await act("recall"))[1]["ticket"]["calls"] == 2
        assert (await act("skip"))[1]["ticket"]["status"] == "no_show"
        view = await feed.view(lambda v: [n["number"] for n in v["no_shows"]] == ["1001"])
        status, body = await act("call", ticket=view["no_shows"][0]["id"])  # called back from the list
        assert status == 200 and body["ticket"]["number"] == "1001" and body["ticket"]["calls"] == 3
        assert (await act("transfer", to_field="ho-tich"))[1]["ticket"]["status"] == "transferred"
        assert (await act("call", ticket="1002"))[1]["ticket"]["number"] == "1002"  # by its number
        status, body = await act("transfer", to_counter="3")
        assert status == 200 and body["ticket"]["counter"] == "3"
        async with rig.browser("canbo3") as other:
            there = await rig.feed(other, "/counter/3/ws")
            await there.view(lambda v: [t["number"] for t in v["transferred_here"]] == ["1002"])
            await there.ws.close()
        assert (await act("call_next"))[1]["ticket"]["number"] == "1003"
        status, body = await act("dossier", dossier="  H12.34-261121-0007 ")
        assert status == 200 and body["ticket"]["dossier"] == "H12.34-261121-0007"
        assert (await act("pause"))[1]["counter"]["status"] == "paused"
        view = await feed.view(lambda v: v["counter"]["status"] == "paused")
        assert view["counter"]["ticket"]["number"] == "1003"
        assert (await act("resume"))[1]["counter"]["status"] == "serving"
        assert (await act("finish"))[1]["ticket"]["status"] == "done"
        status, body = await act("dossier", dossier="H12.34-261121-0008", ticket="1003")
        assert status == 200 and body["ticket"]["dossier"] == "H12.34-261121-0008"
        assert (await act("close"))[1]["counter"]["status"] == "closed"
        await feed.view(lambda v: v["counter"]["status"] == "closed" and v["counter"]["officer"] is None)


@pytest.mark.parametrize(("body", "status"), [
    ({"action": "explode"}, 400),
    ({"action": 7}, 400),
    ({}, 400),
    ({"action": "call"}, 400),
    ({"action": "call", "ticket": True}, 400),
    ({"action": "call", "ticket": "1" * 40}, 400),
    ({"action": "transfer"}, 400),
    ({"action": "transfer", "to_field": "ho-tich", "to_counter": "2"}, 400),
    ({"action": "transfer", "to_field": 3}, 400),
    ({"action": "dossier"}, 400),
    ({"action": "dossier", "dossier": "x" * 65}, 400),
    ({"action": "dossier", "dossier": ["H12"]}, 400),
    ({"action": "open", "officer": "Người khác"}, 400),
    ({"action": "call_next", "counter": "2"}, 400),
    ({"action": "call", "ticket": "9999"}, 404),
    ({"action": "transfer", "to_field": "khong-co"}, 404),
    ({"action": "recall"}, 409),
])
async def test_console_bad_input_changes_nothing(rig: Rig, body: dict[str, Any], status: int) -> None:
    await rig.take()
    async with rig.browser("canbo1") as http:
        csrf = await csrf_of(http, rig.url + "/counter/1")
        if body.get("to_field") == "khong-co":  # needs a ticket being served to get that far
            await call(http, rig.url + "/api/counter/1", {"action": "call_next"}, csrf=csrf)
        before = await rig.probe.request(rig.topics.cmd_query, {"request_id": new_id(), "query": "tickets"})
        got, reply = await call(http, rig.url + "/api/counter/1", body, csrf=csrf)
        assert got == status and reply["ok"] is False and vietnamese(reply["error"]["message"]), reply
        after = await rig.probe.request(rig.topics.cmd_query, {"request_id": new_id(), "query": "tickets"})
        assert after["tickets"] == before["tickets"]
    async with rig.browser("giamsat") as http:
        csrf = await csrf_of(http, rig.url + "/counter/1")
        got, reply = await call(http, rig.url + "/api/counter/99", {"action": "open"}, csrf=csrf)
        assert got == 404 and reply["error"]["message"] == "Không có quầy “99”."
        async with http.get(rig.url + "/counter/99") as resp:
            assert resp.status == 404


# ---------------------------------------------------------------- the rating tablet


async def test_the_tablet_rates_the_ticket_its_counter_just_finished(rig: Rig) -> None:
    async with rig.tablet("1") as tablet:
        status, body = await call(tablet, rig.url + "/api/rate/1", {"score": 3, "ticket": "20261121-dat-dai-1001"})
        assert status == 409 and body["error"]["code"] == "rating_closed"
        feed = await rig.feed(tablet, "/rate/1/ws")
        view = await feed.view(lambda v: v["online"])
        assert view["levels"] == ["Không hài lòng", "Hài lòng", "Rất hài lòng"] and view["last"] is None
        await rig.take()
        await rig.take()
        await rig.act("1", "call_next")
        view = await feed.view(lambda v: v["serving"] == "1001")
        assert view["counter"]["status"] == "serving"
        await rig.act("1", "finish")  # 1001 done: the tablet asks its citizen
        view = await feed.view(lambda v: v["last"] is not None and v["serving"] is None)
        assert view["last"]["number"] == "1001" and view["last"]["rating"] is None and view["serving"] is None
        first = view["last"]["id"]
        for bad in ({"score": 0, "ticket": first}, {"score": 4, "ticket": first}, {"score": "3", "ticket": first},
                    {"score": True, "ticket": first}, {"score": 2.5, "ticket": first}, {}, {"score": 3},
                    {"score": 3, "ticket": 5}, {"score": 3, "ticket": first, "counter": "2"}):
            status, body = await call(tablet, rig.url + "/api/rate/1", bad)
            assert status == 400 and vietnamese(body["error"]["message"]), bad
        status, body = await call(tablet, rig.url + "/api/rate/1", {"score": 3, "ticket": first})
        assert status == 200 and body["ticket"] == {"id": first, "number": "1001", "rating": 3}
        await feed.view(lambda v: v["last"] is not None and v["last"]["rating"] == 3)
        status, body = await call(tablet, rig.url + "/api/rate/1", {"score": 1, "ticket": first})
        assert status == 409 and body["error"]["message"] == "Vé số 1001 đã được đánh giá."
        # the next call ends the question: the citizen at the counter is 1002 now
        await rig.act("1", "call_next")
        await feed.view(lambda v: v["last"] is None and v["serving"] == "1002")
        # a rating key on the counter's keypad shows on the tablet too
        await rig.act("1", "finish")
        await feed.view(lambda v: v["last"] is not None and v["last"]["number"] == "1002")
        reply = await rig.probe.request(rig.topics.cmd_rating, {"request_id": new_id(), "counter": "1", "score": 2})
        assert reply["ok"]
        await feed.view(lambda v: v["last"] is not None and v["last"]["number"] == "1002" and v["last"]["rating"] == 2)
        status, _ = await call(tablet, rig.url + "/api/rate/9", {"score": 3, "ticket": first})
        assert status == 404
        async with tablet.get(rig.url + "/rate/9") as resp:
            assert resp.status == 404


async def test_the_tablet_never_rates_the_one_before_once_the_next_is_called(rig: Rig) -> None:
    """On main, the tablet still asked about 1003 while 1006 was served, and rated it."""
    async with rig.tablet("1") as tablet:
        feed = await rig.feed(tablet, "/rate/1/ws")
        for _ in range(2):
            await rig.take()
        await rig.act("1", "call_next")
        await rig.act("1", "finish")
        view = await feed.view(lambda v: v["last"] is not None)
        first = view["last"]["id"]
        await rig.act("1", "call_next")  # 1002 called before anyone rated 1001
        await feed.view(lambda v: v["last"] is None)
        status, body = await call(tablet, rig.url + "/api/rate/1", {"score": 1, "ticket": first})
        assert status == 409 and body["error"]["code"] == "rating_closed" and vietnamese(body["error"]["message"])
        # nor by counter (a keypad): the rating would land on the citizen now at the counter
        reply = await rig.probe.request(rig.topics.cmd_rating, {"request_id": new_id(), "counter": "1", "score": 1})
        assert reply["ok"] is False and reply["error"]["code"] == "invalid_state"
    reply = await rig.probe.request(rig.topics.cmd_query, {"request_id": new_id(), "query": "tickets"})
    assert [t["rating"] for t in reply["tickets"]] == [None, None]


async def test_an_unpaired_tablet_cannot_rate(rig: Rig) -> None:
    await rig.take()
    await rig.act("1", "call_next")
    await rig.act("1", "finish")
    last = (await rig.probe.request(rig.topics.cmd_query, {"request_id": new_id(), "query": "tickets"}))["tickets"][0]
    status, body = await call(rig.http, rig.url + "/api/rate/1", {"score": 1, "ticket": last["id"]})
    assert status == 403 and body["error"]["code"] == "forbidden"
    async with rig.http.get(rig.url + "/rate/1") as resp:
        assert resp.status == 403 and "chưa ghép nối" in await resp.text()
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await rig.http.ws_connect(rig.url + "/rate/1/ws")
    assert err.value.status == 403
    # a tablet paired with another counter is not this counter's
    async with rig.tablet("2") as other:
        status, _ = await call(other, rig.url + "/api/rate/1", {"score": 1, "ticket": last["id"]})
        assert status == 403
        forged = other.cookie_jar.filter_cookies(URL(rig.url))["qms_device"].value.replace("2:", "1:", 1)
    async with rig.browser() as http:
        http.cookie_jar.update_cookies({"qms_device": forged})
        status, _ = await call(http, rig.url + "/api/rate/1", {"score": 1, "ticket": last["id"]})
        assert status == 403
    reply = await rig.probe.request(rig.topics.cmd_query, {"request_id": new_id(), "query": "tickets"})
    assert reply["tickets"][0]["rating"] is None


async def test_pairing_codes_are_one_time_and_limited(rig: Rig) -> None:
    async with rig.browser("giamsat") as boss:
        code = await pairing_code(boss, rig.url, "1")
    async with rig.browser() as http:
        async with http.post(rig.url + "/rate/2/pair", data={"code": code}, allow_redirects=False) as resp:
            assert resp.status == 400  # another counter's code
        async with http.post(rig.url + "/rate/1/pair", data={"code": code}, allow_redirects=False) as resp:
            assert resp.status == 303
        async with http.post(rig.url + "/rate/1/pair", data={"code": code}, allow_redirects=False) as resp:
            assert resp.status == 400 and "không đúng hoặc đã hết hạn" in await resp.text()  # used up
        for _ in range(10):
            async with http.post(rig.url + "/rate/1/pair", data={"code": "00000000"}, allow_redirects=False):
                pass
        async with rig.browser("giamsat") as boss:
            fresh = await pairing_code(boss, rig.url, "1")
        async with http.post(rig.url + "/rate/1/pair", data={"code": fresh}, allow_redirects=False) as resp:
            assert resp.status == 429  # too many wrong codes from this address: even a right one waits
    async with rig.browser("canbo1") as officer, officer.get(rig.url + "/supervisor/pairing",
                                                              allow_redirects=False) as resp:
        assert resp.status == 403  # supervisors only


# ---------------------------------------------------------------- the supervisor


async def serve(rig: Rig, counter: str, *, score: int | None = None, dossier: str | None = None) -> dict[str, Any]:
    reply = await rig.act(counter, "call_next")
    assert reply["ok"], reply
    if dossier:
        assert (await rig.act(counter, "dossier", dossier=dossier))["ok"]
    assert (await rig.act(counter, "finish"))["ok"]
    if score:
        rated = await rig.probe.request(rig.topics.cmd_rating, {"request_id": new_id(), "counter": counter,
                                                                "score": score})
        assert rated["ok"], rated
    return reply["ticket"]


async def test_the_dashboard_counts_and_shows_the_office(rig: Rig) -> None:
    async with rig.browser("giamsat") as http:
        feed = await rig.feed(http, "/supervisor/ws")
        view = await feed.view(lambda v: v["online"] and v["stats"] is not None)
        assert view["stats"]["total"]["issued"] == 0 and view["day"] == view["stats_day"]
        await rig.act("1", "open", officer="Nguyễn Thị Hoa")
        for _ in range(3):
            await rig.take()
        await rig.take("ho-tich")
        await serve(rig, "1", score=3, dossier="H12-0001")
        await serve(rig, "1", score=1)
        view = await feed.view(lambda v: v["stats"] is not None and v["stats"]["total"]["rated"] == 2)
        total = view["stats"]["total"]
        assert (total["issued"], total["served"], total["waiting"], total["ratings"]) == (4, 2, 2, [1, 0, 1])
        hoa = next(o for o in view["stats"]["officers"] if o["officer"] == "Nguyễn Thị Hoa")
        assert hoa["served"] == 2 and hoa["ratings"] == [1, 0, 1]
        fields = {f["id"]: f for f in view["fields"]}
        assert fields["dat-dai"]["waiting"] == 1 and fields["dat-dai"]["oldest_waiting"] is not None
        assert fields["ho-tich"]["waiting"] == 1
        counter = next(c for c in view["counters"] if c["id"] == "1")
        assert (counter["status"], counter["officer"], counter["agent"]) == ("open", "Nguyễn Thị Hoa", None)
        assert sum(h["issued"] for h in view["stats"]["by_hour"]) == 4

        # presence and health, as the agents and the web servers publish them
        health = {"agent": "tang-1", "ports": [{"port": "/dev/ttyUSB0", "open": False, "error": "cáp bị rút"}],
                  "counters": [{"counter": "1", "device": "offline", "errors": 2}], "at": "2026-11-21T09:00:00+07:00"}
        await rig.probe.publish(f"{rig.topics.root}/health/agent/tang-1", health, retain=True)
        await rig.probe.publish(rig.topics.status_agent("tang-1"), "offline", retain=True)
        await rig.probe.publish(rig.topics.status_display("phong-cho-1"), "online", retain=True)
        view = await feed.view(lambda v: any(a["id"] == "tang-1" and a["status"] == "offline" for a in v["agents"])
                               and v["displays"])
        agent = next(a for a in view["agents"] if a["id"] == "tang-1")
        assert agent["ports"] == [{"port": "/dev/ttyUSB0", "open": False, "error": "cáp bị rút"}]
        assert agent["devices"][0]["device"] == "offline" and agent["devices"][0]["errors"] == 2
        assert {"id": "web-test", "status": "online"} in view["webs"]

        # a console open on counter 1 shows on the dashboard
        async with rig.browser("canbo1") as officer:
            console = await rig.feed(officer, "/counter/1/ws")
            await console.view()
            await feed.view(lambda v: next(c for c in v["counters"] if c["id"] == "1")["consoles"] == 1)
            await console.ws.close()
        await feed.view(lambda v: next(c for c in v["counters"] if c["id"] == "1")["consoles"] == 0)
        await rig.probe.publish(f"{rig.topics.root}/health/agent/tang-1", b"", retain=True)
        await rig.probe.publish(rig.topics.status_agent("tang-1"), b"", retain=True)
        await rig.probe.publish(rig.topics.status_display("phong-cho-1"), b"", retain=True)


async def test_exports_for_the_one_stop_information_system(rig: Rig) -> None:
    await rig.act("1", "open", officer="Nguyễn Thị Hoa")
    for _ in range(3):
        await rig.take()
    first = await serve(rig, "1", score=3, dossier="H12.34-261121-0007")
    await serve(rig, "1")
    async with rig.browser("giamsat") as http:
        day = first["id"][:8]
        day = f"{day[:4]}-{day[4:6]}-{day[6:]}"
        async with http.get(rig.url + f"/supervisor/export/tickets.csv?from={day}&to={day}") as resp:
            assert resp.status == 200 and resp.headers["Content-Type"] == "text/csv; charset=utf-8"
            assert resp.headers["Content-Disposition"] == f'attachment; filename="ve-{day}-{day}.csv"'
            raw = await resp.read()
        assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
        assert [r["number"] for r in rows] == ["1001", "1002", "1003"]
        assert [r["status"] for r in rows] == ["done", "done", "waiting"]
        assert rows[0]["field_name"] == "Đất đai" and rows[0]["officer"] == "Nguyễn Thị Hoa"
        assert rows[0]["dossier_code"] == "H12.34-261121-0007" and rows[0]["rating_level"] == "Rất hài lòng"
        assert rows[0]["counter_name"] == "Quầy 1" and rows[0]["kiosk"] == "kiosk"  # the kiosk without an id
        async with http.get(rig.url + "/supervisor/export/ratings.csv") as resp:  # today by default
            rated = list(csv.DictReader(io.StringIO((await resp.read()).decode("utf-8-sig"), newline="")))
        assert [(r["number"], r["dossier_code"], r["rating_score"], r["rating_max"]) for r in rated] == [
            ("1001", "H12.34-261121-0007", "3", "3")]
        for query in ("?from=hom-nay", "?from=2026-13-01", f"?from={day}&to=2020-01-01",
                      "?from=2024-01-01&to=2026-01-01"):
            async with http.get(rig.url + "/supervisor/export/tickets.csv" + query) as resp:
                assert resp.status == 400 and vietnamese((await resp.json())["error"]["message"]), query
        async with http.get(rig.url + "/supervisor/export/passwords.csv") as resp:
            assert resp.status == 404
        async with http.get(rig.url + "/supervisor/export/tickets.csv?from=2020-01-01&to=2020-01-02") as resp:
            assert (await resp.read()).decode("utf-8-sig").count("\r\n") == 1  # only the header


async def test_records_are_read_a_page_at_a_time(rig: Rig) -> None:
    for _ in range(16):  # more than a kiosk may issue in a minute: straight to the core
        reply = await rig.probe.request(rig.topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
        assert reply["ok"]
    pages = [page async for page in iter_records(rig.web.follower.requester, rig.topics, None, None, page_size=7)]
    assert [len(p) for p in pages] == [7, 7, 2]
    assert [r["number"] for p in pages for r in p] == [str(1001 + i) for i in range(16)]


async def test_today_s_records_follow_the_events_a_ticket_at_a_time(rig: Rig) -> None:
    records = rig.web.app[RECORDS]
    with records.watch():
        await wait_until(rig.web, lambda: records.loaded)
        full = records.full_reads

        def record(number: str) -> dict[str, Any]:
            return next((r for r in records.records if r["number"] == number), {})

        await rig.take()
        await rig.take()
        await wait_until(rig.web, lambda: record("1002").get("status") == "waiting")
        await rig.act("1", "open", officer="Nguyễn Thị Hoa")
        await rig.act("1", "call_next")
        await wait_until(rig.web, lambda: record("1001").get("officer") == "Nguyễn Thị Hoa")
        async with rig.browser("canbo1") as http:  # a dossier code has no event: the console says which ticket
            csrf = await csrf_of(http, rig.url + "/counter/1")
            status, _ = await call(http, rig.url + "/api/counter/1", {"action": "dossier", "dossier": "H-1"}, csrf=csrf)
            assert status == 200
        await wait_until(rig.web, lambda: record("1001").get("dossier") == "H-1")
        assert records.full_reads == full and [r["number"] for r in records.records] == ["1001", "1002"]
        # the core away and back: events may have been missed, the whole day is read again
        await rig.probe.publish(rig.topics.status_core, "offline", retain=True)
        await rig.probe.publish(rig.topics.status_core, "online", retain=True)
        await wait_until(rig.web, lambda: records.full_reads == full + 1)


async def test_behind_a_reverse_proxy_the_public_address_is_our_own(broker: Broker, tmp_path: Path) -> None:
    path, _ = write_site(tmp_path, broker.url, extra=web_extra(
        tmp_path, free_port(), web='public_url = "https://xephang.hoabinh.gov.vn"'))
    async with running_core(path), running_web(path) as web, aiohttp.ClientSession() as http:
        status, body = await call(http, web.url + "/api/tickets", {"field": "dat-dai"},
                                  headers={"Origin": "https://xephang.hoabinh.gov.vn"})
        assert status == 200
        assert body["tracking_url"].startswith(f"https://xephang.hoabinh.gov.vn/t/{body['ticket']['id']}/")
        status, _ = await call(http, web.url + "/api/tickets", {"field": "dat-dai"},
                               headers={"Origin": "https://hoabinh.gov.vn.evil.example"})
        assert status == 403
