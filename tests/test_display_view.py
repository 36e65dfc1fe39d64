"""The web server's picture of the site and what one TV shows, as pure functions; and its settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from display_server.feed.hub import RESYNC, Hub
from display_server.feed.state import SiteState
from display_server.settings import DisplaySettings, load_server_settings
from display_server.texts import Texts
from display_server.tv.page import apply_patch, view_patch
from display_server.tv.view import DisplayFilter, FilterError, build_view
from qms_common.config import SiteConfig, load_site_config
from qms_common.tomlconf import ConfigError
from tests.support.site import write_site

T = Texts()


@pytest.fixture
def site(tmp_path: Path) -> SiteConfig:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1")
    return load_site_config(path)


def msg(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def ticket(number: str, field: str = "dat-dai", **kw: Any) -> dict[str, Any]:
    return {"id": f"20261121-{field}-{number}", "number": number, "field": field, "called_at": kw.pop("at", None),
            **kw}


def counter(cid: str, status: str, t: dict[str, Any] | None, seq: int) -> tuple[tuple[str, ...], bytes]:
    return ("state", "counter", cid), msg({"counter": cid, "status": status, "ticket": t, "seq": seq})


def called(number: str, cid: str, seq: int, *, field: str = "dat-dai", recall: bool = False
           ) -> tuple[tuple[str, ...], bytes]:
    return ("event", "called"), msg({"kind": "called", "ticket": ticket(number, field), "counter": cid,
                                      "recall": recall, "seq": seq, "at": "2026-11-21T09:00:00+07:00"})


def test_state_keeps_the_newest_per_topic() -> None:
    s = SiteState()
    assert s.apply(*counter("1", "serving", ticket("1001"), 10)) is not None
    # an older copy (a retained message replayed after a reconnect) changes nothing
    assert s.apply(*counter("1", "open", None, 9), retained=True) is None
    assert s.apply(*counter("1", "open", None, 10)) is None  # a QoS 1 duplicate
    assert s.apply(*counter("1", "open", None, 10), retained=True) is None
    assert s.counters["1"]["status"] == "serving"
    change = s.apply(*counter("1", "open", None, 11))
    assert change is not None and change.kind == "counter" and change.key == "1"
    # seq is per topic: another counter's lower seq is fine
    assert s.apply(*counter("2", "open", None, 3)) is not None


def test_a_core_starting_again_from_seq_1_is_followed() -> None:
    s = SiteState()
    assert s.apply(*counter("1", "serving", ticket("1001"), 500)) is not None
    path, payload = counter("1", "open", None, 3)
    assert s.apply(path, payload, retained=True) is None  # an old retained copy
    assert s.apply(path, payload) is not None  # live and lower: a new database
    assert s.counters["1"]["status"] == "open"
    assert s.apply(*called("1001", "1", 7)) is not None
    path, payload = called("1001", "1", 7)
    again = json.loads(payload)
    again["at"] = "2026-11-22T08:00:00+07:00"
    assert s.apply(path, json.dumps(again).encode()) is not None  # same seq, another call


def test_events_are_taken_once() -> None:
    s = SiteState()
    assert s.apply(*called("1001", "1", 5)) is not None
    assert s.apply(*called("1001", "1", 5)) is None  # a QoS 1 duplicate
    assert [c.number for c in s.calls] == ["1001"]
    recall = s.apply(*called("1001", "1", 7, recall=True))
    assert recall is not None and recall.data.recall is True and len(s.calls) == 2


@pytest.mark.parametrize("payload", [b"not json", b"\xff\xfe", b"[1,2]", b"", b'{"kind":"called"}',
                                     b'{"ticket":{"number":5},"counter":"1","seq":1}',
                                     b'{"ticket":{"number":"1001"},"counter":null,"seq":1}'])
def test_bad_events_change_nothing(payload: bytes) -> None:
    s = SiteState()
    assert s.apply(("event", "called"), payload) is None
    assert not s.calls


@pytest.mark.parametrize("payload", [b"not json", b"\xff\xfe", b"[1,2]", b"", b'"text"'])
def test_bad_state_changes_nothing(payload: bytes) -> None:
    s = SiteState()
    s.apply(*counter("1", "open", None, 1))
    assert s.apply(("state", "counter", "1"), payload) is None
    assert s.apply(("state", "site"), payload) is None
    assert s.counters["1"]["status"] == "open" and s.site is None


def test_presence() -> None:
    s = SiteState()
    assert s.apply(("status", "core"), b"online") is not None
    assert s.core_online
    assert s.apply(("status", "core"), b"online") is None
    assert s.apply(("status", "display", "hall"), b"online", retained=True).key == "display/hall"  # type: ignore[union-attr]
    assert s.apply(("status", "core"), b"bogus") is None and s.core_online
    assert s.apply(("status", "core"), b"offline") is not None and not s.core_online


def test_recent_calls_one_line_per_ticket_newest_first() -> None:
    s = SiteState()
    s.apply(*called("1001", "1", 1))
    s.apply(*called("1002", "2", 2))
    s.apply(*called("1001", "1", 3, recall=True))
    assert [(c.number, c.seq) for c in s.recent_calls()] == [("1001", 3), ("1002", 2)]


def test_after_a_restart_recent_calls_come_from_the_counters() -> None:
    s = SiteState()
    s.apply(*counter("1", "serving", ticket("1001", at="2026-11-21T09:00:00+07:00"), 3))
    s.apply(*counter("2", "serving", ticket("1002", at="2026-11-21T09:05:00+07:00"), 4))
    s.apply(*counter("3", "open", None, 5))
    assert [c.number for c in s.recent_calls()] == ["1002", "1001"]


def state_with_calls() -> SiteState:
    s = SiteState()
    s.apply(("status", "core"), b"online")
    s.apply(*counter("1", "serving", ticket("1001"), 10))
    s.apply(*counter("2", "paused", ticket("2001", "ho-tich"), 11))
    s.apply(*counter("3", "closed", None, 12))
    s.apply(("state", "queue", "dat-dai"), msg({"field": "dat-dai", "name": "Đất đai", "waiting": 4, "seq": 13}))
    s.apply(("state", "queue", "ho-tich"), msg({"field": "ho-tich", "name": "Hộ tịch", "waiting": 2, "seq": 14}))
    s.apply(*called("2001", "2", 20, field="ho-tich"))
    s.apply(*called("1001", "1", 21))
    return s


def test_view_of_the_whole_site(site: SiteConfig) -> None:
    v = build_view(state_with_calls(), site, DisplaySettings(), DisplayFilter(), link_up=True)
    assert v["office"] == "Bộ phận Một cửa thử nghiệm"
    assert [(c["id"], c["status"], c["number"]) for c in v["counters"]] == [
        ("1", "serving", "1001"), ("2", "paused", "2001"), ("3", "closed", None)]
    assert v["counters"][0]["name"] == "Quầy 1"
    assert v["latest"]["number"] == "1001" and v["latest"]["counter_name"] == "Quầy 1"
    assert [c["number"] for c in v["recent"]] == ["2001"]
    assert [(q["name"], q["waiting"]) for q in v["queues"]] == [("Đất đai", 4), ("Hộ tịch", 2), ("Chứng thực", 0)]
    assert v["online"] is True
    assert build_view(state_with_calls(), site, DisplaySettings(), DisplayFilter(), link_up=False)["online"] is False


@pytest.mark.parametrize("after", [
    ("open", None),  # finished or skipped
    ("open", ticket("1002")),  # the next ticket's state, its call event lost
    ("closed", None),
], ids=["finished", "another-ticket", "closed"])
def test_a_ticket_that_left_its_counter_leaves_the_big_box(site: SiteConfig,
                                                          after: tuple[str, dict[str, Any] | None]) -> None:
    s = state_with_calls()
    flt = DisplayFilter()
    assert build_view(s, site, DisplaySettings(), flt, link_up=True)["latest"]["number"] == "1001"
    status, t = after
    s.apply(*counter("1", status, t, 30))
    v = build_view(s, site, DisplaySettings(), flt, link_up=True)
    assert v["latest"] is None
    assert [c["number"] for c in v["recent"]] == ["1001", "2001"]  # it stays in the last calls


def test_a_transferred_ticket_leaves_the_big_box(site: SiteConfig) -> None:
    s = state_with_calls()
    s.apply(*counter("1", "open", None, 30))  # the state after event/transferred
    s.apply(("state", "queue", "ho-tich"), msg({"field": "ho-tich", "waiting": 3, "next": ["1001"], "seq": 31}))
    assert build_view(s, site, DisplaySettings(), DisplayFilter(), link_up=True)["latest"] is None


def test_a_call_shows_before_its_counter_state_and_while_paused(site: SiteConfig) -> None:
    s = state_with_calls()
    s.apply(*counter("1", "open", None, 30))
    # events come before the state they change: the counter still says "open" (seq 30)
    s.apply(*called("1002", "1", 31))
    v = build_view(s, site, DisplaySettings(), DisplayFilter(), link_up=True)
    assert v["latest"]["number"] == "1002" and [c["number"] for c in v["recent"]] == ["1001", "2001"]
    s.apply(*counter("1", "serving", ticket("1002"), 32))
    s.apply(*counter("1", "paused", ticket("1002"), 33))
    assert build_view(s, site, DisplaySettings(), DisplayFilter(), link_up=True)["latest"]["number"] == "1002"


def test_closed_counters_can_be_hidden(site: SiteConfig) -> None:
    v = build_view(state_with_calls(), site, DisplaySettings(closed_counters="hide"), DisplayFilter(), link_up=True)
    assert [c["id"] for c in v["counters"]] == ["1", "2"]


def test_recent_calls_setting(site: SiteConfig) -> None:
    v = build_view(state_with_calls(), site, DisplaySettings(recent_calls=0), DisplayFilter(), link_up=True)
    assert v["recent"] == [] and v["latest"]["number"] == "1001"


def test_tv_for_one_field(site: SiteConfig) -> None:
    flt = DisplayFilter.parse({"fields": "ho-tich"}, site, T)
    v = build_view(state_with_calls(), site, DisplaySettings(), flt, link_up=True)
    assert [c["id"] for c in v["counters"]] == ["2", "3"]  # the counters serving hộ tịch
    assert [q["field"] for q in v["queues"]] == ["ho-tich"]
    assert v["latest"]["number"] == "2001" and v["recent"] == []


def test_tv_for_some_counters(site: SiteConfig) -> None:
    flt = DisplayFilter.parse({"counters": "1,3"}, site, T)
    v = build_view(state_with_calls(), site, DisplaySettings(), flt, link_up=True)
    assert [c["id"] for c in v["counters"]] == ["1", "3"]
    assert [q["field"] for q in v["queues"]] == ["dat-dai", "ho-tich", "chung-thuc"]
    assert v["latest"]["number"] == "1001"
    flt2 = DisplayFilter.parse({"counters": "2"}, site, T)
    assert build_view(state_with_calls(), site, DisplaySettings(), flt2, link_up=True)["latest"]["number"] == "2001"


@pytest.mark.parametrize("query", [{"fields": "nope"}, {"fields": ""}, {"counters": "1,9"}, {"id": "Phòng chờ"},
                                   {"id": "../x"}])
def test_bad_filters_are_refused(site: SiteConfig, query: dict[str, str]) -> None:
    with pytest.raises(FilterError):
        DisplayFilter.parse(query, site, T)


def test_filter_round_trips_to_a_query(site: SiteConfig) -> None:
    flt = DisplayFilter.parse({"fields": "ho-tich,dat-dai", "id": "hall-1"}, site, T)
    assert flt.query() == "fields=dat-dai,ho-tich&id=hall-1"
    assert DisplayFilter.parse(dict(p.split("=") for p in flt.query().split("&")), site, T) == flt


def test_hub_resyncs_a_slow_subscriber() -> None:
    hub = Hub()
    fast, slow = hub.subscribe(maxsize=100), hub.subscribe(maxsize=3)
    for i in range(5):
        hub.publish(i)
    assert fast.get_batch() == [0, 1, 2, 3, 4]
    assert slow.get_batch() == [RESYNC, 4] and slow.dropped == 1
    slow.close()
    hub.publish(5)
    assert len(hub) == 1 and fast.get_batch() == [5]


# ---------------------------------------------------------------- settings


def load(tmp_path: Path, extra: str) -> Any:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra=extra)
    return load_server_settings(load_site_config(path))


def test_default_settings(tmp_path: Path) -> None:
    s = load(tmp_path, "")
    assert s.speech.engines == ("gtts", "espeak") and s.speech.repeat == 1 and s.speech.espeak_voice == "vi"
    assert s.speech.phrasing.ticket_phrase("1005") == "Mời công dân có số thứ tự một nghìn không trăm linh năm"
    assert s.speech.cache_dir.parts[-2:] == ("var", "speech-cache")
    assert s.display.closed_counters == "dim"
    assert s.web.port == 8080 and s.web.server_id


def test_all_settings(tmp_path: Path) -> None:
    s = load(tmp_path, """
