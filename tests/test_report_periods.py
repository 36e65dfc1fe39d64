"""Report periods: every kind, the previous period, the site's business days, the query parsing
with Vietnamese errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from display_server.reports.periods import Period, parse_period, period_of
from qms_common.config import business_day

TODAY = date(2026, 11, 29)  # a Sunday


@pytest.mark.parametrize(("kind", "anchor", "start", "end"), [
    ("day", date(2026, 3, 31), date(2026, 3, 31), date(2026, 3, 31)),
    ("week", date(2026, 11, 29), date(2026, 11, 23), date(2026, 11, 29)),   # Monday to Sunday
    ("week", date(2026, 11, 23), date(2026, 11, 23), date(2026, 11, 29)),
    ("month", date(2024, 2, 10), date(2024, 2, 1), date(2024, 2, 29)),      # a leap year
    ("quarter", date(2026, 5, 4), date(2026, 4, 1), date(2026, 6, 30)),
    ("quarter", date(2026, 12, 31), date(2026, 10, 1), date(2026, 12, 31)),
    ("year", date(2026, 7, 1), date(2026, 1, 1), date(2026, 12, 31)),
])
def test_period_of_each_kind(kind: str, anchor: date, start: date, end: date) -> None:
    assert period_of(kind, anchor) == Period(kind, start, end)


@pytest.mark.parametrize(("period", "previous"), [
    (Period("day", date(2026, 3, 1), date(2026, 3, 1)), Period("day", date(2026, 2, 28), date(2026, 2, 28))),
    (Period("week", date(2026, 1, 5), date(2026, 1, 11)), Period("week", date(2025, 12, 29), date(2026, 1, 4))),
    # March has 31 days, February 28: the previous calendar month, not 31 days back
    (Period("month", date(2026, 3, 1), date(2026, 3, 31)), Period("month", date(2026, 2, 1), date(2026, 2, 28))),
    (Period("quarter", date(2026, 1, 1), date(2026, 3, 31)),
     Period("quarter", date(2025, 10, 1), date(2025, 12, 31))),
    (Period("year", date(2025, 1, 1), date(2025, 12, 31)), Period("year", date(2024, 1, 1), date(2024, 12, 31))),
    (Period("custom", date(2026, 3, 10), date(2026, 3, 19)),
     Period("custom", date(2026, 2, 28), date(2026, 3, 9))),
])
def test_the_previous_period(period: Period, previous: Period) -> None:
    assert period.previous() == previous


def test_a_moment_belongs_to_the_business_day_of_ho_chi_minh_city() -> None:
    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    before = datetime(2026, 3, 31, 16, 59, 59, tzinfo=UTC)  # 23:59:59 in Ho Chi Minh City
    after = datetime(2026, 3, 31, 17, 0, 0, tzinfo=UTC)     # 00:00:00 on 1 April there
    march = period_of("month", date(2026, 3, 1))
    assert march.contains(business_day(before, tz, time(0, 0)))
    assert not march.contains(business_day(after, tz, time(0, 0)))
    assert period_of("month", date.fromisoformat(business_day(after, tz, time(0, 0)))).label == "Tháng 04/2026"


def test_parse_a_page_query() -> None:
    assert parse_period({"period": "quarter", "date": "2026-05-04"}, TODAY) == period_of("quarter", date(2026, 5, 4))
    assert parse_period({}, TODAY) == period_of("month", TODAY)
    assert parse_period({"period": "week"}, TODAY) == period_of("week", TODAY)
    custom = parse_period({"from": "2026-01-01", "to": "2026-03-31"}, TODAY)
    assert custom == Period("custom", date(2026, 1, 1), date(2026, 3, 31)) and custom.days == 90
    assert parse_period(custom.query(), TODAY) == custom
    month = period_of("month", TODAY)
    assert parse_period(month.query(), TODAY) == month


@pytest.mark.parametrize(("query", "words"), [
    ({"period": "decade"}, "Loại kỳ báo cáo không hợp lệ"),
    ({"period": "custom"}, "Loại kỳ báo cáo không hợp lệ"),
    ({"period": "month", "date": "31/03/2026"}, "Ngày không hợp lệ"),
    ({"period": "month", "date": "2026-02-30"}, "Ngày không hợp lệ"),
    ({"from": "2026-01-01"}, "cần cả ngày bắt đầu"),
    ({"from": "2026-03-01", "to": "2026-02-01"}, "không sớm hơn"),
    ({"from": "0202-01-01", "to": "2026-01-01"}, "quá dài"),
    ({"from": "2026-1-1", "to": "2026-01-02"}, "Ngày bắt đầu không hợp lệ"),
])
def test_bad_queries_are_refused_in_vietnamese(query: dict[str, str], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_period(query, TODAY)


def test_labels() -> None:
    assert period_of("quarter", date(2026, 5, 4)).label == "Quý 2/2026"
    assert period_of("year", TODAY).label == "Năm 2026"
    assert period_of("day", TODAY).label == "Ngày 29/11/2026"
    assert Period("custom", date(2026, 1, 1), date(2026, 1, 31)).label == "Từ 01/01/2026 đến 31/01/2026"


def test_a_heading_names_its_dates_once() -> None:
    assert Period("month", date(2026, 3, 1), date(2026, 3, 31)).heading == \
        "Tháng 03/2026 (từ ngày 01/03/2026 đến ngày 31/03/2026)"
    assert Period("custom", date(2026, 1, 1), date(2026, 1, 31)).heading == "Từ 01/01/2026 đến 31/01/2026"
