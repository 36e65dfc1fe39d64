"""What the core tells the notifier: tickets with a phone number, on a topic only the notifier
reads, near the front once, and on request after a restart; phone numbers forgotten in time."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from qms_common.config import load_site_config
from qms_common.protocol import Topics
from queue_core.clock import ManualClock
from queue_core.service import QueueService
from queue_core.store import Store
from tests.support.core import running_core
from tests.support.mqtt import Probe
from tests.support.site import write_site

NOTIFY = "\n[notify]\nahead = 2\nphone_days = 30\n"
PHONE = "84912345678"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[QueueService]:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra=NOTIFY)
    site = load_site_config(path)
    store = await Store.open(site.storage_path)
    svc = QueueService(site, store, ManualClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC)))
    await svc.load()
    yield svc
    await store.close()


def contacts_of(messages: list[Any], topics: Topics) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in messages if m.topic == topics.private_contact]


async def issue(svc: QueueService, rid: str, phone: str | None = PHONE) -> tuple[dict[str, Any], list[Any]]:
    body: dict[str, Any] = {"request_id": rid, "field": "dat-dai"}
    if phone:
        body["phone"] = phone
    result = await svc.handle(svc.topics.cmd_ticket, json.dumps(body).encode())
    assert result.reply is not None and result.reply["ok"], result.reply
    return result.reply, result.messages


async def test_a_ticket_with_a_phone_is_told_privately_and_events_never_carry_it(service: QueueService) -> None:
    svc, t = service, service.topics
    reply, messages = await issue(svc, "a")
    [contact] = contacts_of(messages, t)
    assert contact["phone"] == PHONE and contact["ticket"]["id"] == reply["ticket"]["id"]
    assert contact["ahead"] == 0 and contact["est_wait_s"] == 0 and contact["seq"] > 0
    assert all(PHONE not in m.payload.decode() for m in messages if m.topic != t.private_contact)
    assert PHONE not in json.dumps(reply)
    _, messages = await issue(svc, "b", phone=None)
    assert contacts_of(messages, t) == []


async def test_phones_are_normalised_and_a_wrong_one_is_refused(service: QueueService) -> None:
    svc, t = service, service.topics
    _, messages = await issue(svc, "n", phone="091 234 5678")
    assert contacts_of(messages, t)[0]["phone"] == PHONE
    result = await svc.handle(t.cmd_ticket, b'{"request_id":"w","field":"dat-dai","phone":"12345"}')
    assert result.reply is not None and result.reply["error"]["code"] == "bad_request"
    assert "0912345678" in result.reply["error"]["message"]  # says how to write one
    assert len(svc.book.tickets) == 1


async def test_each_waiting_ticket_is_told_once_when_it_comes_near_the_front(service: QueueService) -> None:
    svc, t = service, service.topics
    ids = []
    for i in range(6):
        reply, _ = await issue(svc, f"i{i}")
        ids.append(reply["ticket"]["id"])
    await svc.handle(t.cmd_counter("1"), b'{"request_id":"o","action":"open"}')
    near: dict[str, list[int]] = {}
    called: list[str] = []
    for i in range(6):
        call = json.dumps({"request_id": f"c{i}", "action": "call_next"}).encode()
        result = await svc.handle(t.cmd_counter("1"), call)
        for c in contacts_of(result.messages, t):
            if c["ticket"]["status"] == "serving":
                called.append(c["ticket"]["id"])
            elif c["ahead"] is not None:
                near.setdefault(c["ticket"]["id"], []).append(c["ahead"])
    assert called == ids
    # the first three (ahead 0, 1, 2) were near at issue; each later one is told once, at ahead 2
    assert near == {ids[3]: [2], ids[4]: [2], ids[5]: [2]}


async def test_the_contacts_query_answers_only_the_notifier(service: QueueService) -> None:
    svc, t = service, service.topics
    for i in range(3):
        await issue(svc, f"q{i}")
    await issue(svc, "nophone", phone=None)
    ask = b'{"request_id":"q","query":"contacts","limit":2}'
    result = await svc.handle(t.cmd_query, ask, t.reply("web") + "/x")
    assert result.reply is not None and result.reply["error"]["code"] == "forbidden"
    assert PHONE not in json.dumps(result.reply)
    result = await svc.handle(t.cmd_query, ask, t.reply("notify") + "/x")
    assert result.reply is not None and result.reply["ok"]
    page = result.reply["contacts"]
    assert [c["ahead"] for c in page] == [0, 1] and all(c["phone"] == PHONE for c in page)
    assert result.reply["day"] == svc.book.day and result.reply["seq"] == svc.seq
    more = json.dumps({"request_id": "q2", "query": "contacts", "limit": 2, "after": result.reply["next"]})
    result = await svc.handle(t.cmd_query, more.encode(), t.reply("notify") + "/x")
    assert result.reply is not None and [c["ahead"] for c in result.reply["contacts"]] == [2]
    assert result.reply["next"] is None


async def test_phone_numbers_are_erased_phone_days_after_their_business_day(service: QueueService) -> None:
    svc = service
    await issue(svc, "old")
    assert isinstance(svc.clock, ManualClock)
    db = svc.store.path

    def phones() -> list[Any]:
        with sqlite3.connect(db) as conn:
            return [r[0] for r in conn.execute("SELECT phone FROM tickets")]

    svc.clock.advance(days=30)
    await svc.tick()
    assert phones() == [PHONE]  # day 30 after: still kept
    svc.clock.advance(days=1)
    await svc.tick()
    assert phones() == [None]


async def test_without_notify_the_core_tells_nobody(tmp_path: Path) -> None:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1")
    site = load_site_config(path)
    store = await Store.open(site.storage_path)
    try:
        svc = QueueService(site, store, ManualClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC)))
        await svc.load()
        _, messages = await issue(svc, "a")
        assert contacts_of(messages, svc.topics) == []
        result = await svc.handle(svc.topics.cmd_query, b'{"request_id":"q","query":"contacts"}',
                                  svc.topics.reply("notify") + "/x")
        assert result.reply is not None and result.reply["error"]["code"] == "forbidden"
    finally:
        await store.close()


async def test_the_private_topic_reaches_the_notifier_over_the_real_broker(broker: Any, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, broker.url, extra=NOTIFY)
    t = Topics(site_id)
    async with running_core(path), Probe(broker.url) as notifier:
        await notifier.subscribe(t.private_all)
        reply = await notifier.request(t.cmd_ticket, {"request_id": "r1", "field": "dat-dai", "phone": PHONE})
        contact = await notifier.wait_topic(t.private_contact)
        assert contact["ticket"]["id"] == reply["ticket"]["id"] and contact["phone"] == PHONE


async def test_the_record_says_whether_a_ticket_has_a_phone_never_which(service: QueueService) -> None:
    svc, t = service, service.topics
    with_phone, messages = await issue(svc, "r1")
    without, _ = await issue(svc, "r2", phone=None)
    # the public ticket (replies, events, state) is unchanged: only the records say it
    assert "has_phone" not in with_phone["ticket"]
    assert all("has_phone" not in m.payload.decode() for m in messages if m.topic != t.private_contact)
    for reply, has in ((with_phone, True), (without, False)):
        ask = json.dumps({"request_id": "q", "query": "ticket", "ticket": reply["ticket"]["id"]}).encode()
        result = await svc.handle(t.cmd_query, ask, t.reply("web") + "/x")
        assert result.reply is not None and result.reply["ticket"]["has_phone"] is has, result.reply
        assert PHONE not in json.dumps(result.reply) and PHONE[2:] not in json.dumps(result.reply)
    result = await svc.handle(t.cmd_query, b'{"request_id":"q","query":"tickets"}', t.reply("web") + "/x")
    assert result.reply is not None
    assert [r["has_phone"] for r in result.reply["tickets"]] == [True, False]
