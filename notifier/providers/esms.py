"""eSMS brandname SMS (SendMultipleMessage_V4_post_json), idempotent by RequestId.

Verdicts on CodeResult (eSMS answers HTTP 200 with a code):
  100  accepted (SMSID); delivery is reported later to CallbackUrl
  124  duplicate RequestId: an earlier attempt was accepted, so this one counts as accepted
  99   unknown error                                    retry
  101  ApiKey/SecretKey refused, 102 account locked,
  103  balance too low, 140 caller IP not whitelisted   retry: an operator can fix these, and
                                                        RequestId makes the later resend safe
  104  brandname invalid or not registered,
  118  phone number invalid, 119 brandname not allowed for this kind of message,
  131  content too long, 146 content does not match a registered template
                                                        permanent
  any other code                                        retry (the dispatcher bounds retries)
HTTP 408, 429, 5xx and timeouts retry; other HTTP 4xx are permanent.
"""

from __future__ import annotations

import aiohttp

from notifier.providers import http
from notifier.providers.base import Message, Outcome, Verdict, bad_key

LABEL = "eSMS"
PERMANENT_CODES: dict[str, str] = {
    "104": "brandname không hợp lệ hoặc chưa đăng ký",
    "118": "số điện thoại không hợp lệ",
    "119": "brandname không được phép gửi loại tin này",
    "131": "nội dung tin nhắn quá dài",
    "146": "nội dung không khớp mẫu tin đã đăng ký",
}
RETRY_CODES: dict[str, str] = {
    "99": "lỗi không xác định",
    "101": "sai ApiKey hoặc SecretKey",
    "102": "tài khoản bị khóa",
    "103": "tài khoản không đủ số dư",
    "140": "địa chỉ IP chưa được cho phép",
}


class EsmsChannel:
    name = "sms"
    provider = "esms"
    deduplicates = True  # a repeated RequestId answers 124 and is not sent again

    def __init__(self, *, base_url: str, api_key: str, secret_key: str, brandname: str,
                 callback_url: str | None = None, sandbox: bool = False, timeout_s: float = 10.0) -> None:
        self._url = base_url.rstrip("/") + "/MainService.svc/json/SendMultipleMessage_V4_post_json/"
        self._api_key = api_key
        self._secret_key = secret_key
        self._brandname = brandname
        self._callback_url = callback_url
        self._sandbox = sandbox
        self._client = http.Client(timeout_s)

    def _http(self) -> aiohttp.ClientSession:
        return self._client.session()

    async def close(self) -> None:
        await self._client.close()

    async def send(self, msg: Message) -> Outcome:
        if (o := bad_key(msg)) is not None:
            return o
        payload: dict[str, str] = {
            "ApiKey": self._api_key, "SecretKey": self._secret_key, "Phone": msg.phone, "Content": msg.text,
            "Brandname": self._brandname, "SmsType": "2", "IsUnicode": "0",
            "Sandbox": "1" if self._sandbox else "0", "RequestId": msg.key,
        }
        if self._callback_url:
            payload["CallbackUrl"] = self._callback_url
        reply = await http.request(self._http(), "POST", self._url, label=LABEL, json=payload)
        if isinstance(reply, Outcome):
            return reply
        if (o := http.status_outcome(LABEL, reply)) is not None:
            return o
        body = reply.body if isinstance(reply.body, dict) else None
        if body is None or "CodeResult" not in body:
            return Outcome(Verdict.RETRY, f"{LABEL}: câu trả lời không đọc được")
        code = str(body["CodeResult"]).strip()
        sms_id = body.get("SMSID")
        if code == "100":
            return Outcome(Verdict.ACCEPTED, "", provider_id=str(sms_id) if sms_id else None)
        if code == "124":
            return Outcome(Verdict.ACCEPTED, f"{LABEL} 124: RequestId đã được nhận trước đó",
                           provider_id=str(sms_id) if sms_id else None)
        if code in PERMANENT_CODES:
            return Outcome(Verdict.PERMANENT, f"{LABEL} {code}: {PERMANENT_CODES[code]}")
        what = RETRY_CODES.get(code, "lỗi chưa rõ")
        return Outcome(Verdict.RETRY, f"{LABEL} {code[:8]}: {what}, thử lại sau")
