"""A whole province on this machine, for the fault tests and the scripts: a central Mosquitto made by
`write_central`, offices each with its own production Mosquitto bridged to the centre (`qms-broker
--bridge`) and a real core, the aggregator as a real process (`python -m province`), and, for an
office whose link is to be cut, a TCP proxy between its bridge and the centre.

Nothing here is a fake: the proxy only carries the bridge's bytes, or stops carrying them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from broker_config.central import write_central
from broker_config.tool import main as qms_broker
from broker_config.tool import password_hash
from province.settings import SiteEntry, load_province
from qms_common.devbroker import Broker, free_port, stop_process
from qms_common.protocol import Topics
from tests.support.core import CoreProcess
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site

ROOT = Path(__file__).resolve().parents[2]
SERVICE_USER = "province"
FIELD = "dat-dai"
# one field with room for a long run's tickets (a field's numbers are its range for the day)
OFFICE_FIELDS = """
[[fields]]
id = "dat-dai"
name = "Đất đai"
first = 1001
last = 7999

[[fields]]
id = "ho-tich"
name = "Hộ tịch"
first = 8001
last = 8999

[[fields]]
id = "chung-thuc"
name = "Chứng thực"
first = 1
last = 99
prefix = "C"
"""


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 15.0, what: str = "") -> None:
    """Wait for a condition of the database (nothing to subscribe to there), with a timeout."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():  # noqa: ASYNC110  (PostgreSQL has no event to wait for here)
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise TimeoutError(f"sau {timeout} s vẫn chưa: {what}") from None


# ---------------------------------------------------------------- the central broker

def province_text(province_id: str, central_url: str, dsn: str, sites: Sequence[str | SiteEntry], *,
                  web_port: int | None = None, accounts: str = "", extra: str = "") -> str:
    """A province.toml: a site given by its id alone gets a made-up name and district; no [web]
    table without `web_port`; `accounts` ([[accounts]]) and `extra` (e.g. [backfill]) as given."""
    entries = [s if isinstance(s, SiteEntry) else
               SiteEntry(s, f"Bộ phận Một cửa xã {s}", f"Huyện {'Đông' if i % 2 == 0 else 'Tây'}")
               for i, s in enumerate(sites)]
    web = "" if web_port is None else f"""[web]
host = "127.0.0.1"
port = {web_port}
"""
    return f"""
[province]
id = "{province_id}"
name = "Tỉnh thử nghiệm"
[mqtt]
url = "{central_url}"
[postgres]
dsn = "{dsn}"
{web}""" + "".join(f"""
[[sites]]
id = "{e.id}"
name = "{e.name}"
district = "{e.district}"
""" for e in entries) + accounts + extra


def write_province(directory: Path, province_id: str, central_url: str, dsn: str, sites: Sequence[str | SiteEntry],
                   *, web_port: int | None = None, accounts: str = "", extra: str = "") -> Path:
    """`province_text` written to `directory`/province.toml."""
    path = directory / "province.toml"
    path.write_text(province_text(province_id, central_url, dsn, sites, web_port=web_port, accounts=accounts,
                                  extra=extra), encoding="utf-8")
    return path


WATCH_USER = "quan-sat"


@dataclass
class Central:
    broker: Broker
    passwords: dict[str, str]
    out: Path

    def url(self, user: str = SERVICE_USER) -> str:
        return f"mqtt://{user}:{self.passwords[user]}@127.0.0.1:{self.broker.port}"


def start_central(root: Path, dsn: str, sites: Sequence[str | SiteEntry], *, province_id: str = "tinh-thu",
                  web_port: int | None = None, accounts: str = "", extra: str = "",
                  service_write: tuple[str, ...] = ()) -> tuple[Central, Path]:
    """The central Mosquitto as `qms-broker central` writes it, started; and province.toml for the
    aggregator, with the service's password in its URL (known only once the broker's users exist)."""
    root.mkdir(parents=True, exist_ok=True)
    port, tls_port = free_port(), free_port()
    web_port = web_port or free_port()
    config = write_province(root, province_id, f"mqtt://{SERVICE_USER}:x@127.0.0.1:{port}", dsn, sites,
                            web_port=web_port, accounts=accounts, extra=extra)
    out = root / "central"
    passwords = write_central(load_province(config), out, port=port, tls_port=tls_port, run_as="root",
                              service_write=service_write)
    write_province(root, province_id, f"mqtt://{SERVICE_USER}:{passwords[SERVICE_USER]}@127.0.0.1:{port}", dsn, sites,
                   web_port=web_port, accounts=accounts, extra=extra)
    # a reader of the centre for tests and demos (not one qms-broker central makes): the service's
    # user would take the aggregator's session (client ids are user names there), and an office's
    # user reads nothing
    passwords[WATCH_USER] = new_id()
    with (out / "passwd").open("a", encoding="utf-8") as f:
        f.write(f"{WATCH_USER}:{password_hash(passwords[WATCH_USER])}\n")
    with (out / "acl").open("a", encoding="utf-8") as f:
        f.write(f"\n# test watcher\nuser {WATCH_USER}\ntopic read qms/+/#\n")
    broker = Broker(port=port, conf=out / "mosquitto.conf", workdir=out, log_path=root / "central.log").start()
    return Central(broker, passwords, out), config


