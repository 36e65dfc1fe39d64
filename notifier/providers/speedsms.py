"""SpeedSMS brandname SMS (index.php/sms/send, HTTP Basic `token:x`).

SpeedSMS has no idempotency key: a resend after a timeout or a crash may reach the citizen twice,
so `deduplicates` is False and the dispatcher must not resend blindly.

Verdicts on `code` (with status "error"):
  00 (status "success")   accepted (data.tranId)
  105 invalid phone, 110 unsupported encoding, 113 content too long,
  101 missing or invalid parameters, 106 invalid sender (brandname)   permanent
  007 IP locked, 008 account locked, 009 account not allowed to use the API,
  300 balance too low, 500 server error, any other code               retry
HTTP 408, 429, 5xx and timeouts retry; HTTP 401 (token refused) retries like 008 (an operator
fixes it); other HTTP 4xx are permanent.
"""

from __future__ import annotations

import base64

import aiohttp

from notifier.providers import http
from notifier.providers.base import Message, Outcome, Verdict, bad_key

LABEL = "SpeedSMS"
BRANDNAME = 3
PERMANENT_CODES: dict[str, str] = {
    "101": "thiếu hoặc sai tham số",
    "105": "số điện thoại không hợp lệ",
    "106": "tên người gửi (brandname) không hợp lệ",
    "110": "bảng mã không được hỗ trợ",
    "113": "nội dung tin nhắn quá dài",
}
RETRY_CODES: dict[str, str] = {
    "007": "địa chỉ IP bị khóa",
    "008": "tài khoản bị khóa",
    "009": "tài khoản không được phép gọi API",
    "300": "tài khoản không đủ số dư",
    "500": "lỗi máy chủ",
}


class SpeedSmsChannel:
    name = "sms"
    provider = "speedsms"
    deduplicates = False

    def __init__(self, *, base_url: str, token: str, sender: str, timeout_s: float = 10.0) -> None:
        self._url = base_url.rstrip("/") + "/index.php/sms/send"
        # Built by hand: aiohttp.BasicAuth is deprecated in new aiohttp, encode_basic_auth absent in old.
        self._auth = "Basic " + base64.b64encode(f"{token}:x".encode()).decode("ascii")
        self._sender = sender
        self._client = http.Client(timeout_s)

    def _http(self) -> aiohttp.ClientSession:
        return self._client.session()

    async def close(self) -> None:
        await self._client.close()

    async def send(self, msg: Message) -> Outcome:
        if (o := bad_key(msg)) is not None:
            return o
        payload = {"to": [msg.phone], "content": msg.text, "sms_type": BRANDNAME, "sender": self._sender}
        reply = await http.request(self._http(), "POST", self._url, label=LABEL, json=payload,
                                   headers={"Authorization": self._auth})
        if isinstance(reply, Outcome):
            return reply
        if reply.status == 401:
            return Outcome(Verdict.RETRY, f"{LABEL}: HTTP 401, token bị từ chối")
        if (o := http.status_outcome(LABEL, reply)) is not None:
            return o
        body = reply.body if isinstance(reply.body, dict) else None
        if body is None or "status" not in body:
            return Outcome(Verdict.RETRY, f"{LABEL}: câu trả lời không đọc được")
        code = str(body.get("code", "")).strip()
        if body.get("status") == "success" and code in ("00", "0", ""):
            data = body.get("data") if isinstance(body.get("data"), dict) else {}
            tran_id = data.get("tranId")
            return Outcome(Verdict.ACCEPTED, "", provider_id=str(tran_id) if tran_id is not None else None)
        if code in PERMANENT_CODES:
            return Outcome(Verdict.PERMANENT, f"{LABEL} {code}: {PERMANENT_CODES[code]}")
        what = RETRY_CODES.get(code, "lỗi chưa rõ")
        return Outcome(Verdict.RETRY, f"{LABEL} {code[:8] or '?'}: {what}, thử lại sau")
