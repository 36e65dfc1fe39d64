"""The dossier API for the province's one-stop system and other integrators (docs/integration.md):

- `POST /api/v1/dossiers` creates a dossier received elsewhere (online, the national portal):
  `{"code","procedure","received_at","due_at","phone","documents"}` → 201 `{"code","token","url"}`
  the first time, 200 with the same answer for the same code again (one dossier);
- `POST /api/v1/dossiers/{code}/events` adds an entry `{"id","status","at","note","department"}`
  → `{"ok":true,"applied":bool,"status"}`; the same `id` again changes nothing (applied: false);
- `GET /api/v1/dossiers/{code}` → the dossier's view.

Each integrator has its own key, sent as `Authorization: Bearer <key>`; the site file keeps only
its SHA-256 (`[[api_keys]]`). A wrong or missing key gets 401 and changes nothing; an address
that sends too many wrong keys is refused (429) before any key of it is looked at. Every error is
`{"ok": false, "error": {"code", "message", "message_en"}}`: integrators read either language.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

from aiohttp import web

from display_server.accounts.ratelimit import RateLimiter, seconds_text
from display_server.api import ApiError, json_response, read_body
from display_server.base import SETTINGS, SIGNER, SITE
from display_server.dossiers import client, procedures
from display_server.dossiers.page import dossier_url
from display_server.dossiers.view import STATUSES, missing_detail, parse_moment, valid_code
from display_server.settings import ApiKey
from display_server.texts import Texts
from qms_common.phones import PhoneError, normalize_phone
from qms_common.protocol import (
    MAX_DEPARTMENT_LEN,
    MAX_DOCUMENT_LEN,
    MAX_DOCUMENTS,
    MAX_DOSSIER_ID_LEN,
    MAX_DOSSIER_NOTE_LEN,
    DossierAction,
    DossierSource,
    ProtocolError,
    loads_object,
)
from qms_common.signing import DOSSIER

log = logging.getLogger(__name__)

KEY_FAILURES = web.AppKey("api_key_failures", RateLimiter)
# wrong keys an address may send per minute before it is refused for a while
FAILURES_PER_MINUTE = 10
# a dossier with thirty documents of Vietnamese text (three bytes a letter) fits
MAX_API_BODY = 32 * 1024
VI, EN = Texts("vi"), Texts("en")
CREATE_KEYS = frozenset({"code", "procedure", "received_at", "due_at", "phone", "documents", "field"})
EVENT_KEYS = frozenset({"id", "status", "at", "note", "department"})
MAX_PROCEDURE_TEXT = 300

Handler = Callable[[web.Request, ApiKey], Awaitable[web.Response]]


class V1Error(ApiError):
    """An error of this API, in both languages from one text key."""

    def __init__(self, status: int, code: str, text_key: str, /, **fmt: Any) -> None:
        super().__init__(status, code, VI[text_key].format(**fmt))
        self.en = EN[text_key].format(**fmt)


def setup(app: web.Application) -> None:
    app[KEY_FAILURES] = RateLimiter(FAILURES_PER_MINUTE, 60.0)
    app.router.add_post("/api/v1/dossiers", _with_key(create))
    app.router.add_post("/api/v1/dossiers/{code:.+}/events", _with_key(add_event))
    app.router.add_get("/api/v1/dossiers/{code:.+}", _with_key(get))


def _error(exc: ApiError) -> web.Response:
    en = getattr(exc, "en", None) or EN.get(f"err_{exc.code}") or exc.message
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="qms"'
    if "retry_after_s" in exc.extra:
        headers["Retry-After"] = str(exc.extra["retry_after_s"])
    body = {"ok": False, "error": {"code": exc.code, "message": exc.message, "message_en": en}, **exc.extra}
    return json_response(body, exc.status, headers)


def _with_key(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def checked(request: web.Request) -> web.Response:
        try:
            return await handler(request, authenticate(request))
        except ApiError as exc:
            return _error(exc)
    return checked


def authenticate(request: web.Request) -> ApiKey:
    """The integrator's key, or 401 (429 for an address that guessed too often)."""
    address = request.remote or "?"
    limiter = request.app[KEY_FAILURES]
    wait = limiter.retry_after(address)
    if wait > 0:
        err = V1Error(429, "rate_limited", "err_api_limited", s=seconds_text(wait))
        err.extra["retry_after_s"] = seconds_text(wait)
        raise err
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    key = None
    if scheme.lower() == "bearer" and presented.strip() and len(presented) <= 512:
        key = request.app[SETTINGS].api_keys.find(presented.strip())
    if key is None:
        limiter.hit(address)
        log.warning("API hồ sơ: khoá sai hoặc thiếu từ %s", address)
        err = V1Error(401, "unauthorized", "err_api_key")
        err.message += " " + VI.api_key_help
        err.en += " " + EN.api_key_help
        raise err
    return key


