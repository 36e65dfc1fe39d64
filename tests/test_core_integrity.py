"""The core keeps serving whatever a client sends and whatever the disk does: strings that cannot
be stored, a failed write in a burst, a read-only disk at a broker reconnect, retained commands,
a flood of request ids; and its database is private to its owner."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from qms_common.config import load_site_config
from qms_common.devbroker import Broker
from qms_common.protocol import ErrorCode, ProtocolError, Topics, loads_object
from queue_core.clock import ManualClock
from queue_core.service import QueueService, ReplyRetention
from queue_core.store import Store
from tests.support.core import InProcessCore, running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site

SURROGATE_OPEN = b'{"request_id":"s1","action":"open","officer":"\\ud800"}'


# ---------------------------------------------------------------- strings with no UTF-8 form


@pytest.mark.parametrize("payload", [
    pytest.param(SURROGATE_OPEN, id="value"),
    pytest.param(b'{"request_id":"s2","action":"open","\\udfff":"x"}', id="key"),
    pytest.param(b'{"request_id":"s3","field":"dat-dai","extra":[1,{"a":["\\uDC00"]}]}', id="nested"),
    pytest.param(b'{"request_id":"\\ud83d","field":"dat-dai"}', id="request-id"),
    pytest.param(b'{"request_id":"s4","field":"dat-dai","reply_to":"r/\\ud800"}', id="reply-to"),
    pytest.param(b'{"request_id":"s5","field":"dat-dai","source":"a\\ude00\\ud83d"}', id="pair-reversed"),
    pytest.param('{"request_id":"s6","field":"dat-dai","source":"\ud800"}', id="text-payload"),
    pytest.param(b'{"request_id":"s7","field":"dat-dai","priority":' + b"1" * 5000 + b"}", id="huge-integer"),
])
def test_the_decoder_refuses_what_cannot_be_stored(payload: bytes | str) -> None:
    with pytest.raises(ProtocolError) as err:
        loads_object(payload)
    assert err.value.code is ErrorCode.BAD_REQUEST and err.value.message.startswith("Yêu cầu không hợp lệ")


def test_the_decoder_keeps_escaped_text_that_is_valid() -> None:
    obj = loads_object(b'{"request_id":"ok","officer":"Nguy\\u1ec5n \\ud83d\\ude00","note":"\\\\ud800"}')
    assert obj["officer"] == "Nguyễn 😀" and obj["note"] == "\\ud800"


def db_state(db: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], dict[str, int]]:
    with sqlite3.connect(db) as conn:
        tickets = conn.execute("SELECT id, number, status, counter, officer FROM tickets ORDER BY id").fetchall()
        counters = conn.execute("SELECT id, status, ticket, officer FROM counters ORDER BY id").fetchall()
        numbers = dict(conn.execute("SELECT field, last FROM numbers").fetchall())
    return tickets, counters, numbers


def book_state(core: InProcessCore) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], dict[str, int]]:
    """The core's memory, in the shape of db_state (closed counters never written are left out)."""
    book = core.service.book
    tickets = sorted((t.id, t.number, str(t.status), t.counter, t.officer) for t in book.tickets.values())
    with sqlite3.connect(core.store.path) as conn:
        stored = {r[0] for r in conn.execute("SELECT id FROM counters")}
    counters = sorted((c.id, str(c.status), c.ticket, c.officer) for c in book.counters.values()
                      if c.id in stored or c.status != "closed")
    return tickets, counters, dict(book.last_number)


async def assert_serving_after_broker_restart(core: InProcessCore, broker: Broker, topics: Topics) -> None:
    connects = core.link.session.connects
    broker.restart()  # an empty broker: the core must reconnect and publish everything again
    reconnected = asyncio.ensure_future(core.link.session.wait_connects(connects + 1))
    async with asyncio.timeout(20):
        await asyncio.wait({reconnected, core.task}, return_when=asyncio.FIRST_COMPLETED)
    assert not core.task.done(), "the core stopped"
    assert reconnected.done()
    async with Probe(broker.url) as probe:
        await probe.subscribe(topics.state_all, topics.status_all)
        await probe.wait_for(lambda m: m.topic == topics.status_core and m.text == "online", timeout=10)
        site = await probe.wait_topic(topics.state_site)
        assert site["site"] == topics.site


