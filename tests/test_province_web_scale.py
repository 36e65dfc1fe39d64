"""500 offices on the dashboard: every one listed with its own figures, in a few queries, and the
measurement helper the benchmark calls (province.web.measure) reads the load's timings. Speed is
the benchmark's to judge (make bench-province); here the figures must be right."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from province.settings import ProvinceSettings, parse_province
from province.store import ProvinceStore
from province.web.app import make_app
from province.web.measure import dashboard_timings
from tests.test_province_web import HASH, PASSWORD, Office, safe_past

OFFICES = 500
DISTRICTS = 10


def many_offices() -> ProvinceSettings:
    sites = "".join(f'[[sites]]\nid = "xa-{i:03d}"\nname = "UBND xã Số {i}"\ndistrict = "Huyện {i % DISTRICTS}"\n'
                    for i in range(OFFICES))
    text = f"""
[province]
id = "tinh-lon"
name = "Tỉnh Năm Trăm Điểm"
[mqtt]
url = "mqtt://province:secret@127.0.0.1:1883"
[postgres]
dsn = "postgresql://qms@127.0.0.1:5432/x"
{sites}
[[accounts]]
username = "tinh"
password_hash = "{HASH}"
role = "province"
"""
    return parse_province(Path("province.toml"), tomllib.loads(text))


async def fill(store: ProvinceStore, i: int) -> None:
    """Office i: online when even; waiting i % 7 in dat-dai and 1 in ho-tich; two counters, one
    open; 2 tickets today, one served and rated 1 when i % 4 == 0."""
    office = Office(store, f"xa-{i:03d}")
    await office.presence(i % 2 == 0)
    await office.queue("dat-dai", "Đất đai", i % 7)
    await office.queue("ho-tich", "Hộ tịch", 1)
    await office.counter("1", "open", officer="Cán bộ")
    await office.counter("2", "closed")
    await office.ticket(safe_past(30))
    await office.ticket(safe_past(20), status="done", wait_s=60, rating=1 if i % 4 == 0 else 3)


async def test_five_hundred_offices_on_one_dashboard(pg_dsn: str) -> None:
    settings = many_offices()
    store = await ProvinceStore.open(pg_dsn, max_size=8)
    try:
        await store.ensure_sites([(s.id, s.name, s.district) for s in settings.sites])
        for start in range(0, OFFICES, 50):
            await asyncio.gather(*(fill(store, i) for i in range(start, min(start + 50, OFFICES))))
        server = TestServer(make_app(settings, store), host="127.0.0.1")
        await server.start_server()
        try:
            timings = await dashboard_timings(str(server.make_url("/")), "tinh", PASSWORD, repeat=3)
            assert [t.offices for t in timings] == [OFFICES] * 3
            assert all(0 < t.db_s <= t.server_s <= t.wall_s for t in timings)
            print(f"\n{OFFICES} điểm: " + ", ".join(
                f"tải {t.wall_s * 1000:.0f} ms (máy chủ {t.server_s * 1000:.0f}, truy vấn {t.db_s * 1000:.0f})"
                for t in timings))

            async with aiohttp.ClientSession() as http:
                async with http.get(server.make_url("/api/v1/sites")) as r:
                    entries: list[dict[str, Any]] = await r.json()
            assert [e["site"] for e in entries] == [f"xa-{i:03d}" for i in range(OFFICES)]
            for i, e in enumerate(entries):
                assert e["online"] is (i % 2 == 0), e
                assert e["waiting"] == i % 7 + 1, e
                assert (e["issued_today"], e["served_today"]) == (2, 1), e
                assert e["satisfaction"] == (0.0 if i % 4 == 0 else 100.0), e
            async with aiohttp.ClientSession() as http:
                async with http.get(server.make_url("/api/v1/sites"), params={"district": "Huyện 3"}) as r:
                    assert [e["site"] for e in await r.json()] == [f"xa-{i:03d}" for i in range(3, OFFICES, 10)]
        finally:
            await server.close()
    finally:
        await store.close()
