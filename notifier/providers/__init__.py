"""Outbound channels: Zalo ZNS, SMS brandname gateways, and signed webhooks to integrators.

`sms_channel(name, **settings)` builds the configured SMS gateway; a new gateway is one more
module and one more line in SMS_GATEWAYS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from notifier.providers.base import Channel, Message, Outcome, Verdict
from notifier.providers.esms import EsmsChannel
from notifier.providers.speedsms import SpeedSmsChannel

__all__ = ["SMS_GATEWAYS", "Channel", "Message", "Outcome", "Verdict", "sms_channel"]

SMS_GATEWAYS: dict[str, Callable[..., Channel]] = {
    "esms": EsmsChannel,
    "speedsms": SpeedSmsChannel,
}


def sms_channel(provider: str, **kw: Any) -> Channel:
    try:
        factory = SMS_GATEWAYS[provider]
    except KeyError:
        known = ", ".join(sorted(SMS_GATEWAYS))
        raise ValueError(f"Không có cổng SMS “{provider}” (có: {known})") from None
    return factory(**kw)
