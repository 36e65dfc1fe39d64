"""`make bench`: a large office on this machine, then the core flat out. One JSON object last.

Steady phase (BENCH_SECONDS, default 60): our own broker, the core, four counter agents with 200
counters on simulated qms-serial panels and keypads (20 buses of 10 devices on real ptys, the
device side in this process), the web server with 50 TV feeds connected over WebSocket; keys
"N" pressed at 20 per second on random counters and tickets issued at 20 per second.
  press_to_panel_ms: from the key frame written on the keypad's line to the panel's blinking
                     frame of that counter read back from the line;
  press_to_tv_ms:    from the same key press to each TV feed's first message showing the call.
  With the dossier service running and dossier commands on cmd/dossier at BENCH_DOSSIERS_PER_S
  (default 2; 0 runs neither: the baseline), creations and status changes as the web server
  sends them, so that the two numbers above show whether dossiers slow the queue's hot path:
  dossier_command_ms: one dossier command's round trip (the service writes before it answers).
Flat phase (BENCH_FLAT commands, default 30000): agents, web server and TVs stopped; the core
alone takes tickets and call_next from Mosquitto's own C clients (mosquitto_pub -l, MQTT 5
Response Topic) as fast as it answers; every command is a durable transaction.
  core_commands_per_s: answered commands per second over the flat phase.
Notifier phase (BENCH_NOTIFY_SECONDS, default 30; 0 skips it): a fresh core on a site with
[notify], the notifier, and the providers' stand-in in this process; tickets with a phone
issued at 20 per second.
  notify_event_to_zns_ms: from the moment this process sees the core's private/contact message
                          of a new ticket on the broker to the stand-in receiving the Zalo ZNS
                          request of its "issued" message (one clock: both are in this process).
Catalogue phase (BENCH_CATALOGUE_QUERIES, default 2000; 0 skips it): 2,000 generated procedures
with real Vietnamese names imported with `qms-web import-procedures`, then searched with queries as
citizens type them (whole names, words in another order, without marks, prefixes, one letter).
  catalogue_search_ms:      one search of the in-memory index (Catalogue.search), in this process;
  catalogue_http_search_ms: GET /api/procedures?q= on a running web server, one after the other.
`scripts/bench.py --catalogue` runs this phase alone (its own broker and web server).
Reports phase (BENCH_REPORT_TICKETS, default 182,500 = 500 a day x 365, the tickets of the last
calendar year; 0 skips it): examples/site.toml's office with BENCH_REPORT_YEARS calendar years of
history (default 1) ending on the last 31 December, every open day of them, as many tickets an
open day as makes that many in the year (scripts/gen_history.py), on its own broker, with the
core, the dossier service and the web server.
  core_start_s, core_rss_mb:     spawn to "online", and resident memory, with that history and empty;
  warehouse_backfill_s:          web server start to every day rolled up and every dossier in;
  report_year_by_officer_ms:     the calendar year's report by officer (with the year before beside
                                 it: empty with one year of history), warm: Reports.report in this
                                 process, and GET /reports;
  xlsx_year_by_officer_s:        GET /reports/export.xlsx of that year by officer.
`scripts/bench.py --reports` runs this phase alone.
QMS_KEEP=1 keeps the processes' logs and the database.
Every process: CPU seconds in each phase and peak resident memory (VmHWM); core_rss_mb is the
core's peak over both phases (the flat phase's day holds far more tickets than an office's).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psutil  # noqa: E402
from aiohttp import web  # noqa: E402

from counter_agent.simulator.bus import SimulatedBus  # noqa: E402
from counter_agent.simulator.devices import Panel, Shown  # noqa: E402
from display_server.catalogue.search import words  # noqa: E402
from display_server.catalogue.store import Catalogue  # noqa: E402
from notifier.outbox import idempotency_key  # noqa: E402
from notifier.standin.server import STATE, make_app  # noqa: E402
from notifier.standin.state import StandinSettings  # noqa: E402
from qms_common.config import MqttSettings  # noqa: E402
from qms_common.devbroker import free_port, scratch_dir, start_broker, stop_process, wait_for_port  # noqa: E402
from qms_common.mqtt import MqttSession, NotConnected, Requester, RequestTimeout  # noqa: E402
from qms_common.protocol import ProtocolError, Topics  # noqa: E402
from tests.support.procedures import generate, write_json  # noqa: E402

SITE_ID = "bench"
N_COUNTERS = int(os.environ.get("BENCH_COUNTERS", "200"))
N_AGENTS = 4
BUS_SIZE = 10
N_FIELDS = 8
N_TVS = int(os.environ.get("BENCH_TVS", "50"))
CALLS_PER_S = 20.0
TICKETS_PER_S = 20.0
SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
FLAT = int(os.environ.get("BENCH_FLAT", "30000"))
NOTIFY_SECONDS = float(os.environ.get("BENCH_NOTIFY_SECONDS", "30"))
CATALOGUE_QUERIES = int(os.environ.get("BENCH_CATALOGUE_QUERIES", "2000"))
# dossier commands per second in the steady phase: far above an office's few a minute
DOSSIERS_PER_S = float(os.environ.get("BENCH_DOSSIERS_PER_S", "2"))
CATALOGUE_SIZE = 2000
# "a busy office: 500 tickets a day, about 180,000 tickets" in the year the report covers (issue 14)
REPORT_TICKETS = int(os.environ.get("BENCH_REPORT_TICKETS", str(500 * 365)))
REPORT_YEARS = int(os.environ.get("BENCH_REPORT_YEARS", "1"))
REPORT_RUNS = 30   # warm reports timed in this process, and over HTTP
XLSX_RUNS = 5
# ZNS requests per second the notifier may make: above the load's 20 tickets/s (the default 10
# would queue them; a real office issues a ticket every few seconds)
NOTIFY_RATE_PER_S = 50
# The speech cache's folder (default: in the run's directory, on the database's file system)
SPEECH_DIR = os.environ.get("BENCH_SPEECH_DIR")
TARGETS = {"press_to_panel_p99_ms": 15, "press_to_tv_p99_ms": 25, "core_commands_per_s": 1000, "core_rss_mb": 80,
           "notify_event_to_zns_p99_ms": 100, "catalogue_search_p99_ms": 50, "catalogue_http_search_p99_ms": 50,
           "report_year_by_officer_p99_ms": 500, "xlsx_year_by_officer_s": 3}


def log(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    v = sorted(values)

    def pct(p: float) -> float:
        return round(v[min(len(v) - 1, int(p / 100 * len(v)))], 2)

    return {"n": len(v), "p50": pct(50), "p95": pct(95), "p99": pct(99), "max": round(v[-1], 2)}


# ---------------------------------------------------------------- the site

def site_toml(url: str, tmp: Path, web_port: int, *, db: str = "bench.sqlite3", extra: str = "") -> str:
    fields = "".join(f"""
