"""`make chaos`: kill -9 the queue core at random moments under load, many times, then check
that nothing was lost, duplicated or left in two places, and that the panels and the TV show
the truth again within seconds.

Clients behave as real ones do: each request is sent with one request_id and retried with the
same id until an answer comes (the core may be dead, restarting or alive). After every round
and at the end the database and the retained state are checked:
- every number of every field was issued exactly once, without gaps;
- every ok reply a client received is in the database, identical;
- no ticket is in two places: a serving ticket is the current ticket of exactly its counter,
  and no counter holds a ticket that is not serving there;
- the retained state the restarted core publishes agrees with the database;
- a real counter agent's simulated panels and a real web server's TV feed, running all along,
  show every counter as the database has it within a few seconds of the last restart.

Usage: python scripts/chaos.py [--rounds 20] [--seed N]   (prints one JSON line at the end)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from counter_agent.simulator.bus import SimulatedBus  # noqa: E402
from counter_agent.simulator.devices import Panel  # noqa: E402
from qms_common.config import MqttSettings  # noqa: E402
from qms_common.devbroker import free_port, scratch_dir, start_broker, stop_process, wait_for_port  # noqa: E402
from qms_common.mqtt import MqttSession, NotConnected, Requester, RequestTimeout, new_request_id  # noqa: E402
from qms_common.protocol import Topics  # noqa: E402

SITE = """
[site]
id = "chaos"
name = "Chaos"

[mqtt]
url = "{url}"

[storage]
path = "{db}"

[web]
host = "127.0.0.1"
port = {web_port}

[speech]
engines = []

[[fields]]
id = "dat-dai"
name = "Đất đai"
first = 1001
last = 9999

[[fields]]
id = "ho-tich"
name = "Hộ tịch"
first = 1
last = 9999
prefix = "H"

[[counters]]
id = "1"
name = "Quầy 1"
fields = ["dat-dai"]

[[counters]]
id = "2"
name = "Quầy 2"
fields = ["dat-dai", "ho-tich"]

[[counters]]
id = "3"
name = "Quầy 3"
fields = ["ho-tich"]

[[counters]]
id = "4"
name = "Quầy 4"
fields = ["ho-tich", "dat-dai"]
"""

COUNTERS = ["1", "2", "3", "4"]
SHOW_WITHIN_S = 10.0  # "panels and TVs show the truth again within seconds"

AGENT = """
[agent]
id = "chaos-agent"

