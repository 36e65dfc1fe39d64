"""The queue rules as pure functions: no broker, no database."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from qms_common.config import SiteConfig, business_day, load_site_config
from qms_common.protocol import (
    CounterRequest,
    CounterStatus,
    ErrorCode,
    EventKind,
    ProtocolError,
    RatingRequest,
    TicketRequest,
    TicketStatus,
)
from queue_core import rules
from queue_core.book import Book, Change
from tests.support.site import write_site

T0 = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội


@pytest.fixture
def site(tmp_path: Path) -> SiteConfig:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1")
    return load_site_config(path)


class Office:
    """A book plus a clock, applying changes the way the service does after a commit."""

    def __init__(self, site: SiteConfig) -> None:
        self.book = Book(site, "2026-11-21")
        self.now = T0
        self.n = 0

    def tick(self, seconds: float = 60) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def _rid(self) -> str:
        self.n += 1
        return f"r{self.n}"

    def apply(self, change: Change) -> Change:
        self.book.apply(change)
        return change

    def issue(self, field: str, priority: bool = False) -> str:
        ch = self.apply(rules.issue_ticket(self.book, TicketRequest(self._rid(), field, priority), self.tick()))
        assert ch.ticket is not None
        return ch.ticket.number

    def act(self, counter: str, action: str, **kw: object) -> Change:
        req = CounterRequest.parse({"request_id": self._rid(), "action": action, **kw})
        return self.apply(rules.counter_action(self.book, counter, req, self.tick()))

    def call_next(self, counter: str) -> str | None:
        ch = self.act(counter, "call_next")
        return ch.ticket.number if ch.ticket else None

    def rate(self, score: int, **kw: object) -> Change:
        req = RatingRequest.parse({"request_id": self._rid(), "score": score, **kw})
        return self.apply(rules.rate(self.book, req, self.tick()))

    def ticket(self, number: str):
        t = self.book.find_ticket(number)
        assert t is not None
        return t

    def counter(self, cid: str):
        return self.book.counters[cid]


@pytest.fixture
def office(site: SiteConfig) -> Office:
    return Office(site)


def refused(code: ErrorCode, fn, *args, **kw) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        fn(*args, **kw)
    assert info.value.code == code, info.value.message
    assert info.value.message  # a Vietnamese sentence for people
    return info.value


# ---------------------------------------------------------------- business day


@pytest.mark.parametrize(("utc", "starts", "day"), [
    (datetime(2026, 11, 20, 16, 59, tzinfo=UTC), time(0, 0), "2026-11-20"),  # 23:59 in Vietnam
    (datetime(2026, 11, 20, 17, 0, tzinfo=UTC), time(0, 0), "2026-11-21"),   # 00:00 in Vietnam
    (datetime(2026, 11, 20, 22, 59, tzinfo=UTC), time(6, 0), "2026-11-20"),  # 05:59, day starts 06:00
    (datetime(2026, 11, 20, 23, 0, tzinfo=UTC), time(6, 0), "2026-11-21"),
])
def test_business_day_follows_the_site_zone_and_start(utc: datetime, starts: time, day: str) -> None:
    assert business_day(utc, ZoneInfo("Asia/Ho_Chi_Minh"), starts) == day


# ---------------------------------------------------------------- issuing


def test_numbers_run_through_the_field_range(office: Office) -> None:
    assert [office.issue("dat-dai") for _ in range(3)] == ["1001", "1002", "1003"]
    assert office.issue("ho-tich") == "2001"
    t = office.ticket("1002")
    assert t.id == "20261121-dat-dai-1002"
    assert t.status is TicketStatus.WAITING


def test_prefix_is_padded_and_range_exhaustion_is_refused(office: Office) -> None:
    assert [office.issue("chung-thuc") for _ in range(3)] == ["C1", "C2", "C3"]
    err = refused(ErrorCode.RANGE_EXHAUSTED, rules.issue_ticket, office.book,
                  TicketRequest("x", "chung-thuc"), office.tick())
    assert "Chứng thực" in err.message and "C1" in err.message


def test_unknown_field(office: Office) -> None:
    refused(ErrorCode.UNKNOWN_FIELD, rules.issue_ticket, office.book, TicketRequest("x", "thue"), office.tick())


def test_issue_announces_and_counts_ahead(office: Office) -> None:
    office.issue("dat-dai")
    ch = rules.issue_ticket(office.book, TicketRequest("x", "dat-dai"), office.tick())
    assert [e.kind for e in ch.events] == [EventKind.ISSUED]
    office.apply(ch)
    assert office.book.ahead(ch.ticket) == 1
    # nobody serves yet: one counter is assumed, at the default service time
    assert office.book.est_wait_s("dat-dai", 1) == 300


# ---------------------------------------------------------------- calling


def test_call_next_takes_priority_first_then_the_oldest(office: Office) -> None:
    office.issue("dat-dai")                 # 1001
    office.issue("dat-dai")                 # 1002
    office.issue("dat-dai", priority=True)  # 1003
    assert office.call_next("1") == "1003"
    assert office.call_next("1") == "1001"
    assert office.call_next("1") == "1002"


def test_call_next_serves_the_oldest_among_the_counters_fields(office: Office) -> None:
    office.issue("ho-tich")   # 2001, older
    office.issue("dat-dai")   # 1001
    assert office.call_next("2") == "2001"
    assert office.call_next("2") == "1001"


def test_call_next_finishes_the_current_ticket(office: Office) -> None:
    office.issue("dat-dai")
    office.issue("dat-dai")
    office.call_next("1")
    ch = office.act("1", "call_next")
    assert [e.kind for e in ch.events] == [EventKind.FINISHED, EventKind.CALLED]
    first = office.ticket("1001")
    assert first.status is TicketStatus.DONE and first.finished_at is not None
    assert office.counter("1").last_served is None  # 1002 is at the counter now: not 1001's rating
    assert office.counter("1").ticket == office.ticket("1002").id


def test_call_next_opens_a_closed_counter_and_ends_a_pause(office: Office) -> None:
    assert office.counter("1").status is CounterStatus.CLOSED
    office.issue("dat-dai")
    office.issue("dat-dai")
    assert office.call_next("1") == "1001"
    assert office.counter("1").status is CounterStatus.SERVING
    office.act("1", "pause")
    assert office.counter("1").status is CounterStatus.PAUSED
    assert office.call_next("1") == "1002"
    assert office.counter("1").status is CounterStatus.SERVING


def test_call_next_on_an_empty_queue(office: Office) -> None:
    ch = office.act("1", "call_next")  # opens the closed counter, then finds nobody
    assert ch.error is not None and ch.error.code == ErrorCode.QUEUE_EMPTY
    assert office.counter("1").status is CounterStatus.OPEN
    refused(ErrorCode.QUEUE_EMPTY, office.act, "1", "call_next")  # changes nothing: refused outright
    office.issue("dat-dai")
    office.call_next("1")
    ch = office.act("1", "call_next")  # finishes 1001, then finds nobody
    assert ch.error is not None and ch.error.code == ErrorCode.QUEUE_EMPTY
    assert office.ticket("1001").status is TicketStatus.DONE
    assert office.counter("1").status is CounterStatus.OPEN and office.counter("1").ticket is None


def test_a_counter_never_calls_a_field_it_does_not_serve(office: Office) -> None:
    office.issue("ho-tich")
    office.act("1", "open")
    refused(ErrorCode.QUEUE_EMPTY, office.act, "1", "call_next")


def test_skip_then_call_back_a_no_show(office: Office) -> None:
    office.issue("dat-dai")
    office.issue("dat-dai")
    office.call_next("1")
    ch = office.act("1", "skip")
    assert [e.kind for e in ch.events] == [EventKind.SKIPPED]
    assert office.ticket("1001").status is TicketStatus.NO_SHOW
    assert office.counter("1").status is CounterStatus.OPEN
    assert office.call_next("1") == "1002"
    ch = office.act("1", "call", ticket="1001")
    assert ch.ticket.number == "1001" and ch.ticket.status is TicketStatus.SERVING
    assert ch.ticket.calls == 2
    assert office.ticket("1002").status is TicketStatus.DONE


def test_call_by_number_or_id_and_its_refusals(office: Office) -> None:
    office.issue("dat-dai")
    tid = office.ticket("1001").id
    assert office.act("2", "call", ticket=tid).ticket.number == "1001"
    refused(ErrorCode.INVALID_STATE, office.act, "1", "call", ticket="1001")  # served elsewhere
    refused(ErrorCode.UNKNOWN_TICKET, office.act, "1", "call", ticket="1500")
    office.act("2", "finish")
    refused(ErrorCode.INVALID_STATE, office.act, "1", "call", ticket=1001)  # done


def test_recall_announces_again_without_changing_the_ticket(office: Office) -> None:
    office.issue("dat-dai")
    office.call_next("1")
    ch = office.act("1", "recall")
    assert len(ch.events) == 1 and ch.events[0].kind is EventKind.CALLED and ch.events[0].recall
    assert office.ticket("1001").calls == 2 and office.ticket("1001").status is TicketStatus.SERVING


def test_actions_that_need_a_current_ticket(office: Office) -> None:
    for action in ("recall", "skip", "finish"):
        refused(ErrorCode.COUNTER_CLOSED, office.act, "1", action)
    office.act("1", "open", officer="Nguyễn Thị Hoa")
    for action in ("recall", "skip", "finish"):
        refused(ErrorCode.INVALID_STATE, office.act, "1", action)
    refused(ErrorCode.INVALID_STATE, office.act, "1", "transfer", to_field="ho-tich")


def test_finish_makes_the_ticket_the_one_to_rate(office: Office) -> None:
    office.issue("dat-dai")
    office.act("1", "open", officer="Trần Văn An")
    office.call_next("1")
    ch = office.act("1", "finish")
    assert [e.kind for e in ch.events] == [EventKind.FINISHED]
    assert office.counter("1").status is CounterStatus.OPEN
    rated = office.rate(3, counter="1")
    t = rated.ticket
    assert t.number == "1001" and t.rating == 3 and t.officer == "Trần Văn An"
    assert rated.events[0].kind is EventKind.RATED
    refused(ErrorCode.INVALID_STATE, office.rate, 2, counter="1")  # once only


def test_rating_refusals(office: Office) -> None:
    refused(ErrorCode.INVALID_STATE, office.rate, 3, counter="1")  # nothing served yet
    refused(ErrorCode.UNKNOWN_COUNTER, office.rate, 3, counter="9")
    refused(ErrorCode.BAD_REQUEST, office.rate, 4, counter="1")  # three levels configured
    office.issue("dat-dai")
    office.call_next("1")
    refused(ErrorCode.INVALID_STATE, office.rate, 3, ticket=office.ticket("1001").id)  # still serving
    office.act("1", "finish")
    assert office.rate(1, ticket="1001").ticket.rating == 1


def test_transfer_to_a_field_keeps_the_place_by_issue_time(office: Office) -> None:
    office.issue("dat-dai")   # 1001, issued first
    office.issue("ho-tich")   # 2001
    office.issue("ho-tich")   # 2002
    office.call_next("1")
    ch = office.act("1", "transfer", to_field="ho-tich")
    moved = ch.ticket
    assert moved.status is TicketStatus.TRANSFERRED and moved.field == "ho-tich"
    assert [e.kind for e in ch.events] == [EventKind.TRANSFERRED]
    assert office.counter("1").ticket is None
    # counter 3 serves ho-tich: 1001 was issued before 2001, so it comes first
    assert office.call_next("3") == "1001"
    assert office.call_next("3") == "2001"


def test_transfer_to_a_counter_only_that_counter_calls_it(office: Office) -> None:
    office.issue("dat-dai")   # 1001
    office.issue("dat-dai")   # 1002
    office.call_next("1")
    office.act("1", "transfer", to_counter="3")   # counter 3 does not even serve dat-dai
    assert office.call_next("2") == "1002"          # 2 serves dat-dai but 1001 is not for it
    assert office.call_next("3") == "1001"
    refused(ErrorCode.UNKNOWN_COUNTER, office.act, "3", "transfer", to_counter="99")
    refused(ErrorCode.INVALID_STATE, office.act, "3", "transfer", to_counter="3")
    refused(ErrorCode.UNKNOWN_FIELD, office.act, "3", "transfer", to_field="thue")


def test_pause_resume_open_close(office: Office) -> None:
    refused(ErrorCode.COUNTER_CLOSED, office.act, "1", "pause")
    ch = office.act("1", "open", officer="Lê Minh")
    assert ch.counter.status is CounterStatus.OPEN and ch.counter.officer == "Lê Minh"
    office.issue("dat-dai")
    office.call_next("1")
    assert office.act("1", "pause").counter.status is CounterStatus.PAUSED
    refused(ErrorCode.INVALID_STATE, office.act, "1", "recall")
    assert office.act("1", "resume").counter.status is CounterStatus.SERVING
    ch = office.act("1", "close")
    assert ch.counter.status is CounterStatus.CLOSED and ch.counter.officer == "Lê Minh"  # remembered
    assert office.ticket("1001").status is TicketStatus.DONE
    assert office.act("1", "close").empty  # closing twice changes nothing


def test_a_keypad_call_on_a_closed_counter_names_an_officer(office: Office, tmp_path: Path) -> None:
    for _ in range(3):
        office.issue("dat-dai")
    office.call_next("1")  # nobody ever signed in here, nothing configured: no name to give
    assert office.ticket("1001").officer is None
    office.act("1", "open", officer="Lê Minh")
    office.act("1", "close")
    assert office.call_next("1") == "1002"  # the keypad's N names nobody: the last one signed in here
    assert office.ticket("1002").officer == office.counter("1").officer == "Lê Minh"
    office.apply(rules.rollover(office.book, "2026-11-22", office.tick()))
    assert office.counter("1").officer == "Lê Minh"  # tomorrow's first N too

    counters = '[[counters]]\nid = "1"\nname = "Quầy 1"\nfields = ["dat-dai"]\nofficer = "Trần Văn Bình"\n'
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", counters=counters)
    other = Office(load_site_config(path))
    for _ in range(3):
        other.issue("dat-dai")
    other.act("1", "open", officer="Lê Minh")
    other.act("1", "close")
    assert other.call_next("1") == "1001"  # the counter's configured officer
    assert other.ticket("1001").officer == "Trần Văn Bình"
    other.act("1", "open", officer="Lê Minh")  # who opens it by name serves from then on
    assert other.call_next("1") == "1002" and other.ticket("1002").officer == "Lê Minh"


def test_dossier_code_is_kept_with_the_ticket(office: Office) -> None:
    office.issue("dat-dai")
    office.call_next("1")
    office.act("1", "finish")
    ch = office.act("1", "dossier", dossier="000.00.12.H12-261121-0001")
    assert ch.ticket.dossier == "000.00.12.H12-261121-0001"
    assert office.ticket("1001").dossier == "000.00.12.H12-261121-0001"


def test_queue_view_counts_and_waits(office: Office) -> None:
    for _ in range(3):
        office.issue("dat-dai")
    office.issue("dat-dai", priority=True)
    view = office.book.queue_view("dat-dai")
    assert view["waiting"] == 4 and view["priority_waiting"] == 1
    assert view["next"] == ["1004", "1001", "1002", "1003"]
    assert view["served"] == 0 and view["avg_wait_s"] is None
    office.call_next("1")      # 1004 waited 60 s (issued one tick earlier)
    office.tick(240)
    office.act("1", "finish")  # served in 300 s
    view = office.book.queue_view("dat-dai")
    assert view["waiting"] == 3 and view["served"] == 1
    assert view["avg_wait_s"] == 60
    # three waiting, one active counter, 300+60 s per service measured
    assert view["est_wait_s"] == 3 * office.book.avg_service_s("dat-dai")


def test_rollover_expires_waiting_and_closes_counters(office: Office) -> None:
    office.issue("dat-dai")
    office.issue("dat-dai")
    office.issue("dat-dai")
    office.call_next("1")
    office.call_next("2")
    office.act("2", "skip")
    ch = rules.rollover(office.book, "2026-11-22", office.tick())
    statuses = {t.number: t.status for t in ch.tickets}
    assert statuses == {"1001": TicketStatus.DONE, "1002": TicketStatus.EXPIRED, "1003": TicketStatus.EXPIRED}
    assert all(c.status is CounterStatus.CLOSED and c.ticket is None for c in ch.counters)
    assert ch.day == "2026-11-22"
