"""The printed ticket as a 1-bit image: receipt printers cannot print Vietnamese text, but every
one of them prints a raster image (../shared/vietnamese.md). Pure: what to print in, image out.

576 dots wide for 80 mm paper, 384 for 58 mm; every size scales with the width.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from display_server.printing import qr
from display_server.texts import Texts

BASE_WIDTH = 576


@dataclass(frozen=True)
class PrintedTicket:
    office: str
    field_name: str
    number: str
    priority: bool
    issued: str  # when, in the site's time zone (timefmt.stamp_text)
    ahead: int | None
    est_wait_s: int | None
    url: str  # the tracking page, for the QR code


@dataclass(frozen=True)
class Fonts:
    regular: Path
    bold: Path


@lru_cache(maxsize=64)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def wait_text(t: Texts, ahead: int | None, est_wait_s: int | None) -> tuple[str, str]:
    """The two lines about the wait: people ahead, and the estimated wait."""
    if ahead is None:
        return "", ""
    people = t.ticket_next if ahead == 0 else t.plural("ticket_ahead", ahead).format(n=ahead)
    if not est_wait_s or ahead == 0:
        return people, ""
    minutes = max(1, math.ceil(est_wait_s / 60))
    if minutes < 60:
        span = t.minutes.format(m=minutes)
    else:
        span = t.hours_minutes.format(h=minutes // 60, m=minutes % 60) if minutes % 60 else \
            t.hours.format(h=minutes // 60)
    return people, t.ticket_wait.format(span=span)


class Canvas:
    def __init__(self, width: int) -> None:
        self.width = width
        self.scale = width / BASE_WIDTH
        self.margin = round(18 * self.scale)
        self.image = Image.new("L", (width, round(2400 * self.scale)), 255)
        self.draw = ImageDraw.Draw(self.image)
        self.y = self.margin

    def px(self, value: float) -> int:
        return max(1, round(value * self.scale))

    def text(self, text: str, font_path: Path, size: float, *, gap: float = 8, fit: bool = False,
             left: bool = False) -> None:
        """Centred lines (flush left with `left`), wrapped at word boundaries (or shrunk to one
        line with fit)."""
        text = unicodedata.normalize("NFC", text)
        px = self.px(size)
        room = self.width - 2 * self.margin
        font = _font(font_path, px)
        if fit:
            while px > 10 and self.draw.textlength(text, font=font) > room:
                px -= 2
                font = _font(font_path, px)
            lines = [text]
        else:
            lines = self._wrap(text, font, room)
        for line in lines:
            x0, top, x1, bottom = self.draw.textbbox((0, 0), line, font=font)
            x = self.margin - x0 if left else (self.width - (x1 - x0)) // 2 - x0
            self.draw.text((x, self.y - top), line, font=font, fill=0)
            self.y += bottom - top + self.px(gap)

    def _wrap(self, text: str, font: ImageFont.FreeTypeFont, room: int) -> list[str]:
        lines: list[str] = []
        for word in text.split():
            if lines and self.draw.textlength(lines[-1] + " " + word, font=font) <= room:
                lines[-1] += " " + word
            else:
                lines.append(word)
        return lines or [""]

    def badge(self, text: str, font_path: Path, size: float) -> None:
        """White text on a black box: the priority mark."""
        font = _font(font_path, self.px(size))
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=font)
        pad = self.px(10)
        w, h = right - left + 2 * pad, bottom - top + 2 * pad
        x0 = (self.width - w) // 2
        self.draw.rectangle((x0, self.y, x0 + w, self.y + h), fill=0)
        self.draw.text((x0 + pad - left, self.y + pad - top), text, font=font, fill=255)
        self.y += h + self.px(12)

    def rule(self) -> None:
        self.y += self.px(4)
        self.draw.line((self.margin, self.y, self.width - self.margin, self.y), fill=0, width=self.px(3))
        self.y += self.px(14)

    def qr(self, data: str, size: float) -> None:
        m = qr.modules(data)
        box = max(2, self.px(size) // (len(m) + 2 * qr.QUIET))
        side = box * len(m)
        x0 = (self.width - side) // 2
        y0 = self.y + box * qr.QUIET
        for r, row in enumerate(m):
            for c, dark in enumerate(row):
                if dark:
                    self.draw.rectangle((x0 + c * box, y0 + r * box, x0 + (c + 1) * box - 1,
                                         y0 + (r + 1) * box - 1), fill=0)
        self.y = y0 + side + box * qr.QUIET

    def finish(self) -> Image.Image:
        height = self.y + self.margin
        cropped = self.image.crop((0, 0, self.width, height))
        # a hard threshold: thermal printers have no grey, and dithered text looks ragged
        return cropped.point(lambda v: 255 if v >= 128 else 0).convert("1", dither=Image.Dither.NONE)


def render(ticket: PrintedTicket, *, width: int, fonts: Fonts, t: Texts | None = None) -> Image.Image:
    t = t or Texts("vi")
    c = Canvas(width)
    c.text(ticket.office, fonts.bold, 28, gap=6)
    c.rule()
    c.text(ticket.field_name, fonts.bold, 36)
    c.text(t.ticket_label, fonts.regular, 26, gap=0)
    c.text(ticket.number, fonts.bold, 170, gap=14, fit=True)
    if ticket.priority:
        c.badge(t.priority_badge, fonts.bold, 28)
    c.text(ticket.issued, fonts.regular, 26, gap=12)
    people, wait = wait_text(t, ticket.ahead, ticket.est_wait_s)
    if people:
        c.text(people, fonts.regular, 26)
    if wait:
        c.text(wait, fonts.regular, 25)
    c.rule()
    c.qr(ticket.url, 250)
    c.text(t.ticket_scan, fonts.regular, 22, gap=4)
    return c.finish()
