"""The TV page in real headless Chromium (Debian's /usr/bin/chromium through Playwright): calls
appear and are announced clip by clip, never cut off; blocked audio gets its button; the page
recovers by itself after the web server, the broker or the core restarts."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from qms_common.devbroker import Broker, free_port
from qms_common.protocol import Topics
from tests.support.core import CoreProcess, running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site
from tests.support.web import AUTOPLAY, CHROMIUM_ARGS, running_web, web_extra, web_process

WAIT_MS = 30_000


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=[*CHROMIUM_ARGS, AUTOPLAY])
        yield browser
        await browser.close()


class Tv:
    """A TV page and what it fetched."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        # what the Content-Security-Policy refused (an inline script or style, another site)
        page.on("console", lambda m: self.errors.append(m.text) if "Content Security Policy" in m.text else None)

    @classmethod
    async def open(cls, browser: Browser, url: str) -> Tv:
        page = await browser.new_page(viewport={"width": 1920, "height": 1080})
        tv = cls(page)
        await page.goto(url)
        await tv.until("window.qmsDisplay && window.qmsDisplay.view && window.qmsDisplay.view.online")
        return tv

    async def until(self, expression: str, arg: Any = None) -> Any:
        # as a function: Playwright would eval() a bare expression in the page, which the
        # Content-Security-Policy (no 'unsafe-eval') rightly refuses
        if not expression.lstrip().startswith(("(", "function", "async")):
            expression = f"() => ({expression})"
        return await self.page.wait_for_function(expression, arg=arg, timeout=WAIT_MS)

    async def played(self) -> list[dict[str, Any]]:
        return await self.page.evaluate("window.qmsDisplay.played")

    async def announced(self, number: str, times: int = 1) -> None:
        """Wait until `number` has been announced to the end `times` times."""
        await self.until("([n, k]) => window.qmsDisplay.played.filter(e => e.event === 'done' && e.number === n)"
                         ".length >= k", [number, times])

    async def text(self, selector: str) -> str:
        return (await self.page.text_content(selector)) or ""


