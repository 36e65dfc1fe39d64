"""/healthz and /metrics of the web server, over a real broker, a real core and the real web
server; the exposition read with prometheus_client's own parser; the Grafana dashboard checked
against the metrics exposed."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from display_server.metrics import ISSUED
from display_server.metrics.collector import METRICS
from qms_common.devbroker import Broker, free_port
from qms_common.protocol import Topics
from tests.support.core import InProcessCore, running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site
from tests.support.web import WebServer, accounts_extra, login, running_web, web_extra

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana-dashboard.json"
API_KEY = "khoa-prometheus-tinh-0123456789abcdef"
API_KEYS = f'[[api_keys]]\nname = "prometheus-tinh"\nkey_sha256 = "{hashlib.sha256(API_KEY.encode()).hexdigest()}"\n'
FAST_HEALTH = "[health]\ncheck_s = 0.1\n"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@dataclass
class Rig:
    core: InProcessCore
    web: WebServer
    probe: Probe
    topics: Topics
    http: aiohttp.ClientSession

    async def scrape(self, headers: dict[str, str] | None = None) -> Samples:
        async with self.http.get(self.web.url + "/metrics", headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers["Content-Type"].startswith("text/plain; version=")
            return parse(await resp.text())

    async def until(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        """For the web server's own state: checked again at each change its hub publishes."""
        with self.web.follower.hub.subscribe() as sub:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await sub.get()


@pytest.fixture
async def rig(broker: Broker, tmp_path: Path) -> AsyncIterator[Rig]:
    extra = web_extra(tmp_path, free_port(), more=API_KEYS + FAST_HEALTH + accounts_extra())
    path, site_id = write_site(tmp_path, broker.url, extra=extra)
    topics = Topics(site_id)
    async with Probe(broker.url) as probe, running_core(path) as core, running_web(path) as web, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        rig = Rig(core, web, probe, topics, http)
        await rig.until(lambda: web.follower.state.core_online and web.follower.state.site is not None)
        yield rig


