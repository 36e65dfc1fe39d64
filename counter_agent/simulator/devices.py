"""The device side of each driver, as firmware should behave: the protocol's reference.

Pure: bytes from the host go in, bytes for the host and what the panels show come out. The
pty and the command line are in counter_agent.simulator.bus and __main__.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from counter_agent.drivers import modbus_led as mb
from counter_agent.drivers import qms_serial as qs


@dataclass(frozen=True)
class Shown:
    """One frame a device took from the host: a change of display, or a ping."""

    address: int
    kind: str      # "show", "clear" or "ping"
    text: str      # what the panel shows after it
    flash: bool    # it blinks (qms-serial F)
    raw: bytes     # the frame as received
    at: float
    changed: bool = True  # the panel looks different now (a blink always does)


@dataclass
class Panel:
    address: int
    label: str
    text: str = ""
    flashing: bool = False
    muted: bool = False  # a device that stopped answering: it hears frames, answers none


class SimProtocol(Protocol):
    driver: ClassVar[str]
    has_keys: ClassVar[bool]
    panels: dict[int, Panel]

    def feed(self, data: bytes, now: float) -> tuple[bytes, list[Shown]]:
        """Bytes from the host -> (bytes to answer, frames taken)."""
        ...

    def key(self, address: int, key: str) -> bytes: ...


@dataclass
class QmsSerialDevices:
    """Panels and keypads of one qms-serial bus: each answers the frames for its address with
    `A` + the command letter; broadcast frames (FF) are obeyed, never answered; frames with a
    bad checksum are ignored (the address in them cannot be trusted)."""

    panels: dict[int, Panel]
    decoder: qs.FrameDecoder = field(default_factory=qs.FrameDecoder)
    driver: ClassVar[str] = "qms-serial"
    has_keys: ClassVar[bool] = True

    def feed(self, data: bytes, now: float) -> tuple[bytes, list[Shown]]:
        out = bytearray()
        shown: list[Shown] = []
        for f in self.decoder.feed_frames(data):
            targets = list(self.panels.values()) if f.address == qs.BROADCAST else (
                [self.panels[f.address]] if f.address in self.panels else [])
            raw = qs.encode_frame(f.address, f.cmd, f.data)
            for p in targets:
                before = (p.text, p.flashing)
                if f.cmd in (qs.SHOW, qs.FLASH):
                    p.text, p.flashing = f.data, f.cmd == qs.FLASH
                    shown.append(Shown(p.address, "show", p.text, p.flashing, raw, now,
                                       p.flashing or (p.text, p.flashing) != before))
                elif f.cmd == qs.CLEAR:
                    p.text, p.flashing = "", False
                    shown.append(Shown(p.address, "clear", "", False, raw, now, (p.text, p.flashing) != before))
                elif f.cmd == qs.PING:
                    shown.append(Shown(p.address, "ping", p.text, False, raw, now))
                else:
                    if not p.muted and f.address != qs.BROADCAST:
                        out += qs.encode_frame(p.address, qs.ERROR, f"CMD {f.cmd}")
                    continue
                if not p.muted and f.address != qs.BROADCAST:
                    out += qs.encode_frame(p.address, qs.ACK, f.cmd)
        return bytes(out), shown

    def key(self, address: int, key: str) -> bytes:
        return qs.encode_frame(address, qs.KEY, key)


@dataclass
class ModbusLedDevices:
    """Modbus RTU 7-segment displays: FC16 segment bytes to 0x0080 (the agent's way), FC06 an
    integer to 0x0000, FC03 reads back; anything else gets exception 01 (illegal function)."""

    panels: dict[int, Panel]
    digits: int = mb.DEFAULT_DIGITS
    decoder: mb.RtuDecoder = field(default_factory=lambda: mb.RtuDecoder("device"))
    driver: ClassVar[str] = "modbus-led"
    has_keys: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self._segments = {a: mb.segment_bytes("", self.digits) for a in self.panels}

    def feed(self, data: bytes, now: float) -> tuple[bytes, list[Shown]]:
        out = bytearray()
        shown: list[Shown] = []
        for f in self.decoder.feed_frames(data, now):
            p = self.panels.get(f.address)
            if p is None:
                continue  # another device's frame (0 is broadcast: no display obeys it here)
            raw = mb.with_crc(bytes([f.address, f.function]) + f.body)
            before = p.text
            answer = self._answer(p, f)
            if not answer[1] & 0x80 and f.function in (mb.WRITE_MULTIPLE, mb.WRITE_SINGLE):
                p.text = mb.segments_text(self._segments[p.address]).strip()
                shown.append(Shown(p.address, "show", p.text, False, raw, now, p.text != before))
            if not p.muted:
                out += answer
        return bytes(out), shown

    def _answer(self, p: Panel, f: mb.RtuFrame) -> bytes:
        body = f.body
        illegal_address = mb.exception_response(p.address, f.function, mb.ILLEGAL_ADDRESS)
        if f.function == mb.WRITE_MULTIPLE:
            register, count, data = int.from_bytes(body[0:2], "big"), int.from_bytes(body[2:4], "big"), body[5:]
            size = len(self._segments[p.address])
            if register != mb.SEGMENT_REGISTER or len(data) != 2 * count or len(data) > size:
                return illegal_address
            self._segments[p.address] = data + self._segments[p.address][len(data):]
            return mb.write_multiple_response(p.address, register, count)
        if f.function == mb.WRITE_SINGLE:
            register, value = int.from_bytes(body[0:2], "big"), int.from_bytes(body[2:4], "big")
            if register != mb.VALUE_REGISTER:
                return illegal_address
            if value > 0x7FFF:
                return mb.exception_response(p.address, f.function, mb.ILLEGAL_VALUE)
            self._segments[p.address] = mb.segment_bytes(str(value), self.digits)
            return mb.write_single(p.address, register, value)
        if f.function == mb.READ_HOLDING:
            register, count = int.from_bytes(body[0:2], "big"), int.from_bytes(body[2:4], "big")
            segs = self._segments[p.address]
            if register != mb.SEGMENT_REGISTER or 2 * count > len(segs):
                return illegal_address
            return mb.read_holding_response(p.address, segs[:2 * count])
        return mb.exception_response(p.address, f.function, mb.ILLEGAL_FUNCTION)

    def key(self, address: int, key: str) -> bytes:
        raise ValueError("a modbus-led display has no keys")


def make_devices(driver: str, panels: dict[int, Panel], *, digits: int | None = None) -> SimProtocol:
    if driver == QmsSerialDevices.driver:
        return QmsSerialDevices(panels)
    if driver == ModbusLedDevices.driver:
        return ModbusLedDevices(panels, digits=digits or mb.DEFAULT_DIGITS)
    raise ValueError(f"no simulator for driver {driver!r}")
