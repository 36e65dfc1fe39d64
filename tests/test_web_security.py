"""The web server attacked as a stranger would (issue 10): text that cannot be stored, login races,
open redirects, CSV formulas, security headers, kiosks that do not exist, TVs that do not exist,
guessable tracking addresses and ratings of the wrong citizen. Over a real broker and core, through
HTTP as a browser or a script would send it."""

from __future__ import annotations

import asyncio
import re
import stat
import uuid
from urllib.parse import urlsplit

import aiohttp
import pytest

from display_server.accounts.auth import AUTH
from display_server.base import SETTINGS
from display_server.feed.follower import MAX_UNLISTED_DISPLAYS
from display_server.pages.kiosk import KIOSK_LIMITER, PRINTER
from display_server.printing.printer import PrintResult
from display_server.printing.ticket_image import PrintedTicket
from display_server.reports.exports import TICKET_COLUMNS, CsvWriter
from display_server.texts import Texts
from qms_common.devbroker import Broker
from tests import test_web_api
from tests.support.mqtt import Probe
from tests.support.web import csrf_of, login
from tests.test_web_api import Rig, call, vietnamese, wait_until
from tests.test_web_units import NAMES, read_csv, record

rig = test_web_api.rig  # the same rig: a real broker, core and web server

# ---------------------------------------------------------------- text that cannot be stored

LONE = '"\\ud800"'  # a JSON escape of a lone surrogate: valid JSON, not storable as UTF-8


def _raw(template: str) -> bytes:
    return template.replace("LONE", LONE).encode()


@pytest.mark.parametrize("raw", [
    '{"field": "dat-dai", "request_id": LONE}',
    '{"field": "dat-dai", LONE: 1}',
    '{"field": LONE}',
    '{"field": "dat-dai", "kiosk": LONE}',
])
async def test_a_lone_surrogate_in_a_kiosk_body_is_a_clear_400(rig: Rig, raw: str) -> None:
    status, body = await call(rig.http, rig.url + "/api/tickets", raw=_raw(raw))
    assert (status, body["ok"], body["error"]["code"]) == (400, False, "bad_request"), body
    assert vietnamese(body["error"]["message"])
    assert await rig.issued_count() == 0
    await rig.take()  # the server and the core go on


async def test_a_lone_surrogate_anywhere_in_a_console_body_is_a_clear_400(rig: Rig) -> None:
    async with rig.browser("giamsat") as http:
        csrf = await csrf_of(http, rig.url + "/counter/1")
        for raw in ('{"action": "open", "officer": LONE}', '{"action": "dossier", "dossier": LONE}',
                    '{"action": "call", "ticket": LONE}', '{"action": LONE}'):
            status, body = await call(http, rig.url + "/api/counter/1", raw=_raw(raw), csrf=csrf)
            assert (status, body["error"]["code"]) == (400, "bad_request"), (raw, body)
            assert "UTF-8" in body["error"]["message"] or vietnamese(body["error"]["message"])
        status, body = await call(http, rig.url + "/api/counter/1", {"action": "open"}, csrf=csrf)
        assert status == 200, body
    await wait_until(rig.web, lambda: rig.counter_state("1").get("status") == "open")  # the state follows the reply


