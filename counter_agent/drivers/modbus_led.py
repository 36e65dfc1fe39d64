"""Driver `modbus-led`: off-the-shelf RS-485 7-segment displays speaking Modbus RTU.

Writing the number as an integer register (FC06, register 0x0000) stops at 32767, so the text is
written as raw segment bytes: FC16 to register 0x0080, two characters per register (the first
in the high byte). CRC-16/MODBUS, low byte first. Display only: no keys. The agent's ping
writes the same segments again (every such display accepts that; not all answer reads).

The functions below serve both sides: the agent writes requests and reads responses, the
simulator reads requests and writes responses.
"""

from __future__ import annotations

import string
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from counter_agent.drivers.base import (
    BAD_CHECKSUM,
    BAD_FRAME,
    GARBAGE,
    Ack,
    DeviceError,
    DeviceEvent,
    Request,
    ascii_text,
    new_drops,
)

READ_HOLDING = 0x03
WRITE_SINGLE = 0x06
WRITE_MULTIPLE = 0x10
SEGMENT_REGISTER = 0x0080
VALUE_REGISTER = 0x0000
DEFAULT_DIGITS = 4
# Modbus exception codes a display may answer with
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 1, 2, 3

# bit 0 = segment a (top) ... bit 6 = segment g (middle), bit 7 = the decimal point
SEGMENTS: dict[str, int] = {
    "0": 0x3F, "1": 0x06, "2": 0x5B, "3": 0x4F, "4": 0x66, "5": 0x6D, "6": 0x7D, "7": 0x07,
    "8": 0x7F, "9": 0x6F, "-": 0x40, " ": 0x00, "_": 0x08, "=": 0x48,
    # letters as 7-segment displays draw them; those none can draw (K M V W X Z) stay blank
    "A": 0x77, "B": 0x7C, "C": 0x39, "D": 0x5E, "E": 0x79, "F": 0x71, "G": 0x3D, "H": 0x76,
    "I": 0x30, "J": 0x1E, "L": 0x38, "N": 0x54, "O": 0x3F, "P": 0x73, "Q": 0x67, "R": 0x50,
    "S": 0x6D, "T": 0x78, "U": 0x3E, "Y": 0x6E,
    "c": 0x58, "h": 0x74, "o": 0x5C, "u": 0x1C,
}
# Reading segments back (the simulator): a digit wins where a letter looks the same (O/0, S/5).
CHARACTERS: dict[int, str] = {}
for _ch, _code in SEGMENTS.items():
    CHARACTERS.setdefault(_code, _ch)
for _d in string.digits + "- ":
    CHARACTERS[SEGMENTS[_d]] = _d


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS: polynomial 0xA001 (reflected 0x8005), initial value 0xFFFF."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ b) & 0xFF]
    return crc


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def with_crc(pdu: bytes) -> bytes:
    c = crc16(pdu)
    return pdu + bytes([c & 0xFF, c >> 8])


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and crc16(frame[:-2]) == frame[-2] | (frame[-1] << 8)


def segment_bytes(text: str, digits: int = DEFAULT_DIGITS) -> bytes:
    """One segment byte per character, right-aligned on a panel of `digits` characters (the
    last digits of a longer text), padded with a blank to fill whole registers."""
    text = ascii_text(text)
    text = text[-digits:].rjust(digits)
    codes = bytes(SEGMENTS.get(ch, SEGMENTS.get(ch.upper(), 0x00)) for ch in text)
    return codes + b"\x00" * (len(codes) % 2)


def segments_text(codes: bytes) -> str:
    """What a row of segment bytes looks like, as text (the decimal point is ignored)."""
    return "".join(CHARACTERS.get(b & 0x7F, "?") for b in codes)


def write_multiple(address: int, register: int, data: bytes) -> bytes:
    """FC16 request: address, 0x10, register, register count, byte count, data, CRC."""
    if len(data) % 2 or not 0 < len(data) <= 246:
        raise ValueError("FC16 data must be whole registers, 1-123 of them")
    count = len(data) // 2
    return with_crc(bytes([address, WRITE_MULTIPLE]) + register.to_bytes(2, "big")
                    + count.to_bytes(2, "big") + bytes([len(data)]) + data)


def write_single(address: int, register: int, value: int) -> bytes:
    """FC06 request (and its echo response)."""
    return with_crc(bytes([address, WRITE_SINGLE]) + register.to_bytes(2, "big") + value.to_bytes(2, "big"))