async def test_a_lone_surrogate_is_a_bad_request_and_the_core_survives_broker_restarts(
        own_broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, own_broker.url)
    topics = Topics(site_id)
    db = tmp_path / f"{site_id}.sqlite3"
    async with running_core(path) as core:
        async with Probe(own_broker.url) as probe:
            await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            before, seq = db_state(db), core.service.seq
            reply = await probe.request(topics.cmd_counter("1"), SURROGATE_OPEN)
            assert reply["ok"] is False and reply["error"]["code"] == "bad_request", reply
            assert db_state(db) == before and core.service.seq == seq
            assert core.service.book.counters["1"].status == "closed"
        for _ in range(2):
            await assert_serving_after_broker_restart(core, own_broker, topics)
        async with Probe(own_broker.url) as probe:
            opened = await probe.request(topics.cmd_counter("1"), {"request_id": new_id(), "action": "open",
                                                                   "officer": "Nguyễn Thị Hoa"})
            assert opened["ok"] and opened["counter"]["officer"] == "Nguyễn Thị Hoa"
            called = await probe.request(topics.cmd_counter("1"), {"request_id": new_id(), "action": "call_next"})
            assert called["ticket"]["number"] == "1001"
        assert book_state(core) == db_state(db)


# ---------------------------------------------------------------- failed writes


def poison_tickets(db: Path, source: str) -> None:
    """A real SQLite failure for one value: the transaction writing that ticket is aborted."""
    with sqlite3.connect(db) as conn:
        conn.execute(f"CREATE TRIGGER poison BEFORE INSERT ON tickets WHEN NEW.source = '{source}' "
                     "BEGIN SELECT RAISE(ABORT, 'disk full'); END")


async def test_a_failed_write_leaves_the_core_serving_and_reconnecting(own_broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, own_broker.url)
    topics = Topics(site_id)
    db = tmp_path / f"{site_id}.sqlite3"
    async with running_core(path) as core:
        async with Probe(own_broker.url) as probe:
            for _ in range(2):
                await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            await probe.request(topics.cmd_counter("1"), {"request_id": new_id(), "action": "open",
                                                          "officer": "Trần Văn Nam"})
            poison_tickets(db, "kiosk-hỏng")
            lost = {"request_id": new_id(), "field": "dat-dai", "source": "kiosk-hỏng"}
            reply = await probe.request(topics.cmd_ticket, lost)
            assert reply["ok"] is False and reply["error"]["code"] == "internal"
            assert book_state(core) == db_state(db)
        # the next thing after the failure is a broker restart, before any other command
        await assert_serving_after_broker_restart(core, own_broker, topics)
        assert book_state(core) == db_state(db)
        async with Probe(own_broker.url) as probe:
            await probe.subscribe(topics.state_all)
            q = await probe.wait_topic(topics.state_queue("dat-dai"))
            assert q["waiting"] == 2 and q["next"] == ["1001", "1002"]
            called = await probe.request(topics.cmd_counter("1"), {"request_id": new_id(), "action": "call_next"})
            assert called["ticket"]["number"] == "1001" and called["counter"]["officer"] == "Trần Văn Nam"
            again = await probe.request(topics.cmd_ticket, {**lost, "source": "kiosk-1"})
            assert again["ok"] and again["ticket"]["number"] == "1003"
        assert book_state(core) == db_state(db)
    assert [t[1] for t in db_state(db)[0]] == ["1001", "1002", "1003"]


async def test_a_read_only_disk_at_a_broker_restart_does_not_stop_the_core(own_broker: Broker,
                                                                          tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, own_broker.url)
    topics = Topics(site_id)
    db = tmp_path / f"{site_id}.sqlite3"
    async with running_core(path) as core:
        async with Probe(own_broker.url) as probe:
            await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            await core.store._db.execute("PRAGMA query_only = ON")  # the disk refuses every write
            refused = await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            assert refused["error"]["code"] == "internal"
        await assert_serving_after_broker_restart(core, own_broker, topics)  # its seq write fails too
        async with Probe(own_broker.url) as probe:
            await probe.subscribe(topics.state_all)
            q = await probe.wait_topic(topics.state_queue("dat-dai"))
            assert q["waiting"] == 1
            refused = await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            assert refused["error"]["code"] == "internal"
            await core.store._db.execute("PRAGMA query_only = OFF")  # the disk is back
            issued = await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            assert issued["ok"] and issued["ticket"]["number"] == "1002"
        assert book_state(core) == db_state(db)


