"""`make bench-province`: 500 simulated offices through one central Mosquitto into the aggregator.

Starts a fresh PostgreSQL, the central Mosquitto as `qms-broker central` writes it (its ACL, its
users: each simulated office publishes with its own credentials, as its bridge would) and the
aggregator as a process (`python -m province`). Each simulated office runs a busy office's day
(BENCH_DAY tickets over an 8.5 h day, 3 counters, 8 of 10 tickets rated), accelerated by
`--speed`: per ticket `event/issued`, `called`, `finished`, `rated` with the ticket's record, and
the retained `state/queue/{field}` and `state/counter/{counter}` after each change, with one
increasing `seq` per office, as docs/protocol.md says.

Measures, over the load (`--seconds`, 150 by default: the whole run stays under 5 minutes):
- the aggregator's lag: from the `at` the message carries (its publish time) to the row's
  `received_at` (the aggregator's transaction time), p50/p99/max;
- PostgreSQL rows per second (rows inserted or updated, all tables, pg_stat_user_tables) and
  events per second;
- the aggregator's CPU % and RSS at the start, middle and end of the load (bounded: not growing);
- with the dashboard merged (`province.web`), `GET /` with 500 offices and `GET /api/v1/sites`.
Prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import importlib.util
import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import aiomqtt  # noqa: E402
import asyncpg  # noqa: E402
import psutil  # noqa: E402

from display_server.accounts.store import hash_password  # noqa: E402
from qms_common.devbroker import scratch_dir  # noqa: E402
from qms_common.mqtt import NODELAY  # noqa: E402
from tests.support.postgres import start_postgres  # noqa: E402
from tests.support.province import AggregatorProcess, Central, start_central  # noqa: E402
from tests.support.web import CSRF_INPUT  # noqa: E402

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DAY_S = 8.5 * 3600  # a working day: 7:00-11:30 and 13:00-17:00
BENCH_DAY = 500  # tickets a busy office issues a day
FIELDS = (("dat-dai", "Đất đai", 1001), ("ho-tich", "Hộ tịch", 2001))
COUNTERS = ("1", "2", "3")
SERVICE_S = 150.0  # mean service time at a counter (3 counters serve ~610 a day: busy, not overrun)
CALL_GAP_S = 10.0  # from a counter's finish to its next call
RATED = 0.8
LOGIN = ("tinh", "tinh-bench")


def now_iso() -> str:
    return datetime.now(TZ).isoformat(timespec="microseconds")


@dataclass
class SimOffice:
    """One office's core as the province sees it: its events and retained state, numbered by seq."""
    site: str
    client: aiomqtt.Client
    seq: int = 0
    numbers: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {f: [] for f, _, _ in FIELDS})
    served: dict[str, int] = field(default_factory=lambda: {f: 0 for f, _, _ in FIELDS})
    serving: dict[str, dict[str, Any] | None] = field(default_factory=lambda: {c: None for c in COUNTERS})
    day: str = field(default_factory=lambda: datetime.now(TZ).strftime("%Y%m%d"))

    def body(self, **kw: Any) -> dict[str, Any]:
        self.seq += 1
        return {**kw, "seq": self.seq, "at": now_iso()}

    def issue(self) -> list[tuple[str, dict[str, Any], bool]]:
        fid, _, first = random.choice(FIELDS)
        n = self.numbers.get(fid, first - 1) + 1
        self.numbers[fid] = n
        t = {"id": f"{self.day}-{fid}-{n}", "number": str(n), "field": fid, "priority": False, "status": "waiting",
             "issued_at": now_iso(), "called_at": None, "finished_at": None, "counter": None, "calls": 0,
             "rating": None, "dossier": None, "via": "kiosk"}
        self.waiting[fid].append(t)
        return [("event/issued", self.body(kind="issued", ticket=dict(t), counter=None), False), self.queue(fid)]

    def queue(self, fid: str) -> tuple[str, dict[str, Any], bool]:
        name = next(n for f, n, _ in FIELDS if f == fid)
        w = self.waiting[fid]
        return (f"state/queue/{fid}", self.body(field=fid, name=name, waiting=len(w), priority_waiting=0,
                                                next=[t["number"] for t in w[:3]], served=self.served[fid],
                                                avg_wait_s=300, est_wait_s=len(w) * 50, awaiting_checkin=0), True)

    def counter_state(self, c: str) -> tuple[str, dict[str, Any], bool]:
        t = self.serving[c]
        return (f"state/counter/{c}", self.body(counter=c, name=f"Quầy {c}", status="serving" if t else "open",
                                               ticket=dict(t) if t else None, officer=f"Cán bộ {c}",
                                               fields=[f for f, _, _ in FIELDS], since=now_iso()), True)

    def call(self, c: str) -> list[tuple[str, dict[str, Any], bool]]:
        fid = max(self.waiting, key=lambda f: len(self.waiting[f]))
        if self.serving[c] is not None or not self.waiting[fid]:
            return []
        t = self.waiting[fid].pop(0)
        t.update(status="serving", called_at=now_iso(), counter=c, calls=1)
        self.serving[c] = t
        return [("event/called", self.body(kind="called", ticket=dict(t), counter=c, recall=False), False),
                self.counter_state(c), self.queue(fid)]

    def finish(self, c: str) -> tuple[list[tuple[str, dict[str, Any], bool]], dict[str, Any] | None]:
        t = self.serving[c]
        if t is None:
            return [], None
        t.update(status="done", finished_at=now_iso())
        self.serving[c] = None
        self.served[t["field"]] += 1
        return [("event/finished", self.body(kind="finished", ticket=dict(t), counter=c), False),
                self.counter_state(c)], t

    def rate(self, t: dict[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
        t["rating"] = random.choice((1, 2, 3, 3))
        return [("event/rated", self.body(kind="rated", ticket=dict(t), counter=t["counter"]), False)]


@dataclass
class Load:
    offices: list[SimOffice]
    speed: float
    published: int = 0
    tickets: int = 0
    _heap: list[tuple[float, int, int, str, Any]] = field(default_factory=list)
    _n: int = 0
    _inflight: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2000))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def at(self, delay_s: float, office: int, action: str, arg: Any = None) -> None:
        self._n += 1
        heapq.heappush(self._heap, (time.monotonic() + delay_s / self.speed, self._n, office, action, arg))

    def start(self) -> None:
        rate = BENCH_DAY / DAY_S
        for i in range(len(self.offices)):
            self.at(random.expovariate(rate), i, "issue")

    async def run(self, until: float) -> None:
        rate = BENCH_DAY / DAY_S
        while time.monotonic() < until:
            if not self._heap or self._heap[0][0] > time.monotonic():
                wake = min(until, self._heap[0][0] if self._heap else until)
                await asyncio.sleep(max(0.0, wake - time.monotonic()))  # the schedule's pace
                continue
            _, _, i, action, arg = heapq.heappop(self._heap)
            o = self.offices[i]
            out: list[tuple[str, dict[str, Any], bool]] = []
            if action == "issue":
                out = o.issue()
                self.tickets += 1
                self.at(random.expovariate(rate), i, "issue")
                for c in COUNTERS:
                    if o.serving[c] is None:
                        self.at(CALL_GAP_S, i, "call", c)
                        break
            elif action == "call":
                out = o.call(arg)
                if out:
                    self.at(random.expovariate(1 / SERVICE_S), i, "finish", arg)
            elif action == "finish":
                out, t = o.finish(arg)
                if t is not None and random.random() < RATED:
                    self.at(5, i, "rate", t)
                self.at(CALL_GAP_S, i, "call", arg)
            elif action == "rate":
                out = o.rate(arg)
            for topic, body, retain in out:
                await self._publish(o, topic, body, retain)

    async def _publish(self, o: SimOffice, topic: str, body: dict[str, Any], retain: bool) -> None:
        await self._inflight.acquire()
        payload = json.dumps(body, ensure_ascii=False).encode()
        task = asyncio.create_task(o.client.publish(f"qms/{o.site}/{topic}", payload, qos=1, retain=retain))
        self._tasks.add(task)
        task.add_done_callback(self._done)
        self.published += 1

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._inflight.release()

    async def drain(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)


