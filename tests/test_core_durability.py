"""The core survives kill -9, broker restarts and the turn of the business day."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qms_common.devbroker import Broker
from qms_common.protocol import Topics
from queue_core.clock import ManualClock
from queue_core.store import MIGRATIONS, Store
from tests.support.core import CoreProcess, running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site


async def wait_online(probe: Probe, topics: Topics, start: int, timeout: float = 20) -> None:
    await probe.wait_for(lambda m: m.topic == topics.status_core and m.text == "online", start=start,
                         timeout=timeout)


def db_tickets(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, number, status FROM tickets ORDER BY value").fetchall()


async def test_kill_9_in_a_burst_loses_and_duplicates_nothing(broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, broker.url)
    topics = Topics(site_id)
    core = CoreProcess(path, tmp_path / "core.log", env={"QMS_MQTT_URL": broker.url})
    async with Probe(broker.url) as probe:
        await probe.subscribe(topics.status_all, topics.state_all)
        core.start()
        try:
            await wait_online(probe, topics, 0)
            n = 900  # the field has 999 numbers
            requests = [{"request_id": new_id(), "field": "dat-dai"} for _ in range(n)]
            answered: dict[str, dict[str, Any]] = {}

            async def send(req: dict[str, Any]) -> None:
                try:
                    answered[req["request_id"]] = await probe.request(topics.cmd_ticket, req, timeout=5)
                except TimeoutError:
                    pass  # the core died before answering: the client will retry

            tasks = [asyncio.create_task(send(r)) for r in requests]
            # kill the core in the middle of the burst, at a moment chosen by the replies
            async with asyncio.timeout(20):
                while len(answered) < 50:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED, timeout=1)
            core.kill9()
            await asyncio.gather(*tasks)
            before = dict(answered)
            assert 0 < len(before) < n, "the kill should land in the middle of the burst"
            seq_before = max(m.json["seq"] for m in probe.received if m.topic.startswith(f"qms/{site_id}/state"))

            mark = probe.mark()
            core.start()
            await wait_online(probe, topics, mark)
            # every client retries what it did not get an answer to, and some retry everything
            replies = []
            for i in range(0, n, 100):
                replies += await asyncio.gather(*(probe.request(topics.cmd_ticket, r, timeout=10)
                                                  for r in requests[i:i + 100]))
            # retained state follows the replies (coalesced under the burst) and ends at the truth
            await probe.wait_topic(topics.state_queue("dat-dai"), lambda q: q["waiting"] == n, start=mark)
        finally:
            core.stop()

    assert all(r["ok"] for r in replies)
    for rid, first in before.items():
        again = next(r for r in replies if r["request_id"] == rid)
        assert again == first, "an answered request must get the very same answer again"
    numbers = [int(r["ticket"]["number"]) for r in replies]
    assert sorted(numbers) == list(range(1001, 1001 + n)), "each number issued exactly once"
    rows = db_tickets(tmp_path / f"{site_id}.sqlite3")
    assert len(rows) == n and len({r[1] for r in rows}) == n
    # the state published after the restart is the truth, with seq going on from before
    assert min(m.json["seq"] for m in probe.received[mark:] if m.topic.startswith(f"qms/{site_id}/state")) > seq_before


async def test_restart_republishes_state_and_keeps_counters(broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, broker.url)
    topics = Topics(site_id)
    core = CoreProcess(path, tmp_path / "core.log", env={"QMS_MQTT_URL": broker.url})
    async with Probe(broker.url) as probe:
        await probe.subscribe(topics.status_all, topics.state_counter("3"))
        core.start()
        try:
            await wait_online(probe, topics, 0)
            await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "ho-tich"})
            await probe.request(topics.cmd_counter("3"), {"request_id": new_id(), "action": "open",
                                                          "officer": "Phạm Thu Trang"})
            await probe.request(topics.cmd_counter("3"), {"request_id": new_id(), "action": "call_next"})
            mark = probe.mark()
            assert core.stop() == 0   # a clean stop says offline itself
            await probe.wait_for(lambda m: m.topic == topics.status_core and m.text == "offline", start=mark)
            # wipe the retained state, as a broker that lost its memory would have
            for topic in (topics.state_counter("3"), topics.state_site):
                await probe.publish(topic, b"", retain=True)
            mark = probe.mark()
            core.start()
            await wait_online(probe, topics, mark)
            assert probe.since(mark, topics.state_counter("3")), "state comes before online"
        finally:
            core.stop()
    async with Probe(broker.url) as fresh:
        await fresh.subscribe(topics.state_all)
        counter = await fresh.wait_topic(topics.state_counter("3"))
        site = await fresh.wait_topic(topics.state_site)
    assert counter["status"] == "serving" and counter["ticket"]["number"] == "2001"
    assert counter["officer"] == "Phạm Thu Trang"
    assert site["site"] == site_id


async def test_broker_restart_is_recovered_by_itself(own_broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, own_broker.url)
    topics = Topics(site_id)
    async with running_core(path) as core:
        async with Probe(own_broker.url) as probe:
            r = await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            assert r["ticket"]["number"] == "1001"
        connects = core.link.session.connects
        own_broker.restart()  # no persistence: every retained message is gone
        async with asyncio.timeout(20):
            await core.link.session.wait_connects(connects + 1)
        async with Probe(own_broker.url) as probe:
            await probe.subscribe(topics.state_all, topics.status_all)
            q = await probe.wait_topic(topics.state_queue("dat-dai"), timeout=10)
            assert q["waiting"] == 1
            assert (await probe.wait_for(lambda m: m.topic == topics.status_core)).text == "online"
            r = await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
            assert r["ticket"]["number"] == "1002"


async def test_day_rollover_with_an_injected_clock(broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, broker.url)
    topics = Topics(site_id)
    # 23:59 on 21 November in Hà Nội
    clock = ManualClock(datetime(2026, 11, 21, 16, 59, tzinfo=UTC))
    async with running_core(path, clock) as core, Probe(broker.url) as probe:
        await probe.subscribe(topics.state_all)
        site = await probe.wait_topic(topics.state_site)
        assert site["day"] == "2026-11-21"
        first = await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
        await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
        await probe.request(topics.cmd_counter("1"), {"request_id": new_id(), "action": "call_next"})
        mark = probe.mark()
        clock.advance(minutes=2)  # 00:01 on the 22nd: the ticker notices without any command
        site = await probe.wait_topic(topics.state_site, lambda s: s["day"] == "2026-11-22", start=mark)
        q = await probe.wait_topic(topics.state_queue("dat-dai"), lambda q: q["seq"] > site["seq"], start=mark)
        c = await probe.wait_topic(topics.state_counter("1"), lambda c: c["seq"] > site["seq"], start=mark)
        assert q["waiting"] == 0 and q["served"] == 0
        assert c["status"] == "closed" and c["ticket"] is None
        again = await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
        assert again["ticket"]["number"] == "1001"
        assert again["ticket"]["id"] != first["ticket"]["id"]
        assert again["ticket"]["id"].startswith("20261122-")
        old = await core.store.ticket(first["ticket"]["id"])
        assert old is not None and old.status == "done"
    rows = dict((r[0], r[2]) for r in db_tickets(tmp_path / f"{site_id}.sqlite3"))
    assert rows["20261121-dat-dai-1002"] == "expired"
    assert rows["20261122-dat-dai-1001"] == "waiting"


async def test_a_failed_write_is_answered_and_nothing_built_on_it_survives(broker: Broker, tmp_path: Path) -> None:
    """The disk refuses writes for a while (here: the connection turned read-only). Every command
    then gets an `internal` error, nothing of theirs is kept, and the next command after the disk
    is back starts again from what the database holds."""
    path, site_id = write_site(tmp_path, broker.url)
    topics = Topics(site_id)
    async with running_core(path) as core, Probe(broker.url) as probe:
        for _ in range(2):
            await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
        await core.store._db.execute("PRAGMA query_only = ON")  # the disk says no
        lost = {"request_id": new_id(), "field": "dat-dai"}
        burst = [lost] + [{"request_id": new_id(), "field": "dat-dai"} for _ in range(5)]
        replies = await asyncio.gather(*(probe.request(topics.cmd_ticket, r) for r in burst))
        call = await probe.request(topics.cmd_counter("1"), {"request_id": new_id(), "action": "call_next"})
        assert all(r["ok"] is False and r["error"]["code"] == "internal" for r in [*replies, call])
        await core.store._db.execute("PRAGMA query_only = OFF")  # the disk is back
        again = await probe.request(topics.cmd_ticket, lost)  # the client retries, same request_id
        assert again["ok"] and again["ticket"]["number"] == "1003"
        state = await probe.request(topics.cmd_counter("1"), {"request_id": new_id(), "action": "call_next"})
        assert state["ticket"]["number"] == "1001"
        assert len(core.service.book.tickets) == 3
    assert [r[1] for r in db_tickets(tmp_path / f"{site_id}.sqlite3")] == ["1001", "1002", "1003"]


async def test_commands_decided_after_a_failed_write_are_not_written(broker: Broker, tmp_path: Path) -> None:
    """Commands are decided while earlier ones are being written. When one write fails, the ones
    decided after it (numbered after it, say) must not reach the disk either: no gap, no ticket
    whose predecessor never existed."""
    path, site_id = write_site(tmp_path, broker.url)
    topics = Topics(site_id)
    async with running_core(path) as core, Probe(broker.url) as probe:
        for _ in range(2):
            await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
        await core.store._db.execute(  # exactly one transaction fails: the one writing 1003
            "CREATE TRIGGER disk_full BEFORE INSERT ON tickets WHEN NEW.value = 1003 "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        burst = [{"request_id": new_id(), "field": "dat-dai"} for _ in range(6)]
        replies = await asyncio.gather(*(probe.request(topics.cmd_ticket, r) for r in burst))
        assert all(r["error"]["code"] == "internal" for r in replies), replies
        await core.store._db.execute("DROP TRIGGER disk_full")
        again = [await probe.request(topics.cmd_ticket, r) for r in burst]
        assert sorted(r["ticket"]["number"] for r in again) == [str(n) for n in range(1003, 1009)]
    assert [r[1] for r in db_tickets(tmp_path / f"{site_id}.sqlite3")] == [str(n) for n in range(1001, 1009)]


async def test_stored_replies_are_per_sender_across_a_restart(broker: Broker, tmp_path: Path) -> None:
    path, site_id = write_site(tmp_path, broker.url)
    t = Topics(site_id)
    rid = new_id()
    ticket = {"request_id": rid, "field": "dat-dai"}
    async with Probe(broker.url) as probe:
        async with running_core(path):
            a = await probe.request(t.cmd_ticket, ticket, reply_topic=t.reply("a"))
            b = await probe.request(t.cmd_ticket, ticket, reply_topic=t.reply("b"))
        async with running_core(path):
            assert await probe.request(t.cmd_ticket, ticket, reply_topic=f"{t.reply('b')}/again") == b
            assert await probe.request(t.cmd_ticket, ticket, reply_topic=t.reply("a")) == a
            c = await probe.request(t.cmd_ticket, ticket, reply_topic=t.reply("c"))
    assert [r["ticket"]["number"] for r in (a, b, c)] == ["1001", "1002", "1003"]


async def test_a_schema_1_database_keeps_its_stored_replies(tmp_path: Path) -> None:
    """Replies stored before request ids were per sender have no known sender: they stay, under
    the sender "" (a request that asks for no answer)."""
    db = tmp_path / "v1.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.executescript(MIGRATIONS[0] + """;
            CREATE TABLE schema_version (version INTEGER NOT NULL);
            INSERT INTO schema_version VALUES (1);
            INSERT INTO requests VALUES ('old', '{"ok": true, "request_id": "old"}', '2026-11-28T10:00:00+00:00');
        """)
    conn.close()
    store = await Store.open(db)
    try:
        snap = await store.load()
        assert list(snap.request_ids) == [("", "old")]
        assert await store.reply_for("", "old") == {"ok": True, "request_id": "old"}
        assert await store.reply_for("web", "old") is None
    finally:
        await store.close()