[mqtt]
url = "{url}"
site = "chaos"
""" + "".join(f"""
[[counters]]
id = "{c}"
port = "{{bus}}"
driver = "qms-serial"
address = {c}
""" for c in COUNTERS)


@dataclass
class Ledger:
    """What the clients were told."""

    ok: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    sent: int = 0


class Core:
    """A process of the system: the core (killed again and again), the agent, the web server."""

    def __init__(self, config: Path, log: Path, module: str = "queue_core") -> None:
        self.config, self.log, self.module = config, log, module
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", self.module, "--config", str(self.config),
                                          "--log-level", "WARNING"], stdout=out, stderr=out)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        stop_process(self.proc)


async def client(req: Requester, topics: Topics, rng: random.Random, ledger: Ledger, stop: asyncio.Event) -> None:
    while not stop.is_set():
        roll = rng.random()
        if roll < 0.5:
            topic, body = topics.cmd_ticket, {"field": rng.choice(["dat-dai", "ho-tich"]),
                                              "priority": rng.random() < 0.1}
        else:
            counter = rng.choice(COUNTERS)
            action = rng.choices(["call_next", "finish", "skip", "recall", "transfer"], [6, 2, 1, 1, 1])[0]
            body = {"action": action}
            if action == "transfer":
                body["to_field"] = rng.choice(["dat-dai", "ho-tich"])
            topic = topics.cmd_counter(counter)
        body["request_id"] = new_request_id()
        ledger.sent += 1
        while True:  # the same request_id until an answer comes, as a real client retries
            try:
                reply = await req.request(topic, body, timeout=1)
                break
            except (NotConnected, RequestTimeout):
                await asyncio.sleep(0.05)
        if reply["ok"]:
            ledger.ok[body["request_id"]] = reply
        else:
            ledger.refused[reply["error"]["code"]] += 1


async def ready(req: Requester, topics: Topics) -> None:
    """Until the core answers (a read-only question changes nothing)."""
    while True:
        try:
            await req.request(topics.cmd_query, {"query": "tickets", "limit": 1}, timeout=1)
            return
        except (NotConnected, RequestTimeout):
            await asyncio.sleep(0.05)


def check_database(db: Path, ledger: Ledger) -> list[str]:
    problems: list[str] = []
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        tickets = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM tickets")}
        for fid, first in (("dat-dai", 1001), ("ho-tich", 1)):
            values = sorted(t["value"] for t in tickets.values() if t["origin_field"] == fid)
            if values != list(range(first, first + len(values))):
                problems.append(f"{fid}: numbers not issued exactly once without gaps")
        stored = {r["request_id"]: json.loads(r["reply"])
                  for r in conn.execute("SELECT request_id, reply FROM requests")}
        for rid, reply in ledger.ok.items():
            if stored.get(rid) != reply:
                problems.append(f"ok reply {rid} not in the database as sent")
            t = reply.get("ticket")
            if t and reply["request_id"] == rid and "ahead" in reply and t["id"] not in tickets:
                problems.append(f"issued ticket {t['id']} missing")
        holders: dict[str, str] = {}
        for c in conn.execute("SELECT * FROM counters"):
            if c["ticket"] is None:
                continue
            if c["ticket"] in holders:
                problems.append(f"ticket {c['ticket']} held by counters {holders[c['ticket']]} and {c['id']}")
            holders[c["ticket"]] = c["id"]
            t = tickets.get(c["ticket"])
            if t is None or t["status"] != "serving" or t["counter"] != c["id"]:
                problems.append(f"counter {c['id']} holds {c['ticket']} which is not serving there")
        for t in tickets.values():
            if t["status"] == "serving" and holders.get(t["id"]) != t["counter"]:
                problems.append(f"ticket {t['id']} serving at {t['counter']} but not that counter's ticket")
    finally:
        conn.close()
    return problems


async def check_state(url: str, topics: Topics, db: Path) -> list[str]:
    """The retained state the (restarted) core published agrees with the database."""
    conn = sqlite3.connect(db)
    waiting = dict(conn.execute("SELECT field, COUNT(*) FROM tickets WHERE status IN ('waiting', 'transferred') "
                                "GROUP BY field").fetchall())
    serving = dict(conn.execute("SELECT id, ticket FROM counters").fetchall())
    conn.close()
    got: dict[str, Any] = {}
    done = asyncio.Event()
    wanted = {topics.state_queue(f) for f in ("dat-dai", "ho-tich")} | {topics.state_counter(c) for c in COUNTERS}

    async def on_message(m: Any) -> None:
        got[m.topic.value] = json.loads(m.payload)
        if wanted <= got.keys():
            done.set()

    session = MqttSession(MqttSettings.from_url(url), identifier=f"chaos-check-{new_request_id()[:6]}",
                          name="check", subscriptions=[topics.state_all], on_message=on_message)
    task = asyncio.create_task(session.run())
    try:
        await asyncio.wait_for(done.wait(), 10)
    finally:
        task.cancel()
    problems = []
    for f in ("dat-dai", "ho-tich"):
        if got[topics.state_queue(f)]["waiting"] != waiting.get(f, 0):
            problems.append(f"state/queue/{f} says {got[topics.state_queue(f)]['waiting']} waiting, "
                            f"the database {waiting.get(f, 0)}")
    for c in COUNTERS:
        t = got[topics.state_counter(c)]["ticket"]
        if (t["id"] if t else None) != serving.get(c):
            problems.append(f"state/counter/{c} disagrees with the database")
    return problems


def expected_by_counter(db: Path) -> dict[str, str | None]:
    """What each counter's panel and TV tile should show: its serving number, or nothing."""
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT c.id, c.status, t.number FROM counters c LEFT JOIN tickets t ON t.id = c.ticket")
    shown = {cid: (number if status in ("serving", "paused") else None) for cid, status, number in rows}
    conn.close()
    return {c: shown.get(c) for c in COUNTERS}


def panel_text(status_number: str | None, status: str) -> str:
    return status_number or {"open": "----", "paused": "PAUS", "closed": ""}.get(status, "")


