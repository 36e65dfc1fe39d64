"""A simulated bus on a real pseudo-terminal: the agent opens `link` as its serial port.

The simulator keeps its own copy of the pty's device end open, so an agent closing and
reopening the port does not close the bus. `unplug()` is a pulled cable: the pty is closed and
the link removed; `replug()` brings a new pty back under the same link.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import Callable
from pathlib import Path

from counter_agent.keys import KEY_LIST, is_key
from counter_agent.simulator.devices import Panel, Shown, SimProtocol, make_devices


class SimulatedBus:
    def __init__(self, link: Path | str, driver: str, panels: list[Panel], *, digits: int | None = None,
                 on_shown: Callable[[SimulatedBus, Shown], None] | None = None,
                 on_traffic: Callable[[SimulatedBus, str, bytes], None] | None = None) -> None:
        self.link = Path(link)
        self.driver = driver
        self.panels = {p.address: p for p in panels}
        self.devices: SimProtocol = make_devices(driver, self.panels, digits=digits)
        self.on_shown = on_shown
        self.on_traffic = on_traffic
        self.shown: list[Shown] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._master: int | None = None
        self._slave: int | None = None

    @property
    def plugged(self) -> bool:
        return self._master is not None

    @property
    def tty_name(self) -> str | None:
        return os.ttyname(self._slave) if self._slave is not None else None

    def plug(self) -> SimulatedBus:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: a wire, not a terminal
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.link.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.link)  # atomic: the agent never sees a half-made link
        asyncio.get_running_loop().add_reader(master, self._read_ready)
        return self

    def unplug(self) -> None:
        """The cable is pulled: the agent's next read fails, and the port is gone."""
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
        if self._slave is not None:
            os.close(self._slave)
        self._master = self._slave = None

    replug = plug
    close = unplug

    def _read_ready(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError:
            return  # EIO while nobody has the port open: nothing to read
        if not data:
            return
        if self.on_traffic:
            self.on_traffic(self, "<", data)
        answer, shown = self.devices.feed(data, asyncio.get_running_loop().time())
        if answer:
            self.send(answer)
        if shown:
            self.shown.extend(shown)
            for s in shown:
                if self.on_shown:
                    self.on_shown(self, s)
            waiters, self._waiters = self._waiters, []
            for w in waiters:
                if not w.done():
                    w.set_result(None)

    def send(self, data: bytes) -> None:
        """Raw bytes onto the line, towards the agent (garbage too, on purpose)."""
        if self._master is None:
            raise RuntimeError("the bus is unplugged")
        if self.on_traffic:
            self.on_traffic(self, ">", data)
        os.write(self._master, data)

    async def send_all(self, data: bytes) -> None:
        """Like send, but for more than the pty buffers: waits until the agent has read enough."""
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view:
            if self._master is None:
                raise RuntimeError("the bus is unplugged")
            try:
                view = view[os.write(self._master, view):]
            except BlockingIOError:
                writable: asyncio.Future[None] = loop.create_future()
                loop.add_writer(self._master, lambda w=writable: w.done() or w.set_result(None))
                try:
                    await asyncio.wait_for(writable, 10)
                finally:
                    loop.remove_writer(self._master)

    def press(self, address: int, key: str) -> None:
        """A key of the keypad; one it does not have is an error here, not a frame the agent
        quietly drops (garbage on the line is `send`)."""
        if address not in self.panels:
            raise KeyError(f"no device at address {address}")
        if not is_key(key):
            raise ValueError(f"bàn phím không có phím {key!r}; các phím: {KEY_LIST}")
        self.send(self.devices.key(address, key))

    def mute(self, address: int, muted: bool = True) -> None:
        self.panels[address].muted = muted

    # ---------------------------------------------------------------- waiting (tests, scripts)

    def mark(self) -> int:
        return len(self.shown)

    async def wait_for(self, predicate: Callable[[Shown], bool], *, timeout: float = 10.0,
                       start: int = 0) -> Shown:
        """The first frame taken (from index `start`) that satisfies predicate, waiting for it."""
        async with asyncio.timeout(timeout):
            while True:
                for s in self.shown[start:]:
                    if predicate(s):
                        return s
                start = len(self.shown)
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter

    async def wait_shown(self, address: int, text: str, *, flash: bool | None = None, timeout: float = 10.0,
                         start: int = 0) -> Shown:
        """Wait until the panel at `address` is sent `text` (blinking, if flash says so)."""
        return await self.wait_for(
            lambda s: s.address == address and s.kind in ("show", "clear") and s.text == text
            and (flash is None or s.flash == flash), timeout=timeout, start=start)