[[fields]]
id = "f{i}"
name = "Lĩnh vực {i}"
first = {i * 10000}
last = {i * 10000 + 9999}
""" for i in range(1, N_FIELDS + 1))
    counters = "".join(f"""
[[counters]]
id = "{c}"
name = "Quầy {c}"
fields = ["f{c % N_FIELDS + 1}", "f{(c + 1) % N_FIELDS + 1}"]
""" for c in range(1, N_COUNTERS + 1))
    return f"""
[site]
id = "{SITE_ID}"
name = "Trung tâm Phục vụ hành chính công (benchmark)"

[mqtt]
url = "{url}"

[storage]
path = "{tmp / db}"

[web]
host = "127.0.0.1"
port = {web_port}
id = "bench-web"

[speech]
engines = ["espeak"]
cache_dir = "{SPEECH_DIR or tmp / 'speech'}"

{extra}
{fields}
{counters}
"""


BENCH_APP_ID, BENCH_ZALO_SECRET = "bench-app", "bench-oa-secret"


def notify_toml(standin: str) -> str:
    """Zalo ZNS for every citizen (SMS behind it), all at the in-process stand-in."""
    return f"""
[notify]
channels = ["zalo", "sms"]

[notify.zalo]
base_url = "{standin}"
oauth_url = "{standin}"
app_id = "{BENCH_APP_ID}"
secret_key = "{BENCH_ZALO_SECRET}"
refresh_token = "bench-first-refresh"
templates = {{ issued = "1", nears = "2", called = "3", rate = "4" }}
rate_per_s = {NOTIFY_RATE_PER_S}

[notify.sms]
provider = "esms"
base_url = "{standin}"
api_key = "bench"
secret_key = "bench"
brandname = "BENCH"
rate_per_s = {NOTIFY_RATE_PER_S}
"""


@dataclass
class Device:
    counter: str
    bus: SimulatedBus
    address: int


def agent_toml(url: str, agent: int, buses: list[tuple[Path, list[tuple[int, str]]]]) -> str:
    counters = "".join(f"""
[[counters]]
id = "{counter}"
port = "{link}"
driver = "qms-serial"
address = {address}
""" for link, devices in buses for address, counter in devices)
    return f"""
[agent]
id = "agent-{agent}"

[mqtt]
url = "{url}"
site = "{SITE_ID}"
{counters}
"""


def peak_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM), in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        return round(int(next(line.split()[1] for line in status if line.startswith("VmHWM"))) / 1024, 1)
    except (OSError, StopIteration):
        return 0.0


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    ps: psutil.Process = field(init=False)
    cpu: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.popen.pid)

    def cpu_now(self) -> float:
        """Its own CPU and its finished children's (the web server's espeak-ng renders)."""
        try:
            t = self.ps.cpu_times()
            return t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            return 0.0

    def peak_mb(self) -> float:
        return peak_mb(self.popen.pid)

    def stop(self) -> None:
        stop_process(self.popen)


def start(name: str, argv: list[str], tmp: Path, env: dict[str, str]) -> Proc:
    out = (tmp / f"{name}.log").open("wb")
    return Proc(name, subprocess.Popen(argv, stdout=out, stderr=out, env=env, stdin=subprocess.DEVNULL))


async def wait_online(url: str, topics: list[str], timeout: float = 60) -> None:
    """Until every presence topic says online (retained)."""
    online: set[str] = set()
    done = asyncio.Event()

    async def on_message(m: Any) -> None:
        if m.payload == b"online":
            online.add(m.topic.value)
        if online >= set(topics):
            done.set()

    s = MqttSession(MqttSettings.from_url(url), identifier=f"bench-wait-{uuid.uuid4().hex[:6]}", name="wait",
                    subscriptions=[f"qms/{SITE_ID}/status/#"], on_message=on_message)
    task = asyncio.create_task(s.run())
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        task.cancel()


# ---------------------------------------------------------------- the steady phase

class Steady:
    def __init__(self, devices: list[Device]) -> None:
        self.devices = devices
        self.by_bus_address = {(id(d.bus), d.address): d for d in devices}
        self.press_log: list[tuple[str, float]] = []  # (counter, time.monotonic()) of every press
        self.waiting_panel: dict[str, asyncio.Future[Shown]] = {}
        self.panel_ms: list[float] = []
        self.tv_ms: list[float] = []
        self.calls = 0
        self.presses = 0
        self.tv_process_cpu = 0.0
        self.tv_process_peak_mb = 0.0
        self.tickets = 0
        self.refused = 0
        self.dossier_ms: list[float] = []
        self.dossier_failed = 0

    def on_shown(self, bus: SimulatedBus, shown: Shown) -> None:
        if not shown.flash:
            return
        d = self.by_bus_address.get((id(bus), shown.address))
        if d is None:
            return
        fut = self.waiting_panel.get(d.counter)
        if fut is not None and not fut.done():
            fut.set_result(shown)

    async def press(self, d: Device) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Shown] = loop.create_future()
        self.waiting_panel[d.counter] = fut
        t0 = loop.time()  # the simulator stamps the frames it reads with the same clock
        self.press_log.append((d.counter, time.monotonic()))
        d.bus.press(d.address, "N")
        self.presses += 1
        try:
            shown = await asyncio.wait_for(fut, 10)
        except TimeoutError:
            log(f"counter {d.counter}: no panel frame within 10 s")
            return
        finally:
            self.waiting_panel.pop(d.counter, None)
        self.panel_ms.append((shown.at - t0) * 1000)
        if shown.text.strip("-"):
            self.calls += 1
        else:
            self.refused += 1

    def match_tv_arrivals(self, arrivals: list[tuple[int, str, int, float]]) -> None:
        """Each TV's first sight of each call, against the key press that made it: the last press
        of that counter before it (a counter is pressed again only long after its call showed)."""
        presses: dict[str, list[float]] = defaultdict(list)
        for counter, t in self.press_log:
            presses[counter].append(t)
        for _tv, counter, _seq, at in arrivals:
            times = [t for t in presses.get(counter, ()) if t <= at]
            if times:
                self.tv_ms.append((at - times[-1]) * 1000)


# A call as the TV feed writes it (display_view.call_view): found without parsing the whole view.
CALL_RE = re.compile(r'"seq":(\d+),"number":"([^"]*)","counter":"([^"]*)"')


async def tv_feeds(url: str, n: int) -> None:
    """The TV side, in a process of its own so its reading never delays the keypads' lines: n
    feeds, each call's first arrival per feed noted with the machine's monotonic clock. Says
    "ready" once every feed has its snapshot; prints the arrivals as JSON when terminated."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    arrivals: list[tuple[int, str, int, float]] = []
    ready = asyncio.Semaphore(0)

    async def feed(i: int, http: aiohttp.ClientSession) -> None:
        seen: set[int] = set()
        async with http.ws_connect(f"{url}/display/ws?id=tv-{i}", max_msg_size=16 * 2**20) as ws:
            first = True
            async for msg in ws:
                at = time.monotonic()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                for m in CALL_RE.finditer(msg.data):
                    seq = int(m.group(1))
                    if seq not in seen:
                        seen.add(seq)
                        if not first:  # calls already in the snapshot are history
                            arrivals.append((i, m.group(3), seq, at))
                if first:
                    first = False
                    ready.release()

    async with aiohttp.ClientSession() as http:
        tasks = [asyncio.create_task(feed(i, http)) for i in range(n)]
        for _ in range(n):
            await ready.acquire()
        print("ready", flush=True)
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps(arrivals), flush=True)


