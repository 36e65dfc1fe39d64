"""notifier.providers and notifier.receipts against the stand-in providers (notifier.standin),
served for real on 127.0.0.1 free ports, with real SQLite files for the Zalo tokens."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from notifier.providers import sms_channel
from notifier.providers.base import Message, Outcome, Verdict
from notifier.providers.esms import EsmsChannel
from notifier.providers.speedsms import SpeedSmsChannel
from notifier.providers.tokens import ZaloTokens
from notifier.providers.webhook import WebhookTarget, encode, sign, verify_webhook
from notifier.providers.zalo import ZaloChannel
from notifier.receipts import receipt_routes
from notifier.standin.server import STATE, make_app
from notifier.standin.state import StandinSettings, StandinState

APP_ID = "app-123"
SECRET = "oa-secret"
SEED = "seed-refresh-token"
HOOK_SECRET = "hook-secret"
PHONE = "84912345678"
OTHER_PHONE = "84987654321"
TEMPLATES = {"issued": "tpl-issued", "nears": "tpl-nears", "called": "tpl-called", "rate": "tpl-rate"}


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@dataclass
class Standin:
    url: str
    state: StandinState

    async def fault(self, spec: dict[str, Any]) -> None:
        async with aiohttp.ClientSession() as s, s.post(self.url + "/_standin/faults", json=spec) as r:
            assert r.status == 200, await r.text()

    async def get(self, path: str) -> Any:
        async with aiohttp.ClientSession() as s, s.get(self.url + path) as r:
            assert r.status == 200
            return await r.json() if r.content_type == "application/json" else await r.text()


@pytest.fixture
async def standin_factory() -> AsyncIterator[Callable[..., Awaitable[Standin]]]:
    runners: list[web.AppRunner] = []

    async def start(**kw: Any) -> Standin:
        settings = StandinSettings(**{"zalo_app_id": APP_ID, "zalo_secret": SECRET, "webhook_secret": HOOK_SECRET,
                                      **kw})
        app = make_app(settings)
        runner, url = await serve(app)
        runners.append(runner)
        return Standin(url, app[STATE])

    yield start
    for r in runners:
        await r.cleanup()


@pytest.fixture
async def standin(standin_factory: Callable[..., Awaitable[Standin]]) -> Standin:
    return await standin_factory()


@pytest.fixture
async def zalo(standin: Standin, tmp_path: Path) -> AsyncIterator[ZaloChannel]:
    tokens = ZaloTokens(tmp_path / "notify.sqlite3")
    ch = ZaloChannel(base_url=standin.url, oauth_url=standin.url, app_id=APP_ID, secret_key=SECRET,
                     first_refresh_token=SEED, templates=TEMPLATES, tokens=tokens, timeout_s=3)
    yield ch
    await ch.close()
    await tokens.close()


def message(key: str = "t-1", phone: str = PHONE, kind: str = "called") -> Message:
    return Message(key=key, phone=phone, kind=kind, text="Moi so A015 den quay 3",
                   template_data={"ticket": "A015", "counter": "3", "office": "Bộ phận một cửa phường Hòa Khánh"})


def stored_refresh(db: Path) -> str | None:
    with sqlite3.connect(db) as c:
        row = c.execute("SELECT refresh_token FROM zalo_tokens WHERE id = 1").fetchone()
    return row[0] if row else None


# ---- Zalo ZNS -----------------------------------------------------------------------------------

async def test_zns_accepts_and_the_inbox_shows_it_masked(standin: Standin, zalo: ZaloChannel) -> None:
    out = await zalo.send(message())
    assert out.verdict is Verdict.ACCEPTED, out
    assert out.provider_id and out.quota_left == 999
    [entry] = [e for e in standin.state.log if e["provider"] == "zalo"]
    assert entry["key"] == "t-1" and entry["result"] == "delivered" and entry["msg_id"] == out.provider_id
    page = await standin.get("/")
    assert "Hộp thư điện thoại" in page and "09x…x78" in page and "tpl-called" in page
    assert "Bộ phận một cửa phường Hòa Khánh" in page
    assert "912345678" not in page


async def test_zns_repeated_tracking_id_is_not_delivered_again(standin: Standin, zalo: ZaloChannel) -> None:
    first = await zalo.send(message("same-key"))
    again = await zalo.send(message("same-key"))
    assert first.verdict is again.verdict is Verdict.ACCEPTED
    assert again.provider_id == first.provider_id
    entries = [e for e in standin.state.log if e["provider"] == "zalo"]
    assert [e["duplicate"] for e in entries] == [False, True]
    stats = await standin.get("/_standin/stats")
    assert stats["providers"]["zalo"]["delivered"] == 1 and stats["providers"]["zalo"]["duplicates"] == 1
    assert len(standin.state.inbox) == 1


async def test_zns_no_zalo_account_is_permanent(standin: Standin, zalo: ZaloChannel) -> None:
    await standin.fault({"provider": "zalo", "error": -118, "phones": [PHONE]})
    out = await zalo.send(message("k-118"))
    assert out.verdict is Verdict.PERMANENT
    assert "-118" in out.reason and "không có tài khoản Zalo" in out.reason
    assert "912345678" not in out.reason
    other = await zalo.send(message("k-other", phone=OTHER_PHONE))
    assert other.verdict is Verdict.ACCEPTED  # the fault names one phone only


async def test_zns_server_errors_retry(standin: Standin, zalo: ZaloChannel) -> None:
    await zalo.send(message("warm-up"))  # the token refresh is not what this test is about
    await standin.fault({"provider": "zalo", "http_status": 500, "for_s": 30})
    out = await zalo.send(message("k-500"))
    assert out.verdict is Verdict.RETRY and "500" in out.reason
    await standin.fault({"clear": True})
    await standin.fault({"provider": "zalo", "http_status": 429, "retry_after_s": 7})
    out = await zalo.send(message("k-429"))
    assert out.verdict is Verdict.RETRY and out.retry_after_s == 7
    await standin.fault({"clear": True})
    assert (await zalo.send(message("k-500"))).verdict is Verdict.ACCEPTED


async def test_zns_timeout_retries(standin: Standin, tmp_path: Path) -> None:
    tokens = ZaloTokens(tmp_path / "t.sqlite3")
    ch = ZaloChannel(base_url=standin.url, oauth_url=standin.url, app_id=APP_ID, secret_key=SECRET,
                     first_refresh_token=SEED, templates=TEMPLATES, tokens=tokens, timeout_s=0.3)
    try:
        assert (await ch.send(message("warm-up"))).verdict is Verdict.ACCEPTED
        await standin.fault({"provider": "zalo", "delay_s": 5})
        started = time.monotonic()
        out = await ch.send(message("slow"))
        assert out.verdict is Verdict.RETRY and "hết thời gian" in out.reason
        assert time.monotonic() - started < 2
    finally:
        await ch.close()
        await tokens.close()


async def test_zns_unknown_kind_is_permanent(zalo: ZaloChannel) -> None:
    out = await zalo.send(message(kind="holiday"))
    assert out.verdict is Verdict.PERMANENT and "holiday" in out.reason


async def test_token_refresh_is_stored_before_use(standin: Standin, zalo: ZaloChannel, tmp_path: Path) -> None:
    db = tmp_path / "notify.sqlite3"
    st = standin.state
    seen: list[tuple[str | None, str | None]] = []  # (refresh token on disk, the stand-in's valid one)
    st.observers.append(lambda e: seen.append((stored_refresh(db), st.refresh_token)) if e["provider"] == "zalo"
                        else None)

    assert (await zalo.send(message("k1"))).verdict is Verdict.ACCEPTED  # first use: refresh from the seed
    first_refresh = st.refresh_token
    assert SEED in st.spent_refresh and stored_refresh(db) == first_refresh

    await standin.fault({"provider": "zalo", "expire_token": True})
    outs = await asyncio.gather(*(zalo.send(message(f"k{i}")) for i in range(2, 7)))
    assert all(o.verdict is Verdict.ACCEPTED for o in outs), outs
    assert st.tokens_issued == 2  # five senders met the expired token; one refresh served them all
    assert stored_refresh(db) == st.refresh_token != first_refresh
    # Every send reached the provider with the newest refresh token already on disk.
    assert seen and all(disk == valid for disk, valid in seen), seen

    again = ZaloTokens(db)
    try:
        state = await again.load()
        assert state is not None and state.refresh_token == st.refresh_token
        assert state.access_token == st.access_token and state.seed == SEED
    finally:
        await again.close()

    form = {"app_id": APP_ID, "grant_type": "refresh_token", "refresh_token": first_refresh or ""}
    async with aiohttp.ClientSession() as s, s.post(standin.url + "/v4/oa/access_token", data=form,
                                                    headers={"secret_key": SECRET}) as r:
        answer = await r.json()
    assert "access_token" not in answer and answer["error"] == -14014


async def test_refused_refresh_token_is_permanent_and_stores_nothing(
        standin_factory: Callable[..., Awaitable[Standin]], tmp_path: Path) -> None:
    standin = await standin_factory(zalo_refresh_token="the-right-one")
    db = tmp_path / "n.sqlite3"
    tokens = ZaloTokens(db)
    ch = ZaloChannel(base_url=standin.url, oauth_url=standin.url, app_id=APP_ID, secret_key=SECRET,
                     first_refresh_token="a-wrong-one", templates=TEMPLATES, tokens=tokens)
    try:
        out = await ch.send(message())
        assert out.verdict is Verdict.PERMANENT and "-14014" in out.reason
        assert stored_refresh(db) is None
        assert not [e for e in standin.state.log if e["provider"] == "zalo"]
    finally:
        await ch.close()
        await tokens.close()


# ---- SMS gateways -------------------------------------------------------------------------------

async def test_esms_accepts_and_a_repeated_request_id_counts_as_accepted(standin: Standin) -> None:
    ch = sms_channel("esms", base_url=standin.url, api_key="k", secret_key="s", brandname="MOTCUA",
                     callback_url="http://127.0.0.1:9/cb")
    try:
        assert isinstance(ch, EsmsChannel) and ch.deduplicates
        first = await ch.send(message("sms-1"))
        assert first.verdict is Verdict.ACCEPTED and first.provider_id
        again = await ch.send(message("sms-1"))
        assert again.verdict is Verdict.ACCEPTED and "124" in again.reason
        assert standin.state.stats["esms"].delivered == 1 and standin.state.stats["esms"].duplicates == 1
        bad = await ch.send(message("sms-2", phone="8412"))
        assert bad.verdict is Verdict.PERMANENT and "118" in bad.reason
        await standin.fault({"provider": "esms", "error": "99"})
        assert (await ch.send(message("sms-3"))).verdict is Verdict.RETRY
        await standin.fault({"clear": True})
        await standin.fault({"provider": "esms", "http_status": 503})
        assert (await ch.send(message("sms-3"))).verdict is Verdict.RETRY
    finally:
        await ch.close()


async def test_speedsms_success_and_errors(standin: Standin) -> None:
    ch = sms_channel("speedsms", base_url=standin.url, token="tok", sender="MOTCUA")
    try:
        assert isinstance(ch, SpeedSmsChannel) and ch.deduplicates is False
        ok = await ch.send(message("s-1"))
        assert ok.verdict is Verdict.ACCEPTED and ok.provider_id
        bad = await ch.send(message("s-2", phone="849"))
        assert bad.verdict is Verdict.PERMANENT and "105" in bad.reason
        await standin.fault({"provider": "speedsms", "error": "300"})
        broke = await ch.send(message("s-3"))
        assert broke.verdict is Verdict.RETRY and "300" in broke.reason
        inbox = [d for d in standin.state.inbox if d.channel.startswith("SMS SpeedSMS")]
        assert [d.text for d in inbox] == ["Moi so A015 den quay 3"]
    finally:
        await ch.close()


def test_unknown_sms_gateway_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="viettel"):
        sms_channel("viettel", base_url="http://127.0.0.1:9")


# ---- webhooks -----------------------------------------------------------------------------------

async def test_webhook_signature_checked_by_the_standin(standin: Standin) -> None:
    good = WebhookTarget(url=standin.url + "/hook/crm", secret=HOOK_SECRET)
    forged = WebhookTarget(url=standin.url + "/hook/crm", secret="not-the-secret")
    try:
        body = {"event": "called", "ticket": "A015", "counter": "3", "office": "Phường Hòa Khánh"}
        out = await good.send("d-1", body)
        assert out.verdict is Verdict.ACCEPTED
        out = await forged.send("d-2", body)
        assert out.verdict is Verdict.PERMANENT and "401" in out.reason
        await standin.fault({"provider": "hook", "http_status": 500})
        assert (await good.send("d-3", body)).verdict is Verdict.RETRY
        hooks = [e for e in standin.state.log if e["provider"] == "hook"]
        assert [(e["key"], e["result"]) for e in hooks] == [("d-1", "delivered"), ("d-2", "http 401"),
                                                            ("d-3", "http 500")]
        assert json.loads(hooks[0]["body"]) == body
    finally:
        await good.close()
        await forged.close()


def test_verify_webhook() -> None:
    body = encode({"ticket": "A015", "note": "Đến quầy số 3"})
    now = 1_800_000_000.0
    ts = str(int(now))
    sig = sign("s3cret", ts, body)
    assert sig.startswith("sha256=")
    assert verify_webhook("s3cret", body, ts, sig, now)
    assert not verify_webhook("s3cret", body.replace(b"A015", b"A016"), ts, sig, now)
    assert not verify_webhook("other", body, ts, sig, now)
    old = str(int(now) - 301)
    assert not verify_webhook("s3cret", body, old, sign("s3cret", old, body), now)
    future = str(int(now) + 301)
    assert not verify_webhook("s3cret", body, future, sign("s3cret", future, body), now)
    assert not verify_webhook("s3cret", body, ts, sig.removeprefix("sha256="), now)
    assert not verify_webhook("s3cret", body, "12a", sig, now)


# ---- Zalo delivery receipts ---------------------------------------------------------------------

@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[tuple[str, str]], asyncio.Event]]:
    got: list[tuple[str, str]] = []
    arrived = asyncio.Event()

    async def on_delivered(msg_id: str, delivery_time: str) -> None:
        got.append((msg_id, delivery_time))
        arrived.set()

    app = web.Application()
    receipt_routes(app, app_id=APP_ID, secret_key=SECRET, on_delivered=on_delivered)
    runner, url = await serve(app)
    yield url, got, arrived
    await runner.cleanup()


async def test_signed_receipt_from_the_standin_is_accepted(
        standin_factory: Callable[..., Awaitable[Standin]], receiver: Any, tmp_path: Path) -> None:
    url, got, arrived = receiver
    standin = await standin_factory(receipt_url=url + "/zalo/events")
    tokens = ZaloTokens(tmp_path / "r.sqlite3")
    ch = ZaloChannel(base_url=standin.url, oauth_url=standin.url, app_id=APP_ID, secret_key=SECRET,
                     first_refresh_token=SEED, templates=TEMPLATES, tokens=tokens)
    try:
        out = await ch.send(message("r-1"))
        assert out.verdict is Verdict.ACCEPTED
        await asyncio.wait_for(arrived.wait(), 5)
        assert got[0][0] == out.provider_id and got[0][1].isdigit()
        assert standin.state.receipts_sent == 1
    finally:
        await ch.close()
        await tokens.close()


async def test_forged_or_garbled_receipts_are_refused(receiver: Any) -> None:
    url, got, _ = receiver
    event = {"app_id": APP_ID, "event_name": "user_received_message", "timestamp": "1800000000000",
             "recipient": {"id": "u1"}, "message": {"msg_id": "m-1", "delivery_time": "1800000000000"}}
    raw = json.dumps(event).encode()

    def signature(secret: str, body: bytes = raw) -> str:
        return hashlib.sha256(APP_ID.encode() + body + b"1800000000000" + secret.encode()).hexdigest()

    async with aiohttp.ClientSession() as s:
        async def post(body: bytes, sig: str | None) -> tuple[int, str]:
            headers = {"X-ZEvent-Signature": sig} if sig is not None else {}
            async with s.post(url + "/zalo/events", data=body, headers=headers) as r:
                return r.status, await r.text()

        status, text = await post(raw, signature("guessed-secret"))
        assert status == 403 and "Chữ ký" in text
        assert (await post(raw, None))[0] == 403
        tampered = raw.replace(b"m-1", b"m-2")
        assert (await post(tampered, signature(SECRET)))[0] == 403
        assert (await post(b"{not json", signature(SECRET, b"{not json")))[0] == 400
        assert (await post(b"x" * 70_000, "00"))[0] == 413
        assert got == []
        other = json.dumps({**event, "event_name": "user_seen_message"}).encode()
        assert (await post(other, signature(SECRET, other)))[0] == 200
        assert got == []
        assert (await post(raw, signature(SECRET)))[0] == 200
        assert got == [("m-1", "1800000000000")]


# ---- the stand-in itself ------------------------------------------------------------------------

async def test_standin_refuses_a_bad_fault_and_changes_nothing(standin: Standin) -> None:
    async with aiohttp.ClientSession() as s:
        for spec in ({"provider": "telegram", "http_status": 500}, {"provider": "zalo", "http_status": "x"},
                     {"provider": "zalo"}, [1, 2]):
            async with s.post(standin.url + "/_standin/faults", json=spec) as r:
                assert r.status == 400
                assert "không hợp lệ" in (await r.json())["error"]
    assert standin.state.faults == []


async def test_standin_runs_as_a_program() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "notifier.standin", "--port", "0", "--webhook-secret", HOOK_SECRET,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        assert line.startswith("standin listening on http://127.0.0.1:"), line
        url = line.removeprefix("standin listening on ")
        target = WebhookTarget(url=url + "/hook/erp", secret=HOOK_SECRET)
        try:
            out: Outcome = await target.send("p-1", {"event": "issued", "ticket": "B002"})
        finally:
            await target.close()
        assert out.verdict is Verdict.ACCEPTED
        async with aiohttp.ClientSession() as s, s.get(url + "/") as r:
            assert r.status == 200 and r.charset == "utf-8"
            assert "B002" in await r.text()
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_a_new_seed_in_the_settings_replaces_the_stored_chain(tmp_path: Path) -> None:
    """An operator who re-authorised the OA puts a new first refresh token in the settings: it wins
    over the stored chain, which grew from the old one; the same seed keeps the stored chain."""
    from notifier.providers.tokens import Refreshed

    spent: list[str] = []

    async def refresher(refresh_token: str) -> Refreshed:
        spent.append(refresh_token)
        return Refreshed(access_token=f"acc-{len(spent)}", refresh_token=f"ref-{len(spent)}", expires_in=3600)

    tokens = ZaloTokens(tmp_path / "s.sqlite3")
    try:
        assert await tokens.access_token(refresher, seed="seed-A") == "acc-1"
        assert await tokens.access_token(refresher, seed="seed-A") == "acc-1"  # still valid: no refresh
        assert await tokens.access_token(refresher, seed="seed-A", stale="acc-1") == "acc-2"
        assert await tokens.access_token(refresher, seed="seed-B") == "acc-3"
        assert spent == ["seed-A", "ref-1", "seed-B"]
    finally:
        await tokens.close()
