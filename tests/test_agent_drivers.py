"""Both drivers' frames, byte for byte, both ways; and the simulator's device side."""

from __future__ import annotations

import pytest

from counter_agent.drivers import DRIVERS
from counter_agent.drivers import modbus_led as mb
from counter_agent.drivers import qms_serial as qs
from counter_agent.drivers.base import Ack, DeviceError, KeyPress, Unexpected, ascii_text
from counter_agent.simulator.devices import ModbusLedDevices, Panel, QmsSerialDevices

# ---------------------------------------------------------------- qms-serial


@pytest.mark.parametrize(("address", "cmd", "data", "frame"), [
    # CHK worked by hand: "01D1005" = 30^31^44^31^30^30^35 = 0x41
    (0x01, "D", "1005", b"\x0201D100541\x03"),
    (0x01, "F", "1001", b"\x0201F100147\x03"),
    (0x01, "D", "----", b"\x0201D----45\x03"),
    (0x01, "C", "", b"\x0201C42\x03"),
    (0x01, "P", "", b"\x0201P51\x03"),
    (0xFE, "A", "D", b"\x02FEAD06\x03"),
    (0x0A, "K", "T3", b"\x020AKT35D\x03"),   # 30^41^4B^54^33 = 0x5D
    (0xFF, "D", "OFF", b"\x02FFDOFF0B\x03"),  # 46^46^44^4F^46^46 = 0x0B
])
def test_qms_serial_frames(address: int, cmd: str, data: str, frame: bytes) -> None:
    assert qs.encode_frame(address, cmd, data) == frame
    dec = qs.FrameDecoder()
    assert dec.feed_frames(frame) == [qs.Frame(address, cmd, data)]
    assert sum(dec.drops.values()) == 0


def test_qms_serial_checksum_examples() -> None:
    assert qs.checksum(b"01D1005") == 0x41
    assert qs.checksum(b"") == 0


@pytest.mark.parametrize(("cmd", "data"), [("DD", ""), ("1", ""), ("D", "x" * 33), ("D", "Số"), ("D", "a\nb")])
def test_qms_serial_refuses_to_encode_bad_frames(cmd: str, data: str) -> None:
    with pytest.raises(qs.FrameError):
        qs.encode_frame(1, cmd, data)


def test_qms_serial_decoder_drops_and_resyncs() -> None:
    good = qs.encode_frame(2, "K", "N")
    bad_chk = good[:-3] + b"00" + good[-1:]
    dec = qs.FrameDecoder()
    stream = (b"\xff\x00zz"        # garbage: 4 bytes
              + bad_chk                # bad_checksum
              + b"\x0201K" + good      # a frame cut short by the next STX: bad_frame; then a good one
              + b"\x02" + b"0" * 40 + b"\x03"  # too long: bad_frame after 38 bytes, then 3 bytes garbage
              + b"\x0201D\x01\x0246\x03"  # cut short by an STX (bad_frame), then "46" is too short (bad_frame)
              + b"\x0201Kn\x7f\x03"     # CHK not hex: bad_frame
              + b"\x02zzKN00\x03"        # ADDR not hex: bad_frame
              + b"\x0203KR1a\x03")       # lower-case hex digits are accepted
    frames = []
    for i in range(len(stream)):  # one byte at a time: framing must not depend on how reads split
        frames += dec.feed_frames(stream[i:i + 1])
    assert frames == [qs.Frame(2, "K", "N"), qs.Frame(3, "K", "R")]
    assert dec.drops["garbage"] == 4 + 3
    assert dec.drops["bad_checksum"] == 1
    assert dec.drops["bad_frame"] == 6


def test_qms_serial_host_decoder_events() -> None:
    dec = qs.QmsSerialDriver().decoder()
    data = b"".join([qs.encode_frame(1, "A", "D"), qs.encode_frame(2, "K", "T3"),
                     qs.encode_frame(3, "E", "LED"), qs.encode_frame(1, "D", "1005")])
    assert dec.feed(data, 0.0) == [Ack(1, "D"), KeyPress(2, "T3"), DeviceError(3, "", "LED"),
                                   Unexpected(1, "D1005")]


