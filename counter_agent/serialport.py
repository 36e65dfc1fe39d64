"""One open serial port on the event loop: bytes in through a callback, bytes out, and one
`lost` call when the port goes away (cable pulled, adapter unplugged, pty closed).

pyserial opens and configures the port (device paths and URLs such as socket://host:port);
reading and writing go through the loop's reader and writer on its file descriptor, so nothing
blocks and nothing spins when the other end stops reading.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Callable

import serial

log = logging.getLogger(__name__)

_RETRY_ERRNOS = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR)


class PortError(Exception):
    pass


class SerialLink:
    def __init__(self, ser: serial.SerialBase, on_data: Callable[[bytes], None],
                 on_lost: Callable[[str], None]) -> None:
        self._ser = ser
        self._fd = ser.fileno()
        self._on_data = on_data
        self._on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self._out = bytearray()
        self._writing = False
        self.closed = False
        self._loop.add_reader(self._fd, self._read_ready)

    @classmethod
    async def open(cls, port: str, baudrate: int, on_data: Callable[[bytes], None],
                   on_lost: Callable[[str], None]) -> SerialLink:
        """Open the port (8N1, no flow control) or raise PortError saying why."""
        kwargs: dict[str, object] = {"baudrate": baudrate, "timeout": 0, "write_timeout": 0}
        if "://" not in port:
            kwargs["exclusive"] = True  # a second agent on the same bus would garble it
        try:
            ser = await asyncio.to_thread(serial.serial_for_url, port, **kwargs)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortError(str(exc)) from None
        try:
            return cls(ser, on_data, on_lost)
        except (OSError, AttributeError, NotImplementedError, serial.SerialException) as exc:
            ser.close()
            raise PortError(f"{port}: cổng không hỗ trợ đọc không chặn ({exc})") from None

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        self._out += data
        if not self._writing:
            self._write_ready()

    def _write_ready(self) -> None:
        try:
            n = os.write(self._fd, self._out)
        except OSError as exc:
            if exc.errno in _RETRY_ERRNOS:
                n = 0
            else:
                self._lose(f"ghi lỗi: {exc.strerror or exc}")
                return
        del self._out[:n]
        if self._out and not self._writing:
            self._loop.add_writer(self._fd, self._write_ready)
            self._writing = True
        elif not self._out and self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False

    def _read_ready(self) -> None:
        try:
            data = self._ser.read(4096)
        except (serial.SerialException, OSError) as exc:
            self._lose(str(exc))
            return
        if data:
            self._on_data(data)

    def _lose(self, reason: str) -> None:
        if self.closed:
            return
        self.close()
        self._on_lost(reason)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._loop.remove_reader(self._fd)
        if self._writing:
            self._loop.remove_writer(self._fd)
            self._writing = False
        try:
            self._ser.close()
        except (serial.SerialException, OSError) as exc:
            log.debug("đóng cổng lỗi: %s", exc)
