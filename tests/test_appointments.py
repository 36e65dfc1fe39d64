"""Remote tickets and appointments as pure rules: the slot grid, every refusal, the check-in
window, the calling order and the fairness share. No broker, no database."""

from __future__ import annotations

import contextlib
import random
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qms_common.config import AppointmentField, SiteConfig, load_site_config
from qms_common.protocol import (
    AppointmentRequest,
    BookingStatus,
    CheckinRequest,
    CounterRequest,
    ErrorCode,
    ProtocolError,
    TicketRequest,
    Via,
)
from queue_core import appointments as appt
from queue_core import rules
from queue_core.book import Book, Change
from tests.support.appointments import appointment_site
from tests.support.site import write_site

MONDAY = date(2026, 11, 23)
T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # Monday 08:00 in Hà Nội
PHONE = "84912345678"


def make_site(tmp_path: Path, **kw: object) -> SiteConfig:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra=appointment_site(**kw))  # type: ignore[arg-type]
    return load_site_config(path)


class Office:
    """A book and a clock, applying changes as the service does after a commit."""

    def __init__(self, site: SiteConfig, day: date = MONDAY, now: datetime = T0) -> None:
        self.book = Book(site, day.isoformat())
        self.now = now
        self.n = 0
        self.rng = random.Random(1)

    def rid(self) -> str:
        self.n += 1
        return f"r{self.n}"

    def apply(self, change: Change) -> Change:
        self.book.apply(change)
        return change

    def tick(self, minutes: float = 1) -> datetime:
        self.now += timedelta(minutes=minutes)
        return self.now

    def walk_in(self, field: str = "dat-dai", priority: bool = False) -> str:
        ch = self.apply(rules.issue_ticket(self.book, TicketRequest(self.rid(), field, priority), self.tick()))
        assert ch.ticket is not None
        return ch.ticket.number

    def remote(self, field: str = "dat-dai", phone: str = PHONE) -> Change:
        code = appt.fresh_code(6, self.book.live_codes().__contains__, self.rng)
        req = TicketRequest(self.rid(), field, phone=phone, remote=True)
        return self.apply(rules.issue_ticket(self.book, req, self.tick(), code=code))

    def appointment(self, **kw: object) -> Change:
        req = AppointmentRequest.parse({"request_id": self.rid(), **kw})
        code = appt.fresh_code(8, self.book.bookings.taken, self.rng) if req.action == "book" else None
        return self.apply(rules.appointment(self.book, req, self.tick(0), code=code))

    def book_slot(self, day: str, slot: str, phone: str = PHONE, field: str = "dat-dai") -> str:
        ch = self.appointment(action="book", field=field, day=day, slot=slot, phone=phone)
        assert ch.booking is not None
        return ch.booking.code

    def checkin(self, code: str) -> Change:
        return self.apply(rules.checkin(self.book, CheckinRequest(self.rid(), code), self.tick(0)))

    def call_next(self, counter: str = "1") -> Change:
        req = CounterRequest.parse({"request_id": self.rid(), "action": "call_next"})
        return self.apply(rules.counter_action(self.book, counter, req, self.tick()))

    def called(self, counter: str = "1") -> str | None:
        ch = self.call_next(counter)
        return ch.ticket.number if ch.ticket and ch.error is None else None

    def new_day(self, day: date, at: datetime) -> None:
        """The business day turns: the rollover, then a new book that keeps the bookings."""
        self.now = at
        change = self.apply(rules.rollover(self.book, day.isoformat(), at))
        self.book.bookings.forget_before(day.isoformat())
        self.book = Book(self.book.site, day.isoformat(), counters=self.book.counters,
                         next_order=self.book.next_order, bookings=self.book.bookings)
        self.last_rollover = change


def refused(expected: ErrorCode, fn: object, /, *args: object, **kw: object) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        fn(*args, **kw)  # type: ignore[operator]
    assert info.value.code == expected, info.value.message
    return info.value


# ---------------------------------------------------------------- the grid


