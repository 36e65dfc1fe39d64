"""The phone-verification API over HTTP, with the real web server and broker: what it publishes
for the notifier, its limits, what it never logs, and the proofs the ticket and booking APIs
demand."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from qms_common.devbroker import Broker, free_port
from qms_common.protocol import Topics
from tests.support.appointments import appointment_site
from tests.support.mqtt import Probe
from tests.support.site import write_site
from tests.support.web import WebServer, running_web, web_extra


@pytest.fixture
def site(broker: Broker, tmp_path: Path) -> tuple[Path, Topics]:
    path, site_id = write_site(tmp_path, broker.url, extra=appointment_site() + web_extra(tmp_path, free_port()))
    return path, Topics(site_id)


async def post(http: aiohttp.ClientSession, url: str, body: Any, **headers: str) -> tuple[int, dict[str, Any]]:
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_a_code_is_published_for_the_notifier_verified_once_and_never_logged(
        broker: Broker, site: tuple[Path, Topics], caplog: pytest.LogCaptureFixture) -> None:
    path, topics = site
    caplog.set_level(logging.DEBUG)
    async with running_web(path) as web, Probe(broker.url) as probe, aiohttp.ClientSession() as http:
        await probe.subscribe(topics.private_otp)
        status, body = await post(http, web.url + "/api/otp/send", {"phone": "+84 912 345 678", "purpose": "booking"})
        assert status == 200 and body == {"ok": True, "expires_s": 300, "resend_s": 30}
        sent = (await probe.wait_topic(topics.private_otp))
        assert sent["phone"] == "84912345678" and sent["purpose"] == "booking"
        code = sent["code"]
        # too soon again: 429, nothing published
        mark = probe.mark()
        status, body = await post(http, web.url + "/api/otp/send", {"phone": "0912345678", "purpose": "booking"})
        assert status == 429 and body["error"]["code"] == "rate_limited"
        # another purpose's code is not this one
        status, body = await post(http, web.url + "/api/otp/verify",
                                  {"phone": "0912345678", "purpose": "remote", "code": code})
        assert status == 410 and body["error"]["code"] == "code_expired"
        status, body = await post(http, web.url + "/api/otp/verify",
                                  {"phone": "0912345678", "purpose": "booking", "code": code})
        assert status == 200 and body["ok"] and body["proof"]
        status, body = await post(http, web.url + "/api/otp/verify",
                                  {"phone": "0912345678", "purpose": "booking", "code": code})
        assert status == 410  # good once
        assert not [m for m in probe.since(mark) if m.topic == topics.private_otp]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert code not in logged and "912345678" not in logged
    assert "09x…x78" in logged


async def test_bad_input_and_forged_proofs_are_refused(site: tuple[Path, Topics]) -> None:
    path, _ = site
    async with running_web(path) as web, aiohttp.ClientSession() as http:
        url = web.url
        for body in ({"phone": "12345", "purpose": "remote"}, {"phone": "0912345678", "purpose": "x"},
                     {"phone": 912345678, "purpose": "remote"}):
            status, answer = await post(http, url + "/api/otp/send", body)
            assert status == 400, body
        assert (await post(http, url + "/api/otp/send", {"phone": "0912345678", "purpose": "remote"},
                           Origin="http://evil.example"))[0] == 403
        status, answer = await post(http, url + "/api/lay-so", {"field": "dat-dai", "proof": "remote|84912345678|9"
                                                                "999999999.AAAAAAAAAAAAAAAA"})
        assert status == 401 and answer["error"]["code"] == "not_verified"
        status, answer = await post(http, url + "/api/dat-lich", {"field": "dat-dai", "day": "2030-01-02",
                                                                  "slot": "08:00", "proof": None})
        assert status == 401
        status, answer = await post(http, url + "/api/dat-lich", {"field": "ho-tich", "day": "2030-01-02",
                                                                  "slot": "08:00", "proof": None})
        assert status == 404  # not a field with appointments
        assert (await post(http, url + "/api/checkin", {"code": "K7MPQ0"}))[0] == 400
        async with http.get(url + "/dat-lich/ACDEFGHJ/AAAAAAAAAAAAAAAA") as resp:
            assert resp.status == 404
        async with http.get(url + "/api/dat-lich/ACDEFGHJ/AAAAAAAAAAAAAAAA") as resp:
            assert resp.status == 404
        async with http.get(url + "/ma/ACDEFG/qr.svg") as resp:
            assert resp.status == 200 and (await resp.text()).startswith("<svg")
        async with http.get(url + "/ma/ACDEF0/qr.svg") as resp:
            assert resp.status == 404


async def test_a_site_without_remote_or_appointments_has_no_such_pages(broker: Broker, tmp_path: Path) -> None:
    path, _ = write_site(tmp_path, broker.url, extra=web_extra(tmp_path, free_port()))
    server: WebServer
    async with running_web(path) as server, aiohttp.ClientSession() as http:
        for page in ("/lay-so", "/dat-lich"):
            async with http.get(server.url + page) as resp:
                assert resp.status == 404, page
        async with http.get(server.url + "/kiosk") as resp:
            assert '"checkin":null' in (await resp.text()).replace(" ", "")
