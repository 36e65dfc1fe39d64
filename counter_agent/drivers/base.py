"""What a driver is: turning "show this text" into bytes for one device, and bytes from the bus
into events. Pure code, no I/O: the bus (counter_agent.bus) does the reading and writing.

A new device protocol is one new module with a class of this shape, listed in
counter_agent.drivers.DRIVERS.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar, Protocol


@dataclass(frozen=True)
class Request:
    """Bytes for one device, and the acknowledgement that confirms they arrived."""

    address: int
    frame: bytes
    expect: str  # the tag of the Ack that answers it


@dataclass(frozen=True)
class Ack:
    address: int
    tag: str


@dataclass(frozen=True)
class KeyPress:
    address: int
    key: str


@dataclass(frozen=True)
class DeviceError:
    """The device answered, but refused or could not do what was asked."""

    address: int
    tag: str  # the request it answers, when the protocol says ("" otherwise)
    detail: str


@dataclass(frozen=True)
class Unexpected:
    """A well-formed frame no device should send to the host (an echo of our own, say)."""

    address: int
    what: str


DeviceEvent = Ack | KeyPress | DeviceError | Unexpected

# Why a received frame or byte was dropped; the bus adds wrong_address, the agent unknown_key
# and busy. Every count is published in the agent's health topic.
GARBAGE = "garbage"            # bytes outside any frame
BAD_FRAME = "bad_frame"        # a frame that breaks the format (too long, bad address digits...)
BAD_CHECKSUM = "bad_checksum"  # a frame whose checksum or CRC does not match
WRONG_ADDRESS = "wrong_address"
UNEXPECTED = "unexpected"
DROP_REASONS = (GARBAGE, BAD_FRAME, BAD_CHECKSUM, WRONG_ADDRESS, UNEXPECTED)


class Decoder(Protocol):
    drops: Counter[str]

    def feed(self, data: bytes, now: float) -> list[DeviceEvent]:
        """Events of the complete frames in `data` (plus what earlier calls left unfinished).
        `now` (seconds, monotonic) lets protocols framed by silence, like Modbus RTU, tell a
        frame cut short from the start of the next one."""
        ...


class Driver(Protocol):
    name: ClassVar[str]
    has_keys: ClassVar[bool]   # a keypad can be behind it
    can_flash: ClassVar[bool]  # the device blinks a new number by itself
    min_address: ClassVar[int]
    max_address: ClassVar[int]

    def show(self, address: int, text: str, *, flash: bool, digits: int | None) -> Request: ...

    def ping(self, address: int, shown: str, *, digits: int | None) -> Request:
        """A harmless request the device must answer; `shown` is what it displays now."""
        ...

    def decoder(self) -> Decoder: ...


def ascii_text(text: str) -> str:
    """What an ASCII-only device can show of a text: "Đ005" -> "D005", other diacritics dropped."""
    text = text.replace("Đ", "D").replace("đ", "d")
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(c for c in plain if 0x20 <= ord(c) <= 0x7E)


def new_drops() -> Counter[str]:
    return Counter({reason: 0 for reason in DROP_REASONS})