def test_qms_serial_driver_requests() -> None:
    d = qs.QmsSerialDriver()
    r = d.show(1, "1005", flash=False)
    assert (r.address, r.frame, r.expect) == (1, b"\x0201D100541\x03", "D")
    r = d.show(1, "1001", flash=True)
    assert (r.frame, r.expect) == (b"\x0201F100147\x03", "F")
    r = d.show(1, "", flash=True)
    assert (r.frame, r.expect) == (b"\x0201C42\x03", "C")
    assert d.ping(1, "1005").frame == b"\x0201P51\x03"
    assert d.show(7, "Đ005", flash=False).frame == qs.encode_frame(7, "D", "D005")


def test_ascii_text() -> None:
    assert ascii_text("Đ005") == "D005"
    assert ascii_text("Quầy 1") == "Quay 1"
    assert ascii_text("a\tb") == "ab"


# ---------------------------------------------------------------- modbus-led


def crc_reference(data: bytes) -> int:
    """CRC-16/MODBUS straight from its catalogue definition (poly 0x8005, init 0xFFFF, input and
    output reflected), bit by bit and most significant bit first: a different algorithm from
    the table-driven one under test."""
    def reflect(x: int, bits: int) -> int:
        return int(f"{x:0{bits}b}"[::-1], 2)
    crc = 0xFFFF
    for b in data:
        crc ^= reflect(b, 8) << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return reflect(crc, 16)


def test_crc_check_value() -> None:
    assert mb.crc16(b"123456789") == crc_reference(b"123456789") == 0x4B37


@pytest.mark.parametrize(("frame", "hexbytes"), [
    (mb.write_single(3, 0x0000, 1005), "03 06 00 00 03 ED 48 95"),           # the example
    (mb.write_single(0x11, 0x0001, 3), "11 06 00 01 00 03 9A 9B"),           # Modbus FC06 textbook frame
    (mb.read_holding(0x11, 0x006B, 3), "11 03 00 6B 00 03 76 87"),           # FC03 textbook frame
    (mb.read_holding(1, 0, 10), "01 03 00 00 00 0A C5 CD"),
    (mb.write_multiple(0x11, 0x0001, bytes.fromhex("000A0102")), "11 10 00 01 00 02 04 00 0A 01 02 C6 F0"),
    (mb.write_multiple_response(0x11, 0x0001, 2), "11 10 00 01 00 02 12 98"),
])
def test_modbus_known_frames(frame: bytes, hexbytes: str) -> None:
    assert frame == bytes.fromhex(hexbytes)
    assert mb.crc_ok(frame)


def test_fc16_segment_frame_for_1005() -> None:
    # "1005" -> segments 06 3F 3F 6D, two per register, to 0x0080 on display 1
    body = bytes.fromhex("01 10 00 80 00 02 04 06 3F 3F 6D")
    c = crc_reference(body)
    assert (c & 0xFF, c >> 8) == (0x1B, 0x56)
    expected = bytes.fromhex("01 10 00 80 00 02 04 06 3F 3F 6D 1B 56")
    assert mb.write_multiple(1, mb.SEGMENT_REGISTER, mb.segment_bytes("1005")) == expected
    req = mb.ModbusLedDriver().show(1, "1005", flash=True, digits=4)
    assert (req.frame, req.expect) == (expected, "16")


@pytest.mark.parametrize(("text", "digits", "codes"), [
    ("1005", 4, "06 3F 3F 6D"),
    ("0123456789", 10, "3F 06 5B 4F 66 6D 7D 07 7F 6F"),
    ("----", 4, "40 40 40 40"),
    ("7", 4, "00 00 00 07"),                    # right-aligned
    ("123456", 4, "4F 66 6D 7D"),              # the last digits of a longer text
    ("OFF", 4, "00 3F 71 71"),
    ("E-01", 4, "79 40 3F 06"),
    ("PAUS", 4, "73 77 3E 6D"),
    ("r-3", 4, "00 50 40 4F"),
    ("Đ05", 4, "00 5E 3F 6D"),
    ("123", 3, "06 5B 4F 00"),                  # an odd panel fills whole registers
    ("", 4, "00 00 00 00"),
    ("KM", 2, "00 00"),                         # no 7-segment drawing: blank
])
def test_segment_bytes(text: str, digits: int, codes: str) -> None:
    assert mb.segment_bytes(text, digits) == bytes.fromhex(codes)


def test_segments_read_back() -> None:
    assert mb.segments_text(mb.segment_bytes("1005")) == "1005"
    assert mb.segments_text(mb.segment_bytes("OFF")) == " 0FF"  # O and 0 look the same
    assert mb.segments_text(bytes([0x3F | 0x80])) == "0"        # decimal point ignored


