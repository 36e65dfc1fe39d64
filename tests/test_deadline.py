"""Commands carry a deadline: one its sender gave up on never takes effect later.

The core's check on an injected clock; then a real core process frozen with SIGSTOP while a kiosk
tap (through the web server's API), a console action and a keypad press (through the counter
agent) time out: after SIGCONT neither a ticket nor a call appears. The kiosk page resolves a lost
answer by asking again with the same request id."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Route

from display_server.texts import Texts
from qms_common.config import MqttSettings, load_site_config
from qms_common.devbroker import Broker, free_port
from qms_common.mqtt import MqttSession, Requester
from qms_common.protocol import (
    ErrorCode,
    ProtocolError,
    Topics,
    check_deadline,
    command_deadline,
    deadline_of,
    dumps,
)
from queue_core.clock import ManualClock
from queue_core.service import QueueService
from queue_core.store import Store
from tests.support.agent import running_agent, sim_bus, write_agent_config
from tests.support.core import CoreProcess
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site
from tests.support.web import accounts_extra, csrf_of, login, running_web, web_extra
from tests.test_web_browser import Tab, to_fields

START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 09:00 in Hà Nội


# ---------------------------------------------------------------- the core's check, on its own clock


def test_the_deadline_is_checked_on_the_cores_clock() -> None:
    now = START
    check_deadline(None, now)  # no deadline (an older integration): no check
    check_deadline(now.timestamp(), now)  # at the deadline itself: still in time
    check_deadline(now.timestamp() + 30, now)
    with pytest.raises(ProtocolError) as late:
        check_deadline(now.timestamp() - 0.001, now)
    assert late.value.code is ErrorCode.EXPIRED
    assert "quá hạn" in late.value.message


@pytest.mark.parametrize("value", [True, "1795741392", float("nan"), float("inf"), [1], {"at": 1}])
def test_a_deadline_that_is_not_a_number_is_a_bad_request(value: Any) -> None:
    with pytest.raises(ProtocolError) as bad:
        deadline_of({"deadline": value})
    assert bad.value.code is ErrorCode.BAD_REQUEST
    assert deadline_of({}) is None and deadline_of({"deadline": None}) is None
    assert deadline_of({"deadline": 1795741392}) == 1795741392.0
    assert deadline_of({"deadline": 1795741392.25}) == 1795741392.25


def test_a_sender_writes_a_deadline_before_it_gives_up() -> None:
    assert command_deadline(1000.0, 5.0) == 1004.0  # a second for clock skew, the commit and the reply
    assert command_deadline(1000.0, 1.0) == 1000.5  # a short timeout keeps half of it for the core


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[QueueService, ManualClock]]:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", site_id="dl")
    clock = ManualClock(START)
    store = await Store.open(load_site_config(path).storage_path)
    svc = QueueService(load_site_config(path), store, clock)
    await svc.load()
    yield svc, clock
    await store.close()


async def test_a_late_command_is_refused_remembered_and_changes_nothing(
        service: tuple[QueueService, ManualClock], tmp_path: Path) -> None:
    svc, clock = service
    topics = svc.topics
    now = clock.now().timestamp()
    seq = svc.seq

    late = await svc.handle(topics.cmd_ticket, dumps({"request_id": "tap-1", "field": "dat-dai", "deadline": now - 1}))
    assert late.reply is not None and late.reply["error"]["code"] == "expired"
    assert late.reply["request_id"] == "tap-1"
    assert late.messages == [] and svc.book.tickets == {} and svc.seq == seq
    # the kiosk asks again with the same request id (and a fresh deadline): the same answer, no ticket
    again = await svc.handle(topics.cmd_ticket, dumps({"request_id": "tap-1", "field": "dat-dai", "deadline": now + 5}))
    assert again.reply == late.reply and svc.book.tickets == {}

    # in time, and without any deadline (an integration of before): done
    ok = await svc.handle(topics.cmd_ticket, dumps({"request_id": "tap-2", "field": "dat-dai", "deadline": now + 5}))
    assert ok.reply is not None and ok.reply["ok"] and ok.reply["ticket"]["number"] == "1001"
    legacy = await svc.handle(topics.cmd_ticket, dumps({"request_id": "tap-3", "field": "dat-dai"}))
    assert legacy.reply is not None and legacy.reply["ticket"]["number"] == "1002"
    # a copy of an answered request that comes after its deadline gets the first answer, and undoes nothing
    clock.advance(seconds=60)
    copy = await svc.handle(topics.cmd_ticket, dumps({"request_id": "tap-2", "field": "dat-dai", "deadline": now + 5}))
    assert copy.reply == ok.reply

    # a keypad press answered too late calls nobody
    now = clock.now().timestamp()
    press = await svc.handle(topics.cmd_counter("1"),
                             dumps({"request_id": "key-1", "action": "call_next", "deadline": now - 0.5}))
    assert press.reply is not None and press.reply["error"]["code"] == "expired"
    assert svc.book.counters["1"].status == "closed" and svc.book.counters["1"].ticket is None
    assert all(t.status == "waiting" and t.calls == 0 for t in svc.book.tickets.values())
    rated = await svc.handle(topics.cmd_rating,
                             dumps({"request_id": "rate-1", "counter": "1", "score": 3, "deadline": now - 0.5}))
    assert rated.reply is not None and rated.reply["error"]["code"] == "expired"

    # a bad deadline is a bad request, and changes nothing either
    bad = await svc.handle(topics.cmd_ticket, dumps({"request_id": "tap-4", "field": "dat-dai", "deadline": "soon"}))
    assert bad.reply is not None and bad.reply["error"]["code"] == "bad_request"
    assert len(svc.book.tickets) == 2

    # the refusal is kept with the other answers: after a restart the same request id is still refused
    await svc.settle()
    restarted = QueueService(svc.site, svc.store, clock)
    await restarted.load()
    after = await restarted.handle(topics.cmd_ticket,
                                   dumps({"request_id": "tap-1", "field": "dat-dai", "deadline": now + 5}))
    assert after.reply == late.reply and len(restarted.book.tickets) == 2


# ---------------------------------------------------------------- what every client sends


async def test_the_requester_sends_a_deadline_and_a_message_expiry(broker: Broker) -> None:
    topics = Topics(f"dl{new_id()[:8]}")
    session = MqttSession(MqttSettings.from_url(broker.url), identifier=f"dl-{new_id()[:8]}", name="test")
    requester = Requester(session, topics, "kiosk-test")
    async with Probe(broker.url) as probe:
        await probe.subscribe(topics.cmd_all)
        running = asyncio.create_task(session.run())
        try:
            await session.wait_connects(1)
            before = time.time()
            asking = asyncio.create_task(
                requester.request(topics.cmd_ticket, {"request_id": "r1", "field": "dat-dai"}, timeout=5.0))
            sent = await probe.wait_for(lambda m: m.topic == topics.cmd_ticket)
            after = time.time()
            asking.cancel()
        finally:
            running.cancel()
    body = json.loads(sent.payload)
    assert body["request_id"] == "r1" and body["field"] == "dat-dai"
    assert before + 4.0 - 0.001 <= body["deadline"] <= after + 4.0 + 0.001
    # whole seconds, counted down by the broker on the way
    assert 3 <= sent.properties.MessageExpiryInterval <= 4


# ---------------------------------------------------------------- a real core, frozen


@contextlib.contextmanager
def core_process(path: Path, tmp_path: Path) -> Iterator[CoreProcess]:
    core = CoreProcess(path, tmp_path / "core.log").start()
    try:
        yield core
    finally:
        core.stop()


@contextlib.contextmanager
def frozen(core: CoreProcess) -> Iterator[None]:
    """The core stopped as a hung or swapped-out process is: its broker connection stays up, so
    commands reach its socket and wait there for it."""
    assert core.proc is not None
    core.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        core.proc.send_signal(signal.SIGCONT)


async def core_online(probe: Probe, topics: Topics) -> None:
    await probe.wait_for(lambda m: m.topic == topics.status_core and m.text == "online", timeout=20)


async def issued_numbers(probe: Probe, topics: Topics) -> list[str]:
    """Today's tickets; its reply also says the core has worked through everything sent before."""
    reply = await probe.request(topics.cmd_query, {"request_id": new_id(), "query": "tickets"}, timeout=20)
    assert reply["ok"], reply
    return [t["number"] for t in reply["tickets"]]


