"""`make bench-display`: how long a call takes from the core's MQTT event to the TV.

Starts our own broker, a real core and a real web server, opens the TV page in headless Chromium
(Debian's /usr/bin/chromium) and a bare WebSocket client, then makes calls one after the other.
For each call it notes when the event/called message reaches an MQTT client, when the feed
brings the new view to the bare client, when the page shows the call, when the page has the
announcement and when its first clip (the chime) starts playing. Prints one JSON object on the last line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

from display_server.tv.page import apply_patch  # noqa: E402
from qms_common.devbroker import Broker, free_port, scratch_dir, start_broker, stop_process, wait_for_port  # noqa: E402
from qms_common.protocol import Topics  # noqa: E402
from scripts.bench import summary  # noqa: E402
from tests.support.mqtt import Probe, new_id  # noqa: E402
from tests.support.site import write_site  # noqa: E402
from tests.support.web import AUTOPLAY, CHROMIUM_ARGS, web_extra  # noqa: E402


async def measure(url: str, topics: Topics, web: str, calls: int) -> dict[str, object]:
    lat: dict[str, list[float]] = {"ws_view": [], "page_view": [], "page_announce": [], "page_audio_start": []}
    async with Probe(url) as probe, aiohttp.ClientSession() as http, async_playwright() as p:
        await probe.subscribe(topics.event("called"))
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=[*CHROMIUM_ARGS, AUTOPLAY])
        page = await browser.new_page(viewport={"width": 1920, "height": 1080})
        await page.goto(f"{web}/display")
        await page.wait_for_function("window.qmsDisplay && window.qmsDisplay.view && window.qmsDisplay.view.online",
                                     timeout=30_000)
        ws = await http.ws_connect(f"{web}/display/ws")
        view = json.loads((await ws.receive()).data)["view"]  # the whole view once, then patches
        # tickets first, as in an office: their phrases are rendered long before their calls
        for _ in range(calls):
            await probe.request(topics.cmd_ticket, {"request_id": new_id(), "field": "dat-dai"})
        for i in range(calls):
            number = str(1001 + i)
            mark = probe.mark()
            await probe.request(topics.cmd_counter("1"), {"request_id": new_id(), "action": "call_next"})
            event = await probe.wait_for(lambda m: m.topic == topics.event("called"), start=mark)
            t_event = time.time() * 1000
            assert event.json["ticket"]["number"] == number
            while True:
                msg = json.loads((await ws.receive()).data)
                if msg["type"] == "view":
                    view = msg["view"]
                elif msg["type"] == "patch":
                    view = apply_patch(view, msg)
                else:
                    continue
                if (view["latest"] or {}).get("number") == number:
                    lat["ws_view"].append(time.time() * 1000 - t_event)
                    break
            await page.wait_for_function(
                "n => window.qmsDisplay.played.some(e => e.event === 'done' && e.number === n)", arg=number,
                timeout=60_000)
            seen = await page.evaluate("""n => ({view: window.qmsDisplay.latestAt,
                log: window.qmsDisplay.played.filter(e => e.number === n)
                         .map(e => ({event: e.event, at: performance.timeOrigin + e.t}))})""", number)
            at = {e["event"]: e["at"] for e in reversed(seen["log"])}  # first of each kind
            lat["page_announce"].append(at["queued"] - t_event)
            lat["page_audio_start"].append(at["start"] - t_event)
            lat["page_view"].append(seen["view"] - t_event)
        await browser.close()
    return {"calls": calls, "latency_ms": {k: summary(v) for k, v in lat.items()}}


@contextlib.contextmanager
def site_processes(tmp: Path, broker: Broker, site: Path, site_id: str, port: int) -> Iterator[None]:
    """A real core and a real web server for the site, ready (the core online, the web port open)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    core = subprocess.Popen([sys.executable, "-m", "queue_core", "--config", str(site), "--log-level", "WARNING"],
                            stderr=(tmp / "core.log").open("wb"), env=env)
    web = subprocess.Popen([sys.executable, "-m", "display_server", "--config", str(site), "--log-level", "WARNING"],
                           stderr=(tmp / "web.log").open("wb"), env=env)
    try:
        wait_for_port(port, timeout=20, process=web)
        out = subprocess.run(["mosquitto_sub", "-p", str(broker.port), "-t", f"qms/{site_id}/status/core", "-C", "1",
                              "-W", "20"], capture_output=True, text=True)
        assert out.stdout.strip() == "online", "core did not come online"
        yield
    finally:
        for proc in (web, core):
            stop_process(proc)


def main() -> int:
    with scratch_dir("qms-bench-display-") as tmp:
        calls = int(os.environ.get("BENCH_CALLS", "20"))
        broker = start_broker(workdir=tmp / "broker")
        port = free_port()
        site, site_id = write_site(tmp, broker.url, site_id="bench", extra=web_extra(tmp, port))
        print(f"bench-display: broker {broker.url}, web http://127.0.0.1:{port}, {calls} calls", file=sys.stderr)
        try:
            with site_processes(tmp, broker, site, site_id, port):
                result = asyncio.run(measure(broker.url, Topics(site_id), f"http://127.0.0.1:{port}", calls))
        finally:
            broker.stop()
        print(json.dumps(result))
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
