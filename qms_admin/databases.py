"""Every SQLite file an office's services write, found where the site file puts them.

Each service resolves its own path (its settings' defaults sit beside the core's database); this
module asks each one, so a backup and a restore name the same files the services open.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qms_common.config import SiteConfig
from qms_common.tomlconf import resolve_path


@dataclass(frozen=True)
class Database:
    role: str          # the archive's name for it: core, dossiers, notify, reports, catalogue
    label: str         # what an operator reads
    path: Path
    required: bool     # the core's database must exist to be backed up; the others may not yet
    wal: bool = True   # its journal mode; the catalogue keeps a rollback journal (its file is watched)


def site_databases(site: SiteConfig) -> list[Database]:
    # imported here: each service's settings module pulls its own dependencies
    from display_server.catalogue import catalogue_path
    from display_server.settings import default_reports_database
    from dossiers.settings import load_dossier_settings

    notify = site.section("notify").str("store")
    reports = site.section("reports").str("database")
    return [
        Database("core", "lõi hàng đợi (vé, quầy, lịch hẹn)", site.storage_path, True),
        Database("dossiers", "hồ sơ một cửa", load_dossier_settings(site).database, False),
        # its queue of messages and the Zalo token chain (losing it means granting the OA again)
        Database("notify", "hộp thư đi của bộ gửi tin",
                 resolve_path(site.path, notify) if notify else site.storage_path.with_name("notify.sqlite3"), False),
        # rebuilt from the core and the dossiers if lost, but a year of it takes a while
        Database("reports", "kho báo cáo",
                 resolve_path(site.path, reports) if reports else default_reports_database(site), False),
        Database("catalogue", "danh mục thủ tục", catalogue_path(site), False, wal=False),
    ]
