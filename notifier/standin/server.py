"""The stand-in's aiohttp application: make_app(settings).

Routes: ZNS POST /message/template, OAuth POST /v4/oa/access_token, eSMS
POST /MainService.svc/json/SendMultipleMessage_V4_post_json/, SpeedSMS POST /index.php/sms/send,
an integrator POST /hook/{name}, the inbox GET /, and control: GET /_standin/log,
POST /_standin/faults, GET /_standin/stats.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
from typing import Any

import aiohttp
from aiohttp import web

from notifier.providers.webhook import verify_webhook
from notifier.receipts import SIGNATURE_HEADER, zalo_signature
from notifier.standin.page import render_inbox
from notifier.standin.state import PHONE, Delivered, Fault, FaultError, StandinSettings, StandinState, parse_fault

log = logging.getLogger(__name__)

STATE = web.AppKey("standin", StandinState)
CLIENT = web.AppKey("standin_client", aiohttp.ClientSession)
MAX_BODY = 64 * 1024
ZNS_ERRORS = {"-108": "Phone number is invalid", "-109": "Template is invalid", "-111": "Template data is empty",
              "-118": "Zalo account not existed", "-124": "Access token is invalid", "-144": "Daily quota exceeded"}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers,
                             dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _http_fault(status: int, retry_after_s: float | None) -> web.Response:
    headers = {"Retry-After": str(int(retry_after_s))} if retry_after_s is not None else None
    return web.Response(status=status, text=f"stand-in fault {status}", headers=headers)


async def _body_json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _state(request: web.Request) -> StandinState:
    return request.app[STATE]


# ---- Zalo ---------------------------------------------------------------------------------------

async def _interrupted(st: StandinState, provider: str, phones: list[str], entry: dict[str, Any]
                       ) -> tuple[web.Response | None, Fault | None]:
    """The faults a test injected that answer before the provider does (a delay, an HTTP
    status): (that answer, None); else (None, the fault for the provider's own error, if any)."""
    delay, fault = st.fault_for(provider, phones)
    if not await st.pause(delay):
        return web.Response(status=503), None
    if fault is not None and fault.http_status is not None:
        entry["result"] = f"http {fault.http_status}"
        st.stats[provider].errors += 1
        return _http_fault(fault.http_status, fault.retry_after_s), None
    return None, fault


async def oauth(request: web.Request) -> web.Response:
    st = _state(request)
    form = await request.post()
    entry = st.record("oauth", request.path)
    s = st.settings

    def refuse(code: int, name: str) -> web.Response:
        entry["result"] = f"error {code}"
        st.stats["oauth"].errors += 1
        return _json({"error": code, "error_name": name, "error_reason": name, "error_description": name})

    answered, fault = await _interrupted(st, "oauth", [], entry)
    if answered is not None:
        return answered
    if fault is not None and fault.error is not None:
        return refuse(int(fault.error) if fault.error.lstrip("-").isdigit() else -14000, "Injected fault")
    if request.headers.get("secret_key") != s.zalo_secret:
        return refuse(-14002, "Invalid secret key")
    if form.get("app_id") != s.zalo_app_id:
        return refuse(-14001, "Invalid app id")
    if form.get("grant_type") != "refresh_token":
        return refuse(-14003, "Invalid grant type")
    given = form.get("refresh_token")
    if not isinstance(given, str) or not given or given in st.spent_refresh:
        return refuse(-14014, "Invalid refresh token")
    if st.refresh_token is not None:
        valid = given == st.refresh_token
    else:
        valid = s.zalo_refresh_token is None or given == s.zalo_refresh_token
    if not valid:
        return refuse(-14014, "Invalid refresh token")
    st.spent_refresh.add(given)
    st.access_token = "acc-" + secrets.token_urlsafe(24)
    st.refresh_token = "ref-" + secrets.token_urlsafe(24)
    st.access_expires = time.time() + s.token_lifetime_s
    st.tokens_issued += 1
    st.stats["oauth"].delivered += 1
    entry["result"] = "issued"
    return _json({"access_token": st.access_token, "refresh_token": st.refresh_token,
                  "expires_in": str(s.token_lifetime_s)})


def _zns_text(template_id: str, data: dict[str, Any]) -> str:
    fields = "; ".join(f"{k}: {v}" for k, v in data.items())
    return f"Mẫu ZNS {template_id} — {fields}"


async def zns_send(request: web.Request) -> web.Response:
    st = _state(request)
    body = await _body_json(request)
    if not isinstance(body, dict):
        st.record("zalo", request.path)["result"] = "http 400"
        return _json({"error": -100, "message": "Body is not JSON"}, status=400)
    phone = str(body.get("phone") or "")
    tracking = body.get("tracking_id")
    key = str(tracking) if tracking is not None else None
    entry = st.record("zalo", request.path, key=key, phone=phone)
    stats = st.stats["zalo"]

    def error(code: str) -> web.Response:
        entry["result"] = f"error {code}"
        stats.errors += 1
        return _json({"error": int(code) if code.lstrip("-").isdigit() else -100,
                      "message": ZNS_ERRORS.get(code, "Injected error")})

    answered, fault = await _interrupted(st, "zalo", [phone], entry)
    if answered is not None:
        return answered
    if not st.access_valid(request.headers.get("access_token", "")):
        return error("-124")
    if fault is not None and fault.error is not None:
        return error(fault.error)
    if key is not None and key in st.zns_sent:
        entry["duplicate"] = True
        entry["result"] = "duplicate"
        stats.duplicates += 1
        return _json(st.zns_sent[key])
    template_id = body.get("template_id")
    data = body.get("template_data")
    if not PHONE.fullmatch(phone):
        return error("-108")
    if not isinstance(template_id, str | int) or str(template_id) == "":
        return error("-109")
    if not isinstance(data, dict) or not data:
        return error("-111")
    if st.quota_left <= 0:
        return error("-144")
    st.quota_left -= 1
    now = time.time()
    msg_id = secrets.token_hex(16)
    answer = {"error": 0, "message": "Success",
              "data": {"msg_id": msg_id, "sent_time": str(int(now * 1000)), "sending_mode": "1",
                       "quota": {"dailyQuota": str(st.settings.daily_quota), "remainingQuota": str(st.quota_left)}}}
    if key is not None:
        st.zns_sent[key] = answer
    st.inbox.append(Delivered(now, "Zalo ZNS", phone, _zns_text(str(template_id), data)))
    stats.delivered += 1
    entry["result"] = "delivered"
    entry["msg_id"] = msg_id
    if st.settings.receipt_url:
        task = asyncio.create_task(_send_receipt(request.app, msg_id, phone))
        st.tasks.add(task)
        task.add_done_callback(st.tasks.discard)
    return _json(answer)


async def _send_receipt(app: web.Application, msg_id: str, phone: str) -> None:
    st = app[STATE]
    s = st.settings
    assert s.receipt_url is not None
    now_ms = str(int(time.time() * 1000))
    event = {"app_id": s.zalo_app_id, "event_name": "user_received_message", "timestamp": now_ms,
             "sender": {"id": "standin-oa"}, "recipient": {"id": "u" + phone[-4:]},
             "message": {"msg_id": msg_id, "delivery_time": now_ms, "tracking_id": ""}}
    raw = json.dumps(event).encode()
    headers = {"Content-Type": "application/json",
               SIGNATURE_HEADER: zalo_signature(s.zalo_app_id, s.zalo_oa_secret or s.zalo_secret, raw, now_ms)}
    try:
        async with app[CLIENT].post(s.receipt_url, data=raw, headers=headers) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"HTTP {resp.status}")
        st.receipts_sent += 1
    except Exception as e:
        st.receipts_failed += 1
        log.warning("stand-in: receipt for %s not delivered to %s: %s", msg_id, s.receipt_url, e)


