"""Reports: the report warehouse fed over MQTT, and the figures of any period (docs/web.md, "Báo cáo")."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from display_server.reports.figures import Dimension, Report
from display_server.reports.periods import Period

log = logging.getLogger(__name__)


class Reports:
    """Feeds the warehouse (finished days from the core, dossiers from the dossier service) and
    answers reports: history from the warehouse's daily aggregates, today from the live records."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def report(self, period: Period, dimension: Dimension, *, officer: str | None = None) -> Report:
        """The figures of the period per row of the dimension, with the previous period's beside
        them; `officer`: only that officer's tickets and dossiers (the console's own figures)."""
        raise NotImplementedError

    async def drill(self, period: Period, dimension: Dimension, key: str, figure: str, *,
                    officer: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """The tickets behind one figure of one row (ticket records like the core's)."""
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        """{"rolled_to": last day rolled up or None, "pending_days": int, "error": text or None}."""
        raise NotImplementedError


REPORTS = web.AppKey("reports", Reports)
