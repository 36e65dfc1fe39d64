"""The report's figures on a small hand-computed month (tests/support/report_fixture.py): every
figure, the 766 formula with unrated units and ticket-only units, an officer who moved between
counters, a ticket transferred between fields, the midnight boundary, and the previous period."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from display_server.reports import figures as fig
from display_server.reports.figures import Dimension, Figures, Key, Measures
from display_server.reports.periods import Period, period_of
from tests.support import report_fixture as fx

LEVELS = len(fx.LEVELS)


def _parts(period: Period) -> list[tuple[Key, Measures]]:
    procedures = {d["code"]: d["procedure"]["code"] for d in fx.DOSSIERS}
    parts: list[tuple[Key, Measures]] = []
    for r in fx.RECORDS:
        fact = fig.ticket_fact(r, tz=fx.TZ, target_s=fx.TARGET_S, levels=LEVELS, procedures=procedures)
        parts.extend(fig.ticket_parts(fact, LEVELS))
    for v in fx.DOSSIERS:
        parts.extend(fig.dossier_parts(fig.dossier_fact(v, tz=fx.TZ, levels=LEVELS), LEVELS, fx.TODAY))
    return [(k, m) for k, m in parts if period.contains(k[0])]


def _grouped(period: Period, dimension: Dimension) -> dict[str, Figures]:
    return {k: m.figures() for k, m in fig.group(_parts(period), dimension, LEVELS).items()}


def _check(figures: Figures, expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        got = getattr(figures, name)
        if isinstance(value, float):
            assert got == pytest.approx(value), name
        else:
            assert got == value, name


MARCH = period_of("month", date(2026, 3, 15))


def test_every_figure_of_the_month() -> None:
    total = fig.total((m for _, m in _parts(MARCH)), LEVELS).figures()
    assert set(fx.MARCH_TOTAL) == set(fig.FIGURE_NAMES)  # the fixture checks every figure
    _check(total, fx.MARCH_TOTAL)


def test_an_officer_who_moved_counters_is_one_row_by_officer_and_split_by_counter() -> None:
    by_officer = _grouped(MARCH, Dimension.OFFICER)
    assert set(by_officer) == set(fx.MARCH_BY_OFFICER)
    for key, expected in fx.MARCH_BY_OFFICER.items():
        _check(by_officer[key], expected)
    by_counter = _grouped(MARCH, Dimension.COUNTER)
    assert set(by_counter) == set(fx.MARCH_BY_COUNTER)
    for key, expected in fx.MARCH_BY_COUNTER.items():
        _check(by_counter[key], expected)


def test_a_transferred_ticket_is_issued_in_its_origin_field_and_served_in_the_other() -> None:
    by_field = _grouped(MARCH, Dimension.FIELD)
    assert set(by_field) == set(fx.MARCH_BY_FIELD)
    for key, expected in fx.MARCH_BY_FIELD.items():
        _check(by_field[key], expected)


@pytest.mark.parametrize(("dimension", "expected"), [
    (Dimension.PROCEDURE, fx.MARCH_BY_PROCEDURE), (Dimension.HOUR, fx.MARCH_BY_HOUR),
    (Dimension.WEEKDAY, fx.MARCH_BY_WEEKDAY)])
def test_procedure_hour_and_weekday_rows(dimension: Dimension, expected: dict[str, dict[str, Any]]) -> None:
    grouped = _grouped(MARCH, dimension)
    for key, want in expected.items():
        _check(grouped[key], want)


def test_the_766_formula_counts_unrated_units_as_satisfied_and_says_its_basis() -> None:
    m = Measures(LEVELS, dossiers_received=3, dossier_dissatisfied=1)
    f = m.figures()
    assert (f.units, f.dissatisfied, f.basis) == (3, 1, "dossiers") and f.satisfaction_pct == pytest.approx(200 / 3)
    m = Measures(LEVELS, ticket_units=4, ticket_dissatisfied=0)
    assert (m.figures().satisfaction_pct, m.figures().basis) == (100.0, "tickets")
    assert Measures(LEVELS).figures().satisfaction_pct is None


def test_midnight_in_ho_chi_minh_city_divides_march_from_april() -> None:
    assert [r["day"] for r in fx.RECORDS[-2:]] == ["2026-03-31", "2026-04-01"]
    april = fig.total((m for _, m in _parts(period_of("month", date(2026, 4, 1)))), LEVELS).figures()
    _check(april, fx.APRIL_TOTAL)


def test_each_row_is_compared_with_the_previous_period() -> None:
    current = fig.group(_parts(MARCH), Dimension.OFFICER, LEVELS)
    previous = fig.group(_parts(MARCH.previous()), Dimension.OFFICER, LEVELS)
    assert MARCH.previous() == Period("month", date(2026, 2, 1), date(2026, 2, 28))
    rows = {r.key: r for r in fig.rows(Dimension.OFFICER, current, previous)}
    assert [r.key for r in fig.rows(Dimension.OFFICER, current, previous)] == ["An", "Bình", ""]
    assert rows["An"].previous is None and rows[""].label == "(chưa gọi)"
    assert rows["Bình"].previous is not None
    _check(rows["Bình"].previous, fx.FEBRUARY_BY_OFFICER["Bình"])
    _check(fig.total(previous.values(), LEVELS).figures(), fx.FEBRUARY_TOTAL)
    # Bình: 1 dossier received in February, 1 in March: no change; satisfaction 100 % → 50 %
    assert fig.change_pct(rows["Bình"].figures.dossiers_received, rows["Bình"].previous.dossiers_received) == 0.0
    assert fig.change_pct(rows["Bình"].figures.satisfaction_pct, rows["Bình"].previous.satisfaction_pct) == -50.0


def test_rows_are_named_and_ordered() -> None:
    assert fig.label(Dimension.HOUR, "8") == "08:00–09:00"
    assert fig.label(Dimension.WEEKDAY, "6") == "Chủ nhật"
    assert fig.label(Dimension.FIELD, "ht", {"ht": "Hộ tịch"}) == "Hộ tịch"
    assert fig.label(Dimension.PROCEDURE, "") == "(không có hồ sơ)"
    assert fig.sort_rows(Dimension.HOUR, ["10", "8", "23"]) == ["8", "10", "23"]


def test_drill_down_matches_the_figures() -> None:
    procedures = {d["code"]: d["procedure"]["code"] for d in fx.DOSSIERS}
    facts = [fig.ticket_fact(r, tz=fx.TZ, target_s=fx.TARGET_S, levels=LEVELS, procedures=procedures)
             for r in fx.RECORDS if MARCH.contains(r["day"])]

    def ids(dimension: Dimension, key: str, figure: str) -> list[str]:
        return [f.id for f in facts if fig.matches(f, dimension, key, figure)]

    assert ids(Dimension.FIELD, "dd", "issued") == ["T5", "T6", "T7"]
    assert ids(Dimension.FIELD, "ht", "served") == ["T1", "T2", "T4", "T5"]
    assert ids(Dimension.FIELD, "dd", "transferred") == ["T5"]
    assert ids(Dimension.OFFICER, "An", "within_target") == ["T1", "T4"]
    assert ids(Dimension.OFFICER, "An", "wait_p90_s") == ["T1", "T2", "T3", "T4", "T5"]
    assert ids(Dimension.COUNTER, "3", "dissatisfied") == ["T6"]
    assert ids(Dimension.PROCEDURE, "P1", "served") == ["T2"]
    assert ids(Dimension.WEEKDAY, "0", "no_show") == ["T3"]
    assert ids(Dimension.HOUR, fig.ALL_KEY, "dissatisfied") == ["T6"]  # the total row


def test_a_past_days_called_expired_ticket_is_a_no_show_and_an_uncalled_one_is_not() -> None:
    """The core's rollover turns no-shows (and tickets never called) into `expired`."""
    base = {"id": "t", "day": "2026-03-02", "number": "1001", "field": "dat-dai", "origin_field": "dat-dai",
            "issued_at": "2026-03-02T08:00:00+07:00", "finished_at": None, "rating": None, "dossier": None}
    called = {**base, "status": "expired", "called_at": "2026-03-02T08:10:00+07:00", "counter": "1",
              "officer": "Nguyễn Văn A"}
    never = {**base, "status": "expired", "called_at": None, "counter": None, "officer": None}
    facts = [fig.ticket_fact(r, tz=fx.TZ, target_s=fx.TARGET_S, levels=LEVELS) for r in (called, never)]
    assert [f.status for f in facts] == ["no_show", "expired"]
    total = Measures(LEVELS)
    for f in facts:
        for _, m in fig.ticket_parts(f, LEVELS):
            total.add(m)
    assert (total.figures().issued, total.figures().no_show, total.figures().served) == (2, 1, 0)


@given(st.lists(st.integers(min_value=0, max_value=4 * 3600), max_size=400))
def test_the_order_statistics_are_those_of_the_sorted_values(values: list[int]) -> None:
    """Counting the values (how the figures get a year's median and p90 fast) gives what sorting them does."""
    f = Measures(LEVELS, waits=list(values), services=list(values)).figures()
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        assert (f.wait_mean_s, f.wait_median_s, f.wait_p90_s, f.wait_max_s, f.service_median_s) == (None,) * 5
        return
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    p90 = ordered[max(0, -(-9 * n // 10) - 1)]   # nearest rank: ceil(0.9 n)
    assert f.wait_mean_s == pytest.approx(sum(values) / n)
    assert (f.wait_median_s, f.wait_p90_s, f.wait_max_s) == (median, p90, ordered[-1])
    assert (f.service_mean_s, f.service_median_s) == (f.wait_mean_s, median)
