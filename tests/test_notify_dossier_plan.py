"""The notifier's rules for dossiers, without I/O: which entry brings which message (once), what
is late news, and the wording (SMS in one GSM-7 part with the link whole, ZNS within limits)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from notifier import plan
from notifier.plan import DossierNews, Step
from notifier.texts import (
    DEFAULT_TEMPLATES,
    GSM7_BASIC,
    SMS_MAX,
    WORST_NEEDS,
    WORST_PROCEDURE,
    Kind,
    check_sms_fits,
    dossier_link_len,
    dossier_timing,
    render_sms,
    render_text,
    zns_data,
)

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=TZ)
CODE = "000.00.12.H23-261120-0001"


def entry(id_: str, status: str, at: datetime, note: str | None = None) -> dict[str, Any]:
    return {"id": id_, "status": status, "at": at.isoformat(), "note": note, "department": None, "by": "web",
            "applied_at": at.isoformat()}


def news(status: str = "received", *, id_: str | None = None, applied: datetime = NOW, view_status: str | None = None,
         timeline: list[dict[str, Any]] | None = None, early: bool = False, version: int = 1,
         note: str | None = None) -> DossierNews:
    e = entry(id_ or status, status, applied, note)
    view = {"code": CODE, "procedure": {"code": "1.001", "name": "Đăng ký kết hôn"}, "field": None,
            "received_at": (NOW - timedelta(days=3)).isoformat(), "due_at": "2026-11-27",
            "status": view_status or status, "department": None,
            "needs": note if (view_status or status) == "needs_documents" else None, "reason": None,
            "documents": [], "ticket": None, "officer": None, "counter": None, "source": "counter",
            "has_phone": True, "timeline": timeline if timeline is not None else [e], "done_at": None,
            "early": early, "overdue": False, "late_days": 0, "rating": None, "version": version}
    return DossierNews.parse({"dossier": view, "entry": e, "phone": "84912345678", "at": applied.isoformat()})


def test_received_needs_and_done_each_bring_their_message_with_their_key() -> None:
    got = plan.decide_dossier(news("received"), set(), now=NOW)
    assert got == plan.DossierDecision(f"d:{CODE}:received", "dossier_received", Step.SEND)
    needs = plan.decide_dossier(news("needs_documents", id_="ev-7", note="Bản sao CCCD"), set(), now=NOW)
    assert needs is not None and needs.key == f"d:{CODE}:needs:ev-7" and needs.step is Step.SEND
    done = plan.decide_dossier(news("done", id_="ev-9"), set(), now=NOW)
    assert done == plan.DossierDecision(f"d:{CODE}:done", "dossier_done", Step.SEND)


@pytest.mark.parametrize("status", ["processing", "returned", "refused"])
def test_other_entries_bring_no_message(status: str) -> None:
    # a "returned" with no "done" before it included: the citizen has the result in hand
    assert plan.decide_dossier(news(status), set(), now=NOW) is None


def test_a_decided_message_is_not_decided_again() -> None:
    decided = {f"d:{CODE}:received", f"d:{CODE}:done", f"d:{CODE}:needs:ev-7"}
    assert plan.decide_dossier(news("received"), decided, now=NOW) is None
    # a second "done" (another id: a corrected result) is not a second message
    assert plan.decide_dossier(news("done", id_="ev-10"), decided, now=NOW) is None
    assert plan.decide_dossier(news("needs_documents", id_="ev-7"), decided, now=NOW) is None
    # another request for documents is news of its own
    again = plan.decide_dossier(news("needs_documents", id_="ev-8"), decided, now=NOW)
    assert again is not None and again.step is Step.SEND


def test_news_older_than_a_day_is_dropped_with_why() -> None:
    late = NOW - plan.DOSSIER_FRESH - timedelta(minutes=1)
    got = plan.decide_dossier(news("done", applied=late), set(), now=NOW)
    assert got is not None and got.step is Step.DROP and "24 giờ" in got.reason
    fresh = NOW - plan.DOSSIER_FRESH + timedelta(minutes=1)
    got = plan.decide_dossier(news("done", applied=fresh), set(), now=NOW)
    assert got is not None and got.step is Step.SEND


def test_news_overtaken_by_the_dossier_is_dropped_with_why() -> None:
    # the catch-up lists "received" of a dossier done since: the "done" message says it all
    got = plan.decide_dossier(news("received", view_status="done"), set(), now=NOW)
    assert got is not None and got.step is Step.DROP and "đã có kết quả" in got.reason
    # still being processed: the "received" is still worth sending
    got = plan.decide_dossier(news("received", view_status="processing"), set(), now=NOW)
    assert got is not None and got.step is Step.SEND
    # documents asked, then supplied: "needs" no longer makes sense
    got = plan.decide_dossier(news("needs_documents", id_="ev-7", view_status="processing"), set(), now=NOW)
    assert got is not None and got.step is Step.DROP and "đang xử lý" in got.reason
    # done, then returned at once: the citizen already has it
    got = plan.decide_dossier(news("done", view_status="returned"), set(), now=NOW)
    assert got is not None and got.step is Step.DROP and "đã trả kết quả" in got.reason


def test_a_newer_view_known_wins_over_the_news_own() -> None:
    newer = news("returned", version=5).dossier
    got = plan.decide_dossier(news("done", version=4), set(), latest=newer, now=NOW)
    assert got is not None and got.step is Step.DROP
    older = news("processing", version=3).dossier
    got = plan.decide_dossier(news("done", version=4), set(), latest=older, now=NOW)
    assert got is not None and got.step is Step.SEND


def test_an_earlier_request_for_documents_is_stale_once_a_newer_one_came() -> None:
    timeline = [entry("ev-7", "needs_documents", NOW - timedelta(hours=1)), entry("ev-8", "needs_documents", NOW)]
    info = news("needs_documents", id_="ev-8", timeline=timeline).dossier
    assert plan.dossier_stale("dossier_needs", "ev-7", info, now=NOW) == "đã có yêu cầu bổ sung mới hơn"
    assert plan.dossier_stale("dossier_needs", "ev-8", info, now=NOW) is None
    assert plan.dossier_stale("dossier_done", None, None, now=NOW) is None  # not heard since a restart


def test_bad_shapes_are_refused_by_parse() -> None:
    good = {"dossier": {"code": CODE, "procedure": {"name": "X"}, "due_at": "2026-11-27", "status": "done",
                        "version": 1, "timeline": []},
            "entry": {"id": "e", "status": "done", "applied_at": NOW.isoformat()}, "phone": "84912345678",
            "at": NOW.isoformat()}
    assert DossierNews.parse(good).entry_status == "done"
    for broken in ({**good, "dossier": {**good["dossier"], "due_at": "27/11/2026"}},
                   {**good, "dossier": {**good["dossier"], "procedure": "X"}},
                   {**good, "dossier": {**good["dossier"], "code": "a:b"}},
                   {**good, "dossier": {**good["dossier"], "timeline": [1]}},
                   {**good, "entry": ["done"]},
                   {**good, "entry": {"id": "e", "status": "done", "applied_at": "2026-11-25T10:00:00"}},
                   {k: v for k, v in good.items() if k != "phone"}):
        with pytest.raises((KeyError, ValueError, TypeError)):
            DossierNews.parse(broken)


# ---------------------------------------------------------------- wording

OFFICE = "Trung tâm Phục vụ hành chính công tỉnh Hòa Bình"
PUBLIC = "https://xephang.hoabinh.gov.vn"
LINK = f"{PUBLIC}/hs/{CODE}?k=abcdefghijklmnop"


def values(**over: str) -> dict[str, str]:
    return {"office": OFFICE, "dossier": CODE, "procedure": WORST_PROCEDURE, "due": "27/11/2026",
            "needs": WORST_NEEDS, "timing": dossier_timing(False, "2026-11-27"), "link": LINK, **over}


@pytest.mark.parametrize("lang", ["vi", "en"])
@pytest.mark.parametrize("kind", [Kind.DOSSIER_RECEIVED, Kind.DOSSIER_NEEDS, Kind.DOSSIER_DONE])
def test_sms_fits_one_part_with_long_names_and_keeps_the_link(lang: str, kind: Kind) -> None:
    text = render_sms(DEFAULT_TEMPLATES[lang][kind], values(), kind=kind)
    assert len(text) <= SMS_MAX and set(text) <= GSM7_BASIC
    assert text.endswith(" " + LINK)  # the link is never cut
    assert "Cap Giay" in text  # the name is shortened, not dropped


def test_a_wording_naming_the_code_shortens_it_last_and_never_in_the_link() -> None:
    template = "{office}: hồ sơ {dossier} ({procedure}) đã có kết quả. {link}"
    code = "X" * 40
    link = f"{PUBLIC}/hs/{code}?k=abcdefghijklmnop"
    text = render_sms(template, values(dossier=code, link=link))
    assert len(text) <= SMS_MAX and text.endswith(" " + link)
    assert "XXXXXXXXXX" in text.removesuffix(link)  # shortened to what fits, not dropped


def test_done_says_truoc_hen_when_early_and_the_promised_date_otherwise() -> None:
    template = DEFAULT_TEMPLATES["vi"][Kind.DOSSIER_DONE]
    early = values(procedure="Đăng ký kết hôn", office="UBND phường Hòa Bình",
                   timing=dossier_timing(True, "2026-11-27"))
    assert "đã có kết quả (trước hẹn)" in render_text(template, early)
    assert "da co ket qua (truoc hen)" in render_sms(template, early)
    on_time = dict(early, timing=dossier_timing(False, "2026-11-27"))
    assert "đã có kết quả (hẹn trả 27/11/2026)" in render_text(template, on_time)
    assert "(hen tra 27/11/2026)" in render_sms(template, on_time)
    assert dossier_timing(True, "2026-11-27", "en") == "ahead of schedule"


def test_the_needed_documents_are_in_the_message() -> None:
    text = render_sms(DEFAULT_TEMPLATES["vi"][Kind.DOSSIER_NEEDS],
                      values(office="UBND phường Hòa Bình", procedure="Đăng ký kết hôn",
                             needs="Bản sao CCCD của hai bên"))
    assert "ho so Dang ky ket hon can bo sung: Ban sao CCCD cua hai ben. " + LINK in text


def test_default_wording_passes_the_start_up_check_with_a_long_address() -> None:
    for lang, templates in DEFAULT_TEMPLATES.items():
        check_sms_fits(templates, office=OFFICE, field_names=["Đất đai"], link_len=80, counter_names=["Quầy 1"],
                       language=lang, dossier_link=dossier_link_len("https://motcua.hoabinh.gov.vn:8443"))


def test_zns_data_names_the_dossier_and_keeps_its_link() -> None:
    done = zns_data(Kind.DOSSIER_DONE, values(timing="trước hẹn"))
    assert set(done) == {"office", "dossier", "procedure", "timing", "due", "link"}
    assert done["timing"] == "trước hẹn" and done["link"] == LINK and done["dossier"] == CODE
    assert all(len(v) <= 30 for k, v in done.items() if k != "link")
    needs = zns_data(Kind.DOSSIER_NEEDS, values())
    assert set(needs) == {"office", "dossier", "procedure", "needs", "link"} and len(needs["needs"]) <= 30
