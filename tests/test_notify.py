"""The notifier end to end: a real broker and core, the notifier (in this process, or as a real
process killed with -9), and the stand-in provider server answering the providers' shapes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from notifier.outbox import idempotency_key
from notifier.receipts import zalo_signature
from notifier.service import Notifier, build, receipt_app
from notifier.settings import load_notify_settings
from notifier.standin.server import STATE, make_app
from notifier.standin.state import StandinSettings, StandinState
from notifier.texts import strip_diacritics
from qms_common.config import load_site_config
from qms_common.devbroker import Broker, free_port, stop_process
from qms_common.protocol import Topics
from qms_common.signing import Signer, load_secret, tracking_path, web_secret_file
from tests.support.core import running_core
from tests.support.mqtt import Probe
from tests.support.site import write_site

APP_ID, SECRET, HOOK_SECRET = "app-1", "app-secret-key", "hook-secret-0123456789"
OA_SECRET = "oa-webhook-key"  # Zalo signs the OA's events with a key of their own
KINDS = ("issued", "nears", "called", "rate")


@dataclass
class Standin:
    url: str
    state: StandinState
    changed: asyncio.Condition

    async def fault(self, spec: dict[str, Any]) -> None:
        async with aiohttp.ClientSession() as s, s.post(self.url + "/_standin/faults", json=spec) as r:
            assert r.status == 200, await r.text()

    def delivered(self, key: str) -> list[dict[str, Any]]:
        return [e for e in self.state.log if e["key"] == key and e["result"] == "delivered"]

    async def wait(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(predicate)


@pytest.fixture
async def standin() -> AsyncIterator[Standin]:
    app = make_app(StandinSettings(zalo_app_id=APP_ID, zalo_secret=SECRET, zalo_oa_secret=OA_SECRET,
                                   webhook_secret=HOOK_SECRET))
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state: StandinState = app[STATE]
    changed = asyncio.Condition()
    loop = asyncio.get_running_loop()

    def observe(_: dict[str, Any]) -> None:
        # entries are recorded before they are answered: look again once the answer is written
        async def later() -> None:
            await asyncio.sleep(0)
            async with changed:
                changed.notify_all()
        loop.call_later(0.01, lambda: loop.create_task(later()))

    state.observers.append(observe)
    try:
        yield Standin(f"http://127.0.0.1:{runner.addresses[0][1]}", state, changed)
    finally:
        await runner.cleanup()


def notify_toml(standin: Standin, *, ahead: int = 2, listen: int | None = None, retry_max_s: float = 3) -> str:
    return f"""
[web]
public_url = "https://xephang.example.vn"

[notify]
ahead = {ahead}
channels = ["zalo", "sms"]
retry_max_s = {retry_max_s}
give_up_s = 600
listen = "{f'127.0.0.1:{listen}' if listen else ''}"

[notify.zalo]
base_url = "{standin.url}"
oauth_url = "{standin.url}"
app_id = "{APP_ID}"
secret_key = "{SECRET}"
oa_secret_key = "{OA_SECRET}"
refresh_token = "first-refresh"
templates = {{ issued = "101", nears = "102", called = "103", rate = "104" }}
rate_per_s = 200

[notify.sms]
provider = "esms"
base_url = "{standin.url}"
api_key = "k"
secret_key = "s"
brandname = "UBND XA"
rate_per_s = 200

