"""The procedure catalogue (danh mục thủ tục hành chính): what the kiosk and /thu-tuc look up.

model.Procedure, search (pure: folding and the ranked index), importer (pure: JSON/CSV → procedures,
every bad row named), store (the web server's own SQLite file and the Catalogue that reloads it).
The app holds one Catalogue under CATALOGUE.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from display_server.catalogue.model import Procedure
from display_server.catalogue.store import Catalogue
from qms_common.config import SiteConfig
from qms_common.tomlconf import resolve_path

__all__ = ["CATALOGUE", "Catalogue", "Procedure", "catalogue_path", "site_catalogue"]

CATALOGUE = web.AppKey("catalogue", Catalogue)


def catalogue_path(site: SiteConfig) -> Path:
    """`[web] catalogue`, else beside the core's database: {storage dir}/{site}-procedures.sqlite3."""
    value = site.section("web").str("catalogue")
    return resolve_path(site.path, value) if value else site.storage_path.with_name(f"{site.id}-procedures.sqlite3")


def site_catalogue(site: SiteConfig, path: Path | None = None) -> Catalogue:
    """The site's catalogue, its fields mapped to the site's [[fields]]."""
    return Catalogue(path or catalogue_path(site), [(f.id, f.name) for f in site.fields])