def test_slots_follow_the_grid_weekday_capacity_and_closed_days(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    s, af = site.appointments, site.appointments.field("dat-dai")  # type: ignore[union-attr]
    assert s is not None and af is not None
    monday = appt.slots_of(s, af, MONDAY)
    assert [slot for slot, _ in monday] == ["08:00", "08:30", "09:00", "09:30", "10:00", "10:30",
                                           "13:30", "14:00", "14:30", "15:00", "15:30"]
    assert {cap for _, cap in monday} == {2}
    assert {cap for _, cap in appt.slots_of(s, af, MONDAY + timedelta(days=4))} == {1}  # Friday
    assert appt.slots_of(s, af, MONDAY + timedelta(days=3)) == []  # the holiday
    assert appt.slots_of(s, af, MONDAY + timedelta(days=5)) == []  # Saturday
    days = appt.bookable_days(s, MONDAY)
    assert days[0] == MONDAY + timedelta(days=1) and MONDAY not in days
    assert max(days) <= MONDAY + timedelta(days=14)
    assert all(d.weekday() < 5 and d.isoformat() != "2026-11-26" for d in days)


@given(st.integers(min_value=5, max_value=120), st.integers(min_value=0, max_value=1400),
       st.integers(min_value=5, max_value=600))
def test_every_slot_of_the_grid_ends_inside_its_range(slot_min: int, start: int, length: int) -> None:

    end = min(start + length, 24 * 60)
    af = AppointmentField("f", slot_min, ((start, end),), 1)
    grid = af.grid
    assert all(start <= m and m + slot_min <= end for m in grid)
    assert all(b - a == slot_min for a, b in pairwise(grid))
    assert len(grid) == max(0, (end - start) // slot_min)


@pytest.mark.parametrize(("field", "day", "slot", "words"), [
    ("ho-tich", "2026-11-24", "08:00", "không nhận đặt lịch"),
    ("dat-dai", "2026-11-23", "10:00", "sau hôm nay"),
    ("dat-dai", "2026-11-20", "08:00", "đã qua"),
    ("dat-dai", "2026-12-08", "08:00", "tối đa 14 ngày"),
    ("dat-dai", "2026-11-28", "08:00", "thứ Bảy"),
    ("dat-dai", "2026-11-26", "08:00", "nghỉ lễ"),
    ("dat-dai", "2026-11-24", "08:15", "không phải một lượt hẹn"),
    ("dat-dai", "2026-11-24", "10:45", "không phải một lượt hẹn"),  # would end after 11:00
    ("dat-dai", "2026-11-24", "12:00", "không phải một lượt hẹn"),
])
def test_every_bad_place_is_outside_hours_and_changes_nothing(tmp_path: Path, field: str, day: str, slot: str,
                                                              words: str) -> None:
    office = Office(make_site(tmp_path))
    before = dict(office.book.bookings.by_code)
    err = refused(ErrorCode.OUTSIDE_HOURS, office.appointment, action="book", field=field, day=day, slot=slot,
                  phone=PHONE)
    assert words in err.message
    assert office.book.bookings.by_code == before


def test_a_slot_is_never_overbooked_and_cancel_and_move_free_and_take_places(tmp_path: Path) -> None:
    office = Office(make_site(tmp_path, per_phone=5))
    day, other = "2026-11-24", "2026-11-25"
    a = office.book_slot(day, "08:00", phone="84900000001")
    b = office.book_slot(day, "08:00", phone="84900000002")
    assert office.book.bookings.used("dat-dai", day, "08:00") == 2
    refused(ErrorCode.SLOT_FULL, office.book_slot, day, "08:00", phone="84900000003")
    office.appointment(action="cancel", code=a)
    assert office.book.bookings.get(a).status is BookingStatus.CANCELLED  # type: ignore[union-attr]
    c = office.book_slot(day, "08:00", phone="84900000003")  # the freed place
    moved = office.appointment(action="move", code=b, day=other, slot="09:00").booking
    assert moved is not None and (moved.code, moved.day, moved.slot) == (b, other, "09:00")
    assert office.book.bookings.used("dat-dai", day, "08:00") == 1
    assert office.book.bookings.used("dat-dai", other, "09:00") == 1
    office.book_slot(day, "08:00", phone="84900000004")
    refused(ErrorCode.SLOT_FULL, office.appointment, action="move", code=b, day=day, slot="08:00")
    for code in (a,):
        refused(ErrorCode.INVALID_STATE, office.appointment, action="cancel", code=code)
        refused(ErrorCode.INVALID_STATE, office.appointment, action="move", code=code, day=other, slot="10:00")
    refused(ErrorCode.UNKNOWN_BOOKING, office.appointment, action="cancel", code="ACDEFGHJ")
    assert len({a, b, c}) == 3 and all(len(x) == 8 and set(x) <= set("ACDEFGHJKLMNPQRTUVWXY34679") for x in (a, b, c))


def test_bookings_per_phone_are_limited(tmp_path: Path) -> None:
    office = Office(make_site(tmp_path, per_phone=2))
    first = office.book_slot("2026-11-24", "08:00")
    office.book_slot("2026-11-24", "09:00")
    err = refused(ErrorCode.QUOTA_REACHED, office.book_slot, "2026-11-25", "08:00")
    assert "2" in err.message
    office.appointment(action="cancel", code=first)
    office.book_slot("2026-11-25", "08:00")


# ---------------------------------------------------------------- check-in


def test_checkin_window_bounds_are_inclusive(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    s = site.appointments
    assert s is not None
    start = appt.slot_moment("2026-11-23", "09:00", site.tz)
    at = lambda minutes: appt.checkin_time(s, "2026-11-23", "09:00", site.tz, start + timedelta(minutes=minutes))  # noqa: E731
    assert at(-31).window is appt.Window.EARLY
    assert at(-30).window is appt.Window.OPEN and at(15).window is appt.Window.OPEN
    assert at(15.01).window is appt.Window.LATE


def _booked_for_today(tmp_path: Path, **kw: object) -> tuple[Office, str]:
    """A booking made last Friday for Monday 09:00, and the office on Monday 08:00."""
    office = Office(make_site(tmp_path, **kw), day=MONDAY - timedelta(days=3), now=T0 - timedelta(days=3))
    code = office.book_slot(MONDAY.isoformat(), "09:00")
    office.new_day(MONDAY, T0)
    return office, code


def test_checkin_too_early_says_when_to_come_back_and_changes_nothing(tmp_path: Path) -> None:
    office, code = _booked_for_today(tmp_path)
    err = refused(ErrorCode.TOO_EARLY, office.checkin, code)  # 08:00 for 09:00: window opens 08:30
    assert err.extra["from"] == "08:30" and "Mời ông/bà quay lại từ 08:30" in err.message
    assert office.book.bookings.get(code).status is BookingStatus.BOOKED  # type: ignore[union-attr]
    assert not office.book.tickets


@pytest.mark.parametrize("late", ["ordinary", "refuse"])
def test_checkin_too_late_per_setting(tmp_path: Path, late: str) -> None:
    office, code = _booked_for_today(tmp_path, late=late)
    office.tick(75 + 1)  # 09:16
    if late == "refuse":
        refused(ErrorCode.TOO_LATE, office.checkin, code)
        assert not office.book.tickets
        return
    ch = office.checkin(code)
    assert ch.extra == {"late": True} and ch.ticket is not None and ch.ticket.via is Via.KIOSK
    assert ch.ticket.appointment is None and ch.booking is not None and ch.booking.status is BookingStatus.CHECKED_IN


def test_checkin_of_another_day_and_twice(tmp_path: Path) -> None:
    office, code = _booked_for_today(tmp_path, per_phone=3)
    later = office.book_slot("2026-11-25", "10:00")
    err = refused(ErrorCode.TOO_EARLY, office.checkin, later)
    assert err.extra["from"] == "09:30" and err.extra["day"] == "2026-11-25"
    office.tick(45)  # 08:45
    first = office.checkin(code)
    assert first.ticket is not None and first.ticket.via is Via.APPOINTMENT and first.ticket.appointment == code
    again = office.checkin(code)
    assert again.ticket == first.ticket and not again.tickets and not again.bookings
    refused(ErrorCode.INVALID_STATE, office.appointment, action="cancel", code=code)
    refused(ErrorCode.UNKNOWN_BOOKING, office.checkin, "QQQQQQQQ")


def test_rollover_makes_unchecked_bookings_no_shows(tmp_path: Path) -> None:
    office, code = _booked_for_today(tmp_path)
    kept = office.book_slot("2026-11-24", "08:00")
    office.new_day(MONDAY + timedelta(days=1), T0 + timedelta(days=1))
    assert [(b.code, b.status) for b in office.last_rollover.bookings] == [(code, BookingStatus.NO_SHOW)]
    assert office.book.bookings.get(code) is None  # left memory, kept by the store
    assert office.book.bookings.get(kept).status is BookingStatus.BOOKED  # type: ignore[union-attr]
    # its code leaves memory too: the store answers for ended days' codes (QueueService._booking_code,
    # tests/test_core_appointments.py), so memory does not grow with years of bookings
    assert not office.book.bookings.taken(code) and office.book.bookings.taken(kept)


# ---------------------------------------------------------------- the calling order


def test_appointment_tickets_come_after_priority_and_before_walk_ins(tmp_path: Path) -> None:
    office, code = _booked_for_today(tmp_path, max_share=1.0)
    w1 = office.walk_in()
    office.tick(40)  # 08:4x: inside the window
    ticket = office.checkin(code).ticket
    assert ticket is not None
    p = office.walk_in(priority=True)
    assert office.book.ahead(office.book.tickets[ticket.id]) == 1  # only the priority ticket
    assert [office.called() for _ in range(3)] == [p, ticket.number, w1]


def test_fairness_caps_the_share_of_appointments(tmp_path: Path) -> None:
    site = make_site(tmp_path, max_share=0.5, capacity=10)
    office = Office(site, day=MONDAY - timedelta(days=3), now=T0 - timedelta(days=3))
    codes = [office.book_slot("2026-11-23", "09:00", phone=f"8490000000{i}") for i in range(2)]
    codes += [office.book_slot("2026-11-23", "09:00", phone=f"8490000001{i}") for i in range(2)]
    office.new_day(MONDAY, T0 + timedelta(minutes=45))
    walk = [office.walk_in() for _ in range(4)]
    appts = [office.checkin(c).ticket.number for c in codes]  # type: ignore[union-attr]
    order = [office.called() for _ in range(8)]
    # half of the counter's calls at most: they alternate while both wait
    assert order == [appts[0], walk[0], appts[1], walk[1], appts[2], walk[2], appts[3], walk[3]]


def test_no_fairness_share_lets_walk_ins_go_first(tmp_path: Path) -> None:
    office, code = _booked_for_today(tmp_path, max_share=0.0)
    office.tick(40)
    w = office.walk_in()
    ticket = office.checkin(code).ticket
    assert ticket is not None
    assert [office.called(), office.called()] == [w, ticket.number]


@given(st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=60),
       st.floats(min_value=0, max_value=1))
def test_the_share_grows_only_while_under_the_cap(appointments: int, others: int, share: float) -> None:
    calls = appointments + others
    allowed = appt.appointment_may_go_first(appointments, calls, share)
    assert allowed == (appointments < share * (calls + 1))
    if allowed and share < 1:
        assert appointments <= share * calls + share  # after this call, at most the share (rounded up by one)


# ---------------------------------------------------------------- remote tickets


def test_remote_ticket_waits_for_checkin_and_is_called_right_after(tmp_path: Path) -> None:
    office = Office(make_site(tmp_path))
    w1 = office.walk_in()
    remote = office.remote().ticket
    assert remote is not None and remote.awaiting_checkin and remote.via is Via.REMOTE and remote.code
    w2, w3 = office.walk_in(), office.walk_in()
    assert office.book.queue_view("dat-dai")["awaiting_checkin"] == 1
    assert office.book.queue_view("dat-dai")["waiting"] == 3
    assert office.called() == w1
    ch = office.call_next()
    assert ch.ticket is not None and ch.ticket.number == w2 and ch.passed_over == {remote.id}
    assert office.call_next().passed_over == set()  # told once
    assert office.book.ahead(office.book.tickets[remote.id]) == 0
    present = office.checkin(remote.code).ticket  # type: ignore[arg-type]
    assert present is not None and not present.awaiting_checkin
    assert office.called() == remote.number  # its turn passed: it is next
    assert office.called() is None and w3  # the queue is empty (w3 was called before the check-in)


def test_remote_limits(tmp_path: Path) -> None:
    office = Office(make_site(tmp_path))
    office.remote(phone="84900000001")
    err = refused(ErrorCode.QUOTA_REACHED, office.remote, phone="84900000001")
    assert "tối đa 1" in err.message
    office.remote(phone="84900000002")
    office.remote(phone="84900000003")
    err = refused(ErrorCode.QUOTA_REACHED, office.remote, phone="84900000004")  # the field's 3 a day
    assert "hết lượt" in err.message
    refused(ErrorCode.QUOTA_REACHED, office.remote, field="chung-thuc")  # not in [remote.quota]
    office.now = T0 + timedelta(hours=3, minutes=30)  # 11:30
    err = refused(ErrorCode.OUTSIDE_HOURS, office.remote, field="ho-tich")
    assert "07:30–11:00" in err.message


def test_a_site_without_the_sections_refuses_remote_and_bookings(tmp_path: Path) -> None:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1")
    office = Office(load_site_config(path))
    refused(ErrorCode.OUTSIDE_HOURS, office.remote)
    refused(ErrorCode.OUTSIDE_HOURS, office.book_slot, "2026-11-24", "08:00")


def test_requests_are_checked(tmp_path: Path) -> None:
    bad = [{"action": "book", "field": "dat-dai", "day": "2026-11-24", "slot": "08:00"},   # no phone
           {"action": "book", "field": "dat-dai", "day": "2026-02-30", "slot": "08:00", "phone": PHONE},
           {"action": "book", "field": "dat-dai", "day": "2026-11-24", "slot": "8:00", "phone": PHONE},
           {"action": "move", "code": "ACDEFGHJ", "day": "2026-11-24"},
           {"action": "cancel", "code": "abc0"},
           {"action": "drop", "code": "ACDEFGHJ"}]
    for body in bad:
        refused(ErrorCode.BAD_REQUEST, AppointmentRequest.parse, {"request_id": "x", **body})
    assert AppointmentRequest.parse({"request_id": "x", "action": "get", "code": " acde fghj "}).code == "ACDEFGHJ"
    refused(ErrorCode.BAD_REQUEST, TicketRequest.parse, {"request_id": "x", "field": "dat-dai", "remote": True})


_KINDS = st.lists(st.tuples(st.sampled_from(["walk", "priority", "remote", "appointment"]),
                            st.integers(min_value=0, max_value=5)), max_size=25)


@given(_KINDS)
def test_ahead_is_the_calling_order(tmp_path_factory: pytest.TempPathFactory, kinds: list[tuple[str, int]]) -> None:
    """Whatever the mix, `ahead` of each callable ticket is how many call_next calls come before it
    (no fairness turn: max_share 1); remote tickets awaiting check-in are never called."""
    office = Office(make_site(tmp_path_factory.mktemp("ahead"), max_share=1.0))
    f = office.book.site.field("dat-dai")
    assert f is not None
    for i, (kind, slot) in enumerate(kinds):
        if kind == "walk":
            office.walk_in()
        elif kind == "priority":
            office.walk_in(priority=True)
        elif kind == "remote":
            with contextlib.suppress(ProtocolError):  # beyond the field's daily quota of 3
                office.remote(phone=f"849000{i:05d}")
        else:  # an appointment ticket of a slot between 08:00 and 10:30
            at = appt.slot_moment(MONDAY.isoformat(), f"{8 + slot // 2:02d}:{30 * (slot % 2):02d}",
                                  office.book.site.tz)
            office.apply(rules._new_ticket(office.book, f, office.tick(), via=Via.APPOINTMENT, appointment="X",
                                           slot_at=at))
    callable_ = [t for t in office.book.tickets.values() if not t.awaiting_checkin]
    expected = {t.number: office.book.ahead(t) for t in callable_}
    order = [office.called() for _ in callable_]
    assert {n: i for i, n in enumerate(order)} == expected
    assert office.called() is None


def test_a_slot_counts_who_has_checked_in() -> None:
    from dataclasses import replace as changed

    from queue_core.bookings import BookingIndex as Bookings
    from queue_core.model import Booking
    at = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    b = Booking(code="ACDEFGHJ", field="dat-dai", day="2026-11-24", slot="08:00", phone=PHONE,
                status=BookingStatus.BOOKED, created_at=at, updated_at=at)
    books = Bookings([b])
    assert (books.used("dat-dai", "2026-11-24", "08:00"), books.checked_in("dat-dai", "2026-11-24", "08:00")) == (1, 0)
    books.put(changed(b, status=BookingStatus.CHECKED_IN))
    assert (books.used("dat-dai", "2026-11-24", "08:00"), books.checked_in("dat-dai", "2026-11-24", "08:00")) == (1, 1)
    books.put(changed(b, status=BookingStatus.NO_SHOW))
    assert (books.used("dat-dai", "2026-11-24", "08:00"), books.checked_in("dat-dai", "2026-11-24", "08:00")) == (0, 0)
