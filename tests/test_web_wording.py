"""The words and dates citizens and officers read, without a browser: citizens are "ông/bà",
English counts one person, and every date and time is the site's, as dd/mm/yyyy."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from display_server import timefmt
from display_server.texts import EN, VI, Texts

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "display_server"


def test_citizens_are_addressed_as_ong_ba_everywhere() -> None:
    # "bạn" is how one speaks to a friend; a public office says "ông/bà"
    for key, text in VI.items():
        assert not re.search(r"\bbạn\b", text, re.I), (key, text)
    for path in [*PAGES.glob("templates/*.html"), *PAGES.glob("static/*.js"), *PAGES.rglob("*.py")]:
        assert not re.search(r"\bbạn\b", path.read_text(encoding="utf-8"), re.I), path
    assert Texts("vi").ticket_next == "Ông/bà là người tiếp theo"


def test_the_tracking_page_says_quay_once_and_thanks_once() -> None:
    t = Texts("vi")
    assert "quầy" not in t.track_serving.lower()  # the counter's name follows: "Quầy 3"
    assert (t.track_done + " " + t.track_rated).count("Cảm ơn") == 1
    assert (t.track_done + " " + t.track_thanks).count("Cảm ơn") == 1


def test_english_counts_one_person() -> None:
    en, vi = Texts("en"), Texts("vi")
    assert en.plural("people", 1) == "person" and en.plural("people", 2) == "people"
    assert en.plural("ticket_ahead", 1).format(n=1) == "1 person ahead of you"
    assert en.plural("ticket_ahead", 3).format(n=3) == "3 people ahead of you"
    assert vi.plural("ticket_ahead", 1).format(n=1) == "Có 1 người đang chờ trước ông/bà"
    # every "_one" form has its plain form, in both languages
    for texts in (VI, EN):
        for key in texts:
            if key.endswith("_one"):
                assert key.removesuffix("_one") in texts, key


def test_dates_and_times_are_the_site_s() -> None:
    hcm = ZoneInfo("Asia/Ho_Chi_Minh")
    late = datetime(2026, 11, 28, 22, 5, tzinfo=UTC)  # already the 29th in Vietnam
    assert timefmt.stamp_text(late, hcm) == "05:05 · 29/11/2026"
    assert timefmt.stamp_text("2026-11-28T22:05:00+00:00", hcm) == "05:05 · 29/11/2026"
    assert timefmt.stamp_text("2026-11-29T05:05:00+07:00", ZoneInfo("UTC")) == "22:05 · 28/11/2026"
    assert timefmt.stamp_text("not a time", hcm) == "" and timefmt.stamp_text(None, hcm) == ""
    assert timefmt.stamp_text("2026-11-29T05:05:00", hcm) == ""  # no zone: no guess
    assert timefmt.day_text("2026-11-09") == "09/11/2026" and timefmt.day_text(None) == ""
    assert timefmt.date_text(date(2026, 1, 2)) == "02/01/2026"
