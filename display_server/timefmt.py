"""Dates and times as the office reads them, in the site's time zone (`[site] timezone`), never
the server's or a browser's: 05:12 · 29/11/2026. Pages get these strings from the server (or,
for a ticking clock, the site's zone name); the printed ticket uses the same functions.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from typing import Any


def local(value: Any, tz: tzinfo) -> datetime | None:
    """A moment (an aware datetime, or the ISO text the core sends) in the site's zone; None
    for anything else (a naive time says nothing about its zone)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        return None
    return value.astimezone(tz)


def date_text(value: date) -> str:
    """dd/mm/yyyy: a datetime must be in the site's zone already (see local())."""
    return value.strftime("%d/%m/%Y")


def day_text(value: Any) -> str:
    """A business day (YYYY-MM-DD, as the core names days) as dd/mm/yyyy; '' if it is not one."""
    try:
        return date_text(date.fromisoformat(str(value)))
    except ValueError:
        return ""


def parse_day(text: str) -> date | None:
    """A day as people type it (dd/mm/yyyy) or as machines do (YYYY-MM-DD); None otherwise."""
    try:
        return datetime.strptime(text.strip(), "%d/%m/%Y").date()
    except ValueError:
        pass
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def stamp_text(value: Any, tz: tzinfo) -> str:
    """When something happened, as the ticket prints it: HH:MM · dd/mm/yyyy; '' if unknown."""
    moment = local(value, tz)
    return f"{moment:%H:%M} · {date_text(moment)}" if moment is not None else ""
