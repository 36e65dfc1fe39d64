"""`qms-province` serves the dashboard in the aggregator's own process: a real process, a real
Mosquitto, a real PostgreSQL; what an office publishes is on the API; a dashboard port already
taken never stops the aggregator."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import aiohttp
import asyncpg

from qms_common.devbroker import Broker, free_port
from tests.support.mqtt import Probe
from tests.support.province import AggregatorProcess, eventually, write_province

SITE = "xa-hoa-binh"


async def publish_office(broker: Broker) -> None:
    async with Probe(broker.url) as probe:
        await probe.publish(f"qms/{SITE}/status/core", "online", retain=True)
        await probe.publish(f"qms/{SITE}/state/queue/dat-dai", {
            "field": "dat-dai", "name": "Đất đai", "waiting": 3, "priority_waiting": 0, "next": [],
            "served": 0, "avg_wait_s": None, "est_wait_s": 0, "awaiting_checkin": 0, "seq": 1,
            "at": "2026-11-21T09:12:00+07:00"}, retain=True)


async def test_the_service_serves_the_dashboard_beside_the_aggregator(broker: Broker, tmp_path: Path,
                                                                      pg_dsn: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = write_province(tmp_path, f"p{uuid.uuid4().hex[:8]}", broker.url, pg_dsn, [SITE], web_port=port)
    with AggregatorProcess(config, tmp_path / "province.log") as proc:
        async with aiohttp.ClientSession() as http:
            async def healthy() -> bool:
                assert proc.alive(), proc.log()
                try:
                    async with http.get(base + "/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(healthy, timeout=20.0, what="/healthz")
            await publish_office(broker)

            async def listed() -> bool:
                async with http.get(base + "/api/v1/sites") as r:  # loopback: no session needed
                    assert r.status == 200
                    entries = await r.json()
                return entries[0]["online"] is True and entries[0]["waiting"] == 3

            await eventually(listed, timeout=20.0, what="the office on /api/v1/sites")
            async with http.get(base + "/", allow_redirects=False) as page:
                assert page.status == 302 and page.headers["Location"].startswith("/dang-nhap")
        assert proc.terminate(timeout=15) == 0


async def test_a_taken_dashboard_port_never_stops_the_aggregator(broker: Broker, tmp_path: Path, pg_dsn: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log_path = tmp_path / "province.log"
        config = write_province(tmp_path, f"p{uuid.uuid4().hex[:8]}", broker.url, pg_dsn, [SITE], web_port=port)
        with AggregatorProcess(config, log_path) as proc:
            await eventually(lambda: asyncio.to_thread(_logged, log_path, "Không mở được cổng bảng điều khiển"),
                             timeout=20.0, what="the log line")
            await publish_office(broker)

            async def written() -> bool:
                assert proc.alive(), proc.log()
                conn = await asyncpg.connect(pg_dsn)
                try:
                    if await conn.fetchval("SELECT to_regclass('state')") is None:
                        return False
                    return bool(await conn.fetchval("SELECT count(*) FROM state WHERE site = $1", SITE))
                finally:
                    await conn.close()

            await eventually(written, timeout=20.0, what="the office's state in PostgreSQL")


def _logged(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text(encoding="utf-8", errors="replace")
