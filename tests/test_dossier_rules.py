"""The dossier rules without I/O: business days, the timeline, status, early/overdue/late days,
and the parsing of the dossier commands."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dossiers import model
from dossiers.calendar import BusinessCalendar, add_business_days, late_business_days
from qms_common.protocol import (
    MAX_DEPARTMENT_LEN,
    MAX_DOCUMENT_LEN,
    MAX_DOCUMENTS,
    MAX_DOSSIER_NOTE_LEN,
    MAX_PROCEDURE_NAME_LEN,
    MAX_REPLY_BYTES,
    DossierContacts,
    DossierCreate,
    DossierEvent,
    DossierGet,
    DossierStatus,
    ErrorCode,
    ProtocolError,
    dumps,
    parse_dossier_command,
)
from qms_common.signing import DOSSIER, Signer, dossier_path

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
WEEKEND = BusinessCalendar()
# 2026-11-27 is a Friday; 2026-12-02 (Wednesday) a holiday in these tests
HOLIDAY = BusinessCalendar.of((5, 6), ["2026-12-02"])
FRI, SAT, SUN, MON, TUE, WED, THU = (date(2026, 11, 27) + timedelta(days=i) for i in range(7))


def at(day: date, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ)


# ---------------------------------------------------------------- calendar


def test_business_days_skip_the_weekend_and_holidays() -> None:
    assert add_business_days(FRI, 0, WEEKEND) == FRI
    assert add_business_days(FRI, 1, WEEKEND) == MON
    assert add_business_days(THU - timedelta(days=7), 1, WEEKEND) == FRI
    assert add_business_days(FRI, 3, WEEKEND) == WED
    assert add_business_days(FRI, 3, HOLIDAY) == THU  # Wednesday is a holiday
    assert add_business_days(SAT, 1, WEEKEND) == MON  # received on a closed day
    assert add_business_days(FRI, 15, WEEKEND) == date(2026, 12, 18)  # three weeks
    with pytest.raises(ValueError):
        add_business_days(FRI, -1, WEEKEND)
    with pytest.raises(ValueError):
        add_business_days(FRI, 1, BusinessCalendar(frozenset(range(7))))


def test_late_business_days_count_open_days_after_the_due_date() -> None:
    assert late_business_days(FRI, FRI, WEEKEND) == 0
    assert late_business_days(FRI, THU - timedelta(days=7), WEEKEND) == 0  # before it
    assert late_business_days(FRI, SAT, WEEKEND) == 0
    assert late_business_days(FRI, SUN, WEEKEND) == 0
    assert late_business_days(FRI, MON, WEEKEND) == 1
    assert late_business_days(FRI, WED, WEEKEND) == 3
    assert late_business_days(FRI, WED, HOLIDAY) == 2
    assert late_business_days(FRI, THU, HOLIDAY) == 3


# ---------------------------------------------------------------- the model


def create(**kw: Any) -> model.Dossier:
    now = kw.pop("now", at(MON - timedelta(days=7)))
    req = DossierCreate(request_id="r", code=kw.pop("code", "HS-001"), procedure_name="Đăng ký kết hôn",
                        due_at=kw.pop("due_at", FRI), source=kw.pop("source", "counter"), by="Nguyễn Văn A",
                        phone=kw.pop("phone", "84912345678"), **kw)
    return model.create(req, now, TZ)


def event(d: model.Dossier, eid: str, status: str, when: datetime, note: str | None = None,
          department: str | None = None, now: datetime | None = None) -> model.Dossier:
    applied = model.apply_event(d, DossierEvent("r", d.code, eid, DossierStatus(status), when, "một cửa",
                                                note=note, department=department), now or when, TZ)
    assert applied is not None
    return applied[0]


def test_a_new_dossier_is_received_and_shows_no_phone() -> None:
    d = create(received_at=at(MON - timedelta(days=7), 8, 30), documents=("Tờ khai", "CCCD"))
    v = d.view(MON - timedelta(days=7), WEEKEND, TZ)
    assert v["status"] == "received" and v["has_phone"] is True and "phone" not in str(v).lower().replace(
        "has_phone", "")
    assert "84912345678" not in str(v)
    assert v["timeline"] == [{"id": "received", "status": "received", "at": "2026-11-23T08:30:00+07:00",
                              "note": None, "department": None, "by": "Nguyễn Văn A",
                              "applied_at": "2026-11-23T09:00:00+07:00"}]
    assert v["due_at"] == "2026-11-27" and v["documents"] == ["Tờ khai", "CCCD"]
    assert (v["done_at"], v["early"], v["overdue"], v["late_days"], v["version"]) == (None, False, False, 0, 1)


def test_a_naive_time_is_the_sites() -> None:
    d = create(received_at=datetime(2026, 11, 23, 8, 0))
    assert d.view(MON, WEEKEND, TZ)["received_at"] == "2026-11-23T08:00:00+07:00"


def test_bad_dates_are_refused() -> None:
    with pytest.raises(ProtocolError) as e:
        create(received_at=at(MON - timedelta(days=7)), due_at=FRI - timedelta(days=7))
    assert e.value.code is ErrorCode.BAD_REQUEST and "hẹn trả" in e.value.message
    with pytest.raises(ProtocolError):
        create(received_at=at(MON) + timedelta(days=3), now=at(MON))
    d = create()
    with pytest.raises(ProtocolError):
        model.apply_event(d, DossierEvent("r", d.code, "e", DossierStatus.DONE, at(WED), "x"), at(MON), TZ)


def test_an_event_before_the_dossier_was_received_is_refused() -> None:
    d = create(received_at=at(MON - timedelta(days=7), 9))
    early = DossierEvent("r", d.code, "e1", DossierStatus.DONE, at(MON - timedelta(days=7), 8), "x")
    with pytest.raises(ProtocolError) as e:
        model.apply_event(d, early, at(TUE), TZ)
    assert e.value.code is ErrorCode.BAD_REQUEST and "tiếp nhận" in e.value.message


def test_a_result_taken_back_is_no_result_until_the_next_one() -> None:
    d = create(received_at=at(MON - timedelta(days=7)))  # due Friday
    d = event(d, "e1", "done", at(TUE - timedelta(days=7)), now=at(TUE))
    assert d.view(TUE, WEEKEND, TZ)["early"] is True
    # more documents asked for after all: no result, so not early
    d = event(d, "e2", "needs_documents", at(WED - timedelta(days=7)), note="Bản sao sổ hộ khẩu", now=at(TUE))
    v = d.view(WED - timedelta(days=7), WEEKEND, TZ)
    assert (v["status"], v["done_at"], v["early"]) == ("needs_documents", None, False)
    # the result again, after the due date: late by one business day (Monday)
    d = event(d, "e3", "done", at(MON, 10), now=at(MON, 11))
    d = event(d, "e4", "returned", at(TUE, 9), now=at(TUE, 9))
    v = d.view(TUE, WEEKEND, TZ)
    assert (v["done_at"], v["early"], v["overdue"], v["late_days"]) == ("2026-11-30T10:00:00+07:00", False, True, 1)


def test_out_of_order_events_keep_time_order_and_the_latest_status() -> None:
    d = create(received_at=at(MON - timedelta(days=7)))
    d = event(d, "e3", "done", at(THU - timedelta(days=7), 15), now=at(FRI))
    d = event(d, "e2", "processing", at(TUE - timedelta(days=7), 10), department="Phòng Tư pháp", now=at(FRI))
    v = d.view(FRI, WEEKEND, TZ)
    assert [e["id"] for e in v["timeline"]] == ["received", "e2", "e3"]
    assert v["status"] == "done" and v["department"] is None
    d = event(d, "e4", "processing", at(TUE - timedelta(days=7), 10), department="Phòng Tài nguyên", now=at(FRI))
    # a tie in time: arrival order
    assert [e["id"] for e in d.view(FRI, WEEKEND, TZ)["timeline"]] == ["received", "e2", "e4", "e3"]
    assert d.version == 4


def test_a_replayed_id_changes_nothing() -> None:
    d = event(create(), "e1", "processing", at(TUE - timedelta(days=7)))
    again = DossierEvent("r2", d.code, "e1", DossierStatus.REFUSED, at(WED - timedelta(days=7)), "x", note="khác")
    assert model.apply_event(d, again, at(WED), TZ) is None
    received = DossierEvent("r3", d.code, "received", DossierStatus.DONE, at(WED - timedelta(days=7)), "x")
    assert model.apply_event(d, received, at(WED), TZ) is None


def test_needs_and_reason_follow_the_current_status() -> None:
    d = event(create(), "n1", "needs_documents", at(TUE - timedelta(days=7)), note="Bản sao giấy khai sinh")
    assert d.view(TUE, WEEKEND, TZ)["needs"] == "Bản sao giấy khai sinh"
    d = event(d, "p", "processing", at(WED - timedelta(days=7)))
    assert d.view(TUE, WEEKEND, TZ)["needs"] is None
    d = event(d, "x", "refused", at(THU - timedelta(days=7)), note="Không đủ điều kiện")
    v = d.view(THU, WEEKEND, TZ)
    assert (v["status"], v["reason"], v["needs"]) == ("refused", "Không đủ điều kiện", None)


def test_done_early_and_done_at_is_the_first_result() -> None:
    d = event(create(), "d1", "done", at(THU - timedelta(days=7), 16))
    d = event(d, "r1", "returned", at(FRI, 9))
    v = d.view(MON, WEEKEND, TZ)
    assert v["done_at"] == "2026-11-26T16:00:00+07:00" and v["early"] is True
    assert (v["overdue"], v["late_days"], v["status"]) == (False, 0, "returned")
    # returned without a done entry: the return is the result
    d = event(create(), "r1", "returned", at(FRI, 15))
    v = d.view(MON, WEEKEND, TZ)
    assert v["done_at"] == "2026-11-27T15:00:00+07:00" and (v["early"], v["overdue"]) == (False, False)


def test_overdue_across_a_weekend_counts_business_days() -> None:
    d = create(due_at=FRI)
    assert d.view(FRI, WEEKEND, TZ)["overdue"] is False
    v = d.view(SAT, WEEKEND, TZ)
    assert (v["overdue"], v["late_days"]) == (True, 0)  # past the promised day, no working day lost yet
    v = d.view(MON, WEEKEND, TZ)
    assert (v["overdue"], v["late_days"]) == (True, 1)
    v = d.view(THU, HOLIDAY, TZ)
    assert (v["overdue"], v["late_days"]) == (True, 3)  # Mon, Tue, Thu: Wednesday is a holiday
    # done late on Tuesday, looked at a week later: lateness stops at the result
    done = event(d, "d", "done", at(TUE, 10))
    v = done.view(THU + timedelta(days=7), WEEKEND, TZ)
    assert (v["early"], v["overdue"], v["late_days"]) == (False, True, 2)


def test_done_late_in_the_evening_is_counted_in_the_sites_zone() -> None:
    d = create(due_at=FRI)
    # 23:30 in Hà Nội on Friday is 16:30 UTC: on time; 00:30 Saturday (17:30 UTC Friday) is not
    in_time = event(d, "d", "done", datetime(2026, 11, 27, 16, 30, tzinfo=ZoneInfo("UTC")))
    assert in_time.view(MON, WEEKEND, TZ)["overdue"] is False
    late = event(d, "d", "done", datetime(2026, 11, 27, 17, 30, tzinfo=ZoneInfo("UTC")))
    assert late.view(MON, WEEKEND, TZ)["overdue"] is True


def test_a_refusal_stops_the_lateness_clock() -> None:
    d = event(create(due_at=FRI), "x", "refused", at(MON, 10), note="Sai thẩm quyền")
    v = d.view(THU + timedelta(days=14), WEEKEND, TZ)
    assert (v["done_at"], v["early"], v["overdue"], v["late_days"]) == (None, False, True, 1)


def test_ratings_attach_once_and_the_newest_wins() -> None:
    d = create()
    r = model.Rating(1, "Không hài lòng", "20261127-ho-tich-2001", at(FRI, 10))
    rated = model.attach_rating(d, r)
    assert rated is not None and rated.view(FRI, WEEKEND, TZ)["rating"] == {
        "score": 1, "level": "Không hài lòng", "ticket": "20261127-ho-tich-2001", "at": "2026-11-27T10:00:00+07:00"}
    assert model.attach_rating(rated, r) is None
    assert model.attach_rating(rated, model.Rating(3, "Rất hài lòng", "t0", at(FRI, 9))) is None
    assert model.attach_rating(rated, model.Rating(3, "Rất hài lòng", "t2", at(FRI, 11))) is not None


def test_the_phone_is_kept_phone_days_after_the_dossier_is_finished() -> None:
    d = create()
    assert not model.phone_expired(d, FRI + timedelta(days=400), 30, TZ)  # not finished: kept
    d = event(d, "done", "done", at(FRI))
    assert not model.phone_expired(d, FRI + timedelta(days=400), 30, TZ)  # done, not yet collected
    d = event(d, "ret", "returned", at(MON))
    assert not model.phone_expired(d, MON + timedelta(days=30), 30, TZ)
    assert model.phone_expired(d, MON + timedelta(days=31), 30, TZ)


# ---------------------------------------------------------------- commands and signing


def test_dossier_commands_parse_and_bad_ones_say_why() -> None:
    c = parse_dossier_command({"request_id": "1", "action": "create", "code": "000.00.12.H23-261127-0001",
                               "procedure": {"code": "1.001", "name": "Đăng ký kết hôn"}, "due_at": "2026-12-01",
                               "phone": "091 234 5678", "documents": [" Tờ khai ", ""], "source": "api",
                               "by": "tỉnh"})
    assert isinstance(c, DossierCreate) and c.phone == "84912345678" and c.documents == ("Tờ khai",)
    e = parse_dossier_command({"request_id": "1", "action": "event", "code": "HS-1", "id": "e1",
                               "status": "needs_documents", "at": "2026-11-27T09:00:00Z", "by": "x"})
    assert isinstance(e, DossierEvent) and e.status is DossierStatus.NEEDS_DOCUMENTS
    assert isinstance(parse_dossier_command({"request_id": "1", "action": "get", "code": "HS-1"}), DossierGet)
    assert isinstance(parse_dossier_command({"request_id": "1", "action": "contacts",
                                             "since": "2026-11-27T09:00:00+07:00"}), DossierContacts)
    base = {"request_id": "1", "action": "event", "code": "HS-1", "id": "e1", "status": "done",
            "at": "2026-11-27T09:00:00Z", "by": "x"}
    bad: list[tuple[dict[str, Any], str]] = [
        ({**base, "status": "finished"}, "status"),
        ({**base, "at": "hôm qua"}, "at"),
        ({**base, "code": "HS 1"}, "code"),
        ({**base, "code": "x" * 65}, "code"),
        ({**base, "id": "x" * 65}, "id"),
        ({**base, "note": "x" * 501}, "note"),
        ({**base, "department": "\x07"}, "department"),
        ({**base, "action": "delete"}, "action"),
        ({k: v for k, v in base.items() if k != "request_id"}, "request_id"),
        ({"request_id": "1", "action": "create", "code": "HS-1", "procedure": {"name": "X"}, "due_at": "2026-02-30",
          "source": "api", "by": "x"}, "2026-02-30"),
        ({"request_id": "1", "action": "create", "code": "HS-1", "procedure": {"name": "X"}, "due_at": "2026-12-01",
          "source": "api", "by": "x", "phone": "12345"}, "Số điện thoại"),
        ({"request_id": "1", "action": "create", "code": "HS-1", "procedure": {"name": "X"}, "due_at": "2026-12-01",
          "source": "api", "by": "x", "documents": ["a"] * 31}, "documents"),
        ({"request_id": "1", "action": "create", "code": "HS-1", "procedure": "X", "due_at": "2026-12-01",
          "source": "api", "by": "x"}, "procedure"),
        ({"request_id": "1", "action": "create", "code": "HS-1", "procedure": {"name": "X"}, "due_at": "2026-12-01",
          "source": "kiosk", "by": "x"}, "source"),
    ]
    for obj, word in bad:
        with pytest.raises(ProtocolError) as exc:
            parse_dossier_command(obj)
        assert exc.value.code is ErrorCode.BAD_REQUEST and word in exc.value.message, obj


def test_dossier_links_are_signed_per_code() -> None:
    signer = Signer(b"k" * 32)
    path = dossier_path(signer, "HS-001")
    assert path == f"/hs/HS-001?k={signer.token(DOSSIER, 'HS-001')}"
    assert path != dossier_path(signer, "HS-002").replace("HS-002", "HS-001")
    assert signer.token(DOSSIER, "HS-001") != signer.token("track", "HS-001")


def test_a_dossier_takes_a_bounded_number_of_entries() -> None:
    d = create()
    for i in range(1, model.MAX_ENTRIES):
        d = event(d, f"e{i}", "processing", at(TUE - timedelta(days=7)))
    with pytest.raises(ProtocolError) as exc:
        event(d, "one-more", "done", at(WED - timedelta(days=7)))
    assert exc.value.code is ErrorCode.BAD_REQUEST and "100" in exc.value.message
    assert model.apply_event(d, DossierEvent("r", d.code, "e1", DossierStatus.DONE, at(WED), "x"), at(WED), TZ) is None


def test_the_largest_dossier_still_fits_a_broker_packet() -> None:
    """Every text at its longest, in 3-byte letters, and the most entries: its event/dossier and
    its reply still fit the production broker's packet limit."""
    long = "ệ"
    d = create(documents=tuple(long * MAX_DOCUMENT_LEN for _ in range(MAX_DOCUMENTS)))
    d = replace(d, procedure_name=long * MAX_PROCEDURE_NAME_LEN, procedure_code="x" * 64, code="x" * 64)
    for i in range(1, model.MAX_ENTRIES):
        applied = model.apply_event(d, DossierEvent("r", d.code, f"{i:064d}", DossierStatus.PROCESSING,
                                                    at(TUE - timedelta(days=7)), long * 64,
                                                    note=long * MAX_DOSSIER_NOTE_LEN,
                                                    department=long * MAX_DEPARTMENT_LEN), at(FRI), TZ)
        assert applied is not None
        d = applied[0]
    view = d.view(FRI, WEEKEND, TZ)
    event = dumps({"kind": "dossier", "at": "2026-11-27T09:00:00+07:00", "dossier": view,
                   "entry": view["timeline"][-1], "phone": "84912345678"})
    assert len(event) < MAX_REPLY_BYTES - 1024, len(event)
