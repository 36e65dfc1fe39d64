"""The kiosk's receipt printer: the ticket image sent over ESC/POS with python-escpos (a device file,
a serial port, the network or USB), in a thread of its own so the event loop never waits on it.

One job at a time per printer; each job opens the device afresh, so a printer that was switched
off and on again is found. An absent printer or one out of paper is a PrintError with a message
for the kiosk's screen; the ticket is issued all the same.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from escpos import exceptions as escpos_errors
from escpos import printer
from escpos.escpos import Escpos
from PIL import Image

from display_server.printing.ticket_image import Fonts, PrintedTicket, render
from display_server.settings import PrinterSettings
from display_server.texts import Texts

log = logging.getLogger(__name__)

# paper_status(): 2 plenty, 1 near the end, 0 none
PAPER_OUT, PAPER_LOW = 0, 1
# types that can answer a status query (a device file is write-only)
_READABLE = ("serial", "network", "usb")


class PrintError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class PrintResult:
    ok: bool
    message: str | None = None  # for the kiosk: why it did not print, or a warning (paper low)


def open_printer(s: PrinterSettings) -> Escpos:
    """The python-escpos printer object for the settings (not yet connected)."""
    p: Escpos
    if s.type == "file":
        p = printer.File(devfile=s.device)
    elif s.type == "serial":
        p = printer.Serial(devfile=s.device, baudrate=s.baudrate, timeout=s.timeout_s)
    elif s.type == "network":
        p = printer.Network(host=s.host, port=s.port, timeout=s.timeout_s)
    elif s.type == "usb":
        p = printer.Usb(idVendor=s.vendor_id, idProduct=s.product_id, timeout=round(s.timeout_s * 1000))
    else:
        raise ValueError(f"không có máy in kiểu {s.type!r}")
    # The paper's width in dots: python-escpos's default profile does not know it (and says so on
    # stdout at every image).
    p.profile.profile_data = {**p.profile.profile_data,
                              "media": {"width": {"pixels": s.width_px, "mm": s.paper_width_mm}, "dpi": 203}}
    return p


def send_image(p: Escpos, image: Image.Image, s: PrinterSettings, t: Texts) -> str | None:
    """Print one image on an opened printer (blocking); a warning to show, or PrintError."""
    warning = None
    if s.check_paper and s.type in _READABLE:
        paper = p.paper_status()
        if paper == PAPER_OUT:
            raise PrintError(t.print_no_paper)
        if paper == PAPER_LOW:
            warning = t.print_low_paper
    p.image(image, impl="bitImageRaster")
    if s.cut:
        p.cut()
    return warning


class TicketPrinter:
    def __init__(self, settings: PrinterSettings) -> None:
        self.settings = settings
        self.fonts = Fonts(settings.font, settings.font_bold)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="printer")

    def _job(self, ticket: PrintedTicket, t: Texts) -> str | None:
        return self._send(render(ticket, width=self.settings.width_px, fonts=self.fonts), t)

    def _send(self, image: Image.Image, t: Texts) -> str | None:
        """Open the printer, print one image, close it (blocking: runs in the printer's thread)."""
        try:
            p = open_printer(self.settings)
            p.open()
        except (escpos_errors.Error, OSError, ValueError) as exc:
            log.warning("Không mở được máy in %s: %s", self._where(), exc)
            raise PrintError(t.print_unreachable) from None
        try:
            return send_image(p, image, self.settings, t)
        except (escpos_errors.Error, OSError) as exc:
            log.warning("Máy in %s lỗi: %s", self._where(), exc)
            raise PrintError(t.print_failed) from None
        finally:
            try:
                p.close()
            except (escpos_errors.Error, OSError):
                pass

    def _where(self) -> str:
        s = self.settings
        if s.type == "network":
            return f"{s.host}:{s.port}"
        if s.type == "usb":
            return f"USB {s.vendor_id:04x}:{s.product_id:04x}"
        return str(s.device)

    async def print(self, ticket: PrintedTicket, t: Texts) -> PrintResult:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.settings.timeout_s * 2 + 2):
                warning = await loop.run_in_executor(self._executor, self._job, ticket, t)
        except PrintError as exc:
            return PrintResult(False, exc.message)
        except TimeoutError:
            log.warning("Máy in %s không trả lời", self._where())
            return PrintResult(False, t.print_unreachable)
        except Exception:  # a bug of a driver must not take the ticket with it
            log.exception("Lỗi khi in vé")
            return PrintResult(False, t.print_failed)
        return PrintResult(True, warning)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def status_of(result: PrintResult | None, mode: str) -> dict[str, Any]:
    """The `print` part of the kiosk API's answer."""
    if result is None:
        return {"mode": mode, "ok": True, "message": None}
    return {"mode": mode, "ok": result.ok, "message": result.message}