[[notify.webhooks]]
url = "{standin.url}/hook/tinh"
secret = "{HOOK_SECRET}"
events = ["issued", "called", "finished"]
rate_per_s = 200
"""


@contextlib.asynccontextmanager
async def running_notifier(config: Path) -> AsyncIterator[Notifier]:
    site = load_site_config(config)
    settings = load_notify_settings(site)
    assert settings is not None
    n = await build(site, settings)
    runner = None
    app = receipt_app(n)
    if settings.listen and app is not None:
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, *settings.listen).start()
    task = asyncio.create_task(n.run())
    try:
        async with asyncio.timeout(10):
            await n.caught_up.wait()
        yield n
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await n.close()
        await n.outbox.close()
        if runner is not None:
            await runner.cleanup()


class Office:
    """Commands as the kiosk and a counter send them."""

    def __init__(self, probe: Probe, topics: Topics) -> None:
        self.probe, self.t, self.n = probe, topics, 0

    async def issue(self, phone: str | None, field: str = "dat-dai") -> dict[str, Any]:
        self.n += 1
        body: dict[str, Any] = {"request_id": f"i{self.n}-{time.time_ns()}", "field": field}
        if phone:
            body["phone"] = phone
        reply = await self.probe.request(self.t.cmd_ticket, body)
        assert reply["ok"], reply
        return reply["ticket"]  # type: ignore[no-any-return]

    async def counter(self, action: str, counter: str = "1") -> dict[str, Any]:
        self.n += 1
        return await self.probe.request(self.t.cmd_counter(counter),
                                        {"request_id": f"c{self.n}-{time.time_ns()}", "action": action})


def phone(i: int) -> str:
    return f"849{i:08d}"


def key(site: str, ticket: str, kind: str) -> str:
    return idempotency_key(site, f"c:{ticket}:{kind}")


@pytest.fixture
async def office(broker: Broker, tmp_path: Path, standin: Standin) -> AsyncIterator[tuple[Office, Path, str]]:
    listen = free_port()
    config, site_id = write_site(tmp_path, broker.url, extra=notify_toml(standin, listen=listen))
    async with running_core(config), Probe(broker.url) as probe:
        yield Office(probe, Topics(site_id)), config, site_id


async def test_every_kind_goes_out_once_in_order_with_a_working_link(office: tuple[Office, Path, str],
                                                                     standin: Standin) -> None:
    o, config, site = office
    async with running_notifier(config) as n:
        tickets = [await o.issue(phone(i)) for i in range(4)]
        await o.counter("open")
        for t in tickets:
            assert (await o.counter("call_next"))["ok"]
            # an officer takes minutes, not milliseconds: a "called" for a ticket already served is
            # dropped as late (another test), so let each go out before the next call
            await standin.wait(lambda t=t: bool(standin.delivered(key(site, t["id"], "called"))))
        await o.counter("finish")
        last = tickets[3]["id"]
        keys = [key(site, last, k) for k in KINDS]
        await standin.wait(lambda: all(standin.delivered(k) for k in keys))
        order = [e["key"] for e in standin.state.log if e["key"] in keys]
        assert order == keys  # issued, nears, called, rate: each once, in that order
        # the first ticket was near the front at once: no "turns nears" after "issued"
        first = tickets[0]["id"]
        await standin.wait(lambda: bool(standin.delivered(key(site, first, "rate"))))
        assert not [e for e in standin.state.log if e["key"] == key(site, first, "nears")]
        assert all(len(standin.delivered(key(site, t["id"], "issued"))) == 1 for t in tickets)
        # the link in the message opens the ticket's own page: the web server's token
        signer = Signer(load_secret(web_secret_file(load_site_config(config))))
        assert any(tracking_path(signer, last) in d.text for d in standin.state.inbox)
        # 4 issued, 1 nears, 4 called, 4 rate (the first three were rated-for once the next was called)
        await standin.wait(lambda: sum(e["result"] == "delivered" for e in standin.state.log
                                       if e["provider"] == "zalo") >= 13)
        assert sum(e["result"] == "delivered" for e in standin.state.log if e["provider"] == "zalo") == 13
        assert (await n.stats())["zalo_quota_left"] is not None
    # webhooks: signed (the stand-in checked it), one per event of the kinds listed
    hooks = [e for e in standin.state.log if e["provider"] == "hook"]
    assert hooks and all(e["result"] == "delivered" for e in hooks)


async def test_no_zalo_account_falls_back_to_sms_without_diacritics(office: tuple[Office, Path, str],
                                                                   standin: Standin) -> None:
    o, config, site = office
    await standin.fault({"provider": "zalo", "error": -118, "phones": [phone(7)]})
    async with running_notifier(config) as n:
        t = await o.issue(phone(7))
        k = key(site, t["id"], "issued")
        await standin.wait(lambda: bool(standin.delivered(k)))
        [entry] = standin.delivered(k)
        assert entry["provider"] == "esms"
        sms = standin.state.inbox[-1].text
        assert sms == strip_diacritics(sms) and len(sms) <= 160 and "1001" in sms
        [row] = [r for r in await n.outbox.all_rows() if r.key.startswith("c:") and r.kind == "issued"]
        assert row.route == "sms" and row.state == "sent"
        with sqlite3.connect(n.outbox.path) as conn:
            [(reason,)] = conn.execute("SELECT reason FROM messages WHERE id = ?", (row.id,))
        assert "-118" in reason  # why it went by SMS


async def test_a_slow_provider_never_delays_another(office: tuple[Office, Path, str], standin: Standin) -> None:
    o, config, site = office
    slow = [phone(40 + i) for i in range(12)]  # more than a channel sends at once
    await standin.fault({"provider": "zalo", "error": -118, "phones": slow})
    await standin.fault({"provider": "esms", "delay_s": 8})
    async with running_notifier(config):
        by_sms = [await o.issue(p) for p in slow]
        await standin.wait(lambda: sum(e["provider"] == "esms" for e in standin.state.log) >= 8)
        # the SMS gateway is still thinking about all it has; Zalo goes on
        by_zalo = await o.issue(phone(60))
        await standin.wait(lambda: bool(standin.delivered(key(site, by_zalo["id"], "issued"))), timeout=4)
        assert not any(standin.delivered(key(site, t["id"], "issued")) for t in by_sms)


async def test_a_provider_down_for_30_s_loses_and_repeats_nothing(office: tuple[Office, Path, str],
                                                                  standin: Standin) -> None:
    o, config, site = office
    await standin.fault({"provider": "zalo", "http_status": 500, "for_s": 30})
    await standin.fault({"provider": "esms", "http_status": 503, "for_s": 30})
    async with running_notifier(config):
        tickets = [await o.issue(phone(20 + i)) for i in range(5)]
        keys = [key(site, t["id"], "issued") for t in tickets]
        await standin.wait(lambda: any(e["result"] == "http 500" for e in standin.state.log))
        await standin.wait(lambda: all(standin.delivered(k) for k in keys), timeout=60)
    for k in keys:
        assert len(standin.delivered(k)) == 1


async def test_what_happened_while_it_was_stopped_is_caught_up_and_late_news_dropped(
        office: tuple[Office, Path, str], standin: Standin) -> None:
    o, config, site = office
    async with running_notifier(config):
        pass  # the broker now keeps its session
    served, waiting = await o.issue(phone(70)), await o.issue(phone(71))
    await o.counter("open")
    await o.counter("call_next")
    await o.counter("finish")
    async with running_notifier(config) as n:
        await standin.wait(lambda: bool(standin.delivered(key(site, waiting["id"], "issued")))
                           and bool(standin.delivered(key(site, served["id"], "rate"))))
        rows = {r.key: r for r in await n.outbox.all_rows()}
    late = rows[f"c:{served['id']}:issued"]
    assert late.state == "dropped"
    with sqlite3.connect(n.outbox.path) as conn:
        reasons = dict(conn.execute("SELECT kind, reason FROM messages WHERE ticket = ?", (served["id"],)))
    assert "đã phục vụ xong" in reasons["issued"] and "đã phục vụ xong" in reasons["called"]
    assert not standin.delivered(key(site, served["id"], "called"))


async def test_a_broker_restart_loses_nothing(own_broker: Broker, tmp_path: Path, standin: Standin) -> None:
    config, site = write_site(tmp_path, own_broker.url, extra=notify_toml(standin))
    async with running_core(config), running_notifier(config) as n:
        own_broker.stop()
        own_broker.start()
        async with asyncio.timeout(20):
            await n.session.wait_connects(2)
        async with Probe(own_broker.url) as probe:
            o = Office(probe, Topics(site))
            await probe.subscribe(o.t.status_core)
            await probe.wait_for(lambda m: m.topic == o.t.status_core and m.payload == b"online", timeout=20)
            tickets = [await o.issue(phone(80 + i)) for i in range(3)]
            keys = [key(site, t["id"], "issued") for t in tickets]
            await standin.wait(lambda: all(standin.delivered(k) for k in keys), timeout=20)


async def test_a_forged_delivery_receipt_is_refused(office: tuple[Office, Path, str], standin: Standin) -> None:
    o, config, site = office
    settings = load_notify_settings(load_site_config(config))
    assert settings is not None and settings.listen is not None
    url = f"http://127.0.0.1:{settings.listen[1]}/zalo/events"
    async with running_notifier(config) as n, aiohttp.ClientSession() as http:
        t = await o.issue(phone(30))
        k = key(site, t["id"], "issued")
        await standin.wait(lambda: bool(standin.delivered(k)))
        msg_id = standin.delivered(k)[0]["msg_id"]
        ts = str(int(time.time() * 1000))
        body = json.dumps({"app_id": APP_ID, "event_name": "user_received_message", "timestamp": ts,
                           "message": {"msg_id": msg_id, "delivery_time": ts}}).encode()
        forged = {"X-ZEvent-Signature": zalo_signature(APP_ID, "not-the-secret", body, ts),
                  "Content-Type": "application/json"}
        async with http.post(url, data=body, headers=forged) as r:
            assert r.status == 403
        assert {r.state for r in await n.outbox.all_rows() if r.key == f"c:{t['id']}:issued"} == {"sent"}
        # signed with the app's secret is forged too: receipts are the OA key's
        async with http.post(url, data=body, headers={**forged, "X-ZEvent-Signature": zalo_signature(
                APP_ID, SECRET, body, ts)}) as r:
            assert r.status == 403
        good = {**forged, "X-ZEvent-Signature": zalo_signature(APP_ID, OA_SECRET, body, ts)}
        async with http.post(url, data=body, headers=good) as r:
            assert r.status == 200
        assert {r.state for r in await n.outbox.all_rows() if r.key == f"c:{t['id']}:issued"} == {"delivered"}


# ---------------------------------------------------------------- crashes


async def wait_file_line(path: Path, needle: str, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Until the process's log has this line (it has no other way to say it is ready)."""
    async with asyncio.timeout(timeout):
        while needle not in (text := await asyncio.to_thread(path.read_text, encoding="utf-8", errors="replace")):
            assert proc.poll() is None, text
            await asyncio.sleep(0.05)  # polling a file: there is no event to wait on


