"""What the web server shows of the notifier (docs/notify.md): which channel a citizen will hear
from, for the kiosk and the tracking page, and the supervisor's panel from the notifier's retained
`notify/stats`. Pure: no broker, no files.

The notifier owns `[notify]` and checks it strictly (notifier/settings.py); the web server reads
only the order of the channels, tolerant of a minimal section, so a site file the notifier
accepts never stops the web server.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from qms_common.config import SiteConfig

# the channels that reach a citizen's phone; webhooks reach other systems
PHONE_CHANNELS = ("zalo", "sms")
STATES = ("pending", "sending", "sent", "delivered", "failed", "dropped")
KINDS = ("issued", "nears", "called", "rate")


def notify_channels(site: SiteConfig, kind: str | None = None) -> tuple[str, ...]:
    """The phone channels of `[notify] channels` in the order the notifier tries them (for a
    `kind` that `[notify.kind_channels]` lists, its own order); () when the site has no
    `[notify]` or only webhooks."""
    if not site.notify_enabled:
        return ()
    section = site.raw.get("notify")
    listed = section.get("channels", list(PHONE_CHANNELS)) if isinstance(section, dict) else list(PHONE_CHANNELS)
    by_kind = section.get("kind_channels") if isinstance(section, dict) else None
    if kind is not None and isinstance(by_kind, dict) and kind in by_kind:
        listed = by_kind[kind]
    if not isinstance(listed, list):
        return PHONE_CHANNELS
    out: list[str] = []
    for c in listed:
        if c in PHONE_CHANNELS and c not in out:
            out.append(c)
    return tuple(out)


def tracking_notice(record: dict[str, Any], ahead: int | None, site: SiteConfig) -> dict[str, Any] | None:
    """For a waiting ticket with a phone: the channel that will tell the citizen and at how many
    people ahead. None when there is nothing to promise: no phone, no channel, not waiting, or the
    ticket is already that near (the message is out, or going)."""
    channels = notify_channels(site, "nears")  # the promise is the "turn nears" message
    if not channels or record.get("has_phone") is not True:
        return None
    if record.get("status") not in ("waiting", "transferred"):
        return None
    if isinstance(ahead, int) and ahead <= site.notify_ahead:
        return None
    return {"channel": channels[0], "ahead": site.notify_ahead}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _time(at: Any, tz: tzinfo) -> str | None:
    """A failure's time (unix seconds, or ISO 8601) as the site's HH:MM."""
    try:
        if isinstance(at, (int, float)) and not isinstance(at, bool):
            return datetime.fromtimestamp(at, tz).strftime("%H:%M")
        if isinstance(at, str):
            return datetime.fromisoformat(at).astimezone(tz).strftime("%H:%M")
    except (ValueError, OverflowError, OSError):
        pass
    return None


def _text(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _route_order(route: str) -> tuple[int, str]:
    if route in PHONE_CHANNELS:
        return (PHONE_CHANNELS.index(route), route)
    return (len(PHONE_CHANNELS), route)


def notify_panel(stats: dict[str, Any] | None, presence: str | None, site: SiteConfig) -> dict[str, Any] | None:
    """The supervisor's "Tin nhắn cho công dân" panel; None when the site has no `[notify]`.
    Routes are "zalo", "sms", "webhook:0"…; kinds and states are codes the page names."""
    if not site.notify_enabled:
        return None
    out: dict[str, Any] = {"status": presence or "unknown", "channels": [], "failures": [], "quota_left": None,
                           "day": None, "at": None}
    if not isinstance(stats, dict):
        return out
    out["day"] = _text(stats.get("day"), 10)
    out["at"] = _time(stats.get("at"), site.tz)
    quota = stats.get("zalo_quota_left")
    out["quota_left"] = quota if isinstance(quota, int) and not isinstance(quota, bool) else None
    channels = stats.get("channels")
    if isinstance(channels, dict):
        for route in sorted((r for r in channels if isinstance(r, str)), key=_route_order):
            counts = channels[route] if isinstance(channels[route], dict) else {}
            c = {s: _count(counts.get(s)) for s in STATES}
            out["channels"].append({
                "route": route, "sent": c["sent"] + c["delivered"], "delivered": c["delivered"],
                "failed": c["failed"], "dropped": c["dropped"], "pending": c["pending"] + c["sending"],
            })
    failures = stats.get("failures")
    if isinstance(failures, list):
        for f in failures[:20]:
            if not isinstance(f, dict):
                continue
            kind = f.get("kind")
            out["failures"].append({
                "time": _time(f.get("at"), site.tz), "channel": _text(f.get("channel"), 40),
                "kind": kind if isinstance(kind, str) else None, "phone": _text(f.get("phone"), 20),
                "reason": _text(f.get("reason")), "state": _text(f.get("state"), 20),
            })
    return out