def test_rtu_host_decoder() -> None:
    dec = mb.ModbusLedDriver().decoder()
    ok = mb.write_multiple_response(5, mb.SEGMENT_REGISTER, 2)
    exc = mb.exception_response(5, mb.WRITE_MULTIPLE, mb.ILLEGAL_ADDRESS)
    read = mb.read_holding_response(5, b"\x06\x3f")
    bad = ok[:-1] + bytes([ok[-1] ^ 0xFF])
    events = dec.feed(b"\x07" + ok + exc, 0.0)          # a garbage byte (function 0x05 is not a response)
    assert events == [Ack(5, "16"), DeviceError(5, "16", "Modbus exception 2")]
    assert dec.feed(bad, 1.0) == [] and dec.drops["bad_checksum"] == 1
    assert dec.feed(read[:4], 2.0) == []                 # half a frame...
    assert dec.feed(ok, 2.5) == [Ack(5, "16")]          # ...then silence: it was cut short
    assert dec.drops["bad_frame"] == 1
    assert dec.feed(read[:3], 3.0) + dec.feed(read[3:], 3.01) == [Ack(5, "3")]
    assert dec.drops["garbage"] == 1


def test_rtu_device_decoder_reads_requests() -> None:
    dec = mb.RtuDecoder("device")
    req = mb.write_multiple(1, 0x80, b"\x06\x3f\x3f\x6d")
    frames = dec.feed_frames(req[:5], 0.0) + dec.feed_frames(req[5:], 0.001)
    assert frames == [mb.RtuFrame(1, 0x10, req[2:-2])]


def test_drivers_registry() -> None:
    assert set(DRIVERS) == {"qms-serial", "modbus-led"}
    assert DRIVERS["qms-serial"].has_keys and not DRIVERS["modbus-led"].has_keys


# ---------------------------------------------------------------- the simulator's devices


def test_simulated_qms_serial_devices() -> None:
    panels = {1: Panel(1, "1"), 2: Panel(2, "2")}
    sim = QmsSerialDevices(panels)
    out, shown = sim.feed(qs.encode_frame(1, "F", "1005") + qs.encode_frame(2, "P") + qs.encode_frame(9, "D", "9"), 0)
    assert out == qs.encode_frame(1, "A", "F") + qs.encode_frame(2, "A", "P")
    assert [(s.address, s.kind, s.text, s.flash) for s in shown] == [(1, "show", "1005", True), (2, "ping", "", False)]
    panels[2].muted = True
    out, _ = sim.feed(qs.encode_frame(2, "D", "12") + qs.encode_frame(0xFF, "D", "OFF"), 0)
    assert out == b""  # muted, and broadcasts are never answered
    assert panels[1].text == panels[2].text == "OFF"
    assert sim.key(2, "N") == b"\x0202KN07\x03"
    out, _ = sim.feed(qs.encode_frame(1, "X", ""), 0)
    assert out == qs.encode_frame(1, "E", "CMD X")


def test_simulated_modbus_display_answers_the_driver() -> None:
    sim = ModbusLedDevices({5: Panel(5, "1")}, digits=4)
    driver = mb.ModbusLedDriver()
    host = driver.decoder()
    out, shown = sim.feed(driver.show(5, "2001", flash=False, digits=4).frame, 0.0)
    assert out == mb.write_multiple_response(5, 0x80, 2)
    assert host.feed(out, 0.0) == [Ack(5, "16")]
    assert shown[0].text == "2001"
    out, shown = sim.feed(mb.write_single(5, 0, 1005), 1.0)
    assert out == mb.write_single(5, 0, 1005) and shown[0].text == "1005"
    out, _ = sim.feed(mb.read_holding(5, 0x80, 2), 2.0)
    assert out == mb.read_holding_response(5, mb.segment_bytes("1005"))
    out, _ = sim.feed(mb.write_single(5, 7, 1), 3.0)
    assert out == mb.exception_response(5, 6, mb.ILLEGAL_ADDRESS)
    out, _ = sim.feed(mb.with_crc(bytes([5, 0x04, 0, 0, 0, 1])), 4.0)  # FC04: not a display's
    assert out == b""  # the device cannot tell its length: it waits for silence and drops it