@pytest.mark.parametrize(("poison", "code"), [
    pytest.param({"source": "kiosk-hỏng"}, "internal", id="store-failure"),
    pytest.param({"source": "\ud800"}, "bad_request", id="lone-surrogate"),
])
async def test_one_poisoned_request_in_a_burst_fails_alone(broker: Broker, tmp_path: Path,
                                                            poison: dict[str, str], code: str) -> None:
    path, site_id = write_site(tmp_path, broker.url)
    topics = Topics(site_id)
    db = tmp_path / f"{site_id}.sqlite3"
    async with running_core(path) as core, Probe(broker.url) as probe:
        await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
        poison_tickets(db, "kiosk-hỏng")
        burst: list[dict[str, Any]] = [{"request_id": new_id(), "field": "dat-dai", "source": "kiosk-1"}
                                       for _ in range(40)]
        burst[5] = {**burst[5], **poison}
        # json.dumps escapes the surrogate as \ud800, as a hostile client would send it
        replies = await asyncio.gather(*(probe.request(topics.cmd_ticket, json.dumps(r).encode()) for r in burst))
        assert replies[5]["ok"] is False and replies[5]["error"]["code"] == code, replies[5]
        good = [r for i, r in enumerate(replies) if i != 5]
        assert all(r["ok"] for r in good), [r for r in good if not r["ok"]]
        assert sorted(r["ticket"]["number"] for r in good) == [str(n) for n in range(1002, 1041)]
        assert [r["request_id"] for r in good] == [b["request_id"] for i, b in enumerate(burst) if i != 5]
        # each reply is the one stored: sending it again changes nothing and answers the same
        again = await probe.request(topics.cmd_ticket, burst[6])
        assert again == replies[6]
        assert book_state(core) == db_state(db)
    assert [t[1] for t in db_state(db)[0]] == [str(n) for n in range(1001, 1041)]


# ---------------------------------------------------------------- retained commands


def request_properties(reply_topic: str) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = reply_topic
    props.CorrelationData = uuid.uuid4().bytes
    return props


async def retained_on_broker(broker: Broker, topic: str) -> list[bytes]:
    """The retained messages a new subscriber of `topic` gets: they come right after the
    SUBACK, so a marker sent after subscribing arrives after any of them."""
    async with Probe(broker.url) as watcher:
        await watcher.subscribe(topic)
        marker = await watcher.reply_topic_for(topic)
        await watcher.publish(marker, b"marker")
        await watcher.wait_for(lambda m: m.topic == marker)
        return [m.payload for m in watcher.received if m.topic == topic]


async def test_a_retained_command_is_never_executed_and_is_cleared(broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, broker.url)
    topics = Topics(site_id)
    command = {"request_id": new_id(), "field": "dat-dai"}
    async with Probe(broker.url) as sender:
        async with running_core(path) as core:
            # published live, while the core is subscribed
            answer = await sender.reply_topic_for(topics.cmd_ticket)
            mark = sender.mark()
            await sender.publish(topics.cmd_ticket, command, retain=True,
                                 properties=request_properties(answer))
            reply = (await sender.wait_for(lambda m: m.topic == answer, start=mark)).json
            assert reply["ok"] is False and reply["error"]["code"] == "bad_request"
            assert reply["request_id"] == command["request_id"]
            assert await retained_on_broker(broker, topics.cmd_ticket) == []
            # one left on the broker while the core is away
        await sender.publish(topics.cmd_ticket, {**command, "request_id": new_id()}, retain=True)
        assert len(await retained_on_broker(broker, topics.cmd_ticket)) == 1
        async with running_core(path) as core:
            probe_reply = await sender.request(topics.cmd_counter("1"), {"request_id": new_id(), "action": "open"})
            assert probe_reply["ok"]  # decided after the retained copy the core got at subscribe
            assert core.service.book.tickets == {}
            assert await retained_on_broker(broker, topics.cmd_ticket) == []
            issued = await sender.request(topics.cmd_ticket, command)  # the same command, not retained
            assert issued["ok"] and issued["ticket"]["number"] == "1001"