async def test_metrics_move_after_a_ticket(rig: Rig) -> None:
    async with rig.http.get(rig.web.url + "/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"ok": True, "mqtt": True, "core": "online", "server": "web-test"}
    issued = rig.web.app[ISSUED]
    async with asyncio.timeout(10):
        await issued.wait(lambda n: n == 0)
    before = await rig.scrape()
    assert value(before, "qms_mqtt_connected") == 1
    assert value(before, "qms_service_up", service="core") == 1
    assert value(before, "qms_service_up", service="web/web-test") == 1
    assert value(before, "qms_tickets_issued_today") == 0
    assert value(before, "qms_queue_waiting", field="dat-dai") == 0
    assert value(before, "qms_command_latency_seconds_count", command="ticket", outcome="ok") is None

    async with rig.http.post(rig.web.url + "/api/tickets", json={"field": "dat-dai"}) as resp:
        assert resp.status == 200, await resp.text()
    async with asyncio.timeout(10):
        await issued.wait(lambda n: n == 1)
    state = rig.web.follower.state
    await rig.until(lambda: state.queues["dat-dai"]["waiting"] == 1
                    and (state.core_health or {}).get("commit_ms_p99") is not None)
    after = await rig.scrape()
    assert value(after, "qms_tickets_issued_today") == 1
    assert value(after, "qms_queue_waiting", field="dat-dai") == 1
    assert value(after, "qms_queue_est_wait_seconds", field="dat-dai") == 300  # one ahead, default_service_s
    # the kiosk's round trip to the core, timed by the web server itself
    assert value(after, "qms_command_latency_seconds_count", command="ticket", outcome="ok") == 1
    assert value(after, "qms_command_latency_seconds_bucket", command="ticket", outcome="ok", le="+Inf") == 1
    assert 0 < value(after, "qms_command_latency_seconds_sum", command="ticket", outcome="ok") < 5  # type: ignore[operator]
    assert 0 < value(after, "qms_core_commit_p99_seconds") < 5  # type: ignore[operator]
    assert value(after, "qms_core_disk_free_bytes") > 0  # type: ignore[operator]

    # served: the core's own count of the day
    for action in ("call_next", "finish"):
        reply = await rig.probe.request(rig.topics.cmd_counter("1"), {"request_id": new_id(), "action": action})
        assert reply["ok"], reply
    await rig.until(lambda: state.queues["dat-dai"]["served"] == 1)
    served = await rig.scrape()
    assert value(served, "qms_tickets_served_today") == 1
    assert value(served, "qms_queue_served_today", field="dat-dai") == 1
    assert value(served, "qms_tickets_issued_today") == 1
    assert value(served, "qms_counters", status="open") == 1


async def test_notifier_outbox_speech_cache_and_core_warnings(rig: Rig) -> None:
    # the notifier's retained statistics, as notifier/service.py publishes them
    stats = {"day": "2026-11-29", "channels": {"zalo": {"pending": 2, "sent": 5}, "sms": {"sending": 1, "failed": 1}},
             "failures": [], "zalo_quota_left": None, "at": "2026-11-29T09:00:00+07:00"}
    await rig.probe.publish(rig.topics.notify_stats, json.dumps(stats).encode(), retain=True)
    await rig.until(lambda: rig.web.follower.state.notify_stats is not None)
    speech = rig.web.speech
    assert await speech.clip("Mời công dân có số một nghìn không trăm linh một") is not None  # rendered: a miss
    assert await speech.clip("Mời công dân có số một nghìn không trăm linh một") is not None  # cached: a hit
    samples = await rig.scrape()
    assert value(samples, "qms_notify_outbox_pending") == 3
    assert value(samples, "qms_speech_cache_hits_total") == 1
    assert value(samples, "qms_speech_cache_misses_total") == 1
    assert value(samples, "qms_core_warning", code="QMS-CORE-W101") is None
    # a slow disk at the core shows as its warning's code
    health = rig.core.link.health
    real, readings = health.commits.timer, iter(range(10**6))
    health.commits.timer = lambda: real() + 0.5 * next(readings)
    for _ in range(health.settings.commit_min_samples):
        reply = await rig.probe.request(rig.topics.cmd_ticket, {"request_id": new_id(), "field": "ho-tich"})
        assert reply["ok"], reply
    await rig.until(lambda: any(w["code"] == "QMS-CORE-W101"
                                for w in (rig.web.follower.state.core_health or {}).get("warnings", [])))
    samples = await rig.scrape()
    assert value(samples, "qms_core_warning", code="QMS-CORE-W101") == 1
    assert value(samples, "qms_core_commit_p99_seconds") >= 0.5  # type: ignore[operator]


async def test_metrics_outside_the_machine_need_a_supervisor_or_an_api_key(rig: Rig) -> None:
    # a request through a proxy on the machine is not the machine's own
    proxied = {"X-Forwarded-For": "203.0.113.7"}
    async with rig.http.get(rig.web.url + "/metrics", headers=proxied) as resp:
        assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
        body = await resp.json()
        assert body["error"]["message"].startswith("Cần đăng nhập tài khoản giám sát")
    async with rig.http.get(rig.web.url + "/metrics", headers={**proxied, "Authorization": "Bearer sai"}) as resp:
        assert resp.status == 401
    samples = await rig.scrape({**proxied, "Authorization": f"Bearer {API_KEY}"})
    assert value(samples, "qms_mqtt_connected") == 1
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as officer:
        assert (await login(officer, rig.web.url, "canbo1")).status == 303
        async with officer.get(rig.web.url + "/metrics", headers=proxied) as resp:
            assert resp.status == 401
    assert (await login(rig.http, rig.web.url, "giamsat")).status == 303
    assert value(await rig.scrape(proxied), "qms_mqtt_connected") == 1
    # healthz tells nothing secret and needs nothing
    async with aiohttp.ClientSession() as anyone, anyone.get(rig.web.url + "/healthz", headers=proxied) as resp:
        assert resp.status == 200 and set(await resp.json()) == {"ok", "mqtt", "core", "server"}


async def test_wrong_keys_are_limited(rig: Rig) -> None:
    proxied = {"X-Forwarded-For": "203.0.113.7", "Authorization": "Bearer sai"}
    statuses = []
    for _ in range(12):
        async with rig.http.get(rig.web.url + "/metrics", headers=proxied) as resp:
            statuses.append(resp.status)
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    # even the right key waits now: guessing must not go on
    right = {**proxied, "Authorization": f"Bearer {API_KEY}"}
    async with rig.http.get(rig.web.url + "/metrics", headers=right) as resp:
        assert resp.status == 429


async def test_healthz_says_why_when_the_broker_is_gone(own_broker: Broker, tmp_path: Path) -> None:
    path, _ = write_site(tmp_path, own_broker.url, extra=web_extra(tmp_path, free_port()))
    async with running_web(path) as web, aiohttp.ClientSession() as http:
        async with http.get(web.url + "/healthz") as resp:
            assert resp.status == 200 and (await resp.json())["core"] is None  # no core yet: the server itself is fine
        with web.follower.hub.subscribe() as sub:
            own_broker.stop()
            async with asyncio.timeout(10):
                while web.follower.connected:
                    await sub.get()
        async with http.get(web.url + "/healthz") as resp:
            assert resp.status == 503
            body = await resp.json()
        assert body["ok"] is False and body["mqtt"] is False
        assert body["reason"] == "Máy chủ web chưa kết nối được broker MQTT: màn hình và ki-ốt không cập nhật."
        async with http.get(web.url + "/metrics") as resp:
            assert resp.status == 200
            assert value(parse(await resp.text()), "qms_mqtt_connected") == 0


def exposed_names() -> set[str]:
    """Every sample name /metrics can carry: each metric's, a histogram's and a counter's series."""
    names = set()
    for name in METRICS:
        names |= {name, f"{name}_total", f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names


def test_grafana_dashboard_uses_only_exposed_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["title"] and dashboard["schemaVersion"] >= 30 and dashboard["uid"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    used: set[str] = set()
    for expr in exprs:
        names = set(re.findall(r"\bqms_[a-z0-9_]+", expr))
        assert names, expr
        assert names <= exposed_names(), (expr, names - exposed_names())
        used |= names
    # the issue's list: queue lengths, waits, latency, MQTT, outbox, speech cache, disk commit time
    for must in ("qms_queue_waiting", "qms_queue_avg_wait_seconds", "qms_command_latency_seconds_bucket",
                 "qms_mqtt_connected", "qms_notify_outbox_pending", "qms_speech_cache_hits_total",
                 "qms_core_commit_p99_seconds", "qms_core_disk_free_bytes"):
        assert must in used, must
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["gridPos"]["w"] > 0


def test_operations_doc_lists_every_metric() -> None:
    doc = (DASHBOARD.parent / "operations.md").read_text(encoding="utf-8")
    for name in METRICS:
        assert f"| `{name}" in doc, name


async def test_issued_today_counts_what_came_before_the_web_server(broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, broker.url, extra=web_extra(tmp_path, free_port()))
    topics = Topics(site_id)
    async with Probe(broker.url) as probe, running_core(path):
        for field in ("dat-dai", "ho-tich"):
            assert (await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": field}))["ok"]
        async with running_web(path) as web, aiohttp.ClientSession() as http:
            issued = web.app[ISSUED]
            async with asyncio.timeout(10):
                await issued.wait(lambda n: n == 2)  # the day's records, read once
                assert (await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"}))["ok"]
                await issued.wait(lambda n: n == 3)  # then the events
            async with http.get(web.url + "/metrics") as resp:
                assert value(parse(await resp.text()), "qms_tickets_issued_today") == 3