async def test_a_lone_surrogate_in_a_form_or_a_query_is_never_a_500(rig: Rig) -> None:
    for path in ("/kiosk?id=%ED%A0%80", "/login?next=%ED%A0%80", "/display?id=%ED%A0%80", "/rate/%ED%A0%80",
                 "/t/%ED%A0%80", "/counter/%ED%A0%80"):
        async with rig.http.get(rig.url + path, allow_redirects=False) as resp:
            assert resp.status < 500, (path, resp.status)
    async with rig.http.post(rig.url + "/login", data=b"username=%ED%A0%80&password=x&csrf=y",
                             headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
        assert resp.status < 500


# ---------------------------------------------------------------- logins


async def test_parallel_wrong_passwords_cannot_outrun_the_limit(rig: Rig) -> None:
    """300 wrong passwords at once for one user: at most `login_failures` are checked, and the
    right one afterwards is refused too (on main every one was checked)."""
    async with rig.browser() as http:
        results = await asyncio.gather(*(login(http, rig.url, "canbo1", f"sai-{i}") for i in range(300)))
    statuses = [r.status for r in results]
    assert statuses.count(401) <= 5 and statuses.count(401) + statuses.count(429) == 300, statuses
    async with rig.browser() as http:
        resp = await login(http, rig.url, "canbo1")
        assert resp.status == 429 and "qms_session" not in resp.cookies


async def test_a_right_password_among_parallel_wrong_ones_does_not_get_in(rig: Rig) -> None:
    async with rig.browser() as http:
        tries = [login(http, rig.url, "canbo1", f"sai-{i}") for i in range(150)]
        tries.append(login(http, rig.url, "canbo1"))
        tries += [login(http, rig.url, "canbo1", f"sai-{i}") for i in range(150, 300)]
        results = await asyncio.gather(*tries)
    checked = [r for r in results if r.status in (401, 303)]
    assert len(checked) <= 5


async def test_another_officer_behind_the_same_address_still_logs_in(rig: Rig) -> None:
    async with rig.browser() as http:
        for _ in range(6):
            assert (await login(http, rig.url, "canbo1", "sai-mat-khau")).status in (401, 429)
        assert (await login(http, rig.url, "canbo1")).status == 429  # the name under attack waits
    async with rig.browser() as http:
        assert (await login(http, rig.url, "giamsat")).status == 303  # the others do not


@pytest.mark.parametrize("rig", ["[security]\nlogin_address_failures = 4\nlogin_address_interval_s = 0.2\n"],
                         indirect=True)
async def test_an_address_past_its_limit_is_slowed_never_shut(rig: Rig) -> None:
    async with rig.browser() as http:
        for i in range(8):  # a sprayer: many names, a few tries each
            assert (await login(http, rig.url, f"nguoi-{i}", "sai-mat-khau")).status == 401
        assert rig.web.app[AUTH].addresses.retry_after("127.0.0.1") > 0
        for user in ("canbo3", "giamsat"):  # officers behind the same address get in, a little later
            async with rig.browser() as officer:
                assert (await login(officer, rig.url, user)).status == 303


# ---------------------------------------------------------------- the open redirect


@pytest.mark.parametrize("evil", ["/\t/evil.example", "/\n/evil.example", "/\\evil.example", "//evil.example",
                                  "/ /evil.example", "https://evil.example", "/\x00/evil.example", " //evil.example",
                                  "/\r\n//evil.example"])
async def test_login_never_redirects_to_another_site(rig: Rig, evil: str) -> None:
    async with rig.browser() as http:
        resp = await login(http, rig.url, "canbo1", next_path=evil)
        assert resp.status == 303 and resp.headers["Location"] == "/counter", resp.headers["Location"]
    async with rig.http.get(rig.url + "/login", params={"next": evil}) as resp:
        assert '<input type="hidden" name="next" value="">' in await resp.text()


async def test_login_still_returns_to_the_page_asked(rig: Rig) -> None:
    async with rig.browser() as http:
        resp = await login(http, rig.url, "canbo1", next_path="/counter/2?lang=en")
        assert resp.headers["Location"] == "/counter/2?lang=en"


# ---------------------------------------------------------------- CSV formulas


@pytest.mark.parametrize("text", ["-2+3+cmd|' /C calc'!A0", "=1+1", "+1", "@SUM(A1)", "\t=1", "\r=1"])
def test_every_formula_start_is_defused(text: str) -> None:
    r = record("1001", "done", officer=text, dossier=text, called="08:01:00", finished="08:02:00")
    row = read_csv(CsvWriter(TICKET_COLUMNS).header() + CsvWriter(TICKET_COLUMNS).rows([r], NAMES))[0]
    assert row["officer"] == "'" + text and row["dossier_code"] == "'" + text
    assert row["wait_s"] == "60" and row["calls"] == "1"  # numbers stay numbers


# ---------------------------------------------------------------- headers


async def test_every_answer_carries_the_security_headers(rig: Rig) -> None:
    async with rig.browser("giamsat") as http:
        for path in ("/", "/kiosk", "/login", "/supervisor", "/counter/1", "/display", "/rate/1",
                     "/static/pages.css", "/nothing-here", "/t/nothing", "/api/me"):
            async with http.get(rig.url + path, allow_redirects=False) as resp:
                h = resp.headers
                assert "frame-ancestors 'none'" in h["Content-Security-Policy"], path
                assert "script-src 'self';" in h["Content-Security-Policy"]
                assert "unsafe-inline" not in h["Content-Security-Policy"]
                assert (h["X-Frame-Options"], h["X-Content-Type-Options"], h["Referrer-Policy"]) == (
                    "DENY", "nosniff", "same-origin"), path
        status, _ = await call(http, rig.url + "/api/tickets", raw=b"{broken")
        assert status == 400


async def test_no_page_has_inline_scripts_or_styles(rig: Rig) -> None:
    async with rig.browser("giamsat") as http:
        for path in ("/", "/kiosk", "/login", "/supervisor", "/counter/1", "/display", "/rate/1"):
            async with http.get(rig.url + path) as resp:
                html = await resp.text()
            assert " style=" not in html and "<style" not in html and " on" + "click=" not in html, path
            for script in re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S):
                attrs, _ = script
                assert "src=" in attrs or 'type="application/json"' in attrs, (path, attrs)


