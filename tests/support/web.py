"""The web server in a test: in this process (restartable on the same port), or as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from display_server.accounts.store import hash_password
from display_server.app import create_app
from display_server.base import FOLLOWER, RECORDS, SPEECH
from display_server.feed.follower import StateFollower
from display_server.speech.render import Speech
from display_server.tv.page import apply_patch
from qms_common.config import load_site_config
from qms_common.devbroker import wait_for_port
from tests.support.core import CoreProcess

# Short clips keep the browser tests quick: espeak at its fastest, offline, no network attempt.
FAST_SPEECH = """
[speech]
engines = ["espeak"]
espeak_speed = 450
cache_dir = "{cache}"
"""

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
AUTOPLAY = "--autoplay-policy=no-user-gesture-required"


# The kiosks the tests use, unless a test's own [kiosk] names them.
TEST_KIOSKS = '[kiosk]\nids = ["kiosk", "kiosk-1", "kiosk-2"]\n'


# username: (password, role, counters or None)
ACCOUNTS = {
    "canbo1": ("mat-khau-canbo1", "officer", ("1", "2")),
    "canbo3": ("mat-khau-canbo3", "officer", ("3",)),
    "giamsat": ("mat-khau-giamsat", "supervisor", None),
    "lanhdao": ("mat-khau-lanhdao", "leader", None),
}
NAMES = {"canbo1": "Nguyễn Thị Hoa", "canbo3": "Phạm Văn Đức", "giamsat": "Lê Quang Hải", "lanhdao": "Phạm Thị Thu"}


@functools.cache
def _hash(password: str) -> str:
    return hash_password(password)


def accounts_extra() -> str:
    """[[accounts]] for the test accounts (hashed once per test session: scrypt is slow on purpose)."""
    out = []
    for user, (password, role, counters) in ACCOUNTS.items():
        out.append(f'[[accounts]]\nusername = "{user}"\nname = "{NAMES[user]}"\nrole = "{role}"\n'
                   f'password_hash = "{_hash(password)}"\n'
                   + (f"counters = {list(counters)!r}\n".replace("'", '"') if counters else ""))
    return "\n".join(out)


def web_extra(tmp: Path, port: int, *, speech: str | None = None, more: str = "", web: str = "") -> str:
    """Site-file sections for a web server on `port` with its clip cache under tmp (`web`: more
    keys of [web])."""
    speech = FAST_SPEECH if speech is None else speech
    if "[kiosk]" not in more:
        more = TEST_KIOSKS + more
    elif not re.search(r"^\s*(ids|any_id)\s*=", more.split("[kiosk]", 1)[1].split("\n[", 1)[0], re.M):
        more = more.replace("[kiosk]\n", TEST_KIOSKS, 1)  # a test's own [kiosk] keys, the tests' kiosks
    return f"""
