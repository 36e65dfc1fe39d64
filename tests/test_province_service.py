"""The province service over a real Mosquitto and a real PostgreSQL, fed by a real office core."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import asyncpg
import pytest

from province.service import ProvinceService, parse_message
from province.settings import load_province
from province.store import ProvinceStore
from qms_common.devbroker import Broker
from qms_common.protocol import ProtocolError, Topics
from tests.support.core import running_core
from tests.support.mqtt import Probe
from tests.support.province import AggregatorProcess, OfficeHands, eventually, write_province
from tests.support.site import write_site


class Office(OfficeHands):
    async def serve_many(self, n: int, score: int) -> list[str]:
        return [await self.serve_one(score) for _ in range(n)]


@contextlib.asynccontextmanager
async def office(broker: Broker, tmp: Path) -> AsyncIterator[Office]:
    path, site_id = write_site(tmp, broker.url)
    topics = Topics(site_id)
    async with running_core(path), Probe(broker.url) as probe:
        await probe.subscribe(topics.state_all, topics.event_all, topics.status_all)
        await probe.wait_for(lambda m: m.topic == topics.status_core and m.text == "online")
        yield Office(probe, topics)


async def counts(dsn: str, site: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            "tickets": await conn.fetchval("SELECT count(*) FROM tickets WHERE site = $1", site),
            "done_rated": await conn.fetchval(
                "SELECT count(*) FROM tickets WHERE site = $1 AND status = 'done' AND rating IS NOT NULL", site),
            "ratings": await conn.fetchval("SELECT count(*) FROM ratings WHERE site = $1", site),
            "issued": await conn.fetchval("SELECT count(*) FROM events WHERE site = $1 AND kind = 'issued'", site),
            "rated": await conn.fetchval("SELECT count(*) FROM events WHERE site = $1 AND kind = 'rated'", site),
        }
    finally:
        await conn.close()


async def stored_seqs(dsn: str, site: str) -> set[int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {r["seq"] for r in await conn.fetch("SELECT seq FROM events WHERE site = $1", site)}
    finally:
        await conn.close()


def test_parse_message() -> None:
    m = parse_message("qms/xa-a/event/called", b'{"kind":"called","seq":3}')
    assert m is not None and (m.site, m.topic, m.body["seq"]) == ("xa-a", "event/called", 3)
    s = parse_message("qms/xa-a/status/core", b"offline")
    assert s is not None and s.body == "offline"
    assert parse_message("qms/xa-a/status/core", b"") is None
    assert parse_message("qms/xa-a/state/queue/dat-dai", b"") is None  # a retained message removed
    assert parse_message("qms/Xa A/event/called", b"{}") is None
    with pytest.raises(ProtocolError):
        parse_message("qms/xa-a/event/called", b"not json")


async def test_a_real_office_is_written_exactly_once(broker: Broker, tmp_path: Path, pg_dsn: str) -> None:
    async with office(broker, tmp_path) as o:
        settings = load_province(write_province(tmp_path, f"p{uuid.uuid4().hex[:8]}", broker.url, pg_dsn,
                                                 [o.topics.site]))
        store = await ProvinceStore.open(settings.postgres_dsn)
        service = ProvinceService(settings, store)
        task = asyncio.create_task(service.run())
        try:
            site = o.topics.site
            await eventually(lambda: _online(pg_dsn, site))
            ids = [await o.serve_one(score) for score in (3, 1)]
            await eventually(lambda: _has(pg_dsn, site, o.seqs()))
            await eventually(lambda: _equals(counts(pg_dsn, site), {
                "tickets": 2, "done_rated": 2, "ratings": 2, "issued": 2, "rated": 2}))
            conn = await asyncpg.connect(pg_dsn)
            try:
                rows = await conn.fetch("SELECT id, rating, counter FROM tickets WHERE site = $1 ORDER BY id", site)
                assert [(r["id"], r["rating"], r["counter"]) for r in rows] == [(ids[0], 3, "1"), (ids[1], 1, "1")]
                queue = await conn.fetchval(
                    "SELECT body->>'waiting' FROM state WHERE site = $1 AND topic = 'state/queue/dat-dai'", site)
                assert queue == "0"
            finally:
                await conn.close()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await service.close()


async def _online(dsn: str, site: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        # the service process makes the schema when it starts: until then, not online
        if await conn.fetchval("SELECT to_regclass('sites')") is None:
            return False
        return bool(await conn.fetchval("SELECT online FROM sites WHERE site = $1", site))
    finally:
        await conn.close()


async def _has(dsn: str, site: str, seqs: set[int]) -> bool:
    return seqs <= await stored_seqs(dsn, site)


async def _equals(value: Awaitable[dict[str, int]], expected: dict[str, int]) -> bool:
    return await value == expected


async def test_killed_mid_stream_and_restarted_loses_and_repeats_nothing(
        broker: Broker, tmp_path: Path, pg_dsn: str) -> None:
    async with office(broker, tmp_path) as o:
        site = o.topics.site
        proc = AggregatorProcess(write_province(tmp_path, f"p{uuid.uuid4().hex[:8]}", broker.url, pg_dsn, [site]),
                                 tmp_path / "province.log")
        try:
            proc.start()
            await eventually(lambda: _online(pg_dsn, site))
            served = [await o.serve_one(3) for _ in range(3)]
            # killed while the first of this stream is written, the rest in flight or unacknowledged
            burst = asyncio.create_task(o.serve_many(4, 2))
            await eventually(lambda: _count_above(pg_dsn, site, "issued", 3), timeout=15)
            proc.kill9()
            served += await burst
            proc.start()
            await eventually(lambda: _has(pg_dsn, site, o.seqs()), timeout=20)
            # killed for certain with messages received and not written: their writes wait on a lock
            lock = await asyncpg.connect(pg_dsn)
            try:
                tx = lock.transaction()
                await tx.start()
                await lock.execute("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
                served += await o.serve_many(2, 3)
                await eventually(lambda: _blocked_insert(pg_dsn))
                proc.kill9()
                await tx.rollback()
            finally:
                await lock.close()
            # while it is down the broker keeps the persistent session's messages
            served += [await o.serve_one(1) for _ in range(2)]
            proc.start()
            served += [await o.serve_one(3) for _ in range(2)]
            n = len(served)
            await eventually(lambda: _has(pg_dsn, site, o.seqs()), timeout=20)
            await eventually(lambda: _equals(counts(pg_dsn, site), {
                "tickets": n, "done_rated": n, "ratings": n, "issued": n, "rated": n}), timeout=20)
        finally:
            proc.stop()
            assert "Traceback" not in proc.log()


async def _count_above(dsn: str, site: str, kind: str, n: int) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events WHERE site = $1 AND kind = $2", site, kind)) > n
    finally:
        await conn.close()


async def _blocked_insert(dsn: str) -> bool:
    # its own connection: inside the locking transaction pg_stat_activity would be one snapshot
    conn = await asyncpg.connect(dsn)
    try:
        return bool(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'INSERT INTO events%'"))
    finally:
        await conn.close()