# ---------------------------------------------------------------- kiosks that do not exist


async def test_invented_kiosk_ids_issue_nothing(rig: Rig) -> None:
    """On main, 170 invented ids issued 170 tickets in half a second."""
    results = await asyncio.gather(*(call(rig.http, rig.url + "/api/tickets", {"field": "dat-dai", "kiosk": f"k-{i}"})
                                     for i in range(100)))
    assert {(status, body["error"]["code"]) for status, body in results} == {(403, "forbidden")}
    assert await rig.issued_count() == 0
    await rig.take(kiosk="kiosk-1")  # a declared kiosk still issues


@pytest.mark.parametrize("rig", ["[kiosk]\nany_id = true\ntickets_per_minute = 5\nsite_tickets_per_minute = 12\n"],
                         indirect=True)
async def test_a_site_that_accepts_any_id_still_has_a_site_wide_cap(rig: Rig) -> None:
    results = await asyncio.gather(*(call(rig.http, rig.url + "/api/tickets", {"field": "dat-dai", "kiosk": f"k-{i}"})
                                     for i in range(60)))
    ok = [body for status, body in results if status == 200]
    refused = [body for status, body in results if status == 429]
    assert len(ok) == 12 and len(refused) == 48
    assert {b["error"]["code"] for b in refused} == {"rate_limited"}
    assert "Các ki-ốt đã lấy quá 12 số trong một phút" in refused[0]["error"]["message"]
    assert await rig.issued_count() == 12


@pytest.mark.parametrize("rig", ['[kiosk]\nids = ["kiosk-1", "kiosk-2"]\ntickets_per_minute = 3\n'
                                 'site_tickets_per_minute = 4\n'], indirect=True)
async def test_a_kiosk_refused_by_the_site_cap_keeps_its_own_allowance(rig: Rig) -> None:
    for _ in range(3):
        await rig.take(kiosk="kiosk-1")
    await rig.take(kiosk="kiosk-2")
    status, body = await call(rig.http, rig.url + "/api/tickets", {"field": "dat-dai", "kiosk": "kiosk-2"})
    assert status == 429 and "Các ki-ốt" in body["error"]["message"]
    assert await rig.issued_count() == 4
    assert rig.web.app[KIOSK_LIMITER].retry_after("kiosk:kiosk-2") == 0  # its tap was given back


# ---------------------------------------------------------------- TVs that do not exist


async def retained_displays(broker: Broker, rig: Rig) -> dict[str, str]:
    """The display presence the broker keeps now, as a newcomer (a dashboard) gets it."""
    sentinel = f"test/sentinel/{uuid.uuid4().hex}"
    async with Probe(broker.url) as late:
        await late.subscribe(rig.topics.status_all, sentinel)
        await late.publish(sentinel, "sentinel")  # retained copies all come before it
        end = await late.wait_for(lambda m: m.topic == sentinel)
        prefix = rig.topics.status_display("")
        return {m.topic.removeprefix(prefix): m.text for m in late.received[:late.received.index(end)]
                if m.topic.startswith(prefix) and m.retain}