async def issue_tickets(req: Requester, topics: Topics, n: int, rate: float | None, steady: Steady | None,
                        rng: random.Random) -> None:
    period = 1 / rate if rate else 0
    next_at = time.perf_counter()
    for _ in range(n):
        reply = await req.request(topics.cmd_ticket, {"field": f"f{rng.randint(1, N_FIELDS)}"}, timeout=10)
        if steady is not None and reply.get("ok"):
            steady.tickets += 1
        if period:
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))


async def dossier_traffic(req: Requester, topics: Topics, seconds: float, steady: Steady) -> None:
    """Dossier commands as the web server sends them (user `web`), at DOSSIERS_PER_S: a new
    dossier, then a status change of the one before, in turn."""
    period = 1 / DOSSIERS_PER_S
    started = next_at = time.perf_counter()
    due = (datetime.now().date() + timedelta(days=10)).isoformat()
    n = 0
    while time.perf_counter() - started < seconds:
        if n % 2 == 0:
            body: dict[str, Any] = {"action": "create", "code": f"BENCH-{n // 2:06d}", "due_at": due,
                                    "procedure": {"code": "1.001193", "name": "Đăng ký khai sinh"},
                                    "source": "counter", "by": "Nguyễn Thị Hoa", "documents": ["Tờ khai"]}
        else:
            body = {"action": "event", "code": f"BENCH-{n // 2:06d}", "id": f"e{n}", "status": "processing",
                    "at": datetime.now().astimezone().isoformat(), "department": "Phòng Tư pháp", "by": "web"}
        t0 = time.perf_counter()
        try:
            reply = await req.request(topics.cmd_dossier, body, timeout=10)
            ok = reply.get("ok") is True
        except (RequestTimeout, NotConnected, ProtocolError):  # counted, not fatal to the run
            ok = False
        if ok:
            steady.dossier_ms.append((time.perf_counter() - t0) * 1000)
        else:
            steady.dossier_failed += 1
        n += 1
        next_at += period
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))


