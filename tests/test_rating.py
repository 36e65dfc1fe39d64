"""The rating rule (issue 10): a rating belongs to one finished ticket, within `[rating] window_s`
after it finished; a rating by counter goes only to the ticket that counter finished since its last
call, so it never lands on the next citizen."""

from __future__ import annotations

from pathlib import Path

import pytest

from counter_agent.panel import error_text
from qms_common.config import load_site_config
from qms_common.protocol import ErrorCode
from tests import test_rules
from tests.test_rules import Office, refused

office = test_rules.office  # the same office: a book, a clock, the rules
site = test_rules.site


def test_a_call_ends_the_rating_by_counter_of_the_one_before(office: Office) -> None:
    office.issue("dat-dai")
    office.issue("dat-dai")
    office.act("1", "open", officer="Trần Văn An")
    office.call_next("1")
    office.call_next("1")  # finishes 1001, calls 1002: the citizen at the counter is 1002's now
    refused(ErrorCode.INVALID_STATE, office.rate, 3, counter="1")
    office.act("1", "finish")
    assert office.rate(3, counter="1").ticket.number == "1002"


def test_a_skip_after_a_call_does_not_bring_back_the_one_before(office: Office) -> None:
    office.issue("dat-dai")
    office.issue("dat-dai")
    office.call_next("1")
    office.act("1", "finish")   # 1001 done: rateable by counter
    office.call_next("1")       # 1002 called ...
    office.act("1", "skip")     # ... and absent: nobody to rate at the counter
    refused(ErrorCode.INVALID_STATE, office.rate, 3, counter="1")
    assert office.rate(2, ticket=office.ticket("1001").id).ticket.rating == 2  # by its own id, still


def test_a_rating_after_the_window_is_refused(office: Office) -> None:
    office.issue("dat-dai")
    office.call_next("1")
    office.act("1", "finish")
    office.tick(600)  # the default window is 600 s; rate() itself moves the clock a minute on
    refused(ErrorCode.RATING_CLOSED, office.rate, 3, counter="1")
    refused(ErrorCode.RATING_CLOSED, office.rate, 3, ticket=office.ticket("1001").id)
    assert office.ticket("1001").rating is None


def test_the_window_is_a_setting(tmp_path: Path, site) -> None:  # type: ignore[no-untyped-def]
    text = site.path.read_text(encoding="utf-8")
    path = tmp_path / "window.toml"
    path.write_text(text + '\n[rating]\nwindow_s = 120\n' if "[rating]" not in text
                    else text.replace("[rating]", "[rating]\nwindow_s = 120"), encoding="utf-8")
    assert load_site_config(path).rating_window_s == 120
    bad = tmp_path / "bad.toml"
    bad.write_text(path.read_text(encoding="utf-8").replace("window_s = 120", "window_s = 5"), encoding="utf-8")
    with pytest.raises(Exception, match="window_s"):
        load_site_config(bad)


def test_a_keypad_shows_a_closed_rating_as_nothing_to_rate() -> None:
    assert error_text(ErrorCode.RATING_CLOSED) == error_text(ErrorCode.INVALID_STATE) == "E-01"