def site_ids(n: int) -> list[str]:
    return [f"xa-{i:03d}" for i in range(1, n + 1)]


@dataclass
class Sampler:
    proc: psutil.Process
    last_cpu: float = 0.0
    last_t: float = 0.0

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        t = self.proc.cpu_times()
        self.last_cpu, self.last_t = t.user + t.system, time.monotonic()

    def sample(self) -> dict[str, float]:
        t = self.proc.cpu_times()
        cpu, now = t.user + t.system, time.monotonic()
        pct = 100 * (cpu - self.last_cpu) / max(1e-6, now - self.last_t)
        self.last_cpu, self.last_t = cpu, now
        return {"cpu_pct": round(pct, 1), "rss_mb": round(self.proc.memory_info().rss / 2**20, 1)}


async def rows_written(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0) FROM pg_stat_user_tables"))


async def connect_offices(central: Central, sites: list[str]) -> tuple[contextlib.AsyncExitStack, list[SimOffice]]:
    stack = contextlib.AsyncExitStack()
    offices: list[SimOffice] = []
    port = central.broker.port
    for batch in range(0, len(sites), 50):
        clients = [aiomqtt.Client("127.0.0.1", port, username=s, password=central.passwords[s], identifier=s,
                                  protocol=aiomqtt.ProtocolVersion.V311, socket_options=NODELAY,
                                  max_inflight_messages=100, max_queued_outgoing_messages=0)
                   for s in sites[batch:batch + 50]]
        await asyncio.gather(*(stack.enter_async_context(c) for c in clients))
        for s, c in zip(sites[batch:batch + 50], clients, strict=True):
            c.pending_calls_threshold = 100_000
            await c.publish(f"qms/{s}/status/core", b"online", qos=1, retain=True)
            offices.append(SimOffice(s, c))
    return stack, offices