# ---- SMS gateways -------------------------------------------------------------------------------

def _sms_phone(phone: str) -> str | None:
    digits = phone.strip()
    if digits.startswith("0") and len(digits) == 10:
        digits = "84" + digits[1:]
    return digits if PHONE.fullmatch(digits) else None


async def esms_send(request: web.Request) -> web.Response:
    st = _state(request)
    body = await _body_json(request)
    if not isinstance(body, dict):
        st.record("esms", request.path)["result"] = "http 400"
        return _json({"CodeResult": "99", "ErrorMessage": "Body is not JSON"}, status=400)
    request_id = body.get("RequestId")
    key = str(request_id) if request_id else None
    phone = str(body.get("Phone") or "")
    entry = st.record("esms", request.path, key=key, phone=phone)
    stats = st.stats["esms"]

    def error(code: str, text: str) -> web.Response:
        entry["result"] = f"error {code}"
        stats.errors += 1
        return _json({"CodeResult": code, "ErrorMessage": text})

    answered, fault = await _interrupted(st, "esms", [phone], entry)
    if answered is not None:
        return answered
    if fault is not None and fault.error is not None:
        return error(fault.error, "Injected error")
    if not body.get("ApiKey") or not body.get("SecretKey"):
        return error("101", "Authorize Failed")
    if key is not None and key in st.esms_sent:
        entry["duplicate"] = True
        entry["result"] = "duplicate"
        stats.duplicates += 1
        return _json({"CodeResult": "124", "ErrorMessage": "Duplicate RequestId"})
    if not body.get("Brandname"):
        return error("104", "Brandname invalid")
    normal = _sms_phone(phone)
    if normal is None:
        return error("118", "Phone invalid")
    content = str(body.get("Content") or "")
    if not content:
        return error("99", "Content empty")
    sms_id = secrets.token_hex(12)
    if key is not None:
        st.esms_sent[key] = sms_id
    st.inbox.append(Delivered(time.time(), f"SMS eSMS ({body.get('Brandname')})", normal, content))
    stats.delivered += 1
    entry["result"] = "delivered"
    return _json({"CodeResult": "100", "CountRegenerate": 0, "SMSID": sms_id})


