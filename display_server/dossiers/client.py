"""Talking to the dossier service (dossiers/, the one writer of dossier state) over cmd/dossier:
one request, its reply within a deadline. The web server sends as user `web`, the only one the
service lets create dossiers and add entries (CONTRACT-13).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from display_server.api import ApiError
from display_server.base import FOLLOWER, texts_for
from display_server.feed.follower import StateFollower
from display_server.texts import Texts
from qms_common.mqtt import NotConnected, RequestTimeout, new_request_id
from qms_common.protocol import DossierAction, ErrorCode, ProtocolError, dossier_command

log = logging.getLogger(__name__)

# The service writes before it answers (SQLite, fsync): a little more room than the core's.
DOSSIER_TIMEOUT_S = 5.0
HTTP_STATUS = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNKNOWN_DOSSIER: 404,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.INTERNAL: 503,
}


class DossierError(ApiError):
    """The service's refusal, or its silence (503 `unavailable`); `en` for the API's integrators."""

    def __init__(self, status: int, code: str, message: str, en: str | None = None) -> None:
        super().__init__(status, code, message)
        self.en = en or Texts("en").get(f"err_{code}") or message


async def ask(follower: StateFollower, t: Texts, action: DossierAction, *, request_id: str | None = None,
              timeout: float = DOSSIER_TIMEOUT_S, **fields: Any) -> dict[str, Any]:
    """One command of cmd/dossier; its ok reply, or DossierError."""
    payload = dossier_command(request_id or new_request_id(), action, **fields)
    try:
        reply = await follower.requester.request(follower.topics.cmd_dossier, payload, timeout=timeout)
    except (NotConnected, RequestTimeout) as exc:
        log.warning("Lệnh %s tới dịch vụ hồ sơ không thành: %s", action, exc.message)
        raise DossierError(503, "unavailable", t.err_hs_unavailable, Texts("en").err_hs_unavailable) from None
    except ProtocolError as exc:  # a reply that is not JSON
        log.warning("Trả lời lạ của dịch vụ hồ sơ: %s", exc.message)
        raise DossierError(502, "internal", t.err_hs_unavailable, Texts("en").err_hs_unavailable) from None
    if reply.get("ok") is True:
        return reply
    err = reply.get("error") if isinstance(reply.get("error"), dict) else {}
    code = str(err.get("code") or ErrorCode.INTERNAL)
    message = str(err.get("message") or t.err_hs_unavailable)
    status = HTTP_STATUS.get(ErrorCode(code), 502) if code in set(ErrorCode) else 502
    if t.lang != "vi":  # the service speaks Vietnamese; English pages get the code's meaning
        message = t.get(f"err_{code}", message)
    raise DossierError(status, code, message)


async def ask_for(request: web.Request, action: DossierAction, **fields: Any) -> dict[str, Any]:
    return await ask(request.app[FOLLOWER], texts_for(request), action, **fields)


async def get_dossier(follower: StateFollower, t: Texts, code: str) -> dict[str, Any] | None:
    """The dossier's view; None when the service knows no such code (DossierError otherwise)."""
    try:
        reply = await ask(follower, t, DossierAction.GET, code=code)
    except DossierError as exc:
        if exc.code == ErrorCode.UNKNOWN_DOSSIER:
            return None
        raise
    view = reply.get("dossier")
    return view if isinstance(view, dict) else None
