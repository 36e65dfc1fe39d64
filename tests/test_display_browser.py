"""The TV page in real headless Chromium (Debian's /usr/bin/chromium through Playwright): calls
appear and are announced clip by clip, never cut off; blocked audio gets its button; the page
recovers by itself after the web server, the broker or the core restarts."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from display_server.speech.vietnamese import announcement_text
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
        # a call to a silent TV: the chime, then the intro, the number and the counter phrase
        assert clips[0].endswith("/audio/chime.wav") and len(clips) == 4
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
        # the second call came while the first was being said: the first is finished short (its
        # number and counter, no repeat), the second follows with no chime between them
        first, second = [src for n, src in played if n == "1001"], [src for n, src in played if n == "1002"]
        assert first[0].endswith("/audio/chime.wav") and len(first) in (3, 4) and len(second) == 2
        assert [n for n, _ in played] == ["1001"] * len(first) + ["1002"] * 2
        assert not any(src.endswith("chime.wav") for src in second)
        queued_2 = next(e["t"] for e in log if e["event"] == "queued" and e["number"] == "1002")
        done_1 = next(e["t"] for e in log if e["event"] == "done" and e["number"] == "1001")
        assert queued_2 < done_1  # it had to wait, and did
        assert await tv.text("#latest-number") == "1002"

        await request(probe, topics.cmd_counter("1"), {"action": "recall"})
        await tv.announced("1001", times=2)
        log = await tv.played()
        again = plays_in_order(log)[len(played):]
        assert [n for n, _ in again] == ["1001"] * 4 and again[0][1].endswith("chime.wav")  # silent TV: in full
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
            # the loudspeaker is drawn (SVG), not a character a TV may have no font for
            assert "🔊" not in (await button.text_content() or "")
            icon = await page.locator("#sound-on svg").bounding_box()
            assert icon is not None and icon["width"] > 20 and icon["height"] > 20
            painted = await page.evaluate("""() => [...document.querySelectorAll('#sound-on svg path')]
                .map(p => p.getTotalLength())""")
            assert len(painted) == 2 and all(length > 10 for length in painted)
            await button.screenshot(path=str(path.parent / "sound-button.png"))
            await button.click()
            tv = Tv(page)
            await tv.announced("2001")
            log = await tv.played()
            blocked = [i for i, e in enumerate(log) if e["event"] == "blocked"]
            assert len(blocked) == 1 and log[blocked[0]]["src"].endswith("chime.wav")
            # after the tap, the announcement plays from the clip that was refused
            assert [n for n, _ in plays_in_order(log[blocked[0] + 1:])] == ["2001"] * 4
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


# ---------------------------------------------------------------- what is said when calls come quickly

PLAN_JS = Path(__file__).resolve().parents[1] / "display_server" / "static" / "announce_plan.js"


@pytest.fixture
async def planner(chromium: Browser) -> AsyncIterator[Page]:
    """announce_plan.js alone in a blank page: the planner is a pure function."""
    page = await chromium.new_page()
    await page.set_content("<!doctype html><title>plan</title>")
    await page.add_script_tag(path=str(PLAN_JS))
    yield page
    await page.close()


def call(seq: int, counter: str, at: float, number_s: float = 1.5) -> dict[str, Any]:
    """An announcement as the server sends it (the planner reads clips, must, short, seconds)."""
    n, c = f"n{seq}", f"c{counter}"
    return {"seq": seq, "number": str(1000 + seq), "counter": counter, "at": at,
            "clips": ["chime", "intro", n, c], "must": 4, "short": [n, c],
            "seconds": {"chime": 1.2, "intro": 2.4, n: number_s, c: 1.5}}


async def plan(page: Page, calls: list[dict[str, Any]], rest: list[tuple[int, str, int]], started: int | None,
               waiting: list[int], now: float, *, silent: bool = False) -> tuple[list[tuple[int, str]], list[int]]:
    result = await page.evaluate("""([calls, rest, started, waiting, opts]) => {
        const bySeq = {};
        for (const a of calls) bySeq[a.seq] = a;
        const r = QmsPlan.plan(rest.map(([seq, src, i]) => ({a: bySeq[seq], src: src, i: i})),
                               started === null ? null : bySeq[started], waiting.map(s => bySeq[s]), opts);
        return {items: r.items.map(it => [it.a.seq, it.src]), left: r.left.map(a => a.seq)};
    }""", [calls, rest, started, waiting, {"now": now, "silent": silent, "maxDelayMs": 5000, "chime": "chime"}])
    return [tuple(i) for i in result["items"]], result["left"]  # type: ignore[misc]


async def test_the_planner_rules(planner: Page) -> None:
    a, b, c, d = call(1, "1", 0), call(2, "2", 500), call(3, "1", 900), call(4, "3", 1000)
    calls = [a, b, c, d]
    # a call to a silent TV: in full
    assert await plan(planner, calls, [], None, [1], 0, silent=True) == (
        [(1, "chime"), (1, "intro"), (1, "n1"), (1, "c1")], [])
    # two at once to a silent TV: one chime, then each short
    assert await plan(planner, calls, [], None, [1, 2], 0, silent=True) == (
        [(1, "chime"), (1, "n1"), (1, "c1"), (2, "n2"), (2, "c2")], [])
    # a call comes during the chime: the first is finished short (no intro), the second follows
    # with no chime between
    assert await plan(planner, calls, [(1, "intro", 1), (1, "n1", 2), (1, "c1", 3)], 1, [2], 1200) == (
        [(1, "n1"), (1, "c1"), (2, "n2"), (2, "c2")], [])
    # the call being said is finished even when its counter has called again
    assert await plan(planner, calls, [(1, "c1", 3)], 1, [2, 3], 1000) == ([(1, "c1"), (2, "n2"), (2, "c2"),
                                                                             (3, "n3"), (3, "c1")], [])
    # ... but of the calls waiting, only the newest of each counter is said: it has moved on
    assert await plan(planner, calls, [], None, [1, 3], 1000, silent=True) == (
        [(3, "chime"), (3, "intro"), (3, "n3"), (3, "c1")], [1])
    # a repeat is not said while calls wait
    a2 = {**a, "clips": ["chime", "intro", "n1", "c1", "intro", "n1", "c1"]}
    assert await plan(planner, [a2, b], [(1, "intro", 4), (1, "n1", 5), (1, "c1", 6)], 1, [2], 7000) == (
        [(2, "n2"), (2, "c2")], [])
    # behind: the newest is said within 5 s of its arrival, the older ones that do not fit are left out
    late = [call(i, str(i), 1000 * i) for i in range(1, 7)]
    items, left = await plan(planner, late, [(1, "c1", 3)], 1, [2, 3, 4, 5, 6], 6000)
    assert items == [(1, "c1"), (5, "n5"), (5, "c5"), (6, "n6"), (6, "c6")] and left == [2, 3, 4]


SIMULATE = """([every, n, counters, numberS]) => {
    // the page's player with a clock of its own: calls arrive every `every` ms, each clip plays
    // for its length; returns when each call began to be said, and the clips played
    const calls = [];
    for (let k = 0; k < n; k++) {
        const seq = k + 1, c = String(k % counters + 1), num = "n" + seq, ctr = "c" + c;
        calls.push({seq: seq, counter: c, at: k * every, clips: ["chime", "intro", num, ctr], must: 4,
                    short: [num, ctr], seconds: {chime: 1.2, intro: 2.4, [num]: numberS, [ctr]: 1.5}});
    }
    let t = 0, next = 0, items = [], playing = null, waiting = [], end = Infinity;
    const began = {}, played = [];
    function advance(ended) {
        if (waiting.length) {
            const p = QmsPlan.plan(items, ended ? ended.a : null, waiting,
                                   {now: t, silent: !ended, maxDelayMs: 5000, chime: "chime"});
            items = p.items;
            waiting = [];
        }
        playing = items.shift() || null;
        end = playing ? t + playing.a.seconds[playing.src] * 1000 : Infinity;
        if (playing) {
            if (!(playing.a.seq in began)) began[playing.a.seq] = t - playing.a.at;
            played.push(playing.src);
        }
    }
    while (next < calls.length || playing) {
        const arrives = next < calls.length ? calls[next].at : Infinity;
        if (arrives <= end) {
            t = arrives;
            waiting.push(calls[next++]);
            if (!playing) advance(null);
        } else {
            t = end;
            advance(playing);
        }
    }
    return {began: began, played: played};
}"""


@pytest.mark.parametrize(("every_ms", "number_s"), [(1000, 1.5), (1000, 2.5), (700, 1.8), (2000, 1.8)])
async def test_the_planner_keeps_the_voice_within_five_seconds(planner: Page, every_ms: int, number_s: float) -> None:
    n = 40
    result = await planner.evaluate(SIMULATE, [every_ms, n, 3, number_s])
    began = {int(k): v for k, v in result["began"].items()}
    assert n in began  # the newest call is said
    assert max(began.values()) <= 5000, began  # every call said starts within 5 s of its arrival
    assert len(began) >= n * every_ms / 1000 / 8  # and the voice keeps talking
    assert result["played"].count("chime") == 1  # no chime between queued calls


async def test_the_planner_says_every_call_in_full_when_there_is_time(planner: Page) -> None:
    calm = await planner.evaluate(SIMULATE, [10_000, 5, 3, 1.8])
    assert sorted(int(k) for k in calm["began"]) == [1, 2, 3, 4, 5] and max(calm["began"].values()) == 0
    assert calm["played"].count("chime") == 5 and calm["played"].count("intro") == 5
    # faster than a full announcement (6.9 s), slower than one a second: every call is said
    busy = await planner.evaluate(SIMULATE, [4000, 10, 3, 1.8])
    assert len(busy["began"]) == 10 and max(busy["began"].values()) <= 5000


SLOW_SPEECH = """
[speech]
engines = ["espeak"]
espeak_speed = 150
cache_dir = "{cache}"
"""

WATCH_BOX = """() => {
    // every state of the big box: the number and the caption under it, as drawn
    window.boxSeen = [];
    const note = () => window.boxSeen.push([document.getElementById('latest-number').textContent,
                                            document.getElementById('latest-text').textContent]);
    new MutationObserver(note).observe(document.getElementById('latest'),
                                       {childList: true, subtree: true, characterData: true});
}"""


async def test_calls_one_a_second_are_said_within_five_seconds_and_the_box_matches_its_caption(
        chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, broker.url, extra=web_extra(tmp_path, free_port(), speech=SLOW_SPEECH))
    topics = Topics(site_id)
    async with Probe(broker.url) as probe, running_core(path), running_web(path) as web:
        tv = await Tv.open(chromium, f"{web.url}/display")
        for field in ["dat-dai"] * 5 + ["ho-tich"] * 4:
            await request(probe, topics.cmd_ticket, {"field": field})
        await tv.page.evaluate(WATCH_BOX)
        said: dict[str, str] = {}
        loop = asyncio.get_running_loop()
        start = loop.time()
        for k, counter in enumerate(["1", "2", "3"] * 3):
            # one call a second, by the clock: the pace of the load, not a synchronisation
            await asyncio.sleep(max(0.0, start + k - loop.time()))
            reply = await request(probe, topics.cmd_counter(counter), {"action": "call_next"})
            number = reply["ticket"]["number"]
            said[number] = announcement_text(number, counter)
        last = number
        await tv.announced(last)
        log = await tv.played()
        queued = {e["number"]: e["t"] for e in log if e["event"] == "queued"}
        began = {e["number"]: e["t"] for e in log if e["event"] == "announce"}
        assert set(queued) == set(said)
        delays = {n: began[n] - queued[n] for n in began}
        assert last in delays and max(delays.values()) <= 5000, delays
        assert sum(1 for e in log if e["event"] == "start" and e["src"].endswith("chime.wav")) == 1
        plays_in_order(log)  # and never two clips at once

        seen = await tv.page.evaluate("window.boxSeen")
        assert len(seen) > 10
        for number, caption in seen:
            # the caption is the shown call's own, or none (a call the voice left out)
            assert caption in ("", said.get(number)), (number, caption)
        assert (last, said[last]) in [tuple(x) for x in seen]
        assert not tv.errors


async def test_a_finished_ticket_leaves_the_big_box(chromium: Browser, broker: Broker,
                                                    site: tuple[Path, Topics, int]) -> None:
    path, topics, _port = site
    async with Probe(broker.url) as probe, running_core(path), running_web(path) as web:
        tv = await Tv.open(chromium, f"{web.url}/display")
        for _ in range(3):
            await request(probe, topics.cmd_ticket, {"field": "dat-dai"})
        await request(probe, topics.cmd_counter("1"), {"action": "call_next"})
        await tv.announced("1001")
        assert await tv.text("#latest-number") == "1001"
        await request(probe, topics.cmd_counter("1"), {"action": "finish"})
        await tv.until("document.getElementById('latest-number').textContent === '—'")
        assert await tv.text("#latest-text") == "" and await tv.text("#recent li .n") == "1001"
        # skipped, and transferred: the same
        await request(probe, topics.cmd_counter("1"), {"action": "call_next"})
        await tv.announced("1002")
        await request(probe, topics.cmd_counter("1"), {"action": "skip"})
        await tv.until("document.getElementById('latest-number').textContent === '—'")
        await request(probe, topics.cmd_counter("1"), {"action": "call_next"})
        await tv.announced("1003")
        await request(probe, topics.cmd_counter("1"), {"action": "transfer", "to_field": "ho-tich"})
        await tv.until("document.getElementById('latest-number').textContent === '—'")
        assert not tv.errors


async def test_the_caption_is_large_enough_to_read_from_five_metres(chromium: Browser, broker: Broker,
                                                                     site: tuple[Path, Topics, int]) -> None:
    path, topics, _port = site
    async with Probe(broker.url) as probe, running_core(path), running_web(path) as web:
        tv = await Tv.open(chromium, f"{web.url}/display")
        await request(probe, topics.cmd_ticket, {"field": "dat-dai"})
        await request(probe, topics.cmd_counter("1"), {"action": "call_next"})
        await tv.announced("1001")
        caption = await tv.text("#latest-text")
        assert caption == "Mời công dân có số thứ tự một nghìn không trăm linh một đến quầy số một"
        size = await tv.page.evaluate("parseFloat(getComputedStyle(document.getElementById('latest-text')).fontSize)")
        assert size >= 0.05 * 1080  # 5 % of the screen's height: 54 px on a 1080p TV
        # all of it on screen, inside the box, and the counters still below it
        box = await tv.page.locator("#latest").bounding_box()
        text = await tv.page.locator("#latest-text").bounding_box()
        tiles = await tv.page.locator(".counter").first.bounding_box()
        assert box and text and tiles
        assert box["y"] <= text["y"] and text["y"] + text["height"] <= box["y"] + box["height"]
        assert tiles["y"] >= box["y"] + box["height"] and tiles["y"] + tiles["height"] <= 1080
        await tv.page.screenshot(path=str(path.parent / "tv-caption.png"))
        fits = await tv.page.evaluate("""(() => { const e = document.getElementById('latest-text');
            return e.scrollHeight <= e.clientHeight + 1 && e.scrollWidth <= e.clientWidth + 1; })()""")
        assert fits  # not clipped
