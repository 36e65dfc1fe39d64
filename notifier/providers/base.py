"""What every outbound channel shares: the message, the verdict on one attempt, the channel protocol.

A channel never raises for network, HTTP or JSON trouble: it answers an Outcome whose verdict tells
the dispatcher what to do next (done, try again later, or give up on this channel and fall back).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,48}")


@dataclass(frozen=True)
class Message:
    key: str  # idempotency key, ≤ 48 chars of [A-Za-z0-9_-]: ZNS tracking_id, eSMS RequestId
    phone: str  # normalised "84xxxxxxxxx"
    kind: str  # "issued" | "nears" | "called" | "rate"
    text: str  # SMS text, already without diacritics, ≤ 160 chars
    template_data: dict[str, str]  # ZNS template data


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    RETRY = "retry"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str = ""  # short, Vietnamese, with the provider's code; never the full phone number
    provider_id: str | None = None  # msg_id / SMSID
    retry_after_s: float | None = None  # when the provider said so (429 Retry-After)
    quota_left: int | None = None  # ZNS remainingQuota when known


class Channel(Protocol):
    name: str  # "zalo" | "sms"
    deduplicates: bool  # the provider drops a repeated key

    async def send(self, msg: Message) -> Outcome: ...

    async def close(self) -> None: ...


def bad_key(msg: Message) -> Outcome | None:
    """A key the providers would refuse or truncate is our bug: no attempt, no retry."""
    if KEY_PATTERN.fullmatch(msg.key):
        return None
    return Outcome(Verdict.PERMANENT, "Khóa gửi không hợp lệ (tối đa 48 ký tự A-Z, a-z, 0-9, _ và -)")
