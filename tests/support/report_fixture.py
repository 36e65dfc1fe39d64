"""A small month of an office with hand-computed report figures (tests/test_report_figures.py,
tests/test_reports_warehouse.py). Ratings: 1 "Không hài lòng", 2 "Hài lòng", 3 "Rất hài lòng";
target wait 10 minutes.

March 2026 (1 March is a Sunday):
- T1–T3, Monday 2 March, field ht, officer An at counter 1: served (wait 5 min, rated 3), served
  with dossier HS-1 (wait 20 min, rated 1), no-show (wait 20 min).
- T4–T6, Friday 20 March: An has moved to counter 2: T4 served unrated (wait 2 min); T5 issued
  in field dd, transferred to ht and served there by An (wait 20 min, rated 2); Bình at counter
  3 serves T6 in dd (wait 4 min, rated 1).
- T7 issued at 23:59:59 on Tuesday 31 March (Asia/Ho_Chi_Minh), never called: March's.
- T8 issued at 00:00:00 on 1 April: April's, not March's.
Dossiers: HS-1 (T2's, P1, received 2 March, due 5, result 4 March: on time, rated 1); HS-2 (P1,
An, counter 2, received 20 March, due 25, result 27: overdue, unrated); HS-3 (P2, Bình, received
27 February, due 10 March, no result: overdue in March); HS-4 (P2, Bình, received 31 March, due
10 April, no result). "Today" is 15 April.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from qms_common.config import business_day

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
LEVELS = ("Không hài lòng", "Hài lòng", "Rất hài lòng")
TARGET_S = 600
TODAY = "2026-04-15"


def _ticket(tid: str, field: str, issued: str, *, called: str | None = None, finished: str | None = None,
            status: str = "done", counter: str | None = None, officer: str | None = None,
            rating: int | None = None, dossier: str | None = None, origin: str | None = None,
            order: int = 0) -> dict[str, Any]:
    issued_at = datetime.fromisoformat(issued)
    return {"id": tid, "number": tid, "field": field, "priority": False, "status": status, "issued_at": issued,
            "called_at": called, "finished_at": finished, "counter": counter, "calls": 1 if called else 0,
            "rating": rating, "dossier": dossier, "via": "kiosk", "awaiting_checkin": False, "appointment": None,
            # the business day the core gives it: the site's date at issue (the day starts at 00:00)
            "day": business_day(issued_at, TZ, time(0, 0)), "origin_field": origin or field, "officer": officer,
            "source": "kiosk", "rated_at": finished if rating else None, "order": order, "has_phone": False}


RECORDS: list[dict[str, Any]] = [
    _ticket("T1", "ht", "2026-03-02T08:00:00+07:00", called="2026-03-02T08:05:00+07:00",
            finished="2026-03-02T08:15:00+07:00", counter="1", officer="An", rating=3, order=1),
    _ticket("T2", "ht", "2026-03-02T08:10:00+07:00", called="2026-03-02T08:30:00+07:00",
            finished="2026-03-02T08:40:00+07:00", counter="1", officer="An", rating=1, dossier="HS-1", order=2),
    _ticket("T3", "ht", "2026-03-02T09:00:00+07:00", called="2026-03-02T09:20:00+07:00", status="no_show",
            counter="1", officer="An", order=3),
    _ticket("T4", "ht", "2026-03-20T10:00:00+07:00", called="2026-03-20T10:02:00+07:00",
            finished="2026-03-20T10:22:00+07:00", counter="2", officer="An", order=4),
    _ticket("T5", "ht", "2026-03-20T10:05:00+07:00", called="2026-03-20T10:25:00+07:00",
            finished="2026-03-20T10:35:00+07:00", counter="2", officer="An", rating=2, origin="dd", order=5),
    _ticket("T6", "dd", "2026-03-20T14:00:00+07:00", called="2026-03-20T14:04:00+07:00",
            finished="2026-03-20T14:14:00+07:00", counter="3", officer="Bình", rating=1, order=6),
    _ticket("T7", "dd", "2026-03-31T23:59:59+07:00", status="expired", order=7),
    _ticket("T8", "dd", "2026-04-01T00:00:00+07:00", status="expired", order=8),
]


def _dossier(code: str, procedure: tuple[str, str], field: str, officer: str, counter: str, received: str,
             due: str, *, done: str | None = None, status: str = "received", ticket: str | None = None,
             rating: int | None = None) -> dict[str, Any]:
    return {"code": code, "procedure": {"code": procedure[0], "name": procedure[1]}, "field": field,
            "received_at": received, "due_at": due, "status": status, "department": None, "needs": None,
            "reason": None, "documents": [], "ticket": ticket, "officer": officer, "counter": counter,
            "source": "counter", "has_phone": False, "timeline": [], "done_at": done, "early": False,
            "overdue": False, "late_days": 0, "version": 2,
            "rating": {"score": rating, "level": LEVELS[rating - 1], "ticket": ticket, "at": received}
            if rating else None}


P1 = ("P1", "Đăng ký khai sinh")
P2 = ("P2", "Chuyển nhượng quyền sử dụng đất")
DOSSIERS: list[dict[str, Any]] = [
    _dossier("HS-1", P1, "ht", "An", "1", "2026-03-02T08:35:00+07:00", "2026-03-05",
             done="2026-03-04T10:00:00+07:00", status="done", ticket="T2", rating=1),
    _dossier("HS-2", P1, "ht", "An", "2", "2026-03-20T10:30:00+07:00", "2026-03-25",
             done="2026-03-27T09:00:00+07:00", status="returned"),
    _dossier("HS-3", P2, "dd", "Bình", "3", "2026-02-27T09:00:00+07:00", "2026-03-10", status="processing"),
    _dossier("HS-4", P2, "dd", "Bình", "3", "2026-03-31T16:00:00+07:00", "2026-04-10"),
]

# ---------------------------------------------------------------- expected, worked out by hand
# (the module docstring's story; every number below is counted from it, not computed)

MARCH_TOTAL = {
    "issued": 7, "served": 5, "no_show": 1, "transferred": 1,
    # waits 300, 1200, 1200, 120, 1200, 240 → sorted 120 240 300 1200 1200 1200
    "wait_mean_s": 710.0, "wait_median_s": 750.0, "wait_p90_s": 1200.0, "wait_max_s": 1200.0,
    # services 600, 600, 1200, 600, 600
    "service_mean_s": 720.0, "service_median_s": 600.0,
    "within_target": 0.5, "ratings": (2, 1, 1),
    # units: HS-1, HS-2, HS-4 + T1, T4, T5, T6; dissatisfied: HS-1 (rated 1) and T6
    "units": 7, "dissatisfied": 2, "satisfaction_pct": 500 / 7, "basis": "mixed",
    "dossiers_received": 3, "dossiers_on_time": 1, "dossiers_overdue": 2,
}

MARCH_BY_OFFICER = {
    "An": {"issued": 5, "served": 4, "no_show": 1, "transferred": 1,
           "wait_mean_s": 804.0, "wait_median_s": 1200.0, "wait_p90_s": 1200.0, "wait_max_s": 1200.0,
           "service_mean_s": 750.0, "service_median_s": 600.0, "within_target": 0.4, "ratings": (1, 1, 1),
           "units": 5, "dissatisfied": 1, "satisfaction_pct": 80.0, "basis": "mixed",
           "dossiers_received": 2, "dossiers_on_time": 1, "dossiers_overdue": 1},
    "Bình": {"issued": 1, "served": 1, "no_show": 0, "transferred": 0,
             "wait_mean_s": 240.0, "wait_median_s": 240.0, "wait_p90_s": 240.0, "wait_max_s": 240.0,
             "service_mean_s": 600.0, "service_median_s": 600.0, "within_target": 1.0, "ratings": (1, 0, 0),
             "units": 2, "dissatisfied": 1, "satisfaction_pct": 50.0, "basis": "mixed",
             "dossiers_received": 1, "dossiers_on_time": 0, "dossiers_overdue": 1},
    "": {"issued": 1, "served": 0, "no_show": 0, "transferred": 0,
         "wait_mean_s": None, "wait_median_s": None, "wait_p90_s": None, "wait_max_s": None,
         "service_mean_s": None, "service_median_s": None, "within_target": None, "ratings": (0, 0, 0),
         "units": 0, "dissatisfied": 0, "satisfaction_pct": None, "basis": "dossiers",
         "dossiers_received": 0, "dossiers_on_time": 0, "dossiers_overdue": 0},
}

# An's month split by the counter he sat at (1 until he moved, then 2)
MARCH_BY_COUNTER = {
    "1": {"issued": 3, "served": 2, "no_show": 1, "transferred": 0, "wait_mean_s": 900.0, "wait_median_s": 1200.0,
          "units": 2, "dissatisfied": 1, "satisfaction_pct": 50.0, "dossiers_received": 1, "dossiers_on_time": 1,
          "dossiers_overdue": 0},
    "2": {"issued": 2, "served": 2, "no_show": 0, "transferred": 1, "wait_mean_s": 660.0, "wait_median_s": 660.0,
          "units": 3, "dissatisfied": 0, "satisfaction_pct": 100.0, "dossiers_received": 1, "dossiers_on_time": 0,
          "dossiers_overdue": 1},
    "3": {"issued": 1, "served": 1, "units": 2, "dissatisfied": 1, "satisfaction_pct": 50.0,
          "dossiers_received": 1, "dossiers_overdue": 1},
    "": {"issued": 1, "served": 0},
}

# T5: issued and transferred in dd (its origin), served, waited and rated in ht
MARCH_BY_FIELD = {
    "ht": {"issued": 4, "served": 4, "no_show": 1, "transferred": 0, "wait_mean_s": 804.0, "ratings": (1, 1, 1),
           "units": 5, "dissatisfied": 1, "satisfaction_pct": 80.0, "dossiers_received": 2, "dossiers_on_time": 1,
           "dossiers_overdue": 1},
    "dd": {"issued": 3, "served": 1, "no_show": 0, "transferred": 1, "wait_mean_s": 240.0, "ratings": (1, 0, 0),
           "units": 2, "dissatisfied": 1, "satisfaction_pct": 50.0, "dossiers_received": 1, "dossiers_on_time": 0,
           "dossiers_overdue": 1},
}

MARCH_BY_PROCEDURE = {
    # T2 (HS-1's ticket) is not a unit of its own: its dossier is
    "P1": {"issued": 1, "served": 1, "ratings": (1, 0, 0), "units": 2, "dissatisfied": 1, "satisfaction_pct": 50.0,
           "basis": "dossiers", "dossiers_received": 2, "dossiers_on_time": 1, "dossiers_overdue": 1},
    "P2": {"issued": 0, "served": 0, "units": 1, "dissatisfied": 0, "satisfaction_pct": 100.0, "basis": "dossiers",
           "dossiers_received": 1, "dossiers_overdue": 1},
    "": {"issued": 6, "served": 4, "units": 4, "dissatisfied": 1, "satisfaction_pct": 75.0, "basis": "tickets"},
}

MARCH_BY_HOUR = {
    "8": {"issued": 2, "served": 2, "units": 2, "dissatisfied": 1, "dossiers_received": 1, "dossiers_on_time": 1},
    "10": {"issued": 2, "served": 2, "transferred": 1, "units": 3, "dissatisfied": 0, "dossiers_received": 1,
           "dossiers_overdue": 1},
    "23": {"issued": 1, "served": 0},
}

MARCH_BY_WEEKDAY = {
    "0": {"issued": 3, "served": 2, "dossiers_received": 1, "dossiers_on_time": 0},   # Monday 2 March
    "1": {"issued": 1, "dossiers_received": 1, "dossiers_overdue": 1},  # Tuesdays 10 (HS-3 due) and 31 March
    "2": {"dossiers_on_time": 1, "issued": 0},   # Wednesday 4 March: HS-1's result
    "4": {"issued": 3, "served": 3, "transferred": 1, "dossiers_received": 1, "dossiers_overdue": 1},  # 20 and 27
}

# February: only HS-3 (received 27 February, unrated): a dossier unit, satisfied
FEBRUARY_TOTAL = {"issued": 0, "units": 1, "dissatisfied": 0, "satisfaction_pct": 100.0, "basis": "dossiers",
                  "dossiers_received": 1}
FEBRUARY_BY_OFFICER = {"Bình": {"dossiers_received": 1, "units": 1}}

APRIL_TOTAL = {"issued": 1, "dossiers_received": 0, "dossiers_overdue": 1}  # T8; HS-4 due 10 April, no result