async def check_devices(bus: SimulatedBus, web: str, db: Path) -> list[str]:
    """The panels and the TV feed show the database's truth within SHOW_WITHIN_S."""
    conn = sqlite3.connect(db)
    status = dict(conn.execute("SELECT id, status FROM counters").fetchall())
    conn.close()
    numbers = expected_by_counter(db)
    panels = {c: panel_text(numbers[c], status.get(c, "closed")) for c in COUNTERS}
    problems: list[str] = []
    try:
        async with asyncio.timeout(SHOW_WITHIN_S):
            while any(bus.panels[int(c)].text != want for c, want in panels.items()):
                await bus.wait_for(lambda _s: True, start=bus.mark())  # the next frame on the line
    except TimeoutError:
        problems += [f"panel of counter {c} shows {bus.panels[int(c)].text!r}, the database says {want!r}"
                     for c, want in panels.items() if bus.panels[int(c)].text != want]
    tv: dict[str, str | None] = {}
    try:
        async with asyncio.timeout(SHOW_WITHIN_S), aiohttp.ClientSession() as http, \
                http.ws_connect(f"{web}/display/ws") as ws:
            async for msg in ws:
                view = json.loads(msg.data).get("view")
                if view is None:
                    continue
                tv = {str(c["id"]): c.get("number") for c in view["counters"]}
                if all(tv.get(c) == numbers[c] for c in COUNTERS):
                    break
    except TimeoutError:
        problems += [f"the TV shows {tv.get(c)!r} at counter {c}, the database says {numbers[c]!r}"
                     for c in COUNTERS if tv.get(c) != numbers[c]]
    return problems


async def run(tmp: Path, rounds: int, seed: int, clients: int) -> dict[str, Any]:
    rng = random.Random(seed)
    broker = start_broker(workdir=tmp / "broker")
    db = tmp / "chaos.sqlite3"
    config = tmp / "site.toml"
    web_port = free_port()
    config.write_text(SITE.format(url=broker.url, db=db, web_port=web_port), encoding="utf-8")
    topics = Topics("chaos")
    core = Core(config, tmp / "core.log")
    bus = SimulatedBus(tmp / "bus", "qms-serial", [Panel(int(c), c) for c in COUNTERS]).plug()
    agent_config = tmp / "agent.toml"
    agent_config.write_text(AGENT.format(url=broker.url, bus=tmp / "bus"), encoding="utf-8")
    others = [Core(agent_config, tmp / "agent.log", "counter_agent"), Core(config, tmp / "web.log", "display_server")]
    ledger = Ledger()
    sessions = []
    for i in range(clients):
        s = MqttSession(MqttSettings.from_url(broker.url), identifier=f"chaos-{i}", name=f"chaos-{i}")
        r = Requester(s, topics, f"chaos-{i}")
        sessions.append((s, r, asyncio.create_task(s.run())))
    problems: list[str] = []
    t0 = time.monotonic()
    try:
        core.start()
        for p in others:
            p.start()
        for s, _, _ in sessions:
            await asyncio.wait_for(s.wait_connects(1), 10)
        await ready(sessions[0][1], topics)
        stop = asyncio.Event()
        workers = [asyncio.create_task(client(r, topics, random.Random(rng.random()), ledger, stop))
                   for _, r, _ in sessions]
        for n in range(rounds):
            await asyncio.sleep(rng.uniform(0.3, 1.5))  # a random moment under load
            core.kill9()
            await asyncio.sleep(rng.uniform(0.0, 0.3))  # the core stays dead a moment; clients keep retrying
            core.start()
            print(f"chaos: round {n + 1}/{rounds}: {len(ledger.ok)} ok replies so far", file=sys.stderr, flush=True)
        await ready(sessions[0][1], topics)
        await asyncio.sleep(1.0)  # some load on the last incarnation too
        stop.set()
        await asyncio.wait_for(asyncio.gather(*workers), 60)
        problems += check_database(db, ledger)
        problems += await check_state(broker.url, topics, db)
        wait_for_port(web_port, timeout=30)
        problems += await check_devices(bus, f"http://127.0.0.1:{web_port}", db)
    finally:
        for _, _, task in sessions:
            task.cancel()
        await asyncio.gather(*(task for _, _, task in sessions), return_exceptions=True)
        for p in (core, *others):
            p.stop()
        bus.close()
        broker.stop()
    return {"rounds": rounds, "seed": seed, "requests": ledger.sent, "ok_replies": len(ledger.ok),
            "refused": dict(ledger.refused), "seconds": round(time.monotonic() - t0, 1), "problems": problems}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    p.add_argument("--clients", type=int, default=8)
    args = p.parse_args()
    with scratch_dir("qms-chaos-") as tmp:
        result = asyncio.run(run(tmp, args.rounds, args.seed, args.clients))
        print(json.dumps(result, ensure_ascii=False))
        if result["problems"]:
            raise SystemExit(1)  # the directory stays, with every process's log
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