[web]
host = "0.0.0.0"
port = 8181
id = "may-chu-1"

[speech]
engines = ["espeak"]
template = "Xin mời khách hàng số {number} đến bàn số {counter}"
spoken_template = "tới {spoken}"
zero_tens = "lẻ"
thousand = "ngàn"
four = "bốn"
by_digit = false
repeat = 2
chime = false
cache_dir = "cache"
gtts_tld = "com.vn"
gtts_timeout_s = 3
gtts_retry_s = 120
espeak_voice = "vi-vn-x-south"
espeak_speed = 170

[display]
closed_counters = "hide"
recent_calls = 4
blink_s = 3
""")
    assert s.web.server_id == "may-chu-1" and s.web.host == "0.0.0.0" and s.web.port == 8181
    assert s.speech.phrasing.ticket_phrase("2024") == "Xin mời khách hàng số hai ngàn không trăm hai mươi bốn"
    assert s.speech.phrasing.counter_phrase("3", "Quầy 3", "quầy ba") == "tới quầy ba"
    assert s.speech.repeat == 2 and not s.speech.chime and s.speech.cache_dir == (tmp_path / "cache").resolve()
    assert (s.speech.gtts_tld, s.speech.gtts_timeout_s, s.speech.gtts_retry_s) == ("com.vn", 3.0, 120.0)
    assert (s.speech.espeak_voice, s.speech.espeak_speed) == ("vi-vn-x-south", 170)
    assert s.display == DisplaySettings(closed_counters="hide", recent_calls=4, blink_s=3.0)


@pytest.mark.parametrize(("extra", "key"), [
    ('[speech]\nengines = ["gtts", "festival"]', "speech.engines"),
    ('[speech]\nengines = ["espeak", "espeak"]', "speech.engines"),
    ('[speech]\ntemplate = "Mời {counter} số {number}"', "speech.template"),
    ('[speech]\ntemplate = "Mời số {number}"', "speech.template"),
    ('[speech]\nspoken_template = "đến quầy"', "speech.spoken_template"),
    ('[speech]\nzero_tens = "le"', "speech.zero_tens"),
    ('[speech]\nthousand = "ngan"', "speech.thousand"),
    ('[speech]\nfour = "4"', "speech.four"),
    ('[speech]\nrepeat = 0', "speech.repeat"),
    ('[speech]\nespeak_voice = "en"', "speech.espeak_voice"),
    ('[speech]\nespeak_speed = 1000', "speech.espeak_speed"),
    ('[speech]\ngtts_tld = "http://x"', "speech.gtts_tld"),
    ('[speech]\nvoice = "vi"', "speech.voice"),
    ('[display]\nclosed_counters = "grey"', "display.closed_counters"),
    ('[display]\nrecent = 3', "display.recent"),
    ('[web]\nid = "Máy 1"', "web.id"),
    ('[web]\nsecret_key = "x"', "web.secret_key"),
])
def test_bad_settings_name_the_key(tmp_path: Path, extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, extra)
    assert err.value.key == key and str(tmp_path) in str(err.value)


def test_the_example_settings_load() -> None:
    root = Path(__file__).resolve().parents[1]
    s = load_server_settings(load_site_config(root / "examples" / "site.toml", env={}))
    assert s.speech.engines == ("gtts", "espeak") and s.display.closed_counters == "dim"
    assert s.speech.phrasing.counter_phrase("6", "Quầy 6", "quầy số sáu, quầy tổng hợp") == \
        "đến quầy số sáu, quầy tổng hợp"


def test_names_reach_the_tv_composed(site: SiteConfig) -> None:
    import unicodedata

    s = SiteState()
    decomposed = unicodedata.normalize("NFD", "Quầy Hộ tịch")
    s.apply(("state", "site"), msg({"name": unicodedata.normalize("NFD", "Xã Hòa Bình"), "seq": 1,
                                    "counters": [{"id": "7", "name": decomposed, "fields": ["ho-tich"]}],
                                    "fields": [{"id": "ho-tich", "name": unicodedata.normalize("NFD", "Hộ tịch")}]}))
    s.apply(("state", "queue", "ho-tich"), msg({"waiting": "many", "seq": 2}))
    v = build_view(s, site, DisplaySettings(), DisplayFilter(), link_up=True)
    assert v["office"] == "Xã Hòa Bình" and v["counters"][0]["name"] == "Quầy Hộ tịch"
    assert v["queues"] == [{"field": "ho-tich", "name": "Hộ tịch", "waiting": 0}]


def _tv_view(counters: list[tuple[str, str, str | None]], latest: str | None = None,
             waiting: int = 0) -> dict[str, Any]:
    return {"office": "Xã X", "closed": "dim", "online": True,
            "counters": [{"id": i, "name": f"Quầy {i}", "status": s, "number": n} for i, s, n in counters],
            "latest": {"seq": 7, "number": latest, "counter": "1"} if latest else None,
            "recent": [], "queues": [{"field": "dat-dai", "name": "Đất đai", "waiting": waiting}]}


@pytest.mark.parametrize(("old", "new", "keys"), [
    # a call: one counter, the latest call and the queue change; the rest of the office does not
    (_tv_view([("1", "open", None), ("2", "open", None)], waiting=2),
     _tv_view([("1", "serving", "1001"), ("2", "open", None)], latest="1001", waiting=1),
     {"counters_changed", "latest", "queues"}),
    # a counter hidden (closed counters hidden): the list itself changes
    (_tv_view([("1", "open", None), ("2", "open", None)]), _tv_view([("1", "open", None)]), {"counters"}),
    (_tv_view([("1", "open", None)]), _tv_view([("1", "open", None)]), set()),
])
def test_a_patch_rebuilds_the_next_view_exactly(old: dict[str, Any], new: dict[str, Any], keys: set[str]) -> None:
    patch = view_patch(old, new)
    assert set(patch) == keys
    message = {"type": "patch", "from": 1, "v": 2, **patch}
    assert apply_patch(old, message) == new
    if "counters_changed" in patch:
        assert [c["id"] for c in patch["counters_changed"]] == ["1"]
