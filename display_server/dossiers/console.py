"""The console's dossier work (Tiếp nhận hồ sơ), for the counter's logged-in officer:

- GET  /api/counter/{id}/procedures?q=&received= — the catalogue's procedures for the picker, each
  with its promised return date counted from the received day in business days;
- POST /api/counter/{id}/dossier — record a dossier: the core's `dossier` action first (the code
  on the ticket being served: this ties the later rating to the dossier), then cmd/dossier create
  with the ticket, officer, counter and field. Both are idempotent, so a retry is safe;
- POST /api/counter/{id}/dossier-event — a new status of a dossier, by its code;
- POST /api/counter/{id}/receipt — print the receipt on the counter's printer, or answer the A5
  page's address for the browser to print.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from display_server.accounts.auth import api_session
from display_server.api import ApiError, ask_core, bad_request, json_response, read_command, request_id_in
from display_server.base import FOLLOWER, RECORDS, SIGNER, SITE, texts_for
from display_server.dossiers import client, procedures
from display_server.dossiers.page import dossier_url
from display_server.dossiers.receipt import Receipt, printer_for
from display_server.dossiers.view import missing_detail, parse_moment, public_view, status_text, valid_code
from display_server.printing.printer import status_of
from qms_common.mqtt import new_request_id
from qms_common.phones import PhoneError, normalize_phone
from qms_common.protocol import (
    MAX_DEPARTMENT_LEN,
    MAX_DOCUMENT_LEN,
    MAX_DOCUMENTS,
    MAX_DOSSIER_NOTE_LEN,
    MAX_ID_LEN,
    Action,
    DossierAction,
    DossierSource,
    counter_command,
)
from qms_common.signing import DOSSIER

log = logging.getLogger(__name__)

RECORD_KEYS = ("request_id", "code", "procedure", "received_at", "due_at", "documents", "phone", "consent")
EVENT_KEYS = ("request_id", "code", "status", "note", "department")
# what the console may set; "received" is the creation's own entry
CONSOLE_STATUSES = ("processing", "needs_documents", "done", "returned", "refused")
# what the officer is asked for when a status lacks its detail (view.REQUIRED_DETAIL): who
# handles it, what is missing, why it was refused
DETAIL_LABEL = {"processing": "console_hs_department", "needs_documents": "console_hs_needs",
                "refused": "console_hs_reason"}
MAX_PROCEDURE_TEXT = 300


def setup(app: web.Application) -> None:
    app.router.add_get("/api/counter/{counter}/procedures", search)
    app.router.add_post("/api/counter/{counter}/dossier", record)
    app.router.add_post("/api/counter/{counter}/dossier-event", add_event)
    app.router.add_post("/api/counter/{counter}/receipt", print_receipt)


def _counter(request: web.Request, *, csrf: bool = True) -> tuple[str, Any]:
    cid = request.match_info["counter"]
    api_session(request, csrf=csrf)
    if request.app[SITE].counter(cid) is None:
        raise ApiError(404, "unknown_counter", texts_for(request).err_unknown_counter.format(counter=cid))
    return cid, api_session(request, counter=cid, csrf=csrf)


def _code(request: web.Request, value: Any) -> str:
    if not isinstance(value, str) or not valid_code(value.strip()):
        raise bad_request(request, "err_hs_code")
    return value.strip()


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        return None


async def search(request: web.Request) -> web.Response:
    _counter(request, csrf=False)
    site = request.app[SITE]
    received = _day(request.query.get("received")) or datetime.now(site.tz).date()
    text = request.query.get("q", "")[:100].strip()
    catalogue = procedures.catalogue_of(request.app)
    found = catalogue.search(text, limit=20) if catalogue is not None and text else []
    out = []
    for p in found:
        due = procedures.due_date(request.app, received, p.processing_days) if p.processing_days is not None else None
        out.append({"code": p.code, "name": p.name, "field": p.field, "field_name": p.field_name,
                    "processing_days": p.processing_days, "documents": list(p.documents),
                    "due_at": due.isoformat() if due else None})
    return json_response({"ok": True, "procedures": out})


def _procedure(request: web.Request, value: Any) -> procedures.ProcedureRef:
    """{"code"?, "name"}: a catalogue code wins (its name as the catalogue has it), else the name."""
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise bad_request(request, "err_hs_procedure")
    code, name = value.get("code"), value.get("name")
    catalogue = procedures.catalogue_of(request.app)
    if isinstance(code, str) and code and catalogue is not None and (p := catalogue.get(code)) is not None:
        return procedures.ProcedureRef.of(p)
    if not isinstance(name, str) or not 0 < len(name.strip()) <= MAX_PROCEDURE_TEXT:
        raise bad_request(request, "err_hs_procedure")
    return procedures.resolve(request.app, name.strip())


def _documents(request: web.Request, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
        raise bad_request(request, "err_hs_documents")
    docs = list(dict.fromkeys(d.strip() for d in value if d.strip()))
    if len(docs) > MAX_DOCUMENTS or any(len(d) > MAX_DOCUMENT_LEN for d in docs):
        raise bad_request(request, "err_hs_documents")
    return docs


async def record(request: web.Request) -> web.Response:
    t = texts_for(request)
    cid, session = _counter(request)
    site = request.app[SITE]
    body = await read_command(request, RECORD_KEYS)
    rid = request_id_in(request, body) or new_request_id()
    code = _code(request, body.get("code"))
    proc = _procedure(request, body.get("procedure"))
    received = datetime.now(site.tz)
    if body.get("received_at"):
        moment = parse_moment(body.get("received_at"), site.tz)
        if moment is None:
            raise bad_request(request, "err_hs_at", key="received_at")
        received = moment
    due = _day(body.get("due_at"))
    if due is None or due < received.astimezone(site.tz).date():
        raise bad_request(request, "err_hs_due")
    documents = _documents(request, body.get("documents"))
    phone = None
    if body.get("phone"):
        if body.get("consent") is not True:
            raise bad_request(request, "err_hs_consent")
        try:
            phone = normalize_phone(body["phone"])
        except PhoneError:
            raise bad_request(request, "err_phone") from None
    # 1. the code on the ticket being served (the core's own command): the rating follows it
    follower = request.app[FOLLOWER]
    try:
        attached = await ask_core(request, follower.topics.cmd_counter(cid), counter_command(
            f"console/{cid}/{rid}/a"[:MAX_ID_LEN], Action.DOSSIER, dossier=code))
    except ApiError as exc:
        raise ApiError(exc.status, exc.code, t.err_hs_attach.format(message=exc.message)) from None
    ticket = attached.get("ticket") if isinstance(attached.get("ticket"), dict) else {}
    if isinstance(ticket.get("id"), str):
        request.app[RECORDS].invalidate(ticket["id"])
    # 2. the dossier itself, in the dossier service
    reply = await client.ask_for(
        request, DossierAction.CREATE, request_id=f"console/{cid}/{rid}/c"[:MAX_ID_LEN], code=code,
        procedure=proc.as_command(), field=proc.field or ticket.get("field"),
        received_at=received.isoformat(), due_at=due.isoformat(), documents=documents or None, phone=phone,
        ticket=ticket.get("id"), officer=session.account.name[:64], counter=cid,
        source=DossierSource.COUNTER.value, by=session.account.username)
    created = reply.get("created") is True
    log.info("Quầy %s: %s hồ sơ %s (vé %s, %s)", cid, "tiếp nhận" if created else "đã có", code,
             ticket.get("number"), session.account.username)
    number = ticket.get("number") or ""
    return json_response({
        "ok": True, "created": created, "code": code, "ticket": {"id": ticket.get("id"), "number": number},
        "message": (t.console_hs_saved if created else t.console_hs_existed).format(code=code, number=number),
        "page": dossier_url(request, code), "receipt": _receipt_href(request, code),
        "print": "escpos" if printer_for(request.app, cid) else "browser",
    })


def _receipt_href(request: web.Request, code: str) -> str:
    t = texts_for(request)
    token = request.app[SIGNER].token(DOSSIER, code)
    return f"/hs/{quote(code)}/bien-nhan?k={token}&in=1" + (f"&lang={t.lang}" if t.lang != "vi" else "")


async def add_event(request: web.Request) -> web.Response:
    t = texts_for(request)
    cid, session = _counter(request)
    site = request.app[SITE]
    body = await read_command(request, EVENT_KEYS)
    rid = request_id_in(request, body) or new_request_id()
    code = _code(request, body.get("code"))
    status = body.get("status")
    if status not in CONSOLE_STATUSES:
        raise bad_request(request, "err_hs_status", statuses=", ".join(CONSOLE_STATUSES))
    note, department = body.get("note"), body.get("department")
    for key, value, limit in (("note", note, MAX_DOSSIER_NOTE_LEN), ("department", department, MAX_DEPARTMENT_LEN)):
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise bad_request(request, "err_hs_text", key=key, max=limit)
    note = note.strip() if isinstance(note, str) and note.strip() else None
    department = department.strip() if isinstance(department, str) and department.strip() else None
    if missing_detail(status, note=note, department=department):
        raise bad_request(request, "err_hs_note_needed", what=t[DETAIL_LABEL[status]].lower())
    reply = await client.ask_for(
        request, DossierAction.EVENT, request_id=f"console/{cid}/{rid}/e"[:MAX_ID_LEN], code=code,
        id=f"console-{rid}"[:64], status=status, at=datetime.now(site.tz).isoformat(),
        note=note if status != "processing" else None, department=department if status == "processing" else None,
        by=session.account.username)
    applied = reply.get("applied") is True
    text = status_text(status, t, department=department, note=note)
    log.info("Quầy %s: hồ sơ %s → %s (%s)", cid, code, status, session.account.username)
    return json_response({"ok": True, "applied": applied, "message": (
        t.console_hs_updated.format(code=code, status=text) if applied else t.console_hs_unchanged.format(code=code))})


async def print_receipt(request: web.Request) -> web.Response:
    t = texts_for(request)
    cid, _ = _counter(request)
    site = request.app[SITE]
    body = await read_command(request, ("request_id", "code"))
    code = _code(request, body.get("code"))
    printer = printer_for(request.app, cid)
    if printer is None:
        return json_response({"ok": True, "mode": "browser", "url": _receipt_href(request, code)})
    reply = await client.ask_for(request, DossierAction.GET, code=code)
    view = public_view(reply.get("dossier") or {}, t, site.tz)
    receipt = Receipt(office=site.name, code=code, procedure=view["procedure"], received=view["received"],
                      due=view["due"], documents=tuple(view["documents"]), url=dossier_url(request, code))
    result = await printer.print_receipt(receipt, t)
    return json_response({"ok": True, "mode": "escpos", "print": status_of(result, "escpos"),
                          "message": t.console_hs_printed.format(code=code) if result.ok else result.message})