def _basic_login(header: str) -> str:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")[0]
    except (ValueError, UnicodeDecodeError):
        return ""


async def speedsms_send(request: web.Request) -> web.Response:
    st = _state(request)
    auth = request.headers.get("Authorization", "")
    token = _basic_login(auth)
    body = await _body_json(request)
    to = body.get("to") if isinstance(body, dict) else None
    phones = [str(p) for p in to] if isinstance(to, list) else []
    content = str(body.get("content") or "") if isinstance(body, dict) else ""
    seen = [(p, content) in st.speedsms_seen for p in phones]
    entry = st.record("speedsms", request.path, phone=",".join(phones), duplicate=bool(seen) and all(seen))
    stats = st.stats["speedsms"]

    def error(code: str, text: str) -> web.Response:
        entry["result"] = f"error {code}"
        stats.errors += 1
        return _json({"status": "error", "code": code, "message": text})

    if not token:
        entry["result"] = "http 401"
        return web.Response(status=401, text="Unauthorized")
    if not isinstance(body, dict):
        return error("101", "Invalid parameters")
    answered, fault = await _interrupted(st, "speedsms", phones, entry)
    if answered is not None:
        return answered
    if fault is not None and fault.error is not None:
        return error(fault.error, "Injected error")
    normal = [_sms_phone(p) for p in phones]
    if not phones or any(n is None for n in normal):
        return error("105", "Invalid phone")
    if not content:
        return error("101", "Invalid parameters")
    if len(content) > 160 or not content.isascii():
        return error("113" if content.isascii() else "110", "Content not supported")
    now = time.time()
    for p, n in zip(phones, normal, strict=True):
        assert n is not None
        st.speedsms_seen.add((p, content))
        st.inbox.append(Delivered(now, f"SMS SpeedSMS ({body.get('sender') or ''})", n, content))
    if entry["duplicate"]:
        stats.duplicates += 1
    stats.delivered += 1
    entry["result"] = "delivered"
    return _json({"status": "success", "code": "00",
                  "data": {"tranId": secrets.randbelow(10**9), "totalSMS": len(phones), "totalPrice": 0,
                           "invalidPhone": []}})


# ---- an integrator ------------------------------------------------------------------------------