async def request(probe: Probe, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    reply = await probe.request(topic, {"request_id": new_id(), **payload}, timeout=10)
    assert reply["ok"], reply
    return reply


def plays_in_order(log: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (number, clip) pairs played, checking each clip ended before the next one started."""
    played: list[tuple[str, str]] = []
    playing: dict[str, Any] | None = None
    for e in log:
        if e["event"] == "start":
            assert playing is None, f"{e} started while {playing} was playing"
            playing = e
        elif e["event"] == "end":
            assert playing is not None and e["src"] == playing["src"] and e["number"] == playing["number"]
            played.append((e["number"], e["src"]))
            playing = None
        elif e["event"] in ("error", "blocked"):
            raise AssertionError(f"clip failed: {e}")
    return played


@pytest.fixture
def site(broker: Broker, tmp_path: Path) -> tuple[Path, Topics, int]:
    port = free_port()
    path, site_id = write_site(tmp_path, broker.url, extra=web_extra(tmp_path, port))
    return path, Topics(site_id), port


async def test_a_call_appears_and_is_announced(chromium: Browser, broker: Broker,
                                               site: tuple[Path, Topics, int]) -> None:
    path, topics, _port = site
    async with Probe(broker.url) as probe, running_core(path), running_web(path) as web:
        tv = await Tv.open(chromium, f"{web.url}/display")
        assert await tv.text("#office") == "Bộ phận Một cửa thử nghiệm"
        assert await tv.text(".counter[data-counter='1'] .counter-name") == "Quầy 1"
        await request(probe, topics.cmd_ticket, {"field": "dat-dai"})
        await tv.until("document.querySelector(\"#queues li[data-field='dat-dai'] .w\").textContent === '1'")

        await request(probe, topics.cmd_counter("1"), {"action": "call_next"})
        await tv.until("document.getElementById('latest-number').textContent === '1001'")
        assert await tv.text("#latest-counter") == "đến Quầy 1"
        assert "blink" in (await tv.page.get_attribute("#latest", "class") or "")
        await tv.until("document.querySelector(\".counter[data-counter='1'] .counter-number\")?.textContent === '1001'")
        await tv.announced("1001")
        assert await tv.text("#latest-text") == \
            "Mời công dân có số thứ tự một nghìn không trăm linh một đến quầy số một"

        clips = [src for _, src in plays_in_order(await tv.played())]
        assert clips[0].endswith("/audio/chime.wav") and len(clips) == 3
        assert all(re.search(r"/audio/[0-9a-f]{40}\.wav$", c) for c in clips[1:])
        fetched = {r.removeprefix(web.url) for r in tv.requests if "/audio/" in r}
        assert set(clips) <= fetched  # the page fetched each clip it played
        assert not tv.errors
        await tv.page.screenshot(path=str(path.parent / "tv.png"))


async def test_two_quick_calls_play_one_after_the_other_and_recall_announces_again(
        chromium: Browser, broker: Broker, site: tuple[Path, Topics, int]) -> None:
    path, topics, _port = site
    async with Probe(broker.url) as probe, running_core(path), running_web(path) as web:
        tv = await Tv.open(chromium, f"{web.url}/display")
        await request(probe, topics.cmd_ticket, {"field": "dat-dai"})
        await request(probe, topics.cmd_ticket, {"field": "dat-dai"})
        # back to back: the second arrives while the first plays
        await request(probe, topics.cmd_counter("1"), {"action": "call_next"})
        await request(probe, topics.cmd_counter("2"), {"action": "call_next"})
        await tv.announced("1002")
        log = await tv.played()
        played = plays_in_order(log)
        assert [n for n, _ in played] == ["1001"] * 3 + ["1002"] * 3
        queued_2 = next(e["t"] for e in log if e["event"] == "queued" and e["number"] == "1002")
        done_1 = next(e["t"] for e in log if e["event"] == "done" and e["number"] == "1001")
        assert queued_2 < done_1  # it had to wait, and did
        assert await tv.text("#latest-number") == "1002"

        await request(probe, topics.cmd_counter("1"), {"action": "recall"})
        await tv.announced("1001", times=2)
        log = await tv.played()
        assert [n for n, _ in plays_in_order(log)] == ["1001"] * 3 + ["1002"] * 3 + ["1001"] * 3
        assert any(e["event"] == "queued" and e["number"] == "1001" and e["recall"] for e in log)
        assert await tv.text("#latest-number") == "1001"


async def test_blocked_audio_shows_a_button(broker: Broker, site: tuple[Path, Topics, int]) -> None:
    path, topics, _port = site
    async with async_playwright() as p, Probe(broker.url) as probe, running_core(path), running_web(path) as web:
        # Without the kiosk's autoplay flag Chromium refuses sound until the page has had a gesture.
        # Playwright's evaluate() counts as one, so until the button shows, this test only
        # listens (WebSocket frames, console lines) and never evaluates in the page.
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1920, "height": 1080})
            async with page.expect_websocket() as ws_info:
                await page.goto(f"{web.url}/display")
            feed = await ws_info.value
            await feed.wait_for_event("framereceived", lambda f: '"online":true' in str(f), timeout=WAIT_MS)
            await request(probe, topics.cmd_ticket, {"field": "ho-tich"})
            async with page.expect_console_message(lambda m: m.text.startswith("qms-display blocked"),
                                                   timeout=WAIT_MS):
                await request(probe, topics.cmd_counter("3"), {"action": "call_next"})
            button = page.locator("#sound-on")
            await button.wait_for(state="visible", timeout=WAIT_MS)
            assert "bật âm thanh" in (await button.text_content() or "")
            await button.click()
            tv = Tv(page)
            await tv.announced("2001")
            log = await tv.played()
            blocked = [i for i, e in enumerate(log) if e["event"] == "blocked"]
            assert len(blocked) == 1 and log[blocked[0]]["src"].endswith("chime.wav")
            # after the tap, the announcement plays from the clip that was refused
            assert [n for n, _ in plays_in_order(log[blocked[0] + 1:])] == ["2001"] * 3
            assert not await page.is_visible("#sound-on")
        finally:
            await browser.close()


async def test_the_page_recovers_after_the_web_server_is_killed(
        chromium: Browser, broker: Broker, site: tuple[Path, Topics, int], tmp_path: Path) -> None:
    path, topics, port = site
    display = topics.status_display("phong-cho")
    async with Probe(broker.url) as probe, running_core(path):
        await probe.subscribe(topics.status_all)
        with web_process(path, tmp_path / "web.log") as web:
            tv = await Tv.open(chromium, f"http://127.0.0.1:{port}/display?id=phong-cho")
            await probe.wait_for(lambda m: m.topic == display and m.text == "online")
            web.kill9()
            await tv.until("!document.getElementById('offline').hidden")
            assert await tv.text("#offline") == "mất kết nối"
            # the office goes on while the server is away
            await request(probe, topics.cmd_ticket, {"field": "dat-dai"})
            await request(probe, topics.cmd_counter("1"), {"action": "call_next"})
            mark = probe.mark()
            web.start()
            await tv.until("document.getElementById('offline').hidden")
            # what happened meanwhile is on the screen, from the retained state
            await tv.until("document.getElementById('latest-number').textContent === '1001'")
            await probe.wait_for(lambda m: m.topic == display and m.text == "online", start=mark)
            await request(probe, topics.cmd_ticket, {"field": "dat-dai"})
            await request(probe, topics.cmd_counter("1"), {"action": "call_next"})
            await tv.announced("1002")
            assert not tv.errors


async def test_the_page_recovers_after_a_broker_restart(chromium: Browser, own_broker: Broker,
                                                        tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, own_broker.url, extra=web_extra(tmp_path, free_port()))
    topics = Topics(site_id)
    async with running_core(path), running_web(path) as web:
        tv = await Tv.open(chromium, f"{web.url}/display")
        own_broker.restart()  # and it comes back empty: nothing retained survives
        await tv.until("!document.getElementById('offline').hidden")
        await tv.until("document.getElementById('offline').hidden")
        async with Probe(own_broker.url) as probe:
            await probe.subscribe(topics.status_all)
            await probe.wait_for(lambda m: m.topic == topics.status_core and m.text == "online", timeout=20)
            await probe.wait_for(lambda m: m.topic == topics.status_web("web-test") and m.text == "online",
                                 timeout=20)
            await request(probe, topics.cmd_ticket, {"field": "dat-dai"})
            await request(probe, topics.cmd_counter("1"), {"action": "call_next"})
            await tv.announced("1001")
            assert await tv.text("#latest-number") == "1001"


async def test_the_page_recovers_after_the_core_is_killed(chromium: Browser, broker: Broker,
                                                          site: tuple[Path, Topics, int], tmp_path: Path) -> None:
    path, topics, _port = site
    core = CoreProcess(path, tmp_path / "core.log")
    async with Probe(broker.url) as probe, running_web(path) as web:
        await probe.subscribe(topics.status_core)
        core.start()
        try:
            await probe.wait_for(lambda m: m.text == "online", timeout=20)
            tv = await Tv.open(chromium, f"{web.url}/display")
            await request(probe, topics.cmd_ticket, {"field": "dat-dai"})
            await request(probe, topics.cmd_counter("1"), {"action": "call_next"})
            await tv.announced("1001")
            mark = probe.mark()
            core.kill9()
            await probe.wait_for(lambda m: m.text == "offline", start=mark)
            await tv.until("!document.getElementById('offline').hidden")
            core.start()
            await tv.until("document.getElementById('offline').hidden")
            await request(probe, topics.cmd_counter("1"), {"action": "recall"})
            await tv.announced("1001", times=2)
        finally:
            core.stop()