def delivered_hooks(standin: Standin) -> set[str]:
    return {e["key"] for e in standin.state.log if e["provider"] == "hook" and e["result"] == "delivered"}


async def test_kill_9_ten_times_during_a_burst_sends_each_message_once(office: tuple[Office, Path, str],
                                                                       standin: Standin, tmp_path: Path) -> None:
    o, config, site = office
    log_path = tmp_path / "notifier.log"
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            p = subprocess.Popen([sys.executable, "-m", "notifier", "--config", str(config)], stdout=log,
                                 stderr=log, stdin=subprocess.DEVNULL, env={**os.environ})
        procs.append(p)
        return p

    tickets: list[dict[str, Any]] = []
    try:
        proc = start()
        await wait_file_line(log_path, "Đã đối chiếu", proc)
        for round_ in range(10):
            for _ in range(30):
                tickets.append(await o.issue(phone(1000 + len(tickets))))
            # wait until this round's messages are reaching the provider, then kill mid-stream
            await standin.wait(functools.partial(lambda seen: len(standin.state.log) > seen, len(standin.state.log)))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = start()
            await wait_file_line(log_path, "Đã đối chiếu", proc, timeout=15)
            log_path.write_text(f"--- round {round_}\n", encoding="utf-8")
        keys = [key(site, t["id"], "issued") for t in tickets]
        await standin.wait(lambda: all(standin.delivered(k) for k in keys), timeout=60)
        await standin.wait(lambda: len(delivered_hooks(standin)) >= 300, timeout=60)
    finally:
        for p in procs:
            if p.poll() is None:
                stop_process(p)
    assert len(tickets) == 300
    for t in tickets:
        for kind in KINDS:
            assert len(standin.delivered(key(site, t["id"], kind))) <= 1, (t["id"], kind)
        assert len(standin.delivered(key(site, t["id"], "issued"))) == 1
    db = load_notify_settings(load_site_config(config))
    assert db is not None
    with sqlite3.connect(db.store) as conn:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM messages WHERE kind = 'issued' AND key LIKE 'c:%' "
                                   "GROUP BY state"))
    assert states.get("sent", 0) + states.get("delivered", 0) == 300, states
    # the integrator heard of every ticket too, at least once, each delivery named by its key
    assert len(delivered_hooks(standin)) == 300
