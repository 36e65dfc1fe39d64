"""The dashboard's pure figures and wording (province/web/figures.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from province.web.figures import (
    Basis,
    Handled,
    PeriodError,
    ReportRow,
    id_bounds,
    minutes,
    number,
    offline_text,
    parse_period,
    percent,
    ranked,
    report_total,
)

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def row(site: str, handled: int, unhappy: int, basis: Basis = Basis.TICKETS) -> ReportRow:
    return ReportRow(site, f"UBND {site}", "Huyện Đông", handled, handled, 60.0 * handled, handled,
                     Handled(basis, handled, unhappy), 0, 0)


def test_the_ranking_puts_the_best_first_ties_share_a_rank_and_no_figure_comes_last() -> None:
    out = ranked([row("c", 4, 1), row("a", 0, 0), row("b", 2, 0), row("d", 8, 2), row("e", 1, 0)])
    assert [(r.site, r.rank) for r in out] == [("b", 1), ("e", 1), ("c", 3), ("d", 3), ("a", None)]


def test_the_total_adds_units_and_names_a_mixed_basis() -> None:
    total = report_total([row("a", 4, 1), row("b", 5, 1, Basis.DOSSIERS)])
    assert total.handled == Handled(Basis.MIXED, 9, 2)
    assert total.handled.satisfaction_pct == pytest.approx(700 / 9)
    assert total.wait_mean_s == 60.0
    same = report_total([row("a", 4, 1), row("b", 6, 0)])
    assert same.handled.basis is Basis.TICKETS and same.handled.satisfaction_pct == 90.0
    assert report_total([]).handled.satisfaction_pct is None


def test_periods_are_read_strictly_in_vietnamese() -> None:
    today = date(2026, 11, 29)
    assert parse_period(None, None, today) == (date(2026, 11, 1), today)
    assert parse_period("2026-02-01", "2026-02-28", today) == (date(2026, 2, 1), date(2026, 2, 28))
    for start, end, says in [("2026-02-30", None, "không có trong lịch"), ("1/2/2026", None, "YYYY-MM-DD"),
                             ("2026-03-01", "2026-02-01", "trước ngày bắt đầu"),
                             ("2025-01-01", "2026-01-02", "366 ngày"), ("２０２６-01-01", None, "YYYY-MM-DD"),
                             ("2026-01-01\n", None, "YYYY-MM-DD")]:
        with pytest.raises(PeriodError, match=says):
            parse_period(start, end, today)


def test_a_days_ticket_ids_lie_in_one_key_range() -> None:
    lo, hi = id_bounds(date(2026, 12, 31), date(2026, 12, 31))
    assert (lo, hi) == ("20261230", "20270102")
    assert lo <= "20261231-dat-dai-1001" < hi and not lo <= "20270102-dat-dai-1001" < hi


def test_wording() -> None:
    went = datetime(2026, 11, 21, 1, 5, tzinfo=UTC)
    assert offline_text(went, TZ) == "ngoại tuyến từ 08:05 21/11"
    assert offline_text(None, TZ) == "ngoại tuyến (chưa từng kết nối)"
    assert (minutes(None), minutes(89), minutes(91)) == ("—", "1 phút", "2 phút")
    assert (percent(None), percent(77.777)) == ("—", "77,8 %")
    assert number(1234567) == "1.234.567"


def test_only_a_loopback_peer_is_local() -> None:
    from display_server.api import is_loopback
    assert all(is_loopback(a) for a in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"))
    assert not any(is_loopback(a) for a in ("192.0.2.2", "::ffff:192.0.2.2", "fd00::2", "", None, "localhost"))