def site_with_web(tmp_path: Path, broker: Broker) -> tuple[Path, Topics]:
    path, site_id = write_site(tmp_path, broker.url, extra=web_extra(tmp_path, free_port(), more=accounts_extra()))
    return path, Topics(site_id)


async def test_a_kiosk_tap_that_timed_out_never_issues_a_ticket(broker: Broker, tmp_path: Path) -> None:
    path, topics = site_with_web(tmp_path, broker)
    tap = {"field": "dat-dai", "kiosk": "kiosk-1", "request_id": "tap-1"}
    async with Probe(broker.url) as probe:
        await probe.subscribe(topics.status_core)
        with core_process(path, tmp_path) as core:
            await core_online(probe, topics)
            async with running_web(path) as web, aiohttp.ClientSession() as http:
                with frozen(core):
                    async with http.post(web.url + "/api/tickets", json=tap) as resp:
                        status, body = resp.status, await resp.json()
                # the kiosk was told it failed...
                assert status == 503 and body["error"]["code"] == "unavailable", body
                # ...and once the core has worked through what waited for it, no ticket was issued
                assert await issued_numbers(probe, topics) == []
                # the kiosk's retry with the same request id gets a consistent answer: not issued
                async with http.post(web.url + "/api/tickets", json=tap) as resp:
                    status, body = resp.status, await resp.json()
                assert status == 409 and body["error"]["code"] == "expired", body
                assert "không được thực hiện" in body["error"]["message"]  # the core's own words, for people
                fresh = await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
                assert fresh["ticket"]["number"] == "1001"  # no number was used up either