async def wait_until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.5)  # a poll of PostgreSQL
    return False


def web_merged() -> bool:
    """province.web in this tree (the aggregator runs from it), not from some other install."""
    spec = importlib.util.find_spec("province.web")
    return spec is not None and spec.origin is not None and Path(spec.origin).is_relative_to(ROOT)


async def dashboard(web_port: int) -> dict[str, Any]:
    """`/` with every office, logged in, and the JSON API; only with province.web merged."""
    base = f"http://127.0.0.1:{web_port}"
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        for _ in range(100):
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{base}/healthz") as r:
                    if r.status == 200:
                        break
            await asyncio.sleep(0.2)  # the web server is starting
        else:
            return {"error": f"{base}/healthz không trả lời"}
        t = time.perf_counter()
        async with http.get(f"{base}/api/v1/sites") as r:
            sites = await r.json() if r.status == 200 else []
        out["api_sites_ms"] = round((time.perf_counter() - t) * 1000, 1)
        out["api_sites_n"] = len(sites)
        # the login form as a browser fills it: its CSRF token (and cookie), from our own origin
        async with http.get(f"{base}/dang-nhap") as r:
            token = CSRF_INPUT.search(await r.text())
        form = {"username": LOGIN[0], "password": LOGIN[1], "csrf": token.group(1) if token else ""}
        async with http.post(f"{base}/dang-nhap", data=form, headers={"Origin": base}, allow_redirects=False) as r:
            out["login_status"] = r.status
        times = []
        for _ in range(5):
            t = time.perf_counter()
            async with http.get(f"{base}/", allow_redirects=False) as r:
                body = await r.read()
                status = r.status
            times.append((time.perf_counter() - t) * 1000)
        out["dashboard_ms"] = {"first": round(times[0], 1), "median": round(sorted(times)[2], 1),
                               "status": status, "bytes": len(body)}
    return out


