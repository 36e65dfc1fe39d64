"""`make bench-web`: the costs of the web pages on a busy day.

Starts our own broker, a real core and a real web server (with a receipt printer that is a file),
then measures: a ticket at the kiosk's API (the browser prints it; and printed on the printer),
a day of BENCH_DAY tickets read by the dashboard from the core (cmd/query "tickets", page by
page) and its statistics, how long a rating takes to show on the dashboard, and the CSV export of
the day. Prints one JSON object on the last line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from display_server.reports import stats  # noqa: E402
from qms_common.devbroker import free_port, scratch_dir, start_broker  # noqa: E402
from qms_common.protocol import Topics  # noqa: E402
from scripts.bench import summary  # noqa: E402
from scripts.bench_display import site_processes  # noqa: E402
from tests.support.mqtt import Probe, new_id  # noqa: E402
from tests.support.site import write_site  # noqa: E402
from tests.support.web import accounts_extra, login, web_extra  # noqa: E402

FIELDS = """
[[fields]]
id = "dat-dai"
name = "Đất đai"
first = 1001
last = 9999
"""
COUNTERS = "".join(f'\n[[counters]]\nid = "{i}"\nname = "Quầy {i}"\nfields = ["dat-dai"]\n' for i in range(1, 7))


async def kiosk(http: aiohttp.ClientSession, web: str, kiosk_id: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        async with http.post(f"{web}/api/tickets", json={"field": "dat-dai", "kiosk": kiosk_id}) as resp:
            body = await resp.json()
        out.append((time.perf_counter() - t) * 1000)
        assert body["ok"] and body["print"]["ok"], body
    return out


async def measure(url: str, topics: Topics, web: str, day: int) -> dict[str, object]:
    result: dict[str, object] = {}
    async with Probe(url) as probe, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        result["kiosk_browser_print_ms"] = summary(await kiosk(http, web, "kiosk-2", 50))
        result["kiosk_printer_ms"] = summary(await kiosk(http, web, "kiosk-1", 20))
        # the rest of a busy day, straight to the core
        t = time.perf_counter()
        for _ in range(day - 70):
            await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
        served = day // 2
        for i in range(served):
            counter = str(1 + i % 6)
            await probe.request(topics.cmd_counter(counter), {"request_id": new_id(), "action": "call_next"})
            await probe.request(topics.cmd_counter(counter), {"request_id": new_id(), "action": "finish"})
            await probe.request(topics.cmd_rating, {"request_id": new_id(), "counter": counter, "score": 1 + i % 3})
        result["fill_day_s"] = round(time.perf_counter() - t, 1)

        assert (await login(http, web, "giamsat")).status == 303
        t = time.perf_counter()
        ws = await http.ws_connect(f"{web}/supervisor/ws")
        while True:
            view = json.loads((await ws.receive()).data).get("view") or {}
            if view.get("stats"):
                break
        result["dashboard_first_stats_ms"] = round((time.perf_counter() - t) * 1000)
        assert view["stats"]["total"]["issued"] == day, view["stats"]["total"]

        # a rating: how long until the dashboard counts it (records are read at most every 2 s)
        lags = []
        for i in range(5):
            rated = view["stats"]["total"]["rated"]
            counter = str(1 + i % 6)
            await probe.request(topics.cmd_counter(counter), {"request_id": new_id(), "action": "call_next"})
            await probe.request(topics.cmd_counter(counter), {"request_id": new_id(), "action": "finish"})
            t = time.perf_counter()
            await probe.request(topics.cmd_rating, {"request_id": new_id(), "counter": counter, "score": 3})
            while view["stats"]["total"]["rated"] != rated + 1:
                view = json.loads((await ws.receive()).data).get("view") or view
            lags.append((time.perf_counter() - t) * 1000)
        result["rating_to_dashboard_ms"] = summary(lags)
        await ws.close()

        t = time.perf_counter()
        async with http.get(f"{web}/supervisor/export/tickets.csv") as resp:
            csv_bytes = await resp.read()
        result["export_day_csv"] = {"ms": round((time.perf_counter() - t) * 1000), "bytes": len(csv_bytes),
                                    "rows": csv_bytes.count(b"\r\n") - 1}
        reply = await probe.request(topics.cmd_query, {"request_id": new_id(), "query": "tickets", "limit": 1000})
        records = reply["tickets"]
        t = time.perf_counter()
        stats.compute(records * (day // len(records)), levels=3, tz=ZoneInfo("Asia/Ho_Chi_Minh"))
        result["stats_compute_ms"] = round((time.perf_counter() - t) * 1000, 1)
    result["day_tickets"] = day
    return result


def main() -> int:
    with scratch_dir("qms-bench-web-") as tmp:
        day = int(os.environ.get("BENCH_DAY", "2000"))
        broker = start_broker(workdir=tmp / "broker")
        port = free_port()
        more = ('[kiosk]\nids = ["kiosk-1", "kiosk-2"]\ntickets_per_minute = 600\nsite_tickets_per_minute = 6000\n'
                f'[printer]\ntype = "file"\ndevice = "{tmp / "printer.bin"}"\n'
                f'kiosks = ["kiosk-1"]\n' + accounts_extra())
        site, site_id = write_site(tmp, broker.url, site_id="bench", extra=web_extra(tmp, port, more=more),
                                   fields=FIELDS, counters=COUNTERS)
        print(f"bench-web: broker {broker.url}, web http://127.0.0.1:{port}, a day of {day} tickets", file=sys.stderr)
        try:
            with site_processes(tmp, broker, site, site_id, port):
                result = asyncio.run(measure(broker.url, Topics(site_id), f"http://127.0.0.1:{port}", day))
        finally:
            broker.stop()
        print(json.dumps(result))
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
