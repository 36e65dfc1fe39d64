"""The marks of issue 12 computed by the web server: appointment tickets on the TV, the records'
people-ahead with appointments and remote numbers awaiting check-in, the supervisor's bookings,
the retained free places, and the check-in codes the kiosk accepts."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from display_server.feed.state import Call, SiteState
from display_server.pages.booking import bookable_days, day_label
from display_server.pages.checkin import normalize_code
from display_server.pages.supervisor import bookings_today
from display_server.texts import Texts
from display_server.tv.view import call_view
from qms_common.config import load_site_config
from tests.support.appointments import appointment_site
from tests.support.site import write_site


class FakeRecords:
    """What bookings_today reads of TodayRecords: today's records."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records


def places(day: str, *slots: tuple[Any, ...]) -> dict[str, Any]:
    """(slot, capacity, free[, checked in])"""
    return {"day": day, "slots": [{"slot": s[0], "capacity": s[1], "free": s[2], "checked_in": (*s, 0)[3]}
                                  for s in slots]}


def a_state() -> SiteState:
    state = SiteState()
    state.apply(("state", "site"), json.dumps({"day": "2026-11-30", "seq": 1, "fields": [
        {"id": "dat-dai", "name": "Đất đai"}, {"id": "ho-tich", "name": "Hộ tịch"},
        {"id": "chung-thuc", "name": "Chứng thực"}]}).encode())
    change = state.apply(("state", "appointments", "dat-dai"), json.dumps({"field": "dat-dai", "seq": 2, "days": [
        places("2026-11-30", ("08:00", 2, 0, 1), ("08:30", 2, 1)),
        places("2026-12-01", ("08:00", 2, 2))]}).encode(), retained=True)
    assert change is not None and change.kind == "appointments"
    state.apply(("state", "queue", "ho-tich"), json.dumps({"field": "ho-tich", "waiting": 0, "awaiting_checkin": 2,
                                                          "seq": 3}).encode())
    return state


def test_the_tv_marks_an_appointment_s_call() -> None:
    call = Call(seq=1, ticket={"id": "x", "number": "1002", "via": "appointment"}, counter="1", recall=False, at=None)
    assert call_view(call, {"1": "Quầy 1"})["appointment"] is True
    walk_in = Call(seq=2, ticket={"id": "y", "number": "1003", "via": "kiosk"}, counter="1", recall=False, at=None)
    assert call_view(walk_in, {})["appointment"] is False


def test_the_booking_page_offers_only_later_days() -> None:
    days = bookable_days(Texts("vi"), a_state(), "dat-dai")
    assert [d["day"] for d in days] == ["2026-12-01"]
    assert days[0]["label"] == "Thứ ba, 01/12/2026"
    assert days[0]["slots"] == [{"slot": "08:00", "free": 2, "capacity": 2}]
    assert day_label(Texts("en"), "2026-11-29") == "Sunday, 29/11/2026"


def test_the_supervisor_counts_today_s_bookings_and_check_ins(tmp_path: Path) -> None:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra=appointment_site())
    site = load_site_config(path)
    records = FakeRecords([
        {"id": "a", "field": "dat-dai", "origin_field": "dat-dai", "via": "appointment", "appointment": "ACDEFGHJ"},
        {"id": "b", "field": "dat-dai", "origin_field": "dat-dai", "via": "kiosk", "appointment": None}])
    # 08:20: the 08:00 slot's check-in window (+15 min) has closed, the 08:30 one's has not
    at_0820 = lambda tz: datetime(2026, 11, 30, 8, 20, tzinfo=tz)  # noqa: E731
    rows = {r["id"]: r for r in bookings_today(a_state(), site, records, at_0820)}  # type: ignore[arg-type, union-attr]
    assert rows["dat-dai"] == {"id": "dat-dai", "name": "Đất đai", "booked": 3, "checked_in": 1, "pending": 1,
                               "no_show": 1, "remote_awaiting": None}
    assert rows["ho-tich"]["booked"] is None and rows["ho-tich"]["remote_awaiting"] == 2
    assert "chung-thuc" not in rows


def test_codes_as_typed_or_scanned() -> None:
    assert normalize_code(" k7m pqx ") == "K7MPQX"
    assert normalize_code("ACDEFGHJ") == "ACDEFGHJ"
    for bad in ("K7MPQ0", "", "ABC", "A" * 9, 123, None, "K7MPQX\n;DROP"):
        assert normalize_code(bad) is None, bad
