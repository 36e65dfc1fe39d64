"""What a report's table shows, in one place for the page, the printed page and the XLSX file:
its columns (header, kind of number, the figure behind each), the dimensions' names and the
comparison with the previous period. Pure.

A column's value is the number as people read it: durations in minutes, shares in percent
(0–100), counts as they are. None where the figure has no value (no ticket served: no wait).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from display_server.reports.figures import DIMENSION_NAMES_VI


class Kind(StrEnum):
    COUNT = "count"
    MINUTES = "minutes"
    PERCENT = "percent"


# The dimensions' names, as the picker, the table's first column and the sheets show them.
DIMENSION_NAMES: dict[str, str] = {str(k): v for k, v in DIMENSION_NAMES_VI.items()}
# "Theo cán bộ"…: a sheet's name (at most 31 characters, none of []:*?/\)
SHEET_NAMES = {k: f"Theo {v.lower()}" for k, v in DIMENSION_NAMES.items()}

# These figures are better when lower: the comparison colours a fall green, a rise red.
LOWER_IS_BETTER = frozenset({"no_show", "wait_mean_s", "wait_median_s", "wait_p90_s", "wait_max_s",
                             "dossiers_overdue", "dissatisfied"})


@dataclass(frozen=True)
class Column:
    figure: str  # the Figures field (the drill-down's `figure`); "ratings.N" for level N (1 the lowest)
    header: str
    kind: Kind
    value: Callable[[Any], float | int | None]

    @property
    def lower_is_better(self) -> bool:
        return self.figure in LOWER_IS_BETTER or self.figure == "ratings.1"


def _minutes(name: str) -> Callable[[Any], float | None]:
    def get(f: Any) -> float | None:
        s = getattr(f, name)
        return None if s is None else s / 60
    return get


def _count(name: str) -> Callable[[Any], int | None]:
    return lambda f: getattr(f, name)


def _level(index: int) -> Callable[[Any], int | None]:
    return lambda f: f.ratings[index] if index < len(f.ratings) else 0


def _share(f: Any) -> float | None:
    return None if f.within_target is None else f.within_target * 100


def columns(levels: Sequence[str], target_wait_min: float) -> list[Column]:
    """Every figure of a row, in the order the table shows them; the rating levels highest first
    ("Rất hài lòng", "Hài lòng", "Không hài lòng"), as the province's forms list them."""
    target = f"{target_wait_min:g}".replace(".", ",")
    cols = [
        Column("issued", "Số phiếu đã cấp", Kind.COUNT, _count("issued")),
        Column("served", "Đã phục vụ", Kind.COUNT, _count("served")),
        Column("no_show", "Vắng mặt", Kind.COUNT, _count("no_show")),
        Column("transferred", "Đã chuyển", Kind.COUNT, _count("transferred")),
        Column("wait_mean_s", "Chờ trung bình (phút)", Kind.MINUTES, _minutes("wait_mean_s")),
        Column("wait_median_s", "Chờ trung vị (phút)", Kind.MINUTES, _minutes("wait_median_s")),
        Column("wait_p90_s", "Chờ 90% số lượt không quá (phút)", Kind.MINUTES, _minutes("wait_p90_s")),
        Column("wait_max_s", "Chờ lâu nhất (phút)", Kind.MINUTES, _minutes("wait_max_s")),
        Column("service_mean_s", "Phục vụ trung bình (phút)", Kind.MINUTES, _minutes("service_mean_s")),
        Column("service_median_s", "Phục vụ trung vị (phút)", Kind.MINUTES, _minutes("service_median_s")),
        Column("within_target", f"Chờ không quá {target} phút (%)", Kind.PERCENT, _share),
    ]
    for i in reversed(range(len(levels))):
        cols.append(Column(f"ratings.{i + 1}", levels[i], Kind.COUNT, _level(i)))
    cols += [
        Column("units", "Số hồ sơ/lượt tính hài lòng", Kind.COUNT, _count("units")),
        Column("dissatisfied", "Số không hài lòng", Kind.COUNT, _count("dissatisfied")),
        Column("satisfaction_pct", "Tỷ lệ hài lòng (%)", Kind.PERCENT, _count("satisfaction_pct")),
        Column("dossiers_received", "Hồ sơ tiếp nhận", Kind.COUNT, _count("dossiers_received")),
        Column("dossiers_on_time", "Hồ sơ giải quyết đúng hạn", Kind.COUNT, _count("dossiers_on_time")),
        Column("dossiers_overdue", "Hồ sơ quá hạn", Kind.COUNT, _count("dossiers_overdue")),
    ]
    return cols


@dataclass(frozen=True)
class Change:
    arrow: str  # "▲", "▼" or "="
    pct: float | None  # the change in percent of the previous value; None when that was 0
    good: bool | None  # better (True), worse (False), the same (None)

    @property
    def text(self) -> str:
        if self.arrow == "=":
            return "="
        return self.arrow if self.pct is None else f"{self.arrow} {number_text(abs(self.pct), 1)}%"


def change(now: float | int | None, before: float | int | None, *, lower_is_better: bool = False) -> Change | None:
    """How a figure moved since the previous period; None when either has no value."""
    if now is None or before is None:
        return None
    if abs(now - before) < 1e-9:
        return Change("=", 0.0, None)
    up = now > before
    pct = (now - before) / abs(before) * 100 if before else None
    return Change("▲" if up else "▼", pct, up != lower_is_better)


def number_text(value: float | int | None, decimals: int = 0) -> str:
    """A number as Vietnamese write it: 1.234,5 (dot for thousands, comma for decimals); "—" for none."""
    if value is None:
        return "—"
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\u2009").replace(".", ",").replace("\u2009", ".")


def cell_text(column: Column, value: float | int | None) -> str:
    return number_text(value, 0 if column.kind is Kind.COUNT else 1)
