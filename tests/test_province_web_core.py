"""The dashboard from a real office: a real core on a real Mosquitto, the province service writing
what it publishes into a real PostgreSQL, and the dashboard and API reading it. The figures are
those of what was done at the office's kiosk, counter and rating tablet."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from province.service import ProvinceService
from province.settings import SiteEntry, load_province
from province.store import ProvinceStore
from province.web.app import make_app
from qms_common.devbroker import Broker
from qms_common.protocol import Topics
from tests.support.core import running_core
from tests.support.mqtt import Probe, new_id
from tests.support.province import eventually, write_province
from tests.support.site import write_site
from tests.test_province_web import HASH, log_in

ACCOUNTS = f"""
[[accounts]]
username = "tinh"
password_hash = "{HASH}"
role = "province"
"""


async def test_a_real_office_on_the_dashboard(broker: Broker, tmp_path: Path, pg_dsn: str) -> None:
    path, site = write_site(tmp_path, broker.url)
    topics = Topics(site)
    settings = load_province(write_province(tmp_path, "tinh-that", broker.url, pg_dsn,
                                             [SiteEntry(site, "UBND xã Hòa Bình", "Huyện Đông")], accounts=ACCOUNTS))
    store = await ProvinceStore.open(settings.postgres_dsn)
    service = ProvinceService(settings, store)
    aggregator = asyncio.create_task(service.run())
    try:
        async with running_core(path), Probe(broker.url) as probe, \
                TestClient(TestServer(make_app(settings, store), host="127.0.0.1")) as client:
            await probe.subscribe(topics.status_all)
            await probe.wait_for(lambda m: m.topic == topics.status_core and m.text == "online")

            async def ask(topic: str, **kw: Any) -> dict[str, Any]:
                reply = await probe.request(topic, {"request_id": new_id(), **kw})
                assert reply["ok"], reply
                return reply

            for score in (1, 3):  # "Không hài lòng", then "Rất hài lòng"
                ticket = (await ask(topics.cmd_ticket, field="dat-dai"))["ticket"]
                await ask(topics.cmd_counter("1"), action="call", ticket=ticket["id"])
                await ask(topics.cmd_counter("1"), action="finish")
                await ask(topics.cmd_rating, ticket=ticket["id"], score=score)
            await ask(topics.cmd_ticket, field="dat-dai")  # one left waiting
            serving = (await ask(topics.cmd_ticket, field="dat-dai"))["ticket"]
            await ask(topics.cmd_counter("1"), action="call", ticket=serving["id"])

            async def entry() -> dict[str, Any]:
                r = await client.get("/api/v1/sites")
                assert r.status == 200
                return (await r.json())[0]

            expected = {"site": site, "name": "UBND xã Hòa Bình", "district": "Huyện Đông", "online": True,
                        "offline_since": None, "waiting": 1, "issued_today": 4, "served_today": 2,
                        "satisfaction": 50.0}

            async def caught_up() -> bool:
                return await entry() == expected

            await eventually(caught_up, timeout=20.0, what="the office's figures on /api/v1/sites")

            await log_in(client)
            live = await (await client.get(f"/diem/{site}/trang-thai.json")).json()
            counter = next(c for c in live["counters"] if c["counter"] == "1")
            assert counter["status"] == "serving" and counter["ticket"] == serving["number"]
            queue = next(q for q in live["queues"] if q["field"] == "dat-dai")
            assert queue["waiting"] == 1 and queue["longest_wait"].endswith("phút")
            assert live["satisfaction"] == "50,0 %" and live["issued_today"] == 4
            html = await (await client.get("/")).text()
            assert f'<tr data-site="{site}" class="on">' in html
    finally:
        aggregator.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await aggregator
        await service.close()
