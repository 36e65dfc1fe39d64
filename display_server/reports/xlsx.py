"""A report as an Excel workbook (openpyxl), the file `GET /reports/export.xlsx` sends. Pure: reports
in, the file's bytes out.

One sheet per dimension, the one asked for first. Each sheet: the office's name, the report's
title and its period in rows 1–3; the table's header in row HEADER_ROW (repeated on every
printed page); one row per group, then the total row ("Tổng cộng"); the notes (the 766 basis);
the date line and the signature block ("Người lập biểu", "Thủ trưởng đơn vị"). Cells hold real
numbers: durations in minutes with one decimal, shares in percent with one decimal, counts as
integers; an empty cell where a figure has no value. Printed on A4 landscape, fit to the page's
width, with the office and the period in the page header and page numbers in the footer.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from display_server.reports.layout import DIMENSION_NAMES, SHEET_NAMES, Column, Kind, columns

HEADER_ROW = 5
TOTAL_LABEL = "Tổng cộng"
FORMATS = {Kind.COUNT: "#,##0", Kind.MINUTES: "0.0", Kind.PERCENT: "0.0"}

_THIN = Side(style="thin", color="808080")
_BOX = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEAD_FILL = PatternFill("solid", fgColor="F2E6D9")
_TOTAL_FILL = PatternFill("solid", fgColor="EFEFEF")
_BOLD = Font(bold=True)


def title_of(dimension: str) -> str:
    return f"BÁO CÁO KẾT QUẢ PHỤC VỤ THEO {DIMENSION_NAMES[dimension].upper()}"


def workbook_bytes(reports: Sequence[Any], *, office: str, levels: Sequence[str], target_wait_min: float,
                   made_on: date) -> bytes:
    """The .xlsx file of these reports (the same period, one per dimension; the first one's sheet
    comes first). `made_on`: the date of the signature block's date line."""
    wb = Workbook()
    cols = columns(levels, target_wait_min)
    for i, report in enumerate(reports):
        ws = wb.active if i == 0 else wb.create_sheet()
        assert isinstance(ws, Worksheet)
        _sheet(ws, report, cols, office=office, made_on=made_on)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _value(column: Column, figures: Any) -> float | int | None:
    v = column.value(figures)
    if v is None:
        return None
    # rounded as shown: a sum of the cells the reader adds up agrees with what they see
    return v if column.kind is Kind.COUNT else round(float(v), 1)


def _sheet(ws: Worksheet, report: Any, cols: list[Column], *, office: str, made_on: date) -> None:
    dimension = str(report.dimension)
    ws.title = SHEET_NAMES[dimension]
    width = len(cols) + 1
    last = get_column_letter(width)
    period = report.period
    period_line = f"Kỳ báo cáo: {period.heading}"

    ws["A1"] = office
    ws["A1"].font = Font(bold=True, size=12)
    ws["A2"] = title_of(dimension)
    ws["A2"].font = Font(bold=True, size=14)
    ws["A3"] = period_line
    ws["A3"].font = Font(italic=True)
    for row in (1, 2, 3):
        ws.merge_cells(f"A{row}:{last}{row}")
        ws[f"A{row}"].alignment = Alignment(horizontal="center" if row > 1 else "left")

    headers = [DIMENSION_NAMES[dimension], *(c.header for c in cols)]
    for j, text in enumerate(headers, start=1):
        cell = ws.cell(HEADER_ROW, j, text)
        cell.font, cell.fill, cell.border = _BOLD, _HEAD_FILL, _BOX
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    ws.row_dimensions[HEADER_ROW].height = 48

    r = HEADER_ROW
    for row in [*report.rows, report.total]:
        r += 1
        is_total = row is report.total
        label = ws.cell(r, 1, TOTAL_LABEL if is_total else row.label)
        label.border = _BOX
        for j, column in enumerate(cols, start=2):
            cell = ws.cell(r, j, _value(column, row.figures))
            cell.number_format = FORMATS[column.kind]
            cell.border = _BOX
        if is_total:
            for j in range(1, width + 1):
                ws.cell(r, j).font, ws.cell(r, j).fill = _BOLD, _TOTAL_FILL

    r += 2
    for note in report.notes:
        ws.cell(r, 1, f"Ghi chú: {note}").alignment = Alignment(wrap_text=False)
        r += 1

    # the date line and the signature block: the maker on the left, the head of the office on the right
    r += 1
    right = max(2, width - 4)
    date_line = f"……, ngày {made_on.day:02d} tháng {made_on.month:02d} năm {made_on.year}"
    ws.cell(r, right, date_line).font = Font(italic=True)
    r += 1
    for col, title, hint in ((1, "Người lập biểu", "(Ký, ghi rõ họ tên)"),
                             (right, "Thủ trưởng đơn vị", "(Ký tên, đóng dấu)")):
        ws.cell(r, col, title).font = _BOLD
        ws.cell(r, col).alignment = Alignment(horizontal="center")
        ws.cell(r + 1, col, hint).font = Font(italic=True)
        ws.cell(r + 1, col).alignment = Alignment(horizontal="center")

    ws.column_dimensions["A"].width = 32
    for j in range(2, width + 1):
        ws.column_dimensions[get_column_letter(j)].width = 12
    ws.freeze_panes = ws.cell(HEADER_ROW + 1, 2)

    print_a4_landscape(ws, HEADER_ROW, office, period.label)


def print_a4_landscape(ws: Worksheet, header_row: int, left: str, right: str) -> None:
    """A report sheet's print setup (the office's and the province's): A4 landscape, every column
    on the page's width, the header row on every page, `left` and `right` in the page header and
    the page number at the foot."""
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.orientation = ws.ORIENTATION_LANDSCAPE
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = f"{header_row}:{header_row}"
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.oddHeader.left.text = _escape(left)
    ws.oddHeader.right.text = _escape(right)
    ws.oddFooter.center.text = "Trang &P / &N"


def _escape(text: str) -> str:
    """Text for a printed page header, where "&" starts a code (&P: the page number)."""
    return text.replace("&", "&&")
