"""The province's backfill: ticket records asked of an office over the central broker.

Request `qms/{site}/cmd/backfill` (a "tickets" query of docs/protocol.md: `request_id`, `reply_to`,
`from`, `to`, `after`, `limit`), which the office's bridge lets in when `[bridge] in` names it;
the core answers on `reply_to` = `qms/{site}/reply/province/{request_id}`, which the bridge
forwards out. MQTT 3.1.1 bridges carry no Response Topic, so the reply is matched by its topic.
Pages follow `next` until it is null. A reply that is not what the protocol says is refused whole:
nothing of it is written.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from qms_common.protocol import MAX_ID_LEN, MAX_REPLY_BYTES, SLUG_RE, ProtocolError, Topics, dumps, loads_object

REPLY_USER = "province"  # the bridge forwards qms/{site}/reply/province/# (broker_config/bridge.py)
MAX_PAGES = 10_000  # a year of a very busy office at 200 a page: a reply that never ends is refused


class BackfillFailed(Exception):
    """No usable answer from the office: said in Vietnamese, tried again later."""


@dataclass(frozen=True)
class Page:
    seq: int                       # the core's seq when it answered: every record is at least this new
    tickets: list[dict[str, Any]]
    next: str | None


def reply_topic(site: str, request_id: str) -> str:
    return f"{Topics(site).reply(REPLY_USER)}/{request_id}"


def request_body(site: str, request_id: str, day_from: date, day_to: date, after: str | None,
                 limit: int) -> dict[str, Any]:
    body: dict[str, Any] = {"request_id": request_id, "reply_to": reply_topic(site, request_id),
                            "query": "tickets", "from": day_from.isoformat(), "to": day_to.isoformat(),
                            "limit": limit}
    if after is not None:
        body["after"] = after
    return body


def _bad(what: str) -> BackfillFailed:
    return BackfillFailed(f"câu trả lời bù dữ liệu không hợp lệ: {what}")


def _valid_record(t: Any) -> bool:
    return (isinstance(t, dict) and isinstance(t.get("id"), str) and 0 < len(t["id"]) <= MAX_ID_LEN
            and isinstance(t.get("status"), str) and isinstance(t.get("field"), str)
            and "phone" not in t)


def parse_page(payload: bytes, request_id: str, limit: int) -> Page:
    """One reply, checked whole before anything of it is used."""
    try:
        obj = loads_object(payload, max_bytes=MAX_REPLY_BYTES)
    except ProtocolError as exc:
        raise _bad(str(exc).removeprefix("Yêu cầu không hợp lệ: ").rstrip(".")) from None
    if obj.get("request_id") != request_id:
        raise _bad("không đúng mã yêu cầu")
    if obj.get("ok") is not True:
        error = obj.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        raise BackfillFailed(f"điểm từ chối yêu cầu bù dữ liệu: {str(message)[:300] if message else 'không rõ lý do'}")
    seq, tickets, nxt = obj.get("seq"), obj.get("tickets"), obj.get("next")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq <= 0:
        raise _bad("thiếu hoặc sai “seq”")
    if not isinstance(tickets, list) or len(tickets) > limit:
        raise _bad(f"“tickets” phải là danh sách tối đa {limit} vé")
    if not all(_valid_record(t) for t in tickets):
        raise _bad("có bản ghi vé sai dạng")
    if nxt is not None and (not isinstance(nxt, str) or not nxt.isdigit() or len(nxt) > 20):
        raise _bad("“next” sai dạng")
    return Page(seq, tickets, nxt)


class BackfillClient:
    """Request/response over the service's MQTT session: one page in flight per office."""

    def __init__(self, publish: Callable[[str, bytes], Awaitable[None]], *, timeout_s: float,
                 page_limit: int = 200) -> None:
        self._publish = publish
        self.timeout_s = timeout_s
        self.page_limit = page_limit
        self._waiting: dict[str, asyncio.Future[bytes]] = {}  # reply topic -> its reply

    def handle(self, topic: str, payload: bytes) -> bool:
        """A reply to one of our requests? Replies nobody waits for (late, or from before a
        restart) are dropped: the request is asked again if still needed."""
        parts = topic.split("/")
        if len(parts) != 5 or parts[0] != "qms" or parts[2:4] != ["reply", REPLY_USER]:
            return False
        fut = self._waiting.get(topic)
        if fut is not None and not fut.done():
            fut.set_result(payload)
        return True

    async def pages(self, site: str, day_from: date, day_to: date) -> AsyncIterator[Page]:
        """Every page of the office's ticket records of these business days."""
        if not SLUG_RE.match(site):
            raise BackfillFailed(f"mã điểm {site!r} không hợp lệ")
        after: str | None = None
        for _ in range(MAX_PAGES):
            rid = uuid.uuid4().hex
            topic = reply_topic(site, rid)
            fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            self._waiting[topic] = fut
            try:
                body = request_body(site, rid, day_from, day_to, after, self.page_limit)
                try:
                    await self._publish(Topics(site).cmd_backfill, dumps(body))
                except ProtocolError as exc:  # NotConnected
                    raise BackfillFailed(f"không gửi được yêu cầu: {exc}") from None
                try:
                    raw = await asyncio.wait_for(fut, self.timeout_s)
                except TimeoutError:
                    raise BackfillFailed(f"điểm không trả lời sau {self.timeout_s:g} giây") from None
            finally:
                self._waiting.pop(topic, None)
            page = parse_page(raw, rid, self.page_limit)
            yield page
            if page.next is None:
                return
            if after is not None and int(page.next) <= int(after):
                raise _bad("“next” không tiến lên")
            after = page.next
        raise _bad(f"quá {MAX_PAGES} trang")
