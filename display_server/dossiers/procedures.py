"""A dossier's procedure as the web knows it: looked up in the catalogue (display_server/catalogue)
when it is there, else taken as the name someone typed; and its promised return date from the
procedure's processing days, in the site's business days (dossiers.calendar).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from aiohttp import web

from display_server.base import SETTINGS, SITE
from display_server.catalogue import CATALOGUE, Catalogue, Procedure, site_catalogue
from dossiers.calendar import BusinessCalendar, add_business_days
from dossiers.settings import load_dossier_settings
from qms_common.config import SiteConfig

CALENDAR = web.AppKey("dossier_calendar", BusinessCalendar)


@dataclass(frozen=True)
class ProcedureRef:
    """What a dossier says of its procedure: the catalogue's code when known, always a name."""

    name: str
    code: str | None = None
    field: str | None = None
    processing_days: int | None = None
    documents: tuple[str, ...] = ()

    def as_command(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name} if self.code else {"name": self.name}

    @classmethod
    def of(cls, p: Procedure) -> ProcedureRef:
        return cls(name=p.name, code=p.code, field=p.field, processing_days=p.processing_days,
                   documents=tuple(p.documents))


def catalogue_of(app: web.Application) -> Catalogue | None:
    return app.get(CATALOGUE)


def resolve(app: web.Application, text: str) -> ProcedureRef:
    """A catalogue code, else a name the catalogue has exactly, else the text as a name."""
    catalogue = catalogue_of(app)
    if catalogue is not None:
        found = catalogue.get(text)
        if found is None:
            found = next((p for p in catalogue.search(text, limit=5) if p.name.casefold() == text.casefold()), None)
        if found is not None:
            return ProcedureRef.of(found)
    return ProcedureRef(name=text)


def calendar_of(site: SiteConfig) -> BusinessCalendar:
    """The dossier service's own business calendar (`[dossiers] closed_weekdays` / `holidays`,
    else `[appointments]`' ones, else Saturday and Sunday): the promised date the console
    proposes is counted as the service counts lateness."""
    return load_dossier_settings(site).calendar


def due_date(app: web.Application, received: date, processing_days: int) -> date:
    return add_business_days(received, processing_days, app[CALENDAR])


def setup(app: web.Application) -> None:
    app[CALENDAR] = calendar_of(app[SITE])
    if CATALOGUE not in app:  # the catalogue's pages may have made it already
        app[CATALOGUE] = site_catalogue(app[SITE], app[SETTINGS].web.catalogue)