# ---------------------------------------------------------------- a link that can be cut

@dataclass
class _Pair:
    downstream: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    blackholed: bool = False


@dataclass
class LinkProxy:
    """A TCP hop between an office's bridge and the central broker. `cut()` stops carrying bytes
    both ways but keeps every socket open, as a dead route does: neither end hears a thing, so
    each notices only by its MQTT keepalive (the central broker then publishes the bridge's will).
    `restore()` resets the held connections (a stream with bytes dropped in its middle is no MQTT
    any more) and carries new ones again."""
    target_port: int
    port: int = field(default_factory=free_port)
    _cut: bool = False
    _live: dict[int, _Pair] = field(default_factory=dict)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def is_cut(self) -> bool:
        return self._cut

    async def start(self) -> LinkProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    def cut(self) -> None:
        self._cut = True
        for pair in self._live.values():
            pair.blackholed = True

    def restore(self) -> None:
        self._cut = False
        for key, pair in list(self._live.items()):
            if pair.blackholed:
                self._close(key)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for key in list(self._live):
            self._close(key)
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _close(self, key: int) -> None:
        pair = self._live.pop(key, None)
        if pair is None:
            return
        for w in (pair.downstream, pair.upstream):
            if w is not None:
                with contextlib.suppress(Exception):
                    w.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        key = id(writer)
        pair = _Pair(writer, blackholed=self._cut)
        self._live[key] = pair
        if pair.blackholed:
            # a connection attempt into the dead route: held, never answered
            await self._drain_into_nothing(reader, key)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            self._close(key)
            return
        pair.upstream = up_writer
        back = asyncio.create_task(self._pump(up_reader, writer, pair, key))
        self._tasks.add(back)
        back.add_done_callback(self._tasks.discard)
        await self._pump(reader, up_writer, pair, key)

    async def _drain_into_nothing(self, reader: asyncio.StreamReader, key: int) -> None:
        with contextlib.suppress(Exception):
            while await reader.read(65536):
                pass
        self._close(key)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pair: _Pair, key: int) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                if pair.blackholed:
                    continue
                writer.write(data)
                await writer.drain()
        self._close(key)


# ---------------------------------------------------------------- offices