async def test_a_console_action_that_timed_out_never_calls_anyone(broker: Broker, tmp_path: Path) -> None:
    path, topics = site_with_web(tmp_path, broker)
    async with Probe(broker.url) as probe:
        await probe.subscribe(topics.status_core)
        with core_process(path, tmp_path) as core:
            await core_online(probe, topics)
            waiting = await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            assert waiting["ticket"]["number"] == "1001"
            async with running_web(path) as web, \
                    aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                assert (await login(http, web.url, "canbo1")).status == 303
                csrf = await csrf_of(http, web.url + "/counter/1")
                with frozen(core):
                    async with http.post(web.url + "/api/counter/1", json={"action": "call_next"},
                                         headers={"X-CSRF-Token": csrf}) as resp:
                        status, body = resp.status, await resp.json()
                assert status == 503 and body["error"]["code"] == "unavailable", body
                reply = await probe.request(topics.cmd_query, {"request_id": new_id(), "query": "ticket",
                                                               "ticket": "1001"}, timeout=20)
                assert reply["ticket"]["status"] == "waiting" and reply["ticket"]["calls"] == 0, reply


async def test_a_keypad_press_that_timed_out_never_calls_anyone(broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, broker.url)
    topics = Topics(site_id)
    bus = sim_bus(tmp_path, "bus-a", "qms-serial", {1: "1"})
    config = write_agent_config(tmp_path, broker.url, site_id,
                                [{"id": "1", "port": "bus-a", "driver": "qms-serial", "address": 1}],
                                request_timeout_s=1.0)
    try:
        async with Probe(broker.url) as probe:
            await probe.subscribe(topics.status_core)
            with core_process(path, tmp_path) as core:
                await core_online(probe, topics)
                waiting = await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
                assert waiting["ticket"]["number"] == "1001"
                async with running_agent(config):
                    await bus.wait_shown(1, "")  # the agent has the counter's state: closed
                    with frozen(core):
                        mark = bus.mark()
                        bus.press(1, "N")
                        # the agent gave up on the key and said so on the panel
                        await bus.wait_shown(1, "E-08", flash=True, start=mark)
                    # once the core has worked through its backlog: nobody was called
                    reply = await probe.request(topics.cmd_query, {"request_id": new_id(), "query": "ticket",
                                                                   "ticket": "1001"}, timeout=20)
                    assert reply["ticket"]["status"] == "waiting" and reply["ticket"]["calls"] == 0, reply
                    assert reply["counter"] is None
                    assert "call_next (" not in core.log()
    finally:
        bus.close()


# ---------------------------------------------------------------- the kiosk page resolves a lost answer

KIOSK_READY = "window.qmsKiosk.view && window.qmsKiosk.view.online && window.qmsKiosk.connected"


@contextlib.asynccontextmanager
async def kiosk_office(chromium: Browser, broker: Broker, tmp_path: Path) -> AsyncIterator[
        tuple[Probe, Topics, CoreProcess, str, BrowserContext]]:
    """A core process, the web server and a portrait touch screen: (probe on the core's presence,
    topics, core, the server's URL, the browser context)."""
    path, topics = site_with_web(tmp_path, broker)
    async with Probe(broker.url) as probe:
        await probe.subscribe(topics.status_core)
        with core_process(path, tmp_path) as core:
            await core_online(probe, topics)
            async with running_web(path) as web:
                context = await chromium.new_context(viewport={"width": 1080, "height": 1920}, has_touch=True)
                yield probe, topics, core, web.url, context
                await context.close()


