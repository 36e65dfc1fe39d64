"""CSV exports of ticket records for a province's one-stop information system (and for Excel).

UTF-8 with a byte order mark (Excel then shows Vietnamese correctly), comma-separated, CRLF line
ends, a header row of fixed column names (docs/web.md describes each). Times are ISO 8601 with
the site's offset. A text cell that Excel would take for a formula (= + - @, a tab or a carriage
return at its start) gets a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from display_server.reports.stats import service_s, wait_s
from qms_common.protocol import TicketStatus

BOM = "\ufeff"
# What makes a spreadsheet read a cell as a formula (OWASP's list for CSV injection).
FORMULA_STARTS = frozenset("=+-@\t\r")

STATUS_VI = {
    TicketStatus.WAITING: "Đang chờ",
    TicketStatus.SERVING: "Đang phục vụ",
    TicketStatus.DONE: "Đã phục vụ",
    TicketStatus.NO_SHOW: "Vắng mặt",
    TicketStatus.TRANSFERRED: "Đã chuyển",
    TicketStatus.EXPIRED: "Hết hạn",
}

TICKET_COLUMNS = (
    "ticket_id", "day", "number", "field_id", "field_name", "origin_field_id", "priority", "status",
    "status_name", "kiosk", "issued_at", "called_at", "finished_at", "wait_s", "service_s", "counter_id",
    "counter_name", "officer", "calls", "dossier_code", "rating_score", "rating_level", "rated_at",
)

RATING_COLUMNS = (
    "dossier_code", "rated_at", "rating_score", "rating_max", "rating_level", "officer", "counter_id",
    "counter_name", "field_id", "field_name", "ticket_id", "number", "day", "issued_at", "called_at",
    "finished_at", "wait_s", "service_s",
)


@dataclass(frozen=True)
class Names:
    """What the ids mean at this site: field and counter names, the rating levels (lowest first)."""

    fields: dict[str, str]
    counters: dict[str, str]
    levels: tuple[str, ...]

    def level(self, score: Any) -> str:
        if isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= len(self.levels):
            return self.levels[score - 1]
        return ""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return str(value)  # a number, never a formula (a negative one keeps its sign)
    text = str(value)
    if text[:1] in FORMULA_STARTS:
        return "'" + text
    return text


def ticket_row(r: dict[str, Any], names: Names) -> dict[str, Any]:
    field_id, counter_id = r.get("field"), r.get("counter")
    return {
        "ticket_id": r.get("id"), "day": r.get("day"), "number": r.get("number"), "field_id": field_id,
        "field_name": names.fields.get(str(field_id), ""), "origin_field_id": r.get("origin_field"),
        "priority": bool(r.get("priority")), "status": r.get("status"),
        "status_name": STATUS_VI.get(r.get("status"), ""),  # type: ignore[call-overload]
        "kiosk": r.get("source"), "issued_at": r.get("issued_at"), "called_at": r.get("called_at"),
        "finished_at": r.get("finished_at"), "wait_s": wait_s(r), "service_s": service_s(r),
        "counter_id": counter_id, "counter_name": names.counters.get(str(counter_id), "") if counter_id else "",
        "officer": r.get("officer"), "calls": r.get("calls"), "dossier_code": r.get("dossier"),
        "rating_score": r.get("rating"), "rating_level": names.level(r.get("rating")), "rated_at": r.get("rated_at"),
        "rating_max": len(names.levels),
    }


def is_rated(r: dict[str, Any]) -> bool:
    return r.get("rating") is not None


class CsvWriter:
    """Rows to CSV text, a chunk at a time (the export streams while it pages through the core)."""

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self._buf = io.StringIO()
        self._csv = csv.writer(self._buf, lineterminator="\r\n")

    def header(self) -> str:
        return BOM + self._rows([list(self.columns)])

    def rows(self, records: Iterable[dict[str, Any]], names: Names) -> str:
        return self._rows([[_cell(row.get(c)) for c in self.columns]
                           for row in (ticket_row(r, names) for r in records)])

    def _rows(self, rows: list[list[str]]) -> str:
        self._buf.seek(0)
        self._buf.truncate()
        self._csv.writerows(rows)
        return self._buf.getvalue()