@dataclass
class OfficeNode:
    """One office: its broker (bridged to the centre, maybe through a proxy) and its core."""
    site: str
    config: Path
    broker: Broker
    passwords: dict[str, str]
    core: CoreProcess
    db: Path
    proxy: LinkProxy | None = None

    def url(self, user: str) -> str:
        return f"mqtt://{user}:{self.passwords[user]}@127.0.0.1:{self.broker.port}"

    def recorded(self) -> dict[str, int | None]:
        """What the office's core has in its database: each ticket id and its rating."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return {r[0]: r[1] for r in conn.execute("SELECT id, rating FROM tickets")}
        finally:
            conn.close()

    def stop(self) -> None:
        self.core.stop()
        self.broker.stop()


def broker_passwords(out: Path) -> dict[str, str]:
    creds = tomllib.loads((out / "credentials.toml").read_text(encoding="utf-8"))
    return {name: entry["password"] for name, entry in creds["users"].items()}


def start_office(root: Path, site: str, central: Central, *, central_port: int | None = None,
                 keepalive_s: int = 15, extra: str = "", core_env: dict[str, str] | None = None) -> OfficeNode:
    """An office's production broker bridged to `central_port` (the centre's, or a proxy's), and
    its core, started; the core logs in as `core` with the password qms-broker made for it."""
    root.mkdir(parents=True, exist_ok=True)
    port, tls_port = free_port(), free_port()
    bridge = f"[bridge]\nretry_s = 1\nretry_max_s = 2\nkeepalive_s = {keepalive_s}\n"
    db = root / f"{site}.sqlite3"
    config, _ = write_site(root, f"mqtt://127.0.0.1:{port}", site_id=site, extra=bridge + extra, db=db,
                           fields=OFFICE_FIELDS)
    pw_file = root / "central.pw"
    pw_file.write_text(central.passwords[site] + "\n", encoding="utf-8")
    out = root / "broker"
    centre = f"mqtt://127.0.0.1:{central_port or central.broker.port}"
    with (root / "qms-broker.log").open("w", encoding="utf-8") as said, contextlib.redirect_stderr(said):
        rc = qms_broker(["--config", str(config), "--out", str(out), "--port", str(port), "--tls-port", str(tls_port),
                         "--run-as", "root", "--bridge", centre, "--bridge-password-file", str(pw_file)])
    if rc != 0:
        raise RuntimeError(f"qms-broker cho điểm {site} thất bại ({rc}): {(root / 'qms-broker.log').read_text()}")
    passwords = broker_passwords(out)
    # the same site file, now with the core's own credentials on the office broker
    write_site(root, f"mqtt://core:{passwords['core']}@127.0.0.1:{port}", site_id=site, extra=bridge + extra, db=db,
               fields=OFFICE_FIELDS)
    broker = Broker(port=port, conf=out / "mosquitto.conf", workdir=out, log_path=root / "broker.log").start()
    core = CoreProcess(config, root / "core.log", env={"PYTHONUNBUFFERED": "1", **(core_env or {})}).start()
    return OfficeNode(site, config, broker, passwords, core, db)


class OfficeDriver:
    """The office's web server as the test's hands: kiosk tickets, counters calling and finishing,
    citizens rating. It logs in as `web` (the user allowed these commands)."""

    def __init__(self, office: OfficeNode) -> None:
        self.office = office
        self.topics = Topics(office.site)
        self.probe = Probe(office.url("web"))
        self.served = 0
        self._progress = asyncio.Condition()

    async def __aenter__(self) -> OfficeDriver:
        await self.probe.__aenter__()
        await self.probe.subscribe(self.topics.status_core)
        await self.probe.wait_for(lambda m: m.topic == self.topics.status_core and m.text == "online", timeout=30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.probe.__aexit__(*exc)

    async def request(self, topic: str, **kw: Any) -> dict[str, Any]:
        reply = await self.probe.request(topic, {"request_id": new_id(), **kw}, timeout=15)
        if not reply.get("ok"):
            raise AssertionError(f"{self.office.site}: {topic} {kw}: {reply}")
        return reply

    async def serve_one(self, score: int | None = None, counter: str = "1") -> str:
        """Issue, call, finish and (unless `score` is None) rate one ticket."""
        ticket = (await self.request(self.topics.cmd_ticket, field=FIELD))["ticket"]
        await self.request(self.topics.cmd_counter(counter), action="call", ticket=ticket["id"])
        await self.request(self.topics.cmd_counter(counter), action="finish")
        if score is not None:
            await self.request(self.topics.cmd_rating, ticket=ticket["id"], score=score)
        async with self._progress:
            self.served += 1
            self._progress.notify_all()
        return str(ticket["id"])

    async def served_more_than(self, n: int, *, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout), self._progress:
            await self._progress.wait_for(lambda: self.served > n)

    async def keep_serving(self, stop: asyncio.Event, pause_s: float = 0.1) -> int:
        """Serve tickets until `stop`, every fifth one left unrated, `pause_s` apart (the pace of
        the load, not a wait for anything); how many were served."""
        n = 0
        while not stop.is_set():
            await self.serve_one(None if n % 5 == 4 else 1 + n % 3)
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause_s)
        return n


@dataclass
class OfficeHands:
    """A probe on a real core's broker acting at its kiosk, counter 1 and rating tablet (as the
    office's web server would), and what it saw the core publish."""
    probe: Probe
    topics: Topics

    async def request(self, topic: str, **kw: Any) -> dict[str, Any]:
        reply = await self.probe.request(topic, {"request_id": new_id(), **kw})
        assert reply["ok"], reply
        return reply

    async def serve_one(self, score: int) -> str:
        """Issue a ticket, call it, finish it, rate it: four events."""
        ticket = (await self.request(self.topics.cmd_ticket, field=FIELD))["ticket"]
        await self.request(self.topics.cmd_counter("1"), action="call", ticket=ticket["id"])
        await self.request(self.topics.cmd_counter("1"), action="finish")
        await self.request(self.topics.cmd_rating, ticket=ticket["id"], score=score)
        return str(ticket["id"])

    def seqs(self) -> set[int]:
        """The seqs of the events and states the probe received (it subscribed to them)."""
        root = self.topics.root
        return {m.json["seq"] for m in self.probe.received
                if m.topic.startswith((f"{root}/event/", f"{root}/state/")) and m.payload
                and isinstance(m.json.get("seq"), int)}


# ---------------------------------------------------------------- the aggregator

