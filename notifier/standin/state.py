"""The stand-in's memory: settings, issued tokens, deduplication keys, faults, the request log and
the inbox. One StandinState per application (no module globals), so tests can run several."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PROVIDERS = frozenset({"zalo", "oauth", "esms", "speedsms", "hook"})
PHONE = re.compile(r"84[35789]\d{8}")


@dataclass(frozen=True)
class StandinSettings:
    zalo_app_id: str = "standin-app"
    zalo_secret: str = "standin-secret"  # the app's secret_key (OAuth) and the OA's event key
    zalo_oa_secret: str | None = None  # signs the OA's webhook events, when it differs from zalo_secret
    zalo_refresh_token: str | None = None  # the first refresh token it accepts; None: any unspent one
    token_lifetime_s: int = 90000  # Zalo's reported 25 h
    receipt_url: str | None = None
    webhook_secret: str | None = None
    daily_quota: int = 1000


@dataclass(frozen=True)
class Fault:
    provider: str
    http_status: int | None = None
    error: str | None = None  # the provider's own error code
    phones: frozenset[str] | None = None  # only for these recipients
    delay_s: float = 0.0
    retry_after_s: float | None = None
    until: float | None = None  # time.monotonic() deadline

    def applies(self, provider: str, phones: list[str], now: float) -> bool:
        if self.provider != provider or (self.until is not None and now >= self.until):
            return False
        return self.phones is None or any(p in self.phones for p in phones)


class FaultError(ValueError):
    """A fault request the stand-in cannot honour (it changes nothing)."""


def parse_fault(spec: Any, now: float) -> Fault:
    if not isinstance(spec, dict):
        raise FaultError("cần một đối tượng JSON")
    known = {"provider", "http_status", "error", "phones", "delay_s", "retry_after_s", "for_s"}
    if unknown := set(spec) - known:
        raise FaultError(f"khóa không hiểu: {', '.join(sorted(unknown))}")
    provider = spec.get("provider")
    if provider not in PROVIDERS:
        raise FaultError(f"provider phải là một trong {', '.join(sorted(PROVIDERS))}")
    status = spec.get("http_status")
    if status is not None and (not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599):
        raise FaultError("http_status phải là mã HTTP")
    error = spec.get("error")
    if error is not None and (isinstance(error, bool) or not isinstance(error, int | str) or str(error) == ""):
        raise FaultError("error phải là mã lỗi của nhà cung cấp")
    phones = spec.get("phones")
    if phones is not None and (not isinstance(phones, list) or not all(isinstance(p, str) for p in phones)):
        raise FaultError("phones phải là danh sách số điện thoại")
    numbers: dict[str, float | None] = {}
    for name in ("delay_s", "retry_after_s", "for_s"):
        v = spec.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 3600):
            raise FaultError(f"{name} phải là số giây từ 0 đến 3600")
        numbers[name] = float(v) if v is not None else None
    if status is None and error is None and not numbers["delay_s"]:
        raise FaultError("cần http_status, error hoặc delay_s")
    return Fault(provider=provider, http_status=status, error=str(error) if error is not None else None,
                 phones=frozenset(phones) if phones is not None else None, delay_s=numbers["delay_s"] or 0.0,
                 retry_after_s=numbers["retry_after_s"],
                 until=now + numbers["for_s"] if numbers["for_s"] is not None else None)


@dataclass
class Delivered:
    at: float
    channel: str  # as shown on the inbox page
    phone: str
    text: str


@dataclass
class ProviderStats:
    received: int = 0
    delivered: int = 0
    duplicates: int = 0
    errors: int = 0


@dataclass
class StandinState:
    settings: StandinSettings
    access_token: str | None = None
    access_expires: float = 0.0  # time.time()
    refresh_token: str | None = None  # the one valid refresh token once any was issued
    spent_refresh: set[str] = field(default_factory=set)
    tokens_issued: int = 0
    quota_left: int = 0
    zns_sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # tracking_id -> original answer
    esms_sent: dict[str, str] = field(default_factory=dict)  # RequestId -> SMSID
    speedsms_seen: set[tuple[str, str]] = field(default_factory=set)  # (phone, content): flags repeats
    hook_seen: set[str] = field(default_factory=set)
    faults: list[Fault] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    inbox: list[Delivered] = field(default_factory=list)
    stats: dict[str, ProviderStats] = field(default_factory=lambda: {p: ProviderStats() for p in sorted(PROVIDERS)})
    receipts_sent: int = 0
    receipts_failed: int = 0
    # Called with each log entry as the request arrives, before it is answered (tests look at
    # the caller's state at that moment).
    observers: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.quota_left = self.settings.daily_quota

    def record(self, provider: str, path: str, *, key: str | None = None, phone: str | None = None,
               duplicate: bool = False) -> dict[str, Any]:
        entry: dict[str, Any] = {"at": time.time(), "provider": provider, "path": path, "key": key,
                                 "phone": phone, "duplicate": duplicate, "result": None}
        self.log.append(entry)
        self.stats[provider].received += 1
        for observe in list(self.observers):
            observe(entry)
        return entry

    def fault_for(self, provider: str, phones: list[str]) -> tuple[float, Fault | None]:
        """(delay to apply, the first fault that answers instead of the provider)."""
        now = time.monotonic()
        self.faults = [f for f in self.faults if f.until is None or now < f.until]
        active = [f for f in self.faults if f.applies(provider, phones, now)]
        delay = max((f.delay_s for f in active), default=0.0)
        answer = next((f for f in active if f.http_status is not None or f.error is not None), None)
        return delay, answer

    async def pause(self, seconds: float) -> bool:
        """Sleep like a slow provider; False when the stand-in is shutting down meanwhile."""
        if seconds <= 0:
            return True
        try:
            await asyncio.wait_for(self.closing.wait(), seconds)
        except TimeoutError:
            return True
        return False

    def access_valid(self, token: str) -> bool:
        return bool(self.access_token) and token == self.access_token and time.time() < self.access_expires
