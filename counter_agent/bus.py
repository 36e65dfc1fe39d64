"""One serial port and the devices on it (one RS-485 bus, or one device on its own line).

The bus keeps its port open (reopening it with backoff when it goes away), paints each device
with what it should show, checks that every frame is acknowledged (sending it again, then
calling the device offline), pings quiet devices, and hands key presses to the agent. Only one
request is on the wire at a time: RS-485 is half duplex.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from counter_agent.config import DeviceConfig, SerialSettings
from counter_agent.drivers import DRIVERS
from counter_agent.drivers.base import (
    UNEXPECTED,
    WRONG_ADDRESS,
    Ack,
    DeviceError,
    DeviceEvent,
    Driver,
    KeyPress,
    Request,
    Unexpected,
    new_drops,
)
from counter_agent.panel import Display
from counter_agent.serialport import PortError, SerialLink
from qms_common.mqtt import Backoff

log = logging.getLogger(__name__)

UNKNOWN, ONLINE, OFFLINE = "unknown", "online", "offline"
UNKNOWN_KEY, BUSY = "unknown_key", "busy"


@dataclass
class Device:
    config: DeviceConfig
    driver: Driver
    desired: Display = field(default_factory=lambda: Display(""))
    painted: Display | None = None  # what the device acknowledged; None: not known
    # the blink the device last acknowledged: kept when its display is forgotten, so a call made
    # while it was away still blinks when it is painted again
    blinked: int = 0
    epoch: int = 0  # bumped when the device may have lost its display, so a paint in flight does not count
    status: str = UNKNOWN
    last_heard: float = float("-inf")
    last_try: float = float("-inf")
    keys: int = 0
    retries: int = 0
    errors: int = 0
    drops: Counter[str] = field(default_factory=lambda: Counter({UNKNOWN_KEY: 0, BUSY: 0}))

    @property
    def counter(self) -> str:
        return self.config.counter

    @property
    def address(self) -> int:
        return self.config.address

    def forget_display(self) -> None:
        self.painted = None
        self.epoch += 1

    def needs_paint(self) -> bool:
        return self.status != OFFLINE and self.painted != self.desired

    def health(self, port_open: bool) -> dict[str, Any]:
        c = self.config
        return {"counter": c.counter, "port": c.port, "address": c.address, "driver": c.driver,
                "port_open": port_open, "device": self.status if port_open else UNKNOWN,
                "shown": self.painted.text if self.painted is not None and port_open else None,
                "keys": self.keys, "retries": self.retries, "errors": self.errors,
                "dropped": dict(sorted(self.drops.items()))}


KeyHandler = Callable[[Device, str], None]


class Bus:
    def __init__(self, port: str, devices: list[DeviceConfig], settings: SerialSettings, *,
                 on_key: KeyHandler, on_change: Callable[[], None]) -> None:
        self.port = port
        self.baudrate = devices[0].baudrate
        self.driver_name = devices[0].driver
        self.driver: Driver = DRIVERS[self.driver_name]()
        self.devices = [Device(d, self.driver) for d in devices]
        self._by_address = {d.address: d for d in self.devices}
        self.settings = settings
        self.on_key = on_key
        self.on_change = on_change
        self.is_open = False
        self.error: str | None = None
        self.opens = 0
        self._past_drops: Counter[str] = new_drops()
        self._decoder = self.driver.decoder()
        self._pending: tuple[int, str, asyncio.Future[DeviceEvent]] | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()

    # ---------------------------------------------------------------- what the agent calls

    def update(self, device: Device, display: Display) -> None:
        if device.desired != display:
            device.desired = display
            self._idle.clear()
            self._wake.set()

    async def settle(self, timeout: float) -> None:
        """Wait (at most `timeout`) until every reachable device shows what it should."""
        if not self.is_open:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()

    @property
    def drops(self) -> Counter[str]:
        total = Counter(self._past_drops)
        total.update(self._decoder.drops)
        return total

    def health(self) -> dict[str, Any]:
        return {"port": self.port, "driver": self.driver_name, "baudrate": self.baudrate,
                "open": self.is_open, "error": self.error, "opens": self.opens,
                "dropped": dict(sorted(self.drops.items()))}

    # ---------------------------------------------------------------- the port

    async def run(self) -> None:
        backoff = Backoff(initial=min(0.2, self.settings.reopen_max_s), maximum=self.settings.reopen_max_s)
        logged = False
        while True:
            lost = asyncio.Event()
            reason: list[str] = []

            def on_lost(why: str, reason: list[str] = reason, lost: asyncio.Event = lost) -> None:
                reason.append(why)
                lost.set()

            self._new_decoder()
            try:
                link = await SerialLink.open(self.port, self.baudrate, self._on_data, on_lost)
            except PortError as exc:
                if not logged:
                    log.warning("Không mở được cổng %s (%s); tự thử lại", self.port, exc)
                    logged = True
                if self.error != str(exc):
                    self.error = str(exc)
                    self.on_change()
                await asyncio.sleep(backoff.next())
                continue
            log.info("Đã mở cổng %s (%s, %d baud): %s", self.port, self.driver_name, self.baudrate,
                     ", ".join(d.config.label for d in self.devices))
            backoff.reset()
            logged = False
            self.is_open, self.error = True, None
            self.opens += 1
            for d in self.devices:
                d.forget_display()  # paint everything again
                d.status = UNKNOWN
            self.on_change()
            writer = asyncio.create_task(self._writer(link))
            waiting = asyncio.create_task(lost.wait())
            try:
                await asyncio.wait({writer, waiting}, return_when=asyncio.FIRST_COMPLETED)
                if writer.done() and not writer.cancelled() and writer.exception() is not None:
                    # a bug, not the port: start this port afresh rather than leave its panels frozen
                    log.error("Lỗi khi ghi ra cổng %s", self.port, exc_info=writer.exception())
                    reason.append("lỗi nội bộ")
            finally:
                for task in (writer, waiting):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):  # logged above
                        await task
                link.close()
                self.is_open = False
            log.warning("Mất cổng %s (%s); tự mở lại khi cổng trở lại", self.port, reason[0] if reason else "?")
            logged = True
            self.error = reason[0] if reason else None
            for d in self.devices:
                d.forget_display()
                d.status = UNKNOWN
            self.on_change()
            await asyncio.sleep(backoff.next())

    def _new_decoder(self) -> None:
        """A reopened port starts a fresh stream; the counts carry on."""
        self._past_drops.update(self._decoder.drops)
        self._decoder = self.driver.decoder()

    def _on_data(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        for ev in self._decoder.feed(data, loop.time()):
            if isinstance(ev, Unexpected):
                self._past_drops[UNEXPECTED] += 1
                continue
            device = self._by_address.get(ev.address)
            if device is None:
                self._past_drops[WRONG_ADDRESS] += 1
                continue
            device.last_heard = loop.time()
            if device.status == OFFLINE:
                # it speaks, so it is there: paint it now rather than at the next ping, or the
                # answer to the key it just pressed would wait for that ping
                self._answered(device)
                self._idle.clear()
                self._wake.set()
            if isinstance(ev, KeyPress):
                device.keys += 1
                self.on_key(device, ev.key)
            elif isinstance(ev, (Ack, DeviceError)):
                pending = self._pending
                answers = (pending is not None and pending[0] == ev.address and not pending[2].done()
                           and (ev.tag == pending[1] or isinstance(ev, DeviceError)))
                if answers:
                    assert pending is not None
                    pending[2].set_result(ev)
                elif isinstance(ev, Ack):
                    self._past_drops[UNEXPECTED] += 1  # late: its request was already sent again
                if isinstance(ev, DeviceError):
                    device.errors += 1
                    log.warning("%s báo lỗi: %s", device.config.label, ev.detail)
                    if not answers:
                        # unasked (a panel that restarted says E BOOT): it may show nothing now
                        device.forget_display()
                        self._idle.clear()
                        self._wake.set()
        self.on_change()

    # ---------------------------------------------------------------- the writer

    async def _writer(self, link: SerialLink) -> None:
        loop = asyncio.get_running_loop()
        retries = self.settings.retries
        while True:
            self._wake.clear()
            device = next((d for d in self.devices if d.needs_paint()), None)
            if device is not None:
                want = device.desired
                flash = want.flash != device.blinked and want.blinks
                req = self.driver.show(device.address, want.text, flash=flash, digits=device.config.digits)
                epoch = device.epoch
                if await self._transact(link, device, req, 1 + retries):
                    device.blinked = want.flash  # it blinked, even if it restarted right after
                    if device.epoch == epoch:
                        device.painted = want
                        self.on_change()
                continue
            self._idle.set()
            now = loop.time()
            due, wait = self._next_ping(now)
            if due is not None:
                shown = due.painted.text if due.painted is not None else due.desired.text
                req = self.driver.ping(due.address, shown, digits=due.config.digits)
                await self._transact(link, due, req, 1 if due.status == OFFLINE else 1 + retries)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    def _answered(self, device: Device) -> None:
        if device.status == OFFLINE:
            log.info("%s trả lời trở lại", device.config.label)
            device.forget_display()  # it may have lost its display: paint it again
        device.status = ONLINE

    def _next_ping(self, now: float) -> tuple[Device | None, float]:
        """The device to ping now, or how long until one is due."""
        ping_s = self.settings.ping_s
        wait = ping_s
        for d in self.devices:
            since = d.last_try if d.status == OFFLINE else max(d.last_heard, d.last_try)
            left = since + ping_s - now
            if left <= 0:
                return d, 0.0
            wait = min(wait, left)
        return None, wait

    async def _transact(self, link: SerialLink, device: Device, req: Request, attempts: int) -> bool:
        """Send a request until the device answers, `attempts` times at most."""
        loop = asyncio.get_running_loop()
        for attempt in range(attempts):
            fut: asyncio.Future[DeviceEvent] = loop.create_future()
            self._pending = (req.address, req.expect, fut)
            device.last_try = loop.time()
            link.write(req.frame)
            try:
                async with asyncio.timeout(self.settings.ack_timeout_s):
                    await fut
            except TimeoutError:
                if attempt + 1 < attempts:
                    device.retries += 1
                continue
            finally:
                self._pending = None
            if device.status != ONLINE:
                self._answered(device)
                self.on_change()
            return True
        if device.status != OFFLINE:
            log.warning("%s không trả lời (%d lần); coi là mất kết nối, tiếp tục thử", device.config.label, attempts)
            device.status = OFFLINE
            self.on_change()
        return False
