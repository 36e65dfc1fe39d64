"""Statistics of ticket records, their CSV exports, and the reports over any period (docs/web.md)."""

from display_server.reports.service import REPORTS, Reports

__all__ = ["REPORTS", "Reports"]