async def bench(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    pg = start_postgres()
    try:
        dsn = pg.create_database("qms_province")
        sites = site_ids(args.offices)
        account = (f'\n[[accounts]]\nusername = "{LOGIN[0]}"\npassword_hash = "{hash_password(LOGIN[1])}"\n'
                   'role = "province"\n')
        central, config = start_central(tmp, dsn, sites, province_id="tinh-bench", accounts=account)
        aggregator = AggregatorProcess(config, tmp / "province.log").start()
        try:
            return await measure(args, central, aggregator, dsn, sites, config)
        finally:
            aggregator.stop()
            central.broker.stop()
    finally:
        pg.stop()
        if not os.environ.get("QMS_KEEP"):
            shutil.rmtree(pg.root, ignore_errors=True)


async def measure(args: argparse.Namespace, central: Central, aggregator: AggregatorProcess, dsn: str,
                  sites: list[str], config: Path) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        async def listed() -> bool:
            return (await conn.fetchval("SELECT to_regclass('sites')") is not None
                    and await conn.fetchval("SELECT count(*) FROM sites") == len(sites))
        if not await wait_until(listed, 60):
            raise RuntimeError(f"aggregator not ready; its log: {aggregator.log()[-2000:]}")
        t = time.perf_counter()
        stack, offices = await connect_offices(central, sites)
        connect_s = time.perf_counter() - t
        async with stack:
            online = await wait_until(
                lambda: _fetch_eq(conn, "SELECT count(*) FROM sites WHERE online", len(sites)), 60)
            sampler = Sampler(psutil.Process(aggregator.pid))
            load = Load(offices, args.speed)
            load.start()
            started = datetime.now(TZ)
            rows0, t0 = await rows_written(conn), time.monotonic()
            samples: dict[str, dict[str, float]] = {}
            third = args.seconds / 3
            for name in ("start", "middle", "end"):
                await load.run(time.monotonic() + third)
                samples[name] = sampler.sample()
                print(f"bench-province: {name}: {samples[name]}, {load.published} published, "
                      f"{load.tickets} tickets", file=sys.stderr)
            await load.drain()
            load_s = time.monotonic() - t0
            published = load.published
            # the end: everything published is in PostgreSQL (events and state, one row each)
            caught_up = await wait_until(lambda: _fetch_eq(
                conn, "SELECT count(*) FROM events WHERE at >= $1", published, started), 120)
            rows1, t1 = await rows_written(conn), time.monotonic()
            lag = await conn.fetchrow(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY l) AS p50, "
                "percentile_cont(0.99) WITHIN GROUP (ORDER BY l) AS p99, max(l) AS max, count(*) AS n "
                "FROM (SELECT extract(epoch FROM received_at - at) AS l FROM events WHERE at >= $1) x", started)
            stored = await conn.fetchval("SELECT count(*) FROM events WHERE at >= $1", started)
            result: dict[str, Any] = {
                "offices": len(sites), "speed": args.speed, "load_s": round(load_s, 1),
                "connect_offices_s": round(connect_s, 1), "offices_online": online,
                "busy_office_tickets_per_day": BENCH_DAY,
                "tickets": load.tickets, "published": published, "stored": stored, "caught_up": caught_up,
                "published_per_s": round(published / load_s, 1),
                "lag_s": {k: round(float(lag[k] or 0), 3) for k in ("p50", "p99", "max")},
                "pg_rows_per_s": round((rows1 - rows0) / (t1 - t0), 1),
                "pg_events_per_s": round(stored / (t1 - t0), 1),
                "aggregator": samples,
                "aggregator_end_rss_mb": round(psutil.Process(aggregator.pid).memory_info().rss / 2**20, 1),
            }
            # MERGE POINT (helper B, issue 15): the dashboard runs in the aggregator's process
            # once province.web is merged; before, there is nothing to time.
            if web_merged():
                from province.settings import load_province
                result["dashboard"] = await dashboard(load_province(config).web_port)
            else:
                result["dashboard"] = "province.web chưa có (not merged yet)"
            return result
    finally:
        await conn.close()


async def _fetch_eq(conn: asyncpg.Connection, sql: str, expected: int, *args: Any) -> bool:
    return int(await conn.fetchval(sql, *args)) >= expected


def main() -> int:
    p = argparse.ArgumentParser(description="500 văn phòng mô phỏng qua broker trung tâm vào dịch vụ tỉnh "
                                "(simulated offices through the central broker into the aggregator).")
    p.add_argument("--offices", type=int, default=500, help="số điểm mô phỏng (mặc định 500)")
    p.add_argument("--seconds", type=float, default=150, help="thời gian tải, giây (mặc định 150)")
    p.add_argument("--speed", type=float, default=10,
                   help="hệ số tăng tốc so với nhịp một điểm đông khách thật (mặc định 10)")
    args = p.parse_args()
    if args.offices < 1 or args.seconds <= 0 or args.speed <= 0:
        p.error("--offices phải từ 1 trở lên, --seconds và --speed phải lớn hơn 0")
    per_s = args.offices * BENCH_DAY / DAY_S
    print(f"bench-province: {args.offices} offices × {BENCH_DAY} tickets per {DAY_S / 3600:g} h day, "
          f"accelerated ×{args.speed:g}: {per_s * args.speed:.1f} tickets/s in all "
          f"(real time: {per_s:.2f}/s), for {args.seconds:g} s", file=sys.stderr)
    with scratch_dir("qms-bench-province-") as tmp:
        result = asyncio.run(bench(args, tmp))
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
