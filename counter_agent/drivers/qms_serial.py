"""Driver `qms-serial`: our documented framed protocol for LED panels and call keypads.

    STX ADDR CMD DATA CHK ETX
    STX 0x02, ETX 0x03; ADDR two ASCII hex digits (01-FE, FF broadcast); CMD one ASCII letter;
    DATA 0-32 printable ASCII bytes; CHK two upper-case ASCII hex digits, the XOR of every byte
    of ADDR, CMD and DATA.

Host to device: D show, F show and blink, C clear, P ping. Device to host: A acknowledge (DATA
the letter acknowledged), K key press (DATA the key), E the device's error. The same frame
format runs both ways, so encode_frame and FrameDecoder serve the agent and the simulator.
See docs/hardware.md for examples.
"""

from __future__ import annotations

import string
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

from counter_agent.drivers.base import (
    BAD_CHECKSUM,
    BAD_FRAME,
    GARBAGE,
    Ack,
    DeviceError,
    DeviceEvent,
    KeyPress,
    Request,
    Unexpected,
    ascii_text,
    new_drops,
)

STX = 0x02
ETX = 0x03
BROADCAST = 0xFF
MAX_DATA = 32
_HEX = set(string.hexdigits.encode())
# ADDR + CMD + DATA + CHK: anything longer between STX and ETX is not a frame.
_MAX_BODY = 2 + 1 + MAX_DATA + 2

# host -> device
SHOW, FLASH, CLEAR, PING = "D", "F", "C", "P"
# device -> host
ACK, KEY, ERROR = "A", "K", "E"


class FrameError(ValueError):
    pass


def checksum(body: bytes) -> int:
    """XOR of every byte of ADDR, CMD and DATA."""
    x = 0
    for b in body:
        x ^= b
    return x


def encode_frame(address: int, cmd: str, data: str = "") -> bytes:
    if not 0 <= address <= 0xFF:
        raise FrameError(f"address {address} is outside 00-FF")
    if len(cmd) != 1 or not cmd.isascii() or not cmd.isalpha():
        raise FrameError(f"command {cmd!r} is not one ASCII letter")
    raw = data.encode("ascii", "replace")
    if not data.isascii() or len(raw) > MAX_DATA or any(not 0x20 <= b <= 0x7E for b in raw):
        raise FrameError(f"data {data!r} is not 0-{MAX_DATA} printable ASCII characters")
    body = f"{address:02X}{cmd}".encode("ascii") + raw
    return bytes([STX]) + body + f"{checksum(body):02X}".encode("ascii") + bytes([ETX])


@dataclass(frozen=True)
class Frame:
    address: int
    cmd: str
    data: str


@dataclass
class FrameDecoder:
    """Frames out of a byte stream. Garbage between frames, frames cut short by a new STX, frames
    too long or malformed and bad checksums are dropped and counted; the decoder re-synchronises
    on the next STX."""

    drops: Counter[str] = field(default_factory=new_drops)
    _body: bytearray | None = None

    def feed_frames(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        for b in data:
            if b == STX:
                if self._body is not None:
                    self.drops[BAD_FRAME] += 1  # cut short: a new frame began
                self._body = bytearray()
            elif self._body is None:
                self.drops[GARBAGE] += 1
            elif b == ETX:
                frame = self._parse(bytes(self._body))
                self._body = None
                if frame is not None:
                    frames.append(frame)
            else:
                self._body.append(b)
                if len(self._body) > _MAX_BODY:
                    self.drops[BAD_FRAME] += 1
                    self._body = None
        return frames

    def _parse(self, body: bytes) -> Frame | None:
        if len(body) < 5 or not all(b in _HEX for b in body[:2] + body[-2:]):
            self.drops[BAD_FRAME] += 1
            return None
        content, chk = body[:-2], int(body[-2:], 16)
        cmd, data = chr(content[2]), content[3:]
        if not cmd.isascii() or not cmd.isalpha() or any(not 0x20 <= b <= 0x7E for b in data):
            self.drops[BAD_FRAME] += 1
            return None
        if checksum(content) != chk:
            self.drops[BAD_CHECKSUM] += 1
            return None
        return Frame(int(content[:2], 16), cmd, data.decode("ascii"))


@dataclass
class HostDecoder:
    """The agent's side: what devices say."""

    frames: FrameDecoder = field(default_factory=FrameDecoder)

    @property
    def drops(self) -> Counter[str]:
        return self.frames.drops

    def feed(self, data: bytes, now: float) -> list[DeviceEvent]:
        events: list[DeviceEvent] = []
        for f in self.frames.feed_frames(data):
            if f.cmd == ACK:
                events.append(Ack(f.address, f.data))
            elif f.cmd == KEY:
                events.append(KeyPress(f.address, f.data))
            elif f.cmd == ERROR:
                events.append(DeviceError(f.address, "", f.data))
            else:
                events.append(Unexpected(f.address, f"{f.cmd}{f.data}"))
        return events


class QmsSerialDriver:
    name: ClassVar[str] = "qms-serial"
    has_keys: ClassVar[bool] = True
    can_flash: ClassVar[bool] = True
    min_address: ClassVar[int] = 0x01
    max_address: ClassVar[int] = 0xFE

    def show(self, address: int, text: str, *, flash: bool, digits: int | None = None) -> Request:
        text = ascii_text(text)[:MAX_DATA]
        if not text.strip():
            return Request(address, encode_frame(address, CLEAR), CLEAR)
        cmd = FLASH if flash else SHOW
        return Request(address, encode_frame(address, cmd, text), cmd)

    def ping(self, address: int, shown: str, *, digits: int | None = None) -> Request:
        return Request(address, encode_frame(address, PING), PING)

    def decoder(self) -> HostDecoder:
        return HostDecoder()
