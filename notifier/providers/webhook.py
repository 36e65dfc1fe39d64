"""Signed webhooks to integrators, and the check their receivers run.

Signature: `X-QMS-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>` with
`X-QMS-Timestamp: <unix seconds>`; the timestamp is inside the MAC so a captured delivery cannot
be replayed later than the receiver's tolerance. `X-QMS-Delivery` carries the idempotency key so
a receiver can drop the duplicates our retries may cause.
2xx delivered; 408, 429, 5xx and network trouble retry; other 4xx are permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from notifier.providers import http
from notifier.providers.base import Outcome, Verdict

LABEL = "Webhook"
PREFIX = "sha256="


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The X-QMS-Signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(_key(secret), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return PREFIX + mac.hexdigest()


def verify_webhook(secret: str | bytes, body: bytes, timestamp: str, signature: str, now: float,
                   tolerance_s: float = 300) -> bool:
    """True when `signature` is ours for this body and timestamp, and the timestamp is within
    `tolerance_s` of `now` either way (an old one is a replay, a future one a forgery or a clock
    that needs fixing)."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    if abs(now - int(timestamp)) > tolerance_s:
        return False
    if not signature.isascii():
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class WebhookTarget:
    name = "webhook"
    deduplicates = False  # up to the receiver, with X-QMS-Delivery

    def __init__(self, *, url: str, secret: str, timeout_s: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._url = url
        self._secret = secret
        self._clock = clock
        self._client = http.Client(timeout_s)

    def _http(self) -> aiohttp.ClientSession:
        return self._client.session()

    async def close(self) -> None:
        await self._client.close()

    async def send(self, key: str, body: dict[str, Any]) -> Outcome:
        raw = encode(body)
        timestamp = str(int(self._clock()))
        headers = {"Content-Type": "application/json; charset=utf-8", "X-QMS-Timestamp": timestamp,
                   "X-QMS-Signature": sign(self._secret, timestamp, raw), "X-QMS-Delivery": key}
        reply = await http.request(self._http(), "POST", self._url, label=LABEL, data=raw, headers=headers)
        if isinstance(reply, Outcome):
            return reply
        if (o := http.status_outcome(LABEL, reply)) is not None:
            return o
        return Outcome(Verdict.ACCEPTED)