async def hook(request: web.Request) -> web.Response:
    st = _state(request)
    raw = await request.read()
    key = request.headers.get("X-QMS-Delivery")
    name = request.match_info["name"]
    entry = st.record("hook", request.path, key=key, duplicate=key is not None and key in st.hook_seen)
    stats = st.stats["hook"]
    answered, _ = await _interrupted(st, "hook", [], entry)
    if answered is not None:
        return answered
    secret = st.settings.webhook_secret
    if secret is not None and not verify_webhook(secret, raw, request.headers.get("X-QMS-Timestamp", ""),
                                                 request.headers.get("X-QMS-Signature", ""), time.time()):
        entry["result"] = "http 401"
        stats.errors += 1
        return web.Response(status=401, text="Chữ ký không hợp lệ")
    if key is not None and key in st.hook_seen:
        stats.duplicates += 1
        entry["result"] = "duplicate"
        return web.Response(text="OK (đã nhận trước đó)")
    if key is not None:
        st.hook_seen.add(key)
    try:
        body = json.loads(raw)
        shown = json.dumps(body, ensure_ascii=False)
    except (ValueError, UnicodeDecodeError):
        shown = raw[:500].decode("utf-8", errors="replace")
    entry["body"] = shown
    st.inbox.append(Delivered(time.time(), "Webhook", name, shown[:500]))
    stats.delivered += 1
    entry["result"] = "delivered"
    return web.Response(text="OK")


# ---- the page and control -----------------------------------------------------------------------

async def inbox(request: web.Request) -> web.Response:
    return web.Response(text=render_inbox(_state(request).inbox), content_type="text/html", charset="utf-8")


async def get_log(request: web.Request) -> web.Response:
    return _json(_state(request).log)


async def get_stats(request: web.Request) -> web.Response:
    st = _state(request)
    return _json({"providers": {p: vars(s) for p, s in st.stats.items()}, "tokens_issued": st.tokens_issued,
                  "zns_quota_left": st.quota_left, "receipts_sent": st.receipts_sent,
                  "receipts_failed": st.receipts_failed, "faults": len(st.faults), "inbox": len(st.inbox)})


async def post_faults(request: web.Request) -> web.Response:
    """{"clear": true}; {"provider": "zalo", "expire_token": true}; or one fault (see parse_fault)."""
    st = _state(request)
    spec = await _body_json(request)
    if isinstance(spec, dict) and spec.get("clear") is True and len(spec) == 1:
        st.faults.clear()
        return _json({"faults": 0})
    if isinstance(spec, dict) and spec.get("expire_token") is True:
        if spec.get("provider") != "zalo" or len(spec) != 2:
            return _json({"error": "expire_token chỉ dùng với provider zalo"}, status=400)
        st.access_expires = 0.0
        return _json({"faults": len(st.faults), "access_token": "expired"})
    try:
        fault = parse_fault(spec, time.monotonic())
    except FaultError as e:
        return _json({"error": f"Lỗi giả lập không hợp lệ: {e}"}, status=400)
    st.faults.append(fault)
    return _json({"faults": len(st.faults)})


def make_app(settings: StandinSettings) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[STATE] = StandinState(settings)

    async def client(app: web.Application) -> Any:
        app[CLIENT] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        yield
        st = app[STATE]
        st.closing.set()
        for task in list(st.tasks):
            task.cancel()
        await asyncio.gather(*st.tasks, return_exceptions=True)
        await app[CLIENT].close()

    async def on_shutdown(app: web.Application) -> None:
        app[STATE].closing.set()  # slow handlers stop waiting so the server can close promptly

    app.cleanup_ctx.append(client)
    app.on_shutdown.append(on_shutdown)
    r = app.router
    r.add_post("/message/template", zns_send)
    r.add_post("/v4/oa/access_token", oauth)
    r.add_post("/MainService.svc/json/SendMultipleMessage_V4_post_json/", esms_send)
    r.add_post("/MainService.svc/json/SendMultipleMessage_V4_post_json", esms_send)
    r.add_post("/index.php/sms/send", speedsms_send)
    r.add_post("/hook/{name}", hook)
    r.add_get("/", inbox)
    r.add_get("/_standin/log", get_log)
    r.add_get("/_standin/stats", get_stats)
    r.add_post("/_standin/faults", post_faults)
    return app
