"""The cross-office report as an Excel workbook (openpyxl). Pure: a report in, the file's bytes out.

One sheet: the province's name, the title and the period in rows 1–3, the header in row
HEADER_ROW (repeated on every printed page), one row per office in ranking order, then the total
row ("Tổng cộng") and the note on what "handled" counts. Cells hold real numbers: counts as
integers, minutes and percentages with one decimal, an empty cell where there is no figure.
A4 landscape, fit to the page's width, the province and the period in the page header.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from display_server.reports.xlsx import print_a4_landscape
from province.web.figures import BASIS_VI, Report, ReportRow

HEADER_ROW = 5
TITLE = "BÁO CÁO CHỈ SỐ PHỤC VỤ CÁC ĐIỂM MỘT CỬA (QUYẾT ĐỊNH 766/QĐ-TTg)"
COUNT, MINUTES, PERCENT, TEXT = "#,##0", "0.0", "0.0", "@"

_THIN = Side(style="thin", color="808080")
_BOX = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEAD_FILL = PatternFill("solid", fgColor="DCE6F1")
_TOTAL_FILL = PatternFill("solid", fgColor="EFEFEF")
_BOLD = Font(bold=True)


@dataclass(frozen=True)
class Column:
    header: str
    number_format: str
    width: float
    value: Callable[[ReportRow], object]


def _one(v: float | None) -> float | None:
    # rounded as shown: a sum the reader makes of the cells agrees with what they see
    return None if v is None else round(v, 1)


COLUMNS: tuple[Column, ...] = (
    Column("Xếp hạng", COUNT, 9, lambda r: r.rank),
    Column("Mã điểm", TEXT, 16, lambda r: r.site or None),
    Column("Tên điểm", TEXT, 36, lambda r: r.name),
    Column("Huyện/thị xã/thành phố", TEXT, 20, lambda r: r.district or None),
    Column("Số phát hành", COUNT, 11, lambda r: r.issued),
    Column("Lượt đã phục vụ", COUNT, 11, lambda r: r.served),
    Column("Thời gian chờ trung bình (phút)", MINUTES, 12,
           lambda r: _one(r.wait_mean_s / 60 if r.wait_mean_s is not None else None)),
    Column("Cơ sở tính", TEXT, 22, lambda r: BASIS_VI[r.handled.basis]),
    Column("Số đã tiếp nhận, giải quyết", COUNT, 12, lambda r: r.handled.handled),
    Column("Không hài lòng", COUNT, 11, lambda r: r.handled.dissatisfied),
    Column("Tỷ lệ hài lòng (%)", PERCENT, 11, lambda r: _one(r.handled.satisfaction_pct)),
    Column("Hồ sơ có hạn đã giải quyết", COUNT, 12, lambda r: r.dossiers_done),
    Column("Giải quyết đúng hạn", COUNT, 11, lambda r: r.dossiers_on_time),
    Column("Tỷ lệ đúng hạn (%)", PERCENT, 11, lambda r: _one(r.on_time_pct)),
)


def period_text(first: date, last: date) -> str:
    return f"Từ ngày {first:%d/%m/%Y} đến ngày {last:%d/%m/%Y}"


def workbook_bytes(report: Report, *, province: str, made_on: date) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert isinstance(ws, Worksheet)
    _sheet(ws, report, province=province, made_on=made_on)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _sheet(ws: Worksheet, report: Report, *, province: str, made_on: date) -> None:
    ws.title = "Báo cáo 766"
    width = len(COLUMNS)
    last = get_column_letter(width)
    period = period_text(report.first, report.last)
    for row, text, font in ((1, province, Font(bold=True, size=12)), (2, TITLE, Font(bold=True, size=14)),
                            (3, f"Kỳ báo cáo: {period}", Font(italic=True))):
        ws.cell(row, 1, text).font = font
        ws.merge_cells(f"A{row}:{last}{row}")
        ws.cell(row, 1).alignment = Alignment(horizontal="center" if row > 1 else "left")

    for j, column in enumerate(COLUMNS, start=1):
        cell = ws.cell(HEADER_ROW, j, column.header)
        cell.font, cell.fill, cell.border = _BOLD, _HEAD_FILL, _BOX
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        ws.column_dimensions[get_column_letter(j)].width = column.width
    ws.row_dimensions[HEADER_ROW].height = 48

    r = HEADER_ROW
    for row in (*report.rows, report.total):
        r += 1
        for j, column in enumerate(COLUMNS, start=1):
            cell = ws.cell(r, j, column.value(row))  # type: ignore[arg-type]
            cell.number_format = column.number_format
            cell.border = _BOX
            if row is report.total:
                cell.font, cell.fill = _BOLD, _TOTAL_FILL

    r += 2
    for note in notes(report):
        ws.cell(r, 1, f"Ghi chú: {note}")
        r += 1
    r += 1
    ws.cell(r, max(2, width - 4), f"……, ngày {made_on.day:02d} tháng {made_on.month:02d} năm {made_on.year}"
            ).font = Font(italic=True)
    ws.freeze_panes = ws.cell(HEADER_ROW + 1, 4)

    print_a4_landscape(ws, HEADER_ROW, province, period)


def notes(report: Report) -> list[str]:
    """What the 766 figures count, as the page and the file say it."""
    return [
        "Tỷ lệ hài lòng = (số đã tiếp nhận, giải quyết − số không hài lòng) ÷ số đã tiếp nhận, "
        "giải quyết × 100 (Quyết định 766/QĐ-TTg).",
        "Điểm có dữ liệu hồ sơ: tính trên hồ sơ tiếp nhận trong kỳ; điểm chưa có dữ liệu hồ sơ: "
        "tính trên lượt đã phục vụ (cột \"Cơ sở tính\").",
        "Đúng hạn: hồ sơ có hạn giải quyết, có kết quả trong kỳ, không muộn hơn hạn.",
    ]
