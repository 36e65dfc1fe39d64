"""The reports' charts as inline SVG, drawn on the server (no script library: the pages allow no
script but their own files, and a printed page needs none). Pure: figures in, SVG text out.

Colours come from classes (static/reports.css): the Content-Security-Policy refuses inline
styles, and presentation attributes would not follow a printer-friendly stylesheet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from html import escape
from typing import Any

from display_server.reports.layout import number_text

WIDTH = 960
TREND_HEIGHT = 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 48, 16, 40


def _nice_max(value: float) -> float:
    """An axis maximum of four equal steps a reader can read (each 1, 2 or 5 times a power of
    ten), at least the value: 3 → 4, 110 → 200, 2000 → 2000."""
    if value <= 0:
        return 4
    raw = max(value / 4, 1)  # counts: a step of at least one
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * power >= raw:
            return 4 * m * power
    return 40 * power


def _svg(width: int, height: int, label: str, body: list[str], css: str) -> str:
    return (f'<svg class="chart {css}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>' + "".join(body) + "</svg>")


def trend_svg(trend: Sequence[tuple[date, Any]], *, title: str) -> str:
    """Served tickets per day (bars, left axis) and satisfaction per day (a line, right axis 0–100 %;
    a day without units leaves a gap)."""
    n = len(trend)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, TREND_HEIGHT - _TOP - _BOTTOM
    body: list[str] = []
    if n == 0:
        body.append(f'<text class="empty" x="{WIDTH / 2}" y="{TREND_HEIGHT / 2}" text-anchor="middle">'
                    'Chưa có dữ liệu</text>')
        return _svg(WIDTH, TREND_HEIGHT, title, body, "trend")
    top = _nice_max(max(f.served for _, f in trend))
    slot = plot_w / n
    bar = max(1.0, slot * 0.7)
    base_y = _TOP + plot_h
    # the axes: counts on the left, percent on the right, a grid line at each quarter
    for i in range(5):
        y = _TOP + plot_h * (1 - i / 4)
        body.append(f'<line class="grid" x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + plot_w}" y2="{y:.1f}"/>')
        body.append(f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                    f'{number_text(top * i / 4)}</text>')
        body.append(f'<text class="axis pct" x="{_LEFT + plot_w + 6}" y="{y + 4:.1f}">{25 * i}%</text>')
    points: list[list[str]] = [[]]
    every = max(1, round(n / 12))  # at most about 12 day labels under the axis
    for i, (day, f) in enumerate(trend):
        x = _LEFT + slot * i + (slot - bar) / 2
        h = plot_h * f.served / top
        tip = f"{day:%d/%m/%Y}: {f.served} lượt phục vụ"
        if f.satisfaction_pct is not None:
            tip += f", hài lòng {number_text(f.satisfaction_pct, 1)}%"
        body.append(f'<rect class="served" x="{x:.1f}" y="{base_y - h:.1f}" width="{bar:.1f}" height="{h:.1f}">'
                    f'<title>{escape(tip)}</title></rect>')
        cx = _LEFT + slot * (i + 0.5)
        if f.satisfaction_pct is None:
            points.append([])  # a gap, not a fall to zero
        else:
            points[-1].append(f"{cx:.1f},{_TOP + plot_h * (1 - f.satisfaction_pct / 100):.1f}")
        if i % every == 0:
            body.append(f'<text class="axis" x="{cx:.1f}" y="{base_y + 16}" text-anchor="middle">{day:%d/%m}</text>')
    for line in points:
        if len(line) > 1:
            body.append(f'<polyline class="satisfaction" points="{" ".join(line)}"/>')
        for p in line:
            x, y = p.split(",")
            body.append(f'<circle class="satisfaction" cx="{x}" cy="{y}" r="2.5"/>')
    body.append(f'<line class="axis-line" x1="{_LEFT}" y1="{base_y}" x2="{_LEFT + plot_w}" y2="{base_y}"/>')
    return _svg(WIDTH, TREND_HEIGHT, title, body, "trend")


def officers_svg(rows: Sequence[Any], *, title: str) -> str:
    """Officers side by side: for each, the tickets served (a bar scaled to the busiest) and the
    satisfaction (a bar on 0–100 %), with their values written beside them."""
    row_h, label_w, gap = 28, 220, 40
    height = _TOP + max(1, len(rows)) * row_h + 24
    half = (WIDTH - label_w - gap) / 2
    body = [f'<text class="head" x="{label_w}" y="{_TOP}">Đã phục vụ</text>',
            f'<text class="head" x="{label_w + half + gap}" y="{_TOP}">Tỷ lệ hài lòng (%)</text>']
    if not rows:
        body.append(f'<text class="empty" x="{WIDTH / 2}" y="{_TOP + 30}" text-anchor="middle">Chưa có dữ liệu</text>')
        return _svg(WIDTH, height, title, body, "officers")
    top = max(max(r.figures.served for r in rows), 1)
    for i, r in enumerate(rows):
        y = _TOP + 10 + i * row_h
        f = r.figures
        body.append(f'<text class="label" x="{label_w - 8}" y="{y + 15}" text-anchor="end">{escape(r.label)}</text>')
        w = (half - 60) * f.served / top
        body.append(f'<rect class="served" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}">'
                    f'<title>{escape(r.label)}: {f.served} lượt phục vụ</title></rect>')
        body.append(f'<text class="value" x="{label_w + w + 4:.1f}" y="{y + 15}">{number_text(f.served)}</text>')
        x2 = label_w + half + gap
        if f.satisfaction_pct is None:
            body.append(f'<text class="value" x="{x2}" y="{y + 15}">—</text>')
            continue
        w2 = (half - 60) * f.satisfaction_pct / 100
        body.append(f'<rect class="satisfaction" x="{x2}" y="{y + 3}" width="{w2:.1f}" height="{row_h - 8}">'
                    f'<title>{escape(r.label)}: hài lòng {number_text(f.satisfaction_pct, 1)}%</title></rect>')
        body.append(f'<text class="value" x="{x2 + w2 + 4:.1f}" y="{y + 15}">'
                    f'{number_text(f.satisfaction_pct, 1)}%</text>')
    return _svg(WIDTH, height, title, body, "officers")
