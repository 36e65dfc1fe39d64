"""The dossier receipt (giấy biên nhận) on a counter's ESC/POS printer: a 1-bit image like the
ticket's (printers cannot print Vietnamese text, but every one prints an image), with the office,
the procedure, the code, both dates, the documents and the QR code of the dossier's page.
Rendering is pure; printing reuses the kiosk's printer code (printing/printer.py), one printer
object per `[[receipt_printers]]` entry.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from aiohttp import web
from PIL import Image

from display_server.base import SETTINGS
from display_server.printing.printer import PrintResult, TicketPrinter
from display_server.printing.ticket_image import Canvas, Fonts
from display_server.texts import Texts

PRINTERS = web.AppKey("receipt_printers", dict)  # dict[str, ReceiptPrinter]: per counter


@dataclass(frozen=True)
class Receipt:
    office: str
    code: str
    procedure: str
    received: str    # as the page shows it: HH:MM dd/mm/yyyy
    due: str         # dd/mm/yyyy
    documents: tuple[str, ...]
    url: str         # the dossier's page, for the QR code


def receipt_lines(r: Receipt, t: Texts) -> list[tuple[str, str]]:
    """(style, text) in print order, NFC: what the image shows, for tests to read."""
    lines = [("office", r.office), ("title", t.rc_title), ("code", t.rc_code.format(code=r.code)),
             ("text", t.rc_procedure.format(name=r.procedure)), ("text", t.rc_received.format(when=r.received)),
             ("due", t.rc_due.format(day=r.due))]
    if r.documents:
        lines.append(("text", t.rc_documents))
        lines += [("item", f"{i}. {doc}") for i, doc in enumerate(r.documents, 1)]
    return [(style, unicodedata.normalize("NFC", text)) for style, text in lines]


def render_receipt(r: Receipt, *, width: int, fonts: Fonts, t: Texts | None = None) -> Image.Image:
    t = t or Texts("vi")
    c = Canvas(width)
    for style, text in receipt_lines(r, t):
        if style == "office":
            c.text(text, fonts.bold, 26, gap=6)
            c.rule()
        elif style == "title":
            c.text(text, fonts.bold, 32, gap=14, fit=True)
        elif style in ("code", "due"):
            c.text(text, fonts.bold, 27, gap=10, left=True)
        elif style == "item":
            c.text(text, fonts.regular, 23, gap=4, left=True)
        else:
            c.text(text, fonts.regular, 25, gap=8, left=True)
    c.rule()
    c.qr(r.url, 260)
    c.text(t.rc_scan, fonts.regular, 22, gap=4)
    return c.finish()


class ReceiptPrinter(TicketPrinter):
    """A counter's receipt printer: the kiosk's printer code, another image."""

    def _job(self, receipt: Receipt, t: Texts) -> str | None:  # type: ignore[override]
        return self._send(render_receipt(receipt, width=self.settings.width_px, fonts=self.fonts, t=t), t)

    async def print_receipt(self, receipt: Receipt, t: Texts) -> PrintResult:
        return await self.print(receipt, t)  # type: ignore[arg-type]


def printer_for(app: web.Application, counter: str) -> ReceiptPrinter | None:
    return app[PRINTERS].get(counter)


def setup(app: web.Application) -> None:
    printers: dict[str, ReceiptPrinter] = {}
    for rp in app[SETTINGS].receipt_printers:
        p = ReceiptPrinter(rp.printer)  # one job at a time per printer, whichever counter sends it
        for counter in rp.counters:
            printers[counter] = p
    app[PRINTERS] = printers
    app.on_cleanup.append(_close)


async def _close(app: web.Application) -> None:
    for p in set(app[PRINTERS].values()):
        p.close()

