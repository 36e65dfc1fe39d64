"""Zalo Notification Service: one template message per citizen message, with token refresh.

Verdicts on ZNS `error` codes (non-zero is a failure):
  0                       accepted (msg_id, remaining daily quota)
  -124, -216, or a message saying the access token is invalid/expired
                          refresh once, send again; a second refusal retries later
  -108 bad phone, -109 bad template, -110 Zalo too old, -111 empty template data,
  -118 no Zalo account, -119 user refused OA messages
                          permanent: the next channel (SMS) takes over
  -101…-105 app, secret or OA problems
                          permanent too: Zalo will not carry any message until an operator
                          acts, and a citizen's turn does not wait for that
  quota exhausted (-144 or a message about quota), -100 unknown, any other code
                          retry later
HTTP 408, 429, 5xx and timeouts retry; other HTTP 4xx are permanent.
A refresh token Zalo refuses makes the message permanent (fall back to SMS) for the same reason
as -101…-105; a refresh that failed on the network retries.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from notifier.providers import http
from notifier.providers.base import Message, Outcome, Verdict, bad_key
from notifier.providers.tokens import Refreshed, RefreshError, ZaloTokens

log = logging.getLogger(__name__)

LABEL = "Zalo"
TOKEN_ERRORS = frozenset({-124, -216})
QUOTA_ERRORS = frozenset({-144})
PERMANENT_ERRORS: dict[int, str] = {
    -101: "ứng dụng không hợp lệ",
    -102: "ứng dụng không tồn tại hoặc bị khóa",
    -103: "ứng dụng chưa được kích hoạt",
    -104: "khóa bí mật của ứng dụng không hợp lệ",
    -105: "ứng dụng chưa liên kết Official Account",
    -108: "số điện thoại không hợp lệ",
    -109: "mẫu tin (template) không hợp lệ",
    -110: "phiên bản Zalo của người nhận quá cũ",
    -111: "dữ liệu mẫu tin trống",
    -118: "số điện thoại không có tài khoản Zalo",
    -119: "người nhận đã từ chối nhận tin",
}


def _is_token_error(code: int, message: str) -> bool:
    low = message.lower()
    return code in TOKEN_ERRORS or ("access token" in low and ("invalid" in low or "expire" in low))


class ZaloChannel:
    name = "zalo"
    deduplicates = True  # ZNS keeps one message per tracking_id

    def __init__(self, *, base_url: str, oauth_url: str, app_id: str, secret_key: str, first_refresh_token: str,
                 templates: dict[str, str], tokens: ZaloTokens, timeout_s: float = 10.0) -> None:
        self._send_url = base_url.rstrip("/") + "/message/template"
        self._oauth_url = oauth_url.rstrip("/") + "/v4/oa/access_token"
        self._app_id = app_id
        self._secret_key = secret_key
        self._seed = first_refresh_token
        self._templates = dict(templates)
        self._tokens = tokens
        self._client = http.Client(timeout_s)

    def _http(self) -> aiohttp.ClientSession:
        return self._client.session()

    async def close(self) -> None:
        await self._client.close()
        await self._tokens.close()

    async def _refresh(self, refresh_token: str) -> Refreshed:
        form = {"app_id": self._app_id, "grant_type": "refresh_token", "refresh_token": refresh_token}
        reply = await http.request(self._http(), "POST", self._oauth_url, label=LABEL, data=form,
                                   headers={"secret_key": self._secret_key})
        if isinstance(reply, Outcome):
            raise RefreshError(reply.reason)
        if (o := http.status_outcome(LABEL, reply)) is not None:
            raise RefreshError(o.reason, spent=o.verdict is Verdict.PERMANENT)
        body = reply.body if isinstance(reply.body, dict) else {}
        access, refresh, expires_in = body.get("access_token"), body.get("refresh_token"), body.get("expires_in")
        if isinstance(access, str) and access and isinstance(refresh, str) and refresh:
            try:
                seconds = float(expires_in)  # Zalo sends it as a string
            except (TypeError, ValueError):
                seconds = 3600.0  # the shortest lifetime sources report; the next refusal corrects it
            return Refreshed(access_token=access, refresh_token=refresh, expires_in=seconds)
        if "error" in body:
            code = body.get("error")
            what = body.get("error_name") or body.get("error_description") or body.get("message") or ""
            raise RefreshError(f"{LABEL} {code}: không làm mới được access token ({str(what)[:80]})", spent=True)
        raise RefreshError(f"{LABEL}: câu trả lời làm mới access token không đọc được")

    async def _token(self, stale: str | None = None) -> str | Outcome:
        try:
            return await self._tokens.access_token(self._refresh, seed=self._seed, stale=stale)
        except RefreshError as e:
            verdict = Verdict.PERMANENT if e.spent else Verdict.RETRY
            if e.spent:
                log.error("Zalo refused the refresh token; the OA must be re-authorised: %s", e)
            return Outcome(verdict, str(e))
        except Exception as e:  # the store's trouble (disk, locked file) must not escape to the dispatcher
            log.exception("Zalo: token store unavailable")
            return Outcome(Verdict.RETRY, f"{LABEL}: không lưu được token ({type(e).__name__})")

    async def _post(self, msg: Message, template_id: str, token: str) -> tuple[Outcome, bool]:
        """(outcome, whether the failure was the access token)."""
        payload = {"phone": msg.phone, "template_id": template_id, "template_data": dict(msg.template_data),
                   "tracking_id": msg.key}
        reply = await http.request(self._http(), "POST", self._send_url, label=LABEL, json=payload,
                                   headers={"access_token": token})
        if isinstance(reply, Outcome):
            return reply, False
        if (o := http.status_outcome(LABEL, reply)) is not None:
            return o, False
        return self._classify(reply.body)

    def _classify(self, body: Any) -> tuple[Outcome, bool]:
        if not isinstance(body, dict) or "error" not in body:
            return Outcome(Verdict.RETRY, f"{LABEL}: câu trả lời không đọc được"), False
        try:
            code = int(body["error"])
        except (TypeError, ValueError):
            return Outcome(Verdict.RETRY, f"{LABEL}: mã lỗi không đọc được"), False
        message = str(body.get("message") or "")
        if code == 0:
            data = body.get("data") if isinstance(body.get("data"), dict) else {}
            quota = data.get("quota") if isinstance(data.get("quota"), dict) else {}
            msg_id = data.get("msg_id")
            left = quota.get("remainingQuota")
            try:
                left_n = int(left) if left is not None else None
            except (TypeError, ValueError):
                left_n = None
            return Outcome(Verdict.ACCEPTED, "", provider_id=str(msg_id) if msg_id else None, quota_left=left_n), False
        if _is_token_error(code, message):
            return Outcome(Verdict.RETRY, f"{LABEL} {code}: access token không hợp lệ hoặc hết hạn"), True
        if code in PERMANENT_ERRORS:
            return Outcome(Verdict.PERMANENT, f"{LABEL} {code}: {PERMANENT_ERRORS[code]}"), False
        if code in QUOTA_ERRORS or "quota" in message.lower():
            return Outcome(Verdict.RETRY, f"{LABEL} {code}: hết hạn mức gửi tin trong ngày", quota_left=0), False
        return Outcome(Verdict.RETRY, f"{LABEL} {code}: lỗi chưa rõ, thử lại sau"), False

    async def send(self, msg: Message) -> Outcome:
        if (o := bad_key(msg)) is not None:
            return o
        template_id = self._templates.get(msg.kind)
        if not template_id:
            return Outcome(Verdict.PERMANENT, f"{LABEL}: chưa cấu hình mẫu tin cho loại “{msg.kind}”")
        token = await self._token()
        if isinstance(token, Outcome):
            return token
        outcome, token_refused = await self._post(msg, template_id, token)
        if not token_refused:
            return outcome
        # Refresh once (unless a concurrent sender already did) and try again with the new token.
        token = await self._token(stale=token)
        if isinstance(token, Outcome):
            return token
        outcome, _ = await self._post(msg, template_id, token)
        return outcome
