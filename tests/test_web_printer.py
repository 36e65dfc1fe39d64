"""Printing tickets: the bytes python-escpos sends (a raster image and the cut) checked against the
rendered image through its File backend; a receipt printer on the network stood in for by a
TCP server that answers the paper-status query (the one thing that cannot run here is a printer);
and the kiosk's API, which issues the ticket whatever the printer does, without blocking."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from PIL import Image

from display_server.printing.printer import PrintResult, TicketPrinter
from display_server.printing.ticket_image import Fonts, PrintedTicket, render
from display_server.settings import DEFAULT_BOLD_FONT, DEFAULT_FONT, PrinterSettings
from display_server.texts import Texts
from display_server.timefmt import stamp_text
from qms_common.devbroker import Broker, free_port
from qms_common.protocol import Topics
from tests.support.core import running_core
from tests.support.mqtt import Probe, new_id
from tests.support.site import write_site
from tests.support.web import running_web, web_extra

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
T = Texts("vi")
GS, ESC, DLE, EOT = b"\x1d", b"\x1b", b"\x10", b"\x04"
PAPER_QUERY = DLE + EOT + b"\x04"
CUT = ESC + b"d\x06" + GS + b"V\x00"  # feed six lines, full cut
# DLE EOT 4 answers: fixed bits 0x12, near end 0x0C, out 0x60
PAPER_OK, PAPER_LOW, PAPER_OUT = 0x12, 0x1E, 0x72

TICKET = PrintedTicket(office="Bộ phận Một cửa UBND xã Hòa Bình", field_name="Hộ tịch", number="2005",
                       priority=False, issued=stamp_text(datetime(2026, 11, 21, 9, 30, tzinfo=TZ), TZ),
                       ahead=4, est_wait_s=1200,
                       url="http://192.168.1.10:8080/t/20261121-ho-tich-2005")


def raster(img: Image.Image) -> bytes:
    """The image as ESC/POS raster rows, computed here pixel by pixel: a black dot is a 1 bit, the
    leftmost dot the highest bit of its byte."""
    px = img.load()
    out = bytearray()
    for y in range(img.height):
        for x0 in range(0, img.width, 8):
            byte = 0
            for bit in range(8):
                x = x0 + bit
                if x < img.width and px[x, y] == 0:
                    byte |= 0x80 >> bit
            out.append(byte)
    return bytes(out)


def parse_raster_prints(data: bytes) -> tuple[int, int, bytes, bytes]:
    """Consecutive `GS v 0` images: (width in bytes, total height, their rows, what follows)."""
    rows = bytearray()
    width = height = 0
    i = 0
    while data[i:i + 3] == GS + b"v0":
        assert data[i + 3] == 0, "normal density"
        w = data[i + 4] | data[i + 5] << 8
        h = data[i + 6] | data[i + 7] << 8
        assert width in (0, w)
        width, height = w, height + h
        rows += data[i + 8:i + 8 + w * h]
        i += 8 + w * h
    return width, height, bytes(rows), data[i:]


def file_printer(tmp_path: Path, **kw: object) -> PrinterSettings:
    return PrinterSettings(type="file", device=str(tmp_path / "lp0"), font=DEFAULT_FONT, font_bold=DEFAULT_BOLD_FONT,
                           **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("mm", "dots"), [(80, 576), (58, 384)])
async def test_a_ticket_is_printed_as_a_raster_image_then_cut(tmp_path: Path, mm: int, dots: int) -> None:
    settings = file_printer(tmp_path, paper_width_mm=mm)
    printer = TicketPrinter(settings)
    try:
        assert await printer.print(TICKET, T) == PrintResult(True, None)
    finally:
        printer.close()
    expected = render(TICKET, width=dots, fonts=Fonts(DEFAULT_FONT, DEFAULT_BOLD_FONT))
    width, height, rows, rest = parse_raster_prints((tmp_path / "lp0").read_bytes())
    assert (width, height) == (dots // 8, expected.height)
    assert rows == raster(expected)
    assert rest == CUT


async def test_no_cut_when_the_printer_has_no_cutter(tmp_path: Path) -> None:
    printer = TicketPrinter(file_printer(tmp_path, cut=False))
    try:
        assert (await printer.print(TICKET, T)).ok
    finally:
        printer.close()
    assert parse_raster_prints((tmp_path / "lp0").read_bytes())[3] == b""


async def test_a_missing_device_is_a_clear_message(tmp_path: Path) -> None:
    printer = TicketPrinter(replace(file_printer(tmp_path), device=str(tmp_path / "khong-co" / "lp0")))
    try:
        result = await printer.print(TICKET, T)
    finally:
        printer.close()
    assert result == PrintResult(False, T.print_unreachable)
    assert "Không kết nối được máy in" in T.print_unreachable


class FakeNetworkPrinter:
    """A receipt printer's TCP port 9100: takes what it is sent, answers the paper status query."""

    def __init__(self, paper: int | None) -> None:
        self.paper = paper  # None: never answers (an old printer that ignores status queries)
        self.received = bytearray()
        self.closed = asyncio.Event()
        self.queried = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeNetworkPrinter:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = 0
        while data := await reader.read(65536):
            self.received += data
            while self.paper is not None and self.received.count(PAPER_QUERY) > answered:
                self.queried.set()
                await self.release.wait()
                writer.write(bytes([self.paper]))
                await writer.drain()
                answered += 1
        writer.close()
        self.closed.set()

    def settings(self, **kw: object) -> PrinterSettings:
        return PrinterSettings(type="network", host="127.0.0.1", port=self.port, timeout_s=2.0, font=DEFAULT_FONT,
                               font_bold=DEFAULT_BOLD_FONT, **kw)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def network_printer(paper: int | None) -> AsyncIterator[tuple[FakeNetworkPrinter, TicketPrinter]]:
    async with FakeNetworkPrinter(paper) as fake:
        printer = TicketPrinter(fake.settings())
        try:
            yield fake, printer
        finally:
            printer.close()