[web]
host = "127.0.0.1"
port = {port}
id = "web-test"
{web}
{speech.format(cache=tmp / "speech-cache")}
{more}
"""


@dataclass
class WebServer:
    """The app running in this process; stop() and start() again on the same port."""

    config: Path
    port: int
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def app(self) -> web.Application:
        assert self.runner is not None
        return self.runner.app

    @property
    def follower(self) -> StateFollower:
        return self.app[FOLLOWER]

    @property
    def speech(self) -> Speech:
        return self.app[SPEECH]

    async def start(self) -> WebServer:
        app = create_app(load_site_config(self.config))
        app[RECORDS].min_interval_s = 0.2  # tests wait on the pages; no need to spare the core
        self.runner = web.AppRunner(app, shutdown_timeout=5, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def ready(self, timeout: float = 10) -> None:
        """Connected to the broker, subscriptions made."""
        async with asyncio.timeout(timeout):
            await self.follower.session.wait_connects(1)


@contextlib.asynccontextmanager
async def running_web(config: Path) -> AsyncIterator[WebServer]:
    site = load_site_config(config)
    server = WebServer(config, site.web_port)
    await server.start()
    try:
        await server.ready()
        yield server
    finally:
        await server.stop()


class WebProcess(CoreProcess):
    """`python -m display_server` as a real process, for kill -9 and restarts."""

    def __init__(self, config: Path, log_path: Path) -> None:
        super().__init__(config, log_path, env={"PYTHONUNBUFFERED": "1"})
        self.port = load_site_config(config).web_port

    def start(self) -> WebProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "display_server", "--config", str(self.config)],
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=self.env)
        wait_for_port(self.port, process=self.proc, timeout=20)
        return self


@contextlib.contextmanager
def web_process(config: Path, log_path: Path) -> Iterator[WebProcess]:
    p = WebProcess(config, log_path).start()
    try:
        yield p
    finally:
        p.stop()


CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')
PAGE_CONFIG = re.compile(r'<script id="page-config" type="application/json">(.*?)</script>', re.S)


def page_config(html: str) -> dict[str, Any]:
    m = PAGE_CONFIG.search(html)
    assert m, "no page-config in the page"
    return json.loads(m.group(1))


async def login(http: aiohttp.ClientSession, base: str, user: str, password: str | None = None, *,
                next_path: str = "") -> aiohttp.ClientResponse:
    """Log in through the form, as a browser does (the form's CSRF token and cookie included);
    the response to the POST, not followed."""
    async with http.get(f"{base}/login") as resp:
        token = CSRF_INPUT.search(await resp.text())
    assert token, "no CSRF token in the login form"
    form = {"username": user, "password": ACCOUNTS[user][0] if password is None else password,
            "csrf": token.group(1), "next": next_path}
    async with http.post(f"{base}/login", data=form, allow_redirects=False) as resp:
        await resp.read()
        return resp


PAIRING_CODE = re.compile(r"<strong>(\d{8})</strong>")


async def pairing_code(http: aiohttp.ClientSession, base: str, counter: str) -> str:
    """A rating tablet's pairing code for a counter, made as a supervisor (logged in on `http`) does."""
    async with http.get(f"{base}/supervisor/pairing") as resp:
        assert resp.status == 200, await resp.text()
        token = CSRF_INPUT.search(await resp.text())
    assert token
    async with http.post(f"{base}/supervisor/pairing", data={"csrf": token.group(1), "counter": counter}) as resp:
        assert resp.status == 200, await resp.text()
        code = PAIRING_CODE.search(await resp.text())
    assert code, "no pairing code on the page"
    return code.group(1)


async def csrf_of(http: aiohttp.ClientSession, url: str) -> str:
    """The CSRF token a logged-in page gives its script."""
    async with http.get(url) as resp:
        assert resp.status == 200, (url, resp.status)
        return page_config(await resp.text())["csrf"]


class Feed:
    """A page's live feed (a TV's, a console's…), read like the page reads it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.current: dict[str, Any] | None = None  # the view as the page has it, patches applied
        self.version: int | None = None

    def _follow(self, m: dict[str, Any]) -> dict[str, Any]:
        """A TV's patch becomes the whole view it leads to, so tests see what the page draws."""
        if m["type"] == "view":
            self.current, self.version = m["view"], m.get("v")
        elif m["type"] == "patch":
            assert self.current is not None and m["from"] == self.version, f"a patch out of step {m} {self.version}"
            self.current, self.version = apply_patch(self.current, m), m["v"]
            return {"type": "view", "v": m["v"], "view": self.current, "patched": True}
        return m

    async def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10) -> dict[str, Any]:
        for m in self.messages:
            if predicate(m):
                self.messages.remove(m)
                return m
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.ws.receive()
                assert raw.type == aiohttp.WSMsgType.TEXT, raw
                m = self._follow(json.loads(raw.data))
                if predicate(m):
                    return m
                self.messages.append(m)

    async def view(self, predicate: Callable[[dict[str, Any]], bool] = lambda v: True) -> dict[str, Any]:
        m = await self.wait(lambda m: m["type"] == "view" and predicate(m["view"]))
        return m["view"]

    async def announcement(self, number: str | None = None) -> dict[str, Any]:
        return await self.wait(lambda m: m["type"] == "announce" and (number is None or m["number"] == number))