async def test_the_kiosk_asks_again_and_shows_the_ticket_whose_answer_was_lost(
        chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    async with kiosk_office(chromium, broker, tmp_path) as (probe, topics, _, url, context):
        await context.add_init_script("window.print = () => {};")
        kiosk = await Tab.open(context, url + "/kiosk?id=kiosk-1", KIOSK_READY)
        bodies: list[dict[str, Any]] = []

        async def lose_the_first_answer(route: Route) -> None:
            bodies.append(json.loads(route.request.post_data or "{}"))
            if len(bodies) == 1:
                answer = await route.fetch()  # the server issues the ticket...
                assert answer.status == 200
                await route.abort("timedout")  # ...and its answer never reaches the kiosk
            else:
                await route.continue_()

        await kiosk.page.route("**/api/tickets*", lose_the_first_answer)
        await to_fields(kiosk)
        await kiosk.page.tap(".field-button[data-field='dat-dai']")
        await kiosk.until("!document.getElementById('issued').hidden")
        assert await kiosk.text("#t-number") == "1001"
        assert len(bodies) == 2 and bodies[0]["request_id"] == bodies[1]["request_id"]
        assert await issued_numbers(probe, topics) == ["1001"]  # one tap, one ticket
        assert not kiosk.errors


async def test_the_kiosk_says_not_issued_when_the_core_answers_too_late(
        chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    async with kiosk_office(chromium, broker, tmp_path) as (probe, topics, core, url, context):
        await context.add_init_script("window.print = () => {};")
        kiosk = await Tab.open(context, url + "/kiosk?id=kiosk-1", KIOSK_READY)
        await to_fields(kiosk)
        with frozen(core):
            async with kiosk.page.expect_response("**/api/tickets*", timeout=30_000) as first:
                await kiosk.page.tap(".field-button[data-field='dat-dai']")
            assert (await first.value).status == 503  # the server waited for the core in vain
        # the core takes the tap late and refuses it; the kiosk's retry learns that
        not_issued = Texts("vi").kiosk_not_issued
        await kiosk.until("(t) => !document.getElementById('error').hidden "
                          "&& document.getElementById('error').textContent === t", not_issued)
        assert not_issued == "Chưa lấy được số, mời ông/bà thử lại."
        assert await kiosk.page.evaluate("window.qmsKiosk.attempts") == 2
        assert await kiosk.page.is_hidden("#issued")
        assert await issued_numbers(probe, topics) == []
        assert not kiosk.errors


async def test_the_kiosk_says_not_issued_when_no_answer_comes_at_all(
        chromium: Browser, broker: Broker, tmp_path: Path) -> None:
    """The server cannot be reached for the kiosk's whole retry time (its clock runs fast here)."""
    async with kiosk_office(chromium, broker, tmp_path) as (_, _, _, url, context):
        page = await context.new_page()
        await page.clock.install()
        kiosk = Tab(page)
        await page.goto(url + "/kiosk?id=kiosk-1")
        await kiosk.until(KIOSK_READY)
        attempts: list[float] = []

        async def unreachable(route: Route) -> None:
            attempts.append(await page.evaluate("Date.now()"))
            await route.abort("internetdisconnected")

        await page.route("**/api/tickets*", unreachable)
        await to_fields(kiosk)
        started = await page.evaluate("Date.now()")
        await page.tap(".field-button[data-field='dat-dai']")
        not_issued = Texts("vi").kiosk_not_issued
        for _ in range(200):  # fake time: each step moves the page's clock, no one waits
            if await page.evaluate("document.getElementById('error').textContent") == not_issued:
                break
            await page.clock.run_for(500)
        shown = await page.evaluate("Date.now()")
        assert await page.evaluate("document.getElementById('error').textContent") == not_issued
        assert len(attempts) >= 4 and await page.evaluate("window.qmsKiosk.attempts") == len(attempts)
        assert shown - started >= 20_000  # it kept asking for its whole retry time...
        assert shown - attempts[-1] >= 5_000  # ...and said so once its last attempt's deadline had passed
        assert await page.is_hidden("#issued")
        assert not await page.is_disabled(".field-button[data-field='dat-dai']")
        assert not kiosk.errors