async def test_a_network_printer_is_asked_for_paper_then_prints() -> None:
    async with network_printer(PAPER_OK) as (fake, printer):
        assert await printer.print(TICKET, T) == PrintResult(True, None)
        async with asyncio.timeout(10):
            await fake.closed.wait()
    data = bytes(fake.received)
    assert data.startswith(PAPER_QUERY)
    expected = render(TICKET, width=576, fonts=Fonts(DEFAULT_FONT, DEFAULT_BOLD_FONT))
    assert parse_raster_prints(data[len(PAPER_QUERY):]) == (72, expected.height, raster(expected), CUT)


async def test_low_paper_prints_with_a_warning() -> None:
    async with network_printer(PAPER_LOW) as (fake, printer):
        assert await printer.print(TICKET, T) == PrintResult(True, T.print_low_paper)
        async with asyncio.timeout(10):
            await fake.closed.wait()
    assert parse_raster_prints(bytes(fake.received)[3:])[3] == CUT


async def test_out_of_paper_prints_nothing_and_says_so() -> None:
    async with network_printer(PAPER_OUT) as (fake, printer):
        assert await printer.print(TICKET, T) == PrintResult(False, T.print_no_paper)
        async with asyncio.timeout(10):
            await fake.closed.wait()
    assert bytes(fake.received) == PAPER_QUERY
    assert "hết giấy" in T.print_no_paper


async def test_a_printer_that_never_answers_fails_within_its_timeout() -> None:
    async with network_printer(None) as (fake, printer):
        result = await printer.print(TICKET, T)
    assert not result.ok and result.message == T.print_failed
    assert bytes(fake.received) == PAPER_QUERY


async def test_no_printer_at_the_address() -> None:
    port = free_port()
    printer = TicketPrinter(PrinterSettings(type="network", host="127.0.0.1", port=port, timeout_s=1.0))
    try:
        assert await printer.print(TICKET, T) == PrintResult(False, T.print_unreachable)
    finally:
        printer.close()


# ---------------------------------------------------------------- through the kiosk's API


async def issue(http: aiohttp.ClientSession, url: str, kiosk: str = "kiosk-1") -> dict[str, object]:
    async with http.post(url + "/api/tickets", json={"field": "ho-tich", "kiosk": kiosk}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_the_kiosk_prints_on_its_printer_and_keeps_the_ticket_when_it_cannot(
        broker: Broker, tmp_path: Path) -> None:
    async with FakeNetworkPrinter(PAPER_OK) as fake:
        printer = f'[printer]\ntype = "network"\nhost = "127.0.0.1"\nport = {fake.port}\nkiosks = ["kiosk-1"]\n'
        path, site_id = write_site(tmp_path, broker.url, extra=web_extra(tmp_path, free_port(), more=printer))
        async with running_core(path), running_web(path) as web, aiohttp.ClientSession() as http, \
                Probe(broker.url) as probe:
            # the printer is slow to answer: the server goes on serving meanwhile (it prints in a thread)
            fake.release.clear()
            pending = asyncio.create_task(issue(http, web.url))
            async with asyncio.timeout(20):
                await fake.queried.wait()
            async with http.get(web.url + "/kiosk?id=kiosk-2") as resp:
                assert resp.status == 200
            assert not pending.done()
            fake.release.set()
            body = await pending
            assert body["ok"] and body["ticket"]["number"] == "2001"
            assert body["print"] == {"mode": "printer", "ok": True, "message": None}

            # out of paper: the ticket is issued and shown all the same, with the reason
            fake.paper = PAPER_OUT
            body = await issue(http, web.url)
            assert body["ok"] and body["ticket"]["number"] == "2002"
            assert body["print"] == {"mode": "printer", "ok": False, "message": T.print_no_paper}

            # another kiosk is not this printer's: its browser prints
            body = await issue(http, web.url, kiosk="kiosk-2")
            assert body["print"]["mode"] == "browser"

            reply = await probe.request(Topics(site_id).cmd_query, {"request_id": new_id(), "query": "tickets"})
            assert [t["number"] for t in reply["tickets"]] == ["2001", "2002", "2003"]
            assert [t["source"] for t in reply["tickets"]] == ["kiosk-1", "kiosk-1", "kiosk-2"]