async def steady_phase(url: str, web: str, devices: list[Device], steady: Steady) -> dict[str, Any]:
    topics = Topics(SITE_ID)
    rng = random.Random(1)
    session = MqttSession(MqttSettings.from_url(url), identifier="bench-kiosk", name="bench-kiosk")
    req = Requester(session, topics, "bench-kiosk")
    # in the web server's reply namespace: the only sender the dossier service lets write
    # (made before the session connects, which subscribes every requester's reply topic)
    web_req = Requester(session, topics, "web/bench-dossiers")
    task = asyncio.create_task(session.run())
    await session.wait_connects(1)
    log(f"{N_COUNTERS * 2} tickets issued before the phase, so queues are not empty")
    await asyncio.gather(*(issue_tickets(req, topics, N_COUNTERS // 4, None, None, rng) for _ in range(8)))
    tvs = await asyncio.create_subprocess_exec(sys.executable, __file__, "--tv-feeds", web, str(N_TVS),
                                               stdout=subprocess.PIPE)
    assert tvs.stdout is not None
    await asyncio.wait_for(tvs.stdout.readline(), 60)  # "ready": every feed has its snapshot
    log(f"steady phase: {SECONDS:.0f} s, {CALLS_PER_S:.0f} calls/s, {TICKETS_PER_S:.0f} tickets/s, {N_TVS} TVs")
    t_start = time.perf_counter()
    ticketing = asyncio.create_task(issue_tickets(req, topics, int(SECONDS * TICKETS_PER_S), TICKETS_PER_S,
                                                  steady, rng))
    dossiers = None
    if DOSSIERS_PER_S > 0:
        dossiers = asyncio.create_task(dossier_traffic(web_req, topics, SECONDS, steady))
    presses: set[asyncio.Task[None]] = set()
    period = 1 / CALLS_PER_S
    next_at = t_start
    busy: set[str] = set()
    while time.perf_counter() - t_start < SECONDS:
        d = rng.choice(devices)
        if d.counter in busy:
            continue
        busy.add(d.counter)
        t = asyncio.create_task(steady.press(d))
        t.add_done_callback(lambda _t, c=d.counter: busy.discard(c))
        presses.add(t)
        t.add_done_callback(presses.discard)
        next_at += period
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))  # the load's pace
    await ticketing
    if dossiers is not None:
        await dossiers
    if presses:
        await asyncio.wait(presses, timeout=15)
    await asyncio.sleep(1)  # the last calls reach the TVs (not a measurement)
    elapsed = time.perf_counter() - t_start
    try:
        t = psutil.Process(tvs.pid).cpu_times()
        steady.tv_process_cpu = round(t.user + t.system, 2)
    except psutil.Error:
        pass
    steady.tv_process_peak_mb = peak_mb(tvs.pid)
    tvs.send_signal(signal.SIGTERM)
    out, _ = await tvs.communicate()
    await asyncio.to_thread(lambda: steady.match_tv_arrivals(json.loads(out)))
    task.cancel()
    return {"seconds": round(elapsed, 1), "presses": steady.presses, "calls": steady.calls,
            "refused_presses": steady.refused, "tickets": steady.tickets, "tvs": N_TVS,
            "dossier_commands": len(steady.dossier_ms), "dossier_commands_failed": steady.dossier_failed}


# ---------------------------------------------------------------- the flat phase

def flat_phase(port: int, tmp: Path, core: Proc) -> dict[str, Any]:
    topics = Topics(SITE_ID)
    reply_topic = topics.reply("bench-flat")
    n_counters = 10
    per_stream = FLAT // (2 * n_counters)
    streams: list[tuple[str, list[str]]] = [
        (topics.cmd_ticket, [json.dumps({"request_id": uuid.uuid4().hex, "field": f"f{i % N_FIELDS + 1}"})
                             for i in range(FLAT // 2)])]
    for c in range(1, n_counters + 1):
        streams.append((topics.cmd_counter(str(c)),
                        [json.dumps({"request_id": uuid.uuid4().hex, "action": "call_next"})
                         for _ in range(per_stream)]))
    total = sum(len(lines) for _, lines in streams)
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(port), "-t", reply_topic, "-q", "1", "-C", str(total),
                            "-W", "600"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # mosquitto_sub has subscribed (not a measurement)
    cpu0 = core.cpu_now()
    t0 = time.perf_counter()
    pubs = []
    for i, (topic, lines) in enumerate(streams):
        path = tmp / f"flat-{i}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        pubs.append(subprocess.Popen(["mosquitto_pub", "-p", str(port), "-t", topic, "-q", "1", "-D", "publish",
                                      "response-topic", reply_topic, "-l"], stdin=path.open("rb"),
                                     stderr=subprocess.DEVNULL))
    out, _ = sub.communicate()
    elapsed = time.perf_counter() - t0
    for p in pubs:
        p.wait(30)
    replies = [json.loads(line) for line in out.splitlines() if line.strip()]
    ok = sum(1 for r in replies if r.get("ok"))
    codes: dict[str, int] = defaultdict(int)
    for r in replies:
        if not r.get("ok"):
            codes[r["error"]["code"]] += 1
    return {"commands": len(replies), "ok": ok, "refused": dict(codes), "seconds": round(elapsed, 2),
            "core_commands_per_s": round(len(replies) / elapsed, 1),
            "core_cpu_s": round(core.cpu_now() - cpu0, 2)}


# ---------------------------------------------------------------- the catalogue phase


def catalogue_queries(names: list[str], n: int, seed: int = 13) -> list[str]:
    """What citizens type: a whole name, some of its words in another order, without marks, the
    start of a name as it is being typed, one letter."""
    rnd = random.Random(seed)
    queries = []
    for i in range(n):
        name = rnd.choice(names)
        w = words(name)
        kind = i % 5
        if kind == 0:
            queries.append(name)
        elif kind == 1:
            queries.append(" ".join(rnd.sample(w, min(len(w), 3))))
        elif kind == 2:
            queries.append(" ".join(w[:4]))
        elif kind == 3:
            queries.append(name[:rnd.randint(2, max(2, len(name) // 2))])
        else:
            queries.append(rnd.choice("abcdghklmnpqstvx"))
    return queries


async def catalogue_phase(tmp: Path, site: Path, web_port: int, env: dict[str, str],
                          procs: dict[str, Proc]) -> dict[str, Any]:
    """2,000 procedures imported by the command line, searched in this process and over HTTP."""
    procedures = generate(CATALOGUE_SIZE)
    source = tmp / "procedures.json"
    write_json(source, procedures)
    started = time.perf_counter()
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "display_server", "import-procedures",
                                                    str(source), "--config", str(site)],
                                   capture_output=True, text=True, env=env, check=False)
    import_s = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"import-procedures failed: {done.stderr}")
    queries = catalogue_queries([p.name for p in procedures], CATALOGUE_QUERIES)
    started = time.perf_counter()
    catalogue = Catalogue.of(procedures, [])
    index_ms = (time.perf_counter() - started) * 1000
    pure: list[float] = []
    found = 0
    for q in queries:
        t0 = time.perf_counter()
        found += bool(catalogue.search(q))
        pure.append((time.perf_counter() - t0) * 1000)
    log(f"catalogue phase: {len(queries)} searches in this process, p99 {summary(pure).get('p99')} ms")
    procs["web (catalogue phase)"] = web_proc = start(
        "web-catalogue", [sys.executable, "-m", "display_server", "--config", str(site), "--log-level", "WARNING"],
        tmp, env)
    await asyncio.to_thread(wait_for_port, web_port, timeout=120, process=web_proc.popen)
    http_ms: list[float] = []
    base = f"http://127.0.0.1:{web_port}/api/procedures"
    try:
        async with aiohttp.ClientSession() as http:
            for q in queries[:50]:  # the first request reads the file and builds the index
                async with http.get(base, params={"q": q}) as resp:
                    await resp.read()
            c0 = web_proc.cpu_now()
            for q in queries:
                t0 = time.perf_counter()
                async with http.get(base, params={"q": q}) as resp:
                    body = await resp.json()
                http_ms.append((time.perf_counter() - t0) * 1000)
                if resp.status != 200 or not body.get("ok"):
                    raise RuntimeError(f"/api/procedures?q={q}: {resp.status} {body}")
            web_proc.cpu["catalogue"] = round(web_proc.cpu_now() - c0, 2)
    finally:
        peak = web_proc.peak_mb()
        web_proc.stop()
    log(f"catalogue phase: {len(queries)} searches over HTTP, p99 {summary(http_ms).get('p99')} ms")
    return {"procedures": len(procedures), "queries": len(queries), "queries_with_results": found,
            "import_s": round(import_s, 2), "index_build_ms": round(index_ms, 1),
            "search_ms": summary(pure), "http_search_ms": summary(http_ms), "web_peak_rss_mb": peak}


async def run_catalogue_only(tmp: Path) -> dict[str, Any]:
    broker = start_broker(workdir=tmp / "broker")
    web_port = free_port()
    site = tmp / "site.toml"
    site.write_text(site_toml(broker.url, tmp, web_port), encoding="utf-8")
    env = {**os.environ, "QMS_MQTT_URL": broker.url, "PYTHONUNBUFFERED": "1"}
    procs: dict[str, Proc] = {}
    try:
        result = await catalogue_phase(tmp, site, web_port, env, procs)
    finally:
        broker.stop()
    return {"catalogue_search_ms": result["search_ms"], "catalogue_http_search_ms": result["http_search_ms"],
            "catalogue": result, "machine": {"cpus": os.cpu_count(), "load_before": round(os.getloadavg()[0], 2)},
            "targets_met": catalogue_targets(result)}


def catalogue_targets(result: dict[str, Any]) -> dict[str, bool]:
    return {"catalogue_search_p99_ms": result["search_ms"].get("p99", 1e9) <= TARGETS["catalogue_search_p99_ms"],
            "catalogue_http_search_p99_ms": (result["http_search_ms"].get("p99", 1e9)
                                             <= TARGETS["catalogue_http_search_p99_ms"])}


# ---------------------------------------------------------------- the reports phase

REPORT_SITE_IDS = ("bench-reports", "bench-empty")
# the demo's supervisor (examples/site.toml; DEMO ONLY, public password)
REPORT_LOGIN = ("giamsat", "giamsat-demo")


def reports_site(url: str, tmp: Path, site_id: str, web_port: int) -> Path:
    """examples/site.toml (its fields, counters, rating levels, calendar and accounts) with its
    database in tmp, this run's broker and web port, no speech and no [notify]."""
    text = (ROOT / "examples" / "site.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^id = "demo"$', f'id = "{site_id}"', text, count=1)
    text = re.sub(r'(?m)^path = "[^"]*"$', f'path = "{tmp / (site_id + ".sqlite3")}"', text, count=1)
    text = re.sub(r'(?m)^url = "mqtt://[^"]*"$', f'url = "{url}"', text, count=1)
    text = re.sub(r"(?m)^port = \d+$", f"port = {web_port}", text, count=1)
    text = re.sub(r"(?m)^engines = .*$", "engines = []", text, count=1)
    text = re.sub(r"\n\[notify\]\n.*?(?=\n\[\[agents\]\])", "\n", text, flags=re.S)
    path = tmp / f"{site_id}.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def wait_site_online(url: str, site_id: str, services: list[str], timeout: float = 120) -> None:
    """Until each service's presence of this site says online (subscribed before the caller's
    process starts is not needed: an offline retained from an earlier run is not online)."""
    topics = [f"qms/{site_id}/status/{s}" for s in services]
    online: set[str] = set()
    done = asyncio.Event()

    async def on_message(m: Any) -> None:
        if m.payload == b"online":
            online.add(m.topic.value)
        else:
            online.discard(m.topic.value)
        if online >= set(topics):
            done.set()

    s = MqttSession(MqttSettings.from_url(url), identifier=f"bench-wait-{uuid.uuid4().hex[:6]}", name="wait",
                    subscriptions=[f"qms/{site_id}/status/#"], on_message=on_message)
    task = asyncio.create_task(s.run())
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        task.cancel()


def rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        return round(int(next(line.split()[1] for line in status if line.startswith("VmRSS"))) / 1024, 1)
    except (OSError, StopIteration):
        return 0.0


async def core_start(site: Path, site_id: str, url: str, tmp: Path, env: dict[str, str], runs: int = 3
                     ) -> dict[str, Any]:
    """The core started `runs` times on this site's database: spawn to "online", its memory then."""
    times, rss, peak = [], [], []
    for i in range(runs):
        t0 = time.perf_counter()
        proc = start(f"core-{site_id}-{i}", [sys.executable, "-m", "queue_core", "--config", str(site),
                                             "--log-level", "WARNING"], tmp, env)
        try:
            await wait_site_online(url, site_id, ["core"])
            times.append(round(time.perf_counter() - t0, 3))
            rss.append(rss_mb(proc.popen.pid))
            peak.append(proc.peak_mb())
        finally:
            proc.stop()
        await wait_offline(url, site_id, "core")
    return {"start_s": sorted(times)[len(times) // 2], "start_s_runs": times, "rss_mb": max(rss),
            "peak_rss_mb": max(peak)}


async def wait_offline(url: str, site_id: str, service: str, timeout: float = 30) -> None:
    """Until the presence says offline (the next start's "online" is then that start's)."""
    topic = f"qms/{site_id}/status/{service}"
    done = asyncio.Event()

    async def on_message(m: Any) -> None:
        if m.topic.value == topic and m.payload != b"online":
            done.set()

    s = MqttSession(MqttSettings.from_url(url), identifier=f"bench-off-{uuid.uuid4().hex[:6]}", name="wait",
                    subscriptions=[topic], on_message=on_message)
    task = asyncio.create_task(s.run())
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        task.cancel()


def warehouse_counts(path: Path) -> tuple[int, int]:
    """(days rolled up, dossiers) in the web server's warehouse, read-only; (0, 0) before it exists."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)) as db:
            days = db.execute("SELECT COUNT(*) FROM days").fetchone()[0]
            dossiers = db.execute("SELECT COUNT(*) FROM dossiers").fetchone()[0]
            return int(days), int(dossiers)
    except sqlite3.Error:
        return 0, 0


ROLL_START = re.compile(r"^(\S+ \S+) .*Kho báo cáo: đang tổng hợp dữ liệu cũ")
ROLL_END = re.compile(r"^(\S+ \S+) .*Kho báo cáo: đã tổng hợp (\d+) ngày, (\d+) vé, trong ([\d.]+) s")


def rolling_times(web_log: Path, spawned: float) -> dict[str, float | None]:
    """From the web server's log: how long after its start the roll-up began, and how long the
    tickets' part took (the dossiers' listing follows it, until the backfill is complete)."""
    started = took = None
    for line in web_log.read_text(encoding="utf-8", errors="replace").splitlines():
        if started is None and (m := ROLL_START.match(line)):
            at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            started = round(at - spawned, 1)
        elif m := ROLL_END.match(line):
            took = float(m.group(4))
    return {"began_after_s": started, "tickets_s": took}


def history_shape(site: Path, end: date, year_tickets: int, years: int) -> tuple[int, int]:
    """(open days, tickets an open day) of `years` calendar years of history ending on `end` (a
    31 December) with `year_tickets` tickets in each year: the office's calendar decides the days."""
    from dossiers.settings import load_dossier_settings
    from qms_common.config import load_site_config

    calendar = load_dossier_settings(load_site_config(site)).calendar
    first = date(end.year - years + 1, 1, 1)
    days = [first + timedelta(days=i) for i in range((end - first).days + 1)]
    open_days = [d for d in days if calendar.is_open(d)]
    in_year = sum(1 for d in open_days if d.year == end.year)
    return len(open_days), math.ceil(year_tickets / in_year)


async def report_timings(site_path: Path, year: date, runs: int) -> dict[str, Any]:
    """Reports.report of the year by officer in this process, on the warehouse the web server built."""
    from display_server.feed.follower import StateFollower
    from display_server.feed.records import TodayRecords
    from display_server.reports import Reports
    from display_server.reports.figures import Dimension
    from display_server.reports.periods import period_of
    from display_server.settings import ReportSettings, default_reports_database
    from qms_common.config import load_site_config

    site = load_site_config(site_path)
    follower = StateFollower(site, "bench-in-process")   # never connected: history only
    reports = Reports(site, follower, TodayRecords(follower), ReportSettings(database=default_reports_database(site)))
    await reports.start()
    assert reports.warehouse is not None
    # what the web server learns from the core at its start: days before it are not pending
    reports.first_day = min(await reports.warehouse.rolled_days(), default=None)
    try:
        period = period_of("year", year)
        everything = None
        ms: list[float] = []
        for i in range(runs + 2):   # two to warm the page cache up
            t0 = time.perf_counter()
            report = await reports.report(period, Dimension.OFFICER)
            if i >= 2:
                ms.append((time.perf_counter() - t0) * 1000)
            everything = report
        assert everything is not None
        total = everything.total.figures
        return {"report_ms": summary(ms), "rows": len(everything.rows), "served": total.served,
                "previous_served": everything.total.previous.served if everything.total.previous else None,
                "issued": total.issued, "satisfaction_pct": total.satisfaction_pct, "pending_days":
                everything.pending_days}
    finally:
        await reports.stop()


async def reports_phase(tmp: Path) -> dict[str, Any]:
    """A year of history: the core's start-up and memory with it and without, the warehouse's
    backfill, the yearly report by officer and its XLSX."""
    import openpyxl

    from scripts.gen_history import generate

    tmp = tmp / "reports"
    tmp.mkdir()
    broker = start_broker(workdir=tmp / "broker")
    url = broker.url
    env = {**os.environ, "QMS_MQTT_URL": url, "PYTHONUNBUFFERED": "1"}
    web_port = free_port()
    site = reports_site(url, tmp, REPORT_SITE_IDS[0], web_port)
    empty = reports_site(url, tmp, REPORT_SITE_IDS[1], web_port)
    end = date(date.today().year - 1, 12, 31)   # the last full calendar year: its yearly report
    days, per_day = history_shape(site, end, REPORT_TICKETS, REPORT_YEARS)
    procs: dict[str, Proc] = {}
    try:
        log(f"reports phase: generating {days} open days x {per_day} tickets up to {end}")
        history = await generate(site, days=days, per_day=per_day, end=end, check_broker=False)
        first = min(history.tickets_per_day)
        log(f"reports phase: {history.tickets} tickets, {history.dossiers} dossiers from {first} in "
            f"{history.seconds} s")
        core_empty = await core_start(empty, REPORT_SITE_IDS[1], url, tmp, env)
        core_history = await core_start(site, REPORT_SITE_IDS[0], url, tmp, env)
        log(f"reports phase: core start {core_empty['start_s']} s empty, {core_history['start_s']} s with history")
        py = sys.executable
        procs["core"] = start("core-reports", [py, "-m", "queue_core", "--config", str(site), "--log-level",
                                               "WARNING"], tmp, env)
        procs["dossiers"] = start("dossiers-reports", [py, "-m", "dossiers", "--config", str(site), "--log-level",
                                                       "WARNING"], tmp, env)
        await wait_site_online(url, REPORT_SITE_IDS[0], ["core", "dossiers"])
        # every calendar day from the first to yesterday is rolled (closed ones hold no tickets)
        days_expected = (date.today() - date.fromisoformat(first)).days
        warehouse = tmp / f"{REPORT_SITE_IDS[0]}-reports.sqlite3"
        spawned = time.time()
        t0 = time.perf_counter()
        procs["web"] = web = start("web-reports", [py, "-m", "display_server", "--config", str(site)], tmp, env)
        counts = (0, 0)
        while counts < (days_expected, history.dossiers):
            if web.popen.poll() is not None:
                raise RuntimeError(f"the web server stopped: see {tmp / 'web-reports.log'}")
            if time.perf_counter() - t0 > 600:
                raise RuntimeError(f"warehouse not filled after 600 s: {counts}")
            await asyncio.sleep(0.2)   # a measurement's resolution, not a synchronisation
            counts = warehouse_counts(warehouse)
        backfill_s = round(time.perf_counter() - t0, 1)
        web_backfill_cpu = web.cpu_now()
        rolling = rolling_times(tmp / "web-reports.log", spawned)
        log(f"reports phase: warehouse filled in {backfill_s} s ({counts[0]} days, {counts[1]} dossiers)")
        base = f"http://127.0.0.1:{web_port}"
        year = {"period": "year", "date": f"{end.year}-06-30", "by": "officer"}
        xlsx_query = {"from": f"{end.year}-01-01", "to": f"{end.year}-12-31", "by": "officer"}
        http_ms: list[float] = []
        xlsx_s: list[float] = []
        # unsafe: the session's cookies are 127.0.0.1's (aiohttp keeps none of an IP address otherwise)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(f"{base}/login") as resp:
                token = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
            assert token, "no CSRF token in the login form"
            form = {"username": REPORT_LOGIN[0], "password": REPORT_LOGIN[1], "csrf": token.group(1), "next": ""}
            async with http.post(f"{base}/login", data=form, allow_redirects=False) as resp:
                if resp.status not in (302, 303):
                    raise RuntimeError(f"login: {resp.status}")
            for i in range(REPORT_RUNS + 2):
                t0 = time.perf_counter()
                async with http.get(f"{base}/reports", params=year) as resp:
                    page = await resp.text()
                    if resp.status != 200:
                        raise RuntimeError(f"/reports: {resp.status} {page[:300]}")
                if i >= 2:
                    http_ms.append((time.perf_counter() - t0) * 1000)
            xlsx = b""
            for _ in range(XLSX_RUNS):
                t0 = time.perf_counter()
                async with http.get(f"{base}/reports/export.xlsx", params=xlsx_query) as resp:
                    xlsx = await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"/reports/export.xlsx: {resp.status} {xlsx[:300]!r}")
                xlsx_s.append(time.perf_counter() - t0)
        web_peak = web.peak_mb()
        web.stop()
        book = openpyxl.load_workbook(io.BytesIO(xlsx), read_only=True)
        sheet = book.worksheets[0]
        rows = [list(r) for r in sheet.iter_rows(values_only=True)]
        header = next(r for r in rows if "Đã phục vụ" in r)
        total_row = next(r for r in rows if r and r[0] == "Tổng cộng")
        xlsx_served = total_row[header.index("Đã phục vụ")]
        log(f"reports phase: /reports p99 {summary(http_ms).get('p99')} ms, XLSX {max(xlsx_s):.2f} s")
        in_process = await report_timings(site, date(end.year, 6, 30), REPORT_RUNS)
        log(f"reports phase: Reports.report p99 {in_process['report_ms'].get('p99')} ms")
        if xlsx_served != in_process["served"]:
            raise RuntimeError(f"the XLSX says {xlsx_served} served, the engine {in_process['served']}")
        return {
            "days": days, "per_day": per_day, "first_day": first, "last_day": end.isoformat(),
            "year_tickets": sum(n for d, n in history.tickets_per_day.items() if d.startswith(str(end.year))),
            "tickets": history.tickets, "served": history.served, "dossiers": history.dossiers,
            "generate_s": history.seconds,
            "core_empty": core_empty, "core_with_history": core_history,
            "warehouse_backfill_s": backfill_s, "warehouse_rolling": rolling,
            "web_cpu_s_backfill": round(web_backfill_cpu, 1),
            "web_peak_rss_mb": web_peak,
            "report_year_by_officer_ms": in_process.pop("report_ms"), "report_year": in_process,
            "http_report_year_by_officer_ms": summary(http_ms),
            "xlsx_year_by_officer_s": {"runs": [round(x, 2) for x in xlsx_s], "max": round(max(xlsx_s), 2),
                                       "bytes": len(xlsx), "served_total": xlsx_served},
        }
    finally:
        for p in procs.values():
            p.stop()
        broker.stop()


def reports_targets(result: dict[str, Any]) -> dict[str, bool]:
    return {"report_year_by_officer_p99_ms": (result["report_year_by_officer_ms"].get("p99", 1e9)
                                              <= TARGETS["report_year_by_officer_p99_ms"]),
            "xlsx_year_by_officer_s": result["xlsx_year_by_officer_s"]["max"] <= TARGETS["xlsx_year_by_officer_s"]}


async def run_reports_only(tmp: Path) -> dict[str, Any]:
    result = await reports_phase(tmp)
    return {"reports": result, "machine": {"cpus": os.cpu_count(), "load_before": round(os.getloadavg()[0], 2)},
            "targets_met": reports_targets(result)}


# ---------------------------------------------------------------- the notifier phase

class ZnsArrivals:
    """When this process saw each ticket's first private/contact message, and when the stand-in
    received the ZNS request of its "issued" message (time.time() both)."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.keys: dict[str, str] = {}  # idempotency key -> ticket
        self.zns: dict[str, float] = {}  # ticket -> first request's arrival
        # ZNS requests of tickets whose contact this process had not yet seen: the notifier was
        # faster than this process's own subscriber (which then counts them late, below zero)
        self.early: dict[str, float] = {}
        self.early_count = 0
        self.expected: int | None = None
        self.all_in = asyncio.Event()

    async def on_contact(self, m: Any) -> None:
        at = time.time()
        try:
            tid = json.loads(m.payload)["ticket"]["id"]
        except (ValueError, KeyError, TypeError):
            return
        if tid not in self.seen:
            self.seen[tid] = at
            key = idempotency_key(SITE_ID, f"c:{tid}:issued")
            self.keys[key] = tid
            if key in self.early:
                self.zns[tid] = self.early.pop(key)
                self.early_count += 1
                self.check()

    def on_request(self, entry: dict[str, Any]) -> None:
        key = entry.get("key") or ""
        if entry["provider"] != "zalo" or not key:
            return
        tid = self.keys.get(key)
        if tid is None:
            self.early.setdefault(key, entry["at"])
        elif tid not in self.zns:
            self.zns[tid] = entry["at"]
        self.check()

    def check(self) -> None:
        if self.expected is not None and len(self.zns) >= self.expected:
            self.all_in.set()

    def latencies_ms(self) -> list[float]:
        return [(at - self.seen[tid]) * 1000 for tid, at in self.zns.items()]


async def notify_phase(url: str, tmp: Path, web_port: int, env: dict[str, str],
                       procs: dict[str, Proc]) -> dict[str, Any]:
    """A fresh core (its [notify] on: the steady and flat phases ran without that work) with the
    notifier, the stand-in in this process, and tickets with a phone at 20 per second."""
    arrivals = ZnsArrivals()
    app = make_app(StandinSettings(zalo_app_id=BENCH_APP_ID, zalo_secret=BENCH_ZALO_SECRET, daily_quota=10**6))
    app[STATE].observers.append(arrivals.on_request)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    standin = f"http://127.0.0.1:{runner.addresses[0][1]}"
    site = tmp / "site-notify.toml"
    site.write_text(site_toml(url, tmp, web_port, db="notify-core.sqlite3", extra=notify_toml(standin)),
                    encoding="utf-8")
    py = sys.executable
    topics = Topics(SITE_ID)
    listener = MqttSession(MqttSettings.from_url(url), identifier="bench-contacts", name="bench-contacts",
                           subscriptions=[topics.private_contact], on_message=arrivals.on_contact)
    session = MqttSession(MqttSettings.from_url(url), identifier="bench-kiosk-phones", name="bench-kiosk-phones")
    req = Requester(session, topics, "bench-kiosk-phones")
    tasks = [asyncio.create_task(listener.run()), asyncio.create_task(session.run())]
    try:
        procs["core (notifier phase)"] = start("core-notify", [py, "-m", "queue_core", "--config", str(site),
                                                               "--log-level", "WARNING"], tmp, env)
        procs["notifier"] = start("notifier", [py, "-m", "notifier", "--config", str(site),
                                               "--log-level", "WARNING"], tmp, env)
        await wait_online(url, [f"qms/{SITE_ID}/status/core", f"qms/{SITE_ID}/status/notify"])
        await listener.wait_connects(1)
        await session.wait_connects(1)
        watched = [procs["core (notifier phase)"], procs["notifier"]]
        cpu0 = [p.cpu_now() for p in watched]
        log(f"notifier phase: {NOTIFY_SECONDS:.0f} s, {TICKETS_PER_S:.0f} tickets/s with a phone")
        rng = random.Random(2)
        period = 1 / TICKETS_PER_S
        t0 = next_at = time.perf_counter()
        issued = refused = 0
        while time.perf_counter() - t0 < NOTIFY_SECONDS:
            phone = f"09{rng.randrange(10**8):08d}"
            reply = await req.request(topics.cmd_ticket, {"field": f"f{rng.randint(1, N_FIELDS)}", "phone": phone},
                                      timeout=10)
            if reply.get("ok"):
                issued += 1
            else:
                refused += 1
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))  # the load's pace
        arrivals.expected = issued
        arrivals.check()
        try:
            await asyncio.wait_for(arrivals.all_in.wait(), 30)
        except TimeoutError:
            log(f"notifier phase: {issued - len(arrivals.zns)} of {issued} ZNS requests missing after 30 s")
        elapsed = time.perf_counter() - t0
        for p, c0 in zip(watched, cpu0, strict=True):
            p.cpu["notify"] = round(p.cpu_now() - c0, 2)
        log_entries = app[STATE].log
        # read while they run: VmHWM goes with the process
        peaks = {"notifier": procs["notifier"].peak_mb(),
                 "core (notifier phase)": procs["core (notifier phase)"].peak_mb()}
        return {"peak_rss_mb": peaks, "seconds": round(elapsed, 1), "tickets": issued, "refused": refused,
                "contacts_seen": len(arrivals.seen), "zns_requests": len(arrivals.zns),
                "zns_before_contact_seen": arrivals.early_count,
                "zns_duplicates": sum(1 for e in log_entries if e["provider"] == "zalo" and e["duplicate"]),
                "zalo_rate_per_s": NOTIFY_RATE_PER_S, "latencies_ms": arrivals.latencies_ms()}
    finally:
        for name in ("notifier", "core (notifier phase)"):
            if name in procs:
                procs[name].stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()


# ---------------------------------------------------------------- main

async def run(tmp: Path) -> dict[str, Any]:
    broker = start_broker(workdir=tmp / "broker")
    url = broker.url
    web_port = free_port()
    site = tmp / "site.toml"
    site.write_text(site_toml(url, tmp, web_port), encoding="utf-8")
    env = {**os.environ, "QMS_MQTT_URL": url, "PYTHONUNBUFFERED": "1"}
    py = sys.executable
    procs: dict[str, Proc] = {}
    steady = Steady([])
    buses: list[SimulatedBus] = []
    devices: list[Device] = []
    agent_files: list[Path] = []
    counter = 1
    per_agent = N_COUNTERS // N_AGENTS
    for a in range(1, N_AGENTS + 1):
        layout: list[tuple[Path, list[tuple[int, str]]]] = []
        for b in range(per_agent // BUS_SIZE):
            link = tmp / f"agent{a}-bus{b}"
            members = [(addr, str(counter + addr - 1)) for addr in range(1, BUS_SIZE + 1)]
            counter += BUS_SIZE
            bus = SimulatedBus(link, "qms-serial", [Panel(addr, c) for addr, c in members],
                               on_shown=steady.on_shown).plug()
            buses.append(bus)
            devices += [Device(c, bus, addr) for addr, c in members]
            layout.append((link, members))
        path = tmp / f"agent-{a}.toml"
        path.write_text(agent_toml(url, a, layout), encoding="utf-8")
        agent_files.append(path)
    steady.devices = devices
    steady.by_bus_address = {(id(d.bus), d.address): d for d in devices}
    log(f"broker {url}; {len(devices)} counters on {len(buses)} simulated buses; web :{web_port}")
    bench = psutil.Process()
    try:
        procs["core"] = start("core", [py, "-m", "queue_core", "--config", str(site), "--log-level", "WARNING"],
                              tmp, env)
        for i, path in enumerate(agent_files, 1):
            procs[f"agent-{i}"] = start(f"agent-{i}", [py, "-m", "counter_agent", "--config", str(path),
                                                       "--log-level", "WARNING"], tmp, env)
        procs["web"] = start("web", [py, "-m", "display_server", "--config", str(site), "--log-level", "WARNING"],
                             tmp, env)
        if DOSSIERS_PER_S > 0:
            procs["dossiers"] = start("dossiers", [py, "-m", "dossiers", "--config", str(site), "--log-level",
                                                   "WARNING"], tmp, env)
        procs["broker"] = Proc("broker", broker.process)  # type: ignore[arg-type]
        await wait_online(url, [f"qms/{SITE_ID}/status/core"]
                          + [f"qms/{SITE_ID}/status/agent/agent-{i}" for i in range(1, N_AGENTS + 1)]
                          + ([f"qms/{SITE_ID}/status/dossiers"] if DOSSIERS_PER_S > 0 else []))
        # in a thread: the simulated devices live on this loop and must keep answering the agents
        await asyncio.to_thread(wait_for_port, web_port, timeout=120, process=procs["web"].popen)
        web = f"http://127.0.0.1:{web_port}"
        cpu0 = {n: p.cpu_now() for n, p in procs.items()}
        bench_cpu0 = sum(bench.cpu_times()[:2])
        steady_result = await steady_phase(url, web, devices, steady)
        for n, p in procs.items():
            p.cpu["steady"] = round(p.cpu_now() - cpu0[n], 2)
        bench_steady_cpu = round(sum(bench.cpu_times()[:2]) - bench_cpu0, 2)
        log(f"steady phase done: {steady_result}")
        peaks = {n: p.peak_mb() for n, p in procs.items()}
        core_steady_mb = peaks["core"]
        for name in [n for n in procs if n.startswith("agent") or n in ("web", "dossiers")]:
            procs[name].stop()
        log(f"flat phase: {FLAT} commands from mosquitto_pub, as fast as the core answers")
        broker_cpu0 = procs["broker"].cpu_now()
        flat = await asyncio.to_thread(flat_phase, broker.port, tmp, procs["core"])
        procs["core"].cpu["flat"] = flat.pop("core_cpu_s")
        procs["broker"].cpu["flat"] = round(procs["broker"].cpu_now() - broker_cpu0, 2)
        peaks.update({n: procs[n].peak_mb() for n in ("core", "broker")})
        notify: dict[str, Any] = {}
        if NOTIFY_SECONDS > 0:
            procs["core"].stop()
            broker_cpu0 = procs["broker"].cpu_now()
            notify = await notify_phase(url, tmp, web_port, env, procs)
            procs["broker"].cpu["notify"] = round(procs["broker"].cpu_now() - broker_cpu0, 2)
            peaks.update(notify.pop("peak_rss_mb"))
            log(f"notifier phase done: {notify['tickets']} tickets, {notify['zns_requests']} ZNS requests")
        catalogue: dict[str, Any] = {}
        if CATALOGUE_QUERIES > 0:
            catalogue = await catalogue_phase(tmp, site, web_port, env, procs)
            peaks["web (catalogue phase)"] = catalogue.pop("web_peak_rss_mb")
        reports: dict[str, Any] = {}
        if REPORT_TICKETS > 0:
            procs["core"].stop()
            reports = await reports_phase(tmp)
    finally:
        for p in procs.values():
            if p.name != "broker":
                p.stop()
        for bus in buses:
            bus.close()
        broker.stop()
    panel, tv = summary(steady.panel_ms), summary(steady.tv_ms)
    zns = summary(notify.pop("latencies_ms", []))
    result = {
        "press_to_panel_ms": panel,
        "press_to_tv_ms": tv,
        "dossier_command_ms": summary(steady.dossier_ms) if DOSSIERS_PER_S > 0 else None,
        "core_commands_per_s": flat["core_commands_per_s"],
        "core_rss_mb": peaks["core"],
        "core_rss_mb_after_steady": core_steady_mb,
        "notify_event_to_zns_ms": zns,
        "notifier_cpu_s": procs["notifier"].cpu.get("notify") if "notifier" in procs else None,
        "notifier_rss_mb": peaks.get("notifier"),
        "steady": steady_result,
        "flat": flat,
        "catalogue_search_ms": catalogue.get("search_ms"),
        "catalogue_http_search_ms": catalogue.get("http_search_ms"),
        "report_year_by_officer_ms": reports.get("report_year_by_officer_ms"),
        "xlsx_year_by_officer_s": (reports.get("xlsx_year_by_officer_s") or {}).get("max"),
        "notify": notify,
        "catalogue": catalogue,
        "reports": reports,
        "processes": {n: {"cpu_s": p.cpu, "peak_rss_mb": peaks[n]} for n, p in procs.items()}
        | {"bench (simulated devices, kiosk)": {"cpu_s": {"steady": bench_steady_cpu},
                                               "peak_rss_mb": peak_mb(os.getpid())},
           f"bench ({N_TVS} TV feeds)": {"cpu_s": {"steady": steady.tv_process_cpu},
                                         "peak_rss_mb": steady.tv_process_peak_mb}},
        "machine": {"cpus": os.cpu_count(), "load_before": round(os.getloadavg()[0], 2)},
    }
    result["targets_met"] = {
        "press_to_panel_p99_ms": panel.get("p99", 1e9) <= TARGETS["press_to_panel_p99_ms"],
        "press_to_tv_p99_ms": tv.get("p99", 1e9) <= TARGETS["press_to_tv_p99_ms"],
        "core_commands_per_s": flat["core_commands_per_s"] >= TARGETS["core_commands_per_s"],
        "core_rss_mb": peaks["core"] <= TARGETS["core_rss_mb"],
    }
    if NOTIFY_SECONDS > 0:
        result["targets_met"]["notify_event_to_zns_p99_ms"] = (zns.get("p99", 1e9)
                                                               <= TARGETS["notify_event_to_zns_p99_ms"])
    if catalogue:
        result["targets_met"] |= catalogue_targets(catalogue)
    if reports:
        result["targets_met"] |= reports_targets(reports)
    return result


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--tv-feeds":
        asyncio.run(tv_feeds(sys.argv[2], int(sys.argv[3])))
        return 0
    with scratch_dir("qms-bench-") as tmp:
        if sys.argv[1:] == ["--catalogue"]:
            result = asyncio.run(run_catalogue_only(tmp))
        elif sys.argv[1:] == ["--reports"]:
            result = asyncio.run(run_reports_only(tmp))
        else:
            result = asyncio.run(run(tmp))
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
