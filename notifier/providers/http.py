"""One JSON request to a provider, with every transport failure turned into an Outcome.

Why a module of its own: the three gateways and the webhook target classify HTTP statuses the same
way (2xx read the body; 408, 429 and 5xx retry, honouring Retry-After; other 4xx are permanent)
and must never let an exception escape to the dispatcher.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from notifier.providers.base import Outcome, Verdict

RETRYABLE_STATUSES = frozenset({408, 429})
MAX_REPLY_BYTES = 256 * 1024  # a provider's answer is a few hundred bytes; more is not an answer


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # parsed JSON, or None when the body was empty or not JSON
    text: str
    retry_after_s: float | None


class Client:
    """One aiohttp session per channel, opened on first use (in the running loop) and again
    after a close."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout = timeout(timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; an HTTP date or garbage counts as not said."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None


async def request(session: aiohttp.ClientSession, method: str, url: str, *, label: str,
                  **kwargs: Any) -> Reply | Outcome:
    """The reply, or a RETRY Outcome for timeouts, refused connections and unreadable answers."""
    try:
        async with session.request(method, url, **kwargs) as resp:
            raw = bytearray()
            async for chunk in resp.content.iter_chunked(65536):  # read(n) may stop at a chunk's end
                raw += chunk
                if len(raw) > MAX_REPLY_BYTES:
                    break
            text = bytes(raw[:MAX_REPLY_BYTES]).decode("utf-8", errors="replace")
            try:
                body = json.loads(text) if text.strip() else None
            except ValueError:
                body = None
            return Reply(resp.status, body, text, retry_after(resp.headers.get("Retry-After")))
    except TimeoutError:
        # The request may have reached the provider: only a provider that deduplicates makes a
        # blind resend safe; the dispatcher decides that with the channel's `deduplicates`.
        return Outcome(Verdict.RETRY, f"{label}: hết thời gian chờ phản hồi")
    except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as e:
        return Outcome(Verdict.RETRY, f"{label}: lỗi kết nối ({type(e).__name__})")


def status_outcome(label: str, reply: Reply) -> Outcome | None:
    """None for a 2xx (the caller reads the body); otherwise the verdict the status alone gives."""
    if 200 <= reply.status < 300:
        return None
    if reply.status in RETRYABLE_STATUSES or reply.status >= 500:
        return Outcome(Verdict.RETRY, f"{label}: HTTP {reply.status}, thử lại sau", retry_after_s=reply.retry_after_s)
    return Outcome(Verdict.PERMANENT, f"{label}: HTTP {reply.status}, yêu cầu bị từ chối")


def timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)