async def test_anonymous_tv_ids_leave_nothing_behind(broker: Broker, rig: Rig) -> None:
    """On main, 300 /display/ws?id=fake-N left 300 retained topics and dashboard rows forever."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:  # 300 at once
        feeds = await asyncio.gather(*(rig.feed(http, f"/display/ws?id=fake-{i}") for i in range(300)))
        await asyncio.gather(*(f.view() for f in feeds))
        online = await retained_displays(broker, rig)
        assert 0 < len(online) <= MAX_UNLISTED_DISPLAYS and set(online.values()) == {"online"}
        await asyncio.gather(*(f.ws.close() for f in feeds))
    await wait_until(rig.web, lambda: not any(k.startswith("display/") for k in rig.web.follower.state.presence))
    assert await retained_displays(broker, rig) == {}
    async with rig.browser("giamsat") as http:
        view = await (await rig.feed(http, "/supervisor/ws")).view(lambda v: v["online"])
        assert view["displays"] == []
    feed = await rig.feed(rig.http, "/display/ws?id=fake-1")  # an unlisted TV still works
    await feed.view()


@pytest.mark.parametrize("rig", ['[display]\nids = ["phong-cho-1"]\n'], indirect=True)
async def test_a_listed_tv_stays_offline_and_stale_unlisted_ones_are_removed(broker: Broker, rig: Rig) -> None:
    fake = rig.topics.status_display("fake-9")
    async with Probe(broker.url) as older:  # what an older server (or an attacker) left behind
        await older.publish(fake, "offline", retain=True)
    feed = await rig.feed(rig.http, "/display/ws?id=phong-cho-1")
    await feed.view()
    await feed.ws.close()
    await wait_until(rig.web, lambda: rig.web.follower.state.presence.get("display/phong-cho-1") == "offline")
    async with Probe(broker.url) as watch:
        await watch.subscribe(fake)
        await watch.wait_for(lambda m: m.topic == fake and m.text == "offline")
        await rig.web.stop()  # a new server sweeps what is not ours on its first look at the broker
        await rig.web.start()
        await watch.wait_for(lambda m: m.topic == fake and m.payload == b"" and not m.retain)
    assert await retained_displays(broker, rig) == {"phong-cho-1": "offline"}


# ---------------------------------------------------------------- the tracking pages


async def test_tracking_pages_cost_no_core_query_each(broker: Broker, rig: Rig) -> None:
    """On main, every tracking page asked the core about its ticket at every change."""
    tickets = [await rig.take() for _ in range(10)]
    async with aiohttp.ClientSession() as phones, Probe(broker.url) as spy:
        await spy.subscribe(rig.topics.cmd_query)
        feeds = [await rig.feed(phones, urlsplit(t["tracking_url"]).path + "/ws")
                 for t in tickets for _ in range(3)]  # thirty phones
        await asyncio.gather(*(f.view(lambda v: v.get("found")) for f in feeds))
        mark = spy.mark()
        await rig.act("1", "call_next")  # every page changes: 1001 is called, the others move up
        await asyncio.gather(*(f.view(lambda v, k=i // 3: v["ticket"]["status"] == "serving" or v["ahead"] == k - 1)
                               for i, f in enumerate(feeds)))
        queries = spy.since(mark, rig.topics.cmd_query)
        assert len(queries) <= 2, [q.json for q in queries]  # today's records: the one ticket that changed


async def test_a_citizen_rates_from_the_ticket_s_own_page(rig: Rig) -> None:
    taken = await rig.take()
    tid, path = taken["ticket"]["id"], urlsplit(taken["tracking_url"]).path
    token = path.rsplit("/", 1)[1]
    feed = await rig.feed(rig.http, path + "/ws")
    view = await feed.view(lambda v: v.get("found"))
    assert view["rate"] is None  # waiting: nothing to rate yet
    status, _ = await call(rig.http, rig.url + f"/api/track/{tid}/{token}/rate", {"score": 3})
    assert status == 409
    await rig.act("1", "call_next")
    await rig.act("1", "finish")
    view = await feed.view(lambda v: v["ticket"]["status"] == "done" and v["rate"] is not None)
    assert view["rate"] == ["Không hài lòng", "Hài lòng", "Rất hài lòng"]
    for wrong in ("AAAAAAAAAAAAAAAA", token[:-1] + ("A" if token[-1] != "A" else "B")):
        status, body = await call(rig.http, rig.url + f"/api/track/{tid}/{wrong}/rate", {"score": 1})
        assert status == 404 and body["error"]["code"] == "unknown_ticket"
    status, body = await call(rig.http, rig.url + f"/api/track/{tid}/{token}/rate", {"score": 3})
    assert status == 200 and body["ticket"]["rating"] == 3
    view = await feed.view(lambda v: v["ticket"]["rating"] == 3)
    assert view["rate"] is None


async def test_the_secret_is_private_and_kept_across_restarts(rig: Rig) -> None:
    first = (await rig.take())["tracking_url"]
    secret = rig.web.app[SETTINGS].web.secret_file
    assert secret.exists() and stat.S_IMODE(secret.stat().st_mode) == 0o600
    await rig.web.stop()
    await rig.web.start()
    await rig.web.ready()
    async with rig.http.get(first) as resp:  # a slip printed before the restart still opens
        assert resp.status == 200


@pytest.mark.parametrize("rig", ['[kiosk]\nids = ["kiosk-1"]\n[printer]\ntype = "file"\ndevice = "/dev/null"\n'],
                         indirect=True)
async def test_the_printed_slip_carries_the_token_address(rig: Rig) -> None:
    printer = rig.web.app[PRINTER]
    printed: list[PrintedTicket] = []
    real = printer.print

    async def keep(ticket: PrintedTicket, t: Texts) -> PrintResult:
        printed.append(ticket)
        return await real(ticket, t)

    printer.print = keep  # type: ignore[method-assign]  # the real printer, its ticket kept
    body = await rig.take(kiosk="kiosk-1")
    assert body["print"]["mode"] == "printer" and [p.url for p in printed] == [body["tracking_url"]]
    assert urlsplit(printed[0].url).path.count("/") == 3  # /t/{id}/{token}
    async with rig.http.get(printed[0].url) as resp:
        assert resp.status == 200