# ---------------------------------------------------------------- stored replies


@pytest.fixture
async def flood_service(tmp_path: Path) -> AsyncIterator[QueueService]:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1")
    site = load_site_config(path)
    store = await Store.open(site.storage_path)
    clock = ManualClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    svc = QueueService(site, store, clock, ReplyRetention(max_replies=100, prune_batch=20))
    await svc.load()
    yield svc
    await store.close()


async def test_a_flood_of_request_ids_keeps_stored_replies_and_caches_bounded(
        flood_service: QueueService) -> None:
    svc = flood_service
    topic = svc.topics.cmd_counter("1")
    replies: dict[str, dict[str, Any]] = {}
    for i in range(1000):
        rid = f"flood-{i}"
        result = await svc.handle(topic, f'{{"request_id":"{rid}","action":"recall"}}'.encode())
        assert result.reply is not None and result.reply["error"]["code"] == "counter_closed"
        replies[rid] = result.reply
        assert len(svc._known_ids) <= 120 and len(svc._recent) <= 120 and not svc._in_flight
    assert await svc.store.stored_replies() <= 120
    # within the retention, a request sent again gets its first reply, from memory or disk
    newest = list(replies)[-100:]
    svc._recent.clear()
    for rid in newest[::7]:
        result = await svc.handle(topic, f'{{"request_id":"{rid}","action":"open"}}'.encode())
        assert result.reply == replies[rid]
    assert svc.book.counters["1"].status == "closed"
    # after `keep`, every reply goes, with the next transaction
    assert isinstance(svc.clock, ManualClock)
    svc.clock.advance(days=3, seconds=1)
    await svc.tick()
    assert not svc._known_ids and not svc._recent
    await svc.handle(topic, b'{"request_id":"late","action":"recall"}')
    assert await svc.store.stored_replies() == 1


async def test_replies_beyond_the_bound_are_pruned_at_start(tmp_path: Path) -> None:
    """A database grown by an older version is cut down when the core starts."""
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1")
    site = load_site_config(path)
    store = await Store.open(site.storage_path)
    clock = ManualClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    with sqlite3.connect(site.storage_path) as conn:
        conn.executemany("INSERT INTO requests (sender, request_id, reply, at) VALUES ('', ?, '{}', ?)",
                         [(f"old-{i}", clock.now().isoformat()) for i in range(500)])
    try:
        svc = QueueService(site, store, clock, ReplyRetention(max_replies=100, prune_batch=20))
        await svc.load()
        assert len(svc._known_ids) == 100
        await svc.full_state()
        assert await store.stored_replies() == 100
    finally:
        await store.close()


# ---------------------------------------------------------------- file modes


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


async def test_the_database_is_private_to_its_owner(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual umask: files 0644, directories 0755
    try:
        db = tmp_path / "data" / "site" / "queue.sqlite3"
        path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", db=db)
        site = load_site_config(path)
        store = await Store.open(site.storage_path)
        try:
            svc = QueueService(site, store, ManualClock(datetime(2026, 11, 23, 2, 0, tzinfo=UTC)))
            await svc.load()
            reply = (await svc.handle(svc.topics.cmd_ticket,
                                      b'{"request_id":"p1","field":"dat-dai","phone":"0912345678"}')).reply
            assert reply is not None and reply["ok"]
            for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
                assert mode(p) == 0o600, p
            assert mode(db.parent) == 0o700 and mode(db.parent.parent) == 0o700
        finally:
            await store.close()
        # a database left readable by an older version is tightened at start
        old = tmp_path / "old.sqlite3"
        with sqlite3.connect(old) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("CREATE TABLE x (a)")
        old.chmod(0o644)
        wal = old.with_name(old.name + "-wal")
        wal.touch(mode=0o644)
        store = await Store.open(old)
        await store.close()
        assert mode(old) == 0o600 and mode(wal) == 0o600
    finally:
        os.umask(old_umask)