def read_holding(address: int, register: int, count: int) -> bytes:
    """FC03 request."""
    return with_crc(bytes([address, READ_HOLDING]) + register.to_bytes(2, "big") + count.to_bytes(2, "big"))


def write_multiple_response(address: int, register: int, count: int) -> bytes:
    return with_crc(bytes([address, WRITE_MULTIPLE]) + register.to_bytes(2, "big") + count.to_bytes(2, "big"))


def read_holding_response(address: int, data: bytes) -> bytes:
    return with_crc(bytes([address, READ_HOLDING, len(data)]) + data)


def exception_response(address: int, function: int, code: int) -> bytes:
    return with_crc(bytes([address, function | 0x80, code]))


@dataclass(frozen=True)
class RtuFrame:
    address: int
    function: int
    body: bytes  # between the function code and the CRC


@dataclass
class RtuDecoder:
    """Modbus RTU frames out of a byte stream. RTU frames are delimited by silence: bytes that
    stay unfinished longer than `gap_s` are a frame cut short and are dropped when new bytes
    come. `side` says whose frames are read: "host" reads responses, "device" reads requests."""

    side: Literal["host", "device"]
    gap_s: float = 0.05
    drops: Counter[str] = field(default_factory=new_drops)
    _buf: bytearray = field(default_factory=bytearray)
    _last: float = 0.0

    def feed_frames(self, data: bytes, now: float) -> list[RtuFrame]:
        if self._buf and now - self._last > self.gap_s:
            self.drops[BAD_FRAME] += 1
            self._buf.clear()
        self._last = now
        self._buf += data
        frames: list[RtuFrame] = []
        while len(self._buf) >= 2:
            n = self._length()
            if n == 0:
                self.drops[GARBAGE] += 1
                del self._buf[0]
                continue
            if n is None or len(self._buf) < n:
                break
            frame = bytes(self._buf[:n])
            del self._buf[:n]
            if not crc_ok(frame):
                self.drops[BAD_CHECKSUM] += 1
                continue
            frames.append(RtuFrame(frame[0], frame[1], frame[2:-2]))
        return frames

    def _length(self) -> int | None:
        """The length of the frame the buffer starts with; None if more bytes are needed to
        tell, 0 if it cannot start a frame."""
        fc = self._buf[1]
        if self.side == "host":
            if fc & 0x80 and fc & 0x7F in (READ_HOLDING, WRITE_SINGLE, WRITE_MULTIPLE):
                return 5
            if fc in (WRITE_SINGLE, WRITE_MULTIPLE):
                return 8
            if fc == READ_HOLDING:
                return 5 + self._buf[2] if len(self._buf) >= 3 else None
            return 0
        if fc in (READ_HOLDING, WRITE_SINGLE):
            return 8
        if fc == WRITE_MULTIPLE:
            return 9 + self._buf[6] if len(self._buf) >= 7 else None
        return 0


@dataclass
class HostDecoder:
    rtu: RtuDecoder = field(default_factory=lambda: RtuDecoder("host"))

    @property
    def drops(self) -> Counter[str]:
        return self.rtu.drops

    def feed(self, data: bytes, now: float) -> list[DeviceEvent]:
        events: list[DeviceEvent] = []
        for f in self.rtu.feed_frames(data, now):
            if f.function & 0x80:
                events.append(DeviceError(f.address, str(f.function & 0x7F), f"Modbus exception {f.body[0]}"))
            else:
                events.append(Ack(f.address, str(f.function)))
        return events


class ModbusLedDriver:
    name: ClassVar[str] = "modbus-led"
    has_keys: ClassVar[bool] = False
    can_flash: ClassVar[bool] = False
    min_address: ClassVar[int] = 1
    max_address: ClassVar[int] = 247

    def show(self, address: int, text: str, *, flash: bool, digits: int | None = None) -> Request:
        frame = write_multiple(address, SEGMENT_REGISTER, segment_bytes(text, digits or DEFAULT_DIGITS))
        return Request(address, frame, str(WRITE_MULTIPLE))

    def ping(self, address: int, shown: str, *, digits: int | None = None) -> Request:
        return self.show(address, shown, flash=False, digits=digits)

    def decoder(self) -> HostDecoder:
        return HostDecoder()
