"""The XLSX writer (display_server/reports/xlsx.py), pure: reports in, a workbook out, opened again
with openpyxl as a province's script or Excel would: headers, real numbers and their formats, the
total row, one sheet per dimension, the print setup and the signature block."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from display_server.reports.figures import Dimension, Figures, Report, Row
from display_server.reports.layout import change, columns, number_text
from display_server.reports.periods import period_of
from display_server.reports.xlsx import HEADER_ROW, TOTAL_LABEL, workbook_bytes

LEVELS = ("Không hài lòng", "Hài lòng", "Rất hài lòng")
OFFICE = "Bộ phận Một cửa UBND xã Hòa Bình & Tân Lập"
MARCH = period_of("month", date(2026, 3, 10))


def figures(**kw: Any) -> Figures:
    base = dict(issued=0, served=0, no_show=0, transferred=0, wait_mean_s=None, wait_median_s=None,
                wait_p90_s=None, wait_max_s=None, service_mean_s=None, service_median_s=None,
                within_target=None, ratings=(0, 0, 0), units=0, dissatisfied=0, satisfaction_pct=None,
                basis="tickets", dossiers_received=0, dossiers_on_time=0, dossiers_overdue=0)
    return Figures(**{**base, **kw})


HOA = figures(issued=120, served=110, no_show=6, transferred=4, wait_mean_s=754.0, wait_median_s=600.0,
              wait_p90_s=1500.0, wait_max_s=2710.0, service_mean_s=333.0, service_median_s=300.0,
              within_target=0.8142, ratings=(2, 30, 50), units=100, dissatisfied=2, satisfaction_pct=98.0,
              basis="mixed", dossiers_received=40, dossiers_on_time=35, dossiers_overdue=1)
MINH = figures(issued=80, served=70, no_show=10, wait_mean_s=300.0, wait_median_s=240.0, wait_p90_s=600.0,
               wait_max_s=900.0, service_mean_s=420.0, service_median_s=400.0, within_target=1.0,
               ratings=(7, 10, 3), units=70, dissatisfied=7, satisfaction_pct=90.0, basis="tickets")
ALL = figures(issued=200, served=180, no_show=16, transferred=4, wait_mean_s=577.0, wait_median_s=420.0,
              wait_p90_s=1200.0, wait_max_s=2710.0, service_mean_s=366.0, service_median_s=330.0,
              within_target=0.885, ratings=(9, 40, 53), units=170, dissatisfied=9,
              satisfaction_pct=(170 - 9) / 170 * 100, basis="mixed", dossiers_received=40, dossiers_on_time=35,
              dossiers_overdue=1)
NOTE = "Chưa có hồ sơ cho mọi lượt: 70 lượt phục vụ không có hồ sơ được tính như một hồ sơ (Quyết định 766)."


def report(dimension: Dimension, rows: list[Row]) -> Report:
    return Report(period=MARCH, previous_period=MARCH.previous(), dimension=dimension, rows=rows,
                  total=Row("*", "Tổng cộng", ALL, None), notes=[NOTE], trend=[], pending_days=0)


def reports() -> list[Report]:
    by_officer = report(Dimension.OFFICER, [Row("Nguyễn Thị Hoa", "Nguyễn Thị Hoa", HOA, MINH),
                                            Row("Trần Văn Minh", "Trần Văn Minh", MINH, None)])
    others = [report(d, [Row("x", f"Nhóm {d}", ALL, None)]) for d in Dimension if d is not Dimension.OFFICER]
    return [by_officer, *others]


def workbook() -> Any:
    data = workbook_bytes(reports(), office=OFFICE, levels=LEVELS, target_wait_min=15, made_on=date(2026, 4, 2))
    return load_workbook(io.BytesIO(data))


def header(ws: Worksheet) -> list[str]:
    return [c.value for c in ws[HEADER_ROW]]


def row_of(ws: Worksheet, label: str) -> dict[str, Any]:
    names = header(ws)
    for row in ws.iter_rows(min_row=HEADER_ROW + 1, values_only=True):
        if row[0] == label:
            return dict(zip(names, row, strict=False))
    raise AssertionError(f"no row {label!r}")


def cell_of(ws: Worksheet, label: str, column: str) -> Any:
    j = header(ws).index(column) + 1
    for r in range(HEADER_ROW + 1, ws.max_row + 1):
        if ws.cell(r, 1).value == label:
            return ws.cell(r, j)
    raise AssertionError(f"no row {label!r}")


def test_one_sheet_per_dimension_the_asked_one_first() -> None:
    wb = workbook()
    assert wb.sheetnames == ["Theo cán bộ", "Theo quầy", "Theo lĩnh vực", "Theo thủ tục", "Theo giờ trong ngày",
                             "Theo thứ trong tuần"]
    assert wb.worksheets[1][f"A{HEADER_ROW}"].value == "Quầy"
    assert row_of(wb.worksheets[1], "Nhóm counter")["Đã phục vụ"] == 180


def test_the_contract_columns_with_real_numbers() -> None:
    ws = workbook().worksheets[0]
    names = header(ws)
    for column in ("Đã phục vụ", "Chờ trung bình (phút)", "Rất hài lòng", "Hài lòng", "Không hài lòng",
                   "Tỷ lệ hài lòng (%)"):
        assert names.count(column) == 1, (column, names)
    assert names[0] == "Cán bộ"
    # the levels highest first, as the province's forms list them
    assert names.index("Rất hài lòng") < names.index("Hài lòng") < names.index("Không hài lòng")
    hoa = row_of(ws, "Nguyễn Thị Hoa")
    assert hoa["Đã phục vụ"] == 110 and isinstance(hoa["Đã phục vụ"], int)
    assert hoa["Chờ trung bình (phút)"] == pytest.approx(12.6)  # 754 s = 12.57 min, shown with one decimal
    assert hoa["Chờ lâu nhất (phút)"] == pytest.approx(45.2)
    assert hoa["Rất hài lòng"] == 50 and hoa["Hài lòng"] == 30 and hoa["Không hài lòng"] == 2
    assert hoa["Tỷ lệ hài lòng (%)"] == 98.0
    assert hoa["Chờ không quá 15 phút (%)"] == pytest.approx(81.4)
    assert hoa["Hồ sơ tiếp nhận"] == 40 and hoa["Hồ sơ quá hạn"] == 1
    minh = row_of(ws, "Trần Văn Minh")
    assert minh["Chờ trung bình (phút)"] == 5.0 and minh["Tỷ lệ hài lòng (%)"] == 90.0


def test_formats_and_empty_cells() -> None:
    ws = workbook().worksheets[0]
    assert cell_of(ws, "Nguyễn Thị Hoa", "Chờ trung bình (phút)").number_format == "0.0"
    assert cell_of(ws, "Nguyễn Thị Hoa", "Tỷ lệ hài lòng (%)").number_format == "0.0"
    assert cell_of(ws, "Nguyễn Thị Hoa", "Đã phục vụ").number_format == "#,##0"
    # a figure without a value is an empty cell, never 0 or a dash
    assert cell_of(ws, "Trần Văn Minh", "Hồ sơ tiếp nhận").value == 0
    empty = report(Dimension.OFFICER, [Row("", "(chưa gọi)", figures(issued=3), None)])
    data = workbook_bytes([empty], office=OFFICE, levels=LEVELS, target_wait_min=15, made_on=date(2026, 4, 2))
    ws2 = load_workbook(io.BytesIO(data)).worksheets[0]
    row = row_of(ws2, "(chưa gọi)")
    assert row["Số phiếu đã cấp"] == 3 and row["Chờ trung bình (phút)"] is None and row["Tỷ lệ hài lòng (%)"] is None


def test_the_total_row_is_last_and_bold() -> None:
    ws = workbook().worksheets[0]
    labels = [r[0] for r in ws.iter_rows(min_row=HEADER_ROW + 1, values_only=True) if r[0]]
    assert labels[:3] == ["Nguyễn Thị Hoa", "Trần Văn Minh", TOTAL_LABEL]
    total = row_of(ws, TOTAL_LABEL)
    assert total["Đã phục vụ"] == 180 and total["Số phiếu đã cấp"] == 200
    assert total["Tỷ lệ hài lòng (%)"] == pytest.approx(94.7)
    assert cell_of(ws, TOTAL_LABEL, "Đã phục vụ").font.bold


def test_office_period_notes_and_signature_block() -> None:
    ws = workbook().worksheets[0]
    assert ws["A1"].value == OFFICE
    assert ws["A2"].value == "BÁO CÁO KẾT QUẢ PHỤC VỤ THEO CÁN BỘ"
    assert ws["A3"].value == "Kỳ báo cáo: Tháng 03/2026 (từ ngày 01/03/2026 đến ngày 31/03/2026)"
    texts = [c for row in ws.iter_rows(min_row=HEADER_ROW + 1, values_only=True) for c in row if isinstance(c, str)]
    assert f"Ghi chú: {NOTE}" in texts
    assert "Người lập biểu" in texts and "Thủ trưởng đơn vị" in texts
    assert "……, ngày 02 tháng 04 năm 2026" in texts


def test_print_setup_a4_landscape_fit_to_width_header_repeated() -> None:
    for ws in workbook().worksheets:
        assert int(ws.page_setup.paperSize) == 9  # A4
        assert ws.page_setup.orientation == "landscape"
        assert ws.sheet_properties.pageSetUpPr.fitToPage
        assert ws.page_setup.fitToWidth == 1 and ws.page_setup.fitToHeight == 0
        assert ws.print_title_rows == f"${HEADER_ROW}:${HEADER_ROW}"
        assert ws.oddHeader.left.text == OFFICE.replace("&", "&&")  # "&" alone would be a header code
        assert ws.oddHeader.right.text == "Tháng 03/2026"
        assert ws.freeze_panes == f"B{HEADER_ROW + 1}"


def test_other_levels_make_other_columns() -> None:
    five = ("Rất không hài lòng", "Không hài lòng", "Bình thường", "Hài lòng", "Rất hài lòng")
    names = [c.header for c in columns(five, 10)]
    assert names[names.index("Chờ không quá 10 phút (%)") + 1:][:5] == list(reversed(five))
    r = report(Dimension.OFFICER, [Row("a", "A", replace(HOA, ratings=(1, 2, 3, 4, 5)), None)])
    ws = load_workbook(io.BytesIO(workbook_bytes([r], office=OFFICE, levels=five, target_wait_min=10,
                                                 made_on=date(2026, 4, 2)))).worksheets[0]
    assert row_of(ws, "A")["Bình thường"] == 3 and row_of(ws, "A")["Rất hài lòng"] == 5


def test_the_comparison_with_the_previous_period() -> None:
    up = change(110, 100)
    assert up is not None and up.arrow == "▲" and up.pct == pytest.approx(10) and up.good and up.text == "▲ 10,0%"
    worse = change(600, 300, lower_is_better=True)
    assert worse is not None and worse.arrow == "▲" and worse.good is False
    down = change(5, 10)
    assert down is not None and down.text == "▼ 50,0%" and down.good is False
    assert change(3, 0) is not None and change(3, 0).text == "▲"  # type: ignore[union-attr]
    assert change(None, 4) is None and change(4, None) is None
    same = change(7, 7)
    assert same is not None and same.text == "=" and same.good is None
    assert number_text(1234567.31, 1) == "1.234.567,3" and number_text(98, 0) == "98"
    assert number_text(None) == "—"