async def _read(request: web.Request, allowed: frozenset[str]) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise V1Error(415, "bad_request", "err_content_type")
    try:
        body = await read_body(request, MAX_API_BODY)
    except ApiError:
        raise V1Error(413, "too_large", "err_too_large", max=MAX_API_BODY) from None
    try:
        obj = loads_object(body, max_bytes=MAX_API_BODY)
    except ProtocolError:
        raise V1Error(400, "bad_request", "err_not_json") from None
    unknown = set(obj) - allowed
    if unknown:
        raise V1Error(400, "bad_request", "err_unknown_keys", keys=", ".join(sorted(unknown)))
    return obj


def _code_of(value: Any) -> str:
    if not valid_code(value):
        raise V1Error(400, "bad_request", "err_hs_code")
    return str(value)


def _text(obj: dict[str, Any], key: str, limit: int) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise V1Error(400, "bad_request", "err_hs_text", key=key, max=limit)
    return value.strip() or None


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        return None


def documents_of(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_DOCUMENTS or not all(
            isinstance(d, str) and 0 < len(d.strip()) <= MAX_DOCUMENT_LEN for d in value):
        raise V1Error(400, "bad_request", "err_hs_documents")
    return [d.strip() for d in value]


async def create(request: web.Request, key: ApiKey) -> web.Response:
    site = request.app[SITE]
    body = await _read(request, CREATE_KEYS)
    code = _code_of(body.get("code"))
    text = body.get("procedure")
    if not isinstance(text, str) or not 0 < len(text.strip()) <= MAX_PROCEDURE_TEXT:
        raise V1Error(400, "bad_request", "err_hs_procedure")
    proc = procedures.resolve(request.app, text.strip())
    received = None
    if body.get("received_at") is not None:
        received = parse_moment(body.get("received_at"), site.tz)
        if received is None:
            raise V1Error(400, "bad_request", "err_hs_at", key="received_at")
    received_day = (received or datetime.now(site.tz)).astimezone(site.tz).date()
    if body.get("due_at") is None:
        if proc.processing_days is None:
            raise V1Error(400, "bad_request", "err_hs_due_missing")
        due = procedures.due_date(request.app, received_day, proc.processing_days)
    else:
        due = _day(body.get("due_at"))
        if due is None or due < received_day:
            raise V1Error(400, "bad_request", "err_hs_due")
    phone = None
    if body.get("phone") not in (None, ""):
        try:
            phone = normalize_phone(body["phone"])
        except PhoneError:
            raise V1Error(400, "bad_request", "err_phone") from None
    field = _text(body, "field", 64) or proc.field
    reply = await client.ask_for(
        request, DossierAction.CREATE, code=code, procedure=proc.as_command(), field=field,
        received_at=received.isoformat() if received else None, due_at=due.isoformat(),
        documents=documents_of(body.get("documents")) or None, phone=phone,
        source=DossierSource.API.value, by=f"api:{key.name}")
    created = reply.get("created") is True
    log.info("API hồ sơ (%s): %s hồ sơ %s", key.name, "tạo" if created else "đã có", code)
    answer = {"code": code, "token": request.app[SIGNER].token(DOSSIER, code), "url": dossier_url(request, code)}
    return json_response(answer, 201 if created else 200)


async def add_event(request: web.Request, key: ApiKey) -> web.Response:
    site = request.app[SITE]
    code = _code_of(request.match_info["code"])
    body = await _read(request, EVENT_KEYS)
    event_id = body.get("id")
    if not isinstance(event_id, str) or not 0 < len(event_id.strip()) <= MAX_DOSSIER_ID_LEN:
        raise V1Error(400, "bad_request", "err_hs_event_id")
    status = body.get("status")
    if status not in STATUSES:
        raise V1Error(400, "bad_request", "err_hs_status", statuses=", ".join(STATUSES))
    at = datetime.now(site.tz)
    if body.get("at") is not None:
        parsed = parse_moment(body.get("at"), site.tz)
        if parsed is None:
            raise V1Error(400, "bad_request", "err_hs_at", key="at")
        at = parsed
    note = _text(body, "note", MAX_DOSSIER_NOTE_LEN)
    department = _text(body, "department", MAX_DEPARTMENT_LEN)
    if missing_detail(status, note=note, department=department):
        raise V1Error(400, "bad_request", f"err_hs_{status}_detail")
    reply = await client.ask_for(request, DossierAction.EVENT, code=code, id=event_id.strip(), status=status,
                                 at=at.isoformat(), note=note, department=department, by=f"api:{key.name}")
    dossier = reply.get("dossier") if isinstance(reply.get("dossier"), dict) else {}
    applied = reply.get("applied") is True
    log.info("API hồ sơ (%s): %s %s %s", key.name, code, status, "ghi" if applied else "đã có")
    return json_response({"ok": True, "applied": applied, "status": dossier.get("status")})


async def get(request: web.Request, key: ApiKey) -> web.Response:
    code = _code_of(request.match_info["code"])
    reply = await client.ask_for(request, DossierAction.GET, code=code)
    return json_response({"ok": True, "dossier": reply.get("dossier"), "url": dossier_url(request, code)})