class AggregatorProcess:
    """`python -m province --config province.toml` as a real process, for kill -9 and restarts:
    unbuffered, this checkout on its path whatever the caller's directory, no stdin, its output
    appended to `log_path` (a restart adds to the same log). As a context manager: started, and
    stopped at the end."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> AggregatorProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "province", "--config", str(self.config)],
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
        self.starts += 1
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float) -> int:
        """SIGTERM, as a service manager stops it; its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def __enter__(self) -> AggregatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


# ---------------------------------------------------------------- the whole province

@dataclass
class ProvinceRig:
    root: Path
    dsn: str
    central: Central
    config: Path
    offices: list[OfficeNode]
    aggregator: AggregatorProcess

    def office(self, site: str) -> OfficeNode:
        return next(o for o in self.offices if o.site == site)


@contextlib.asynccontextmanager
async def running_province(root: Path, dsn: str, sites: list[str], *, proxied: tuple[str, ...] = (),
                           keepalive_s: int = 15) -> AsyncIterator[ProvinceRig]:
    """The centre, the offices (those in `proxied` behind a LinkProxy) and the aggregator, all
    started; the aggregator's writes checked for tracebacks at the end."""
    central, config = start_central(root, dsn, sites)
    offices: list[OfficeNode] = []
    aggregator = AggregatorProcess(config, root / "province.log")
    try:
        for site in sites:
            proxy = await LinkProxy(central.broker.port).start() if site in proxied else None
            node = start_office(root / site, site, central, central_port=proxy.port if proxy else None,
                                keepalive_s=keepalive_s)
            node.proxy = proxy
            offices.append(node)
        aggregator.start()
        yield ProvinceRig(root, dsn, central, config, offices, aggregator)
    finally:
        aggregator.stop()
        for o in offices:
            o.stop()
            if o.proxy is not None:
                await o.proxy.close()
        central.broker.stop()
    assert "Traceback" not in aggregator.log(), aggregator.log()[-3000:]


# ---------------------------------------------------------------- what PostgreSQL holds

@dataclass(frozen=True)
class Stored:
    tickets: dict[str, int | None]  # id -> rating
    ratings: dict[str, int]  # ticket -> rating
    issued_events: int
    rated_events: int


async def stored(dsn: str, site: str) -> Stored:
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('tickets')") is None:
            return Stored({}, {}, 0, 0)
        tickets = {r["id"]: r["rating"] for r in await conn.fetch(
            "SELECT id, rating FROM tickets WHERE site = $1", site)}
        ratings = {r["ticket"]: r["rating"] for r in await conn.fetch(
            "SELECT ticket, rating FROM ratings WHERE site = $1", site)}
        kinds = {r["kind"]: r["n"] for r in await conn.fetch(
            "SELECT kind, count(*) AS n FROM events WHERE site = $1 GROUP BY kind", site)}
        return Stored(tickets, ratings, kinds.get("issued", 0), kinds.get("rated", 0))
    finally:
        await conn.close()


async def site_online(dsn: str, site: str) -> bool | None:
    """sites.online, or None before the aggregator made the schema or listed the office."""
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('sites')") is None:
            return None
        value = await conn.fetchval("SELECT online FROM sites WHERE site = $1", site)
        return None if value is None else bool(value)
    finally:
        await conn.close()


def exactly_once(office: dict[str, int | None], db: Stored) -> bool:
    """Every ticket the office recorded, with its rating, once in PostgreSQL, and nothing else."""
    rated = {t: r for t, r in office.items() if r is not None}
    return (db.tickets == office and db.ratings == rated
            and db.issued_events == len(office) and db.rated_events == len(rated))


async def all_stored_exactly_once(rig: ProvinceRig, *, timeout: float = 60.0) -> dict[str, tuple[int, int]]:
    """Wait until PostgreSQL holds what every office's core recorded, exactly once; the tickets
    and ratings of each office."""
    totals: dict[str, tuple[int, int]] = {}
    for o in rig.offices:
        truth = o.recorded()
        totals[o.site] = (len(truth), sum(r is not None for r in truth.values()))

        async def check(o: OfficeNode = o, truth: dict[str, int | None] = truth) -> bool:
            return exactly_once(truth, await stored(rig.dsn, o.site))

        try:
            await eventually(check, timeout=timeout, what=f"{o.site}: {len(truth)} vé đủ và đúng một lần")
        except TimeoutError:
            db = await stored(rig.dsn, o.site)
            missing = set(truth) - set(db.tickets)
            wrong = {t: (truth[t], db.tickets[t]) for t in set(truth) & set(db.tickets) if truth[t] != db.tickets[t]}
            raise AssertionError(f"{o.site}: office {len(truth)} tickets, PostgreSQL {len(db.tickets)} "
                                 f"(missing {sorted(missing)[:5]}, wrong ratings {list(wrong.items())[:5]}, "
                                 f"issued events {db.issued_events}, rated events {db.rated_events})") from None
    return totals
