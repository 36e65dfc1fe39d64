"""The dossier service's settings: the [dossiers] section of the site file, read strictly.

Every key has a default, so a site without the section runs the service as it is:
- `user`: the service's broker user (read by qms_common.config, for the broker tool too);
- `database`: its own SQLite file, by default beside the core's ({site}-dossiers.sqlite3);
- `closed_weekdays`, `holidays`: the business calendar of promised dates and lateness, by
  default [appointments]' ones, else Saturday and Sunday closed and no holidays.
Phones are erased [notify] phone_days after a dossier is finished, like the core's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dossiers.calendar import BusinessCalendar
from qms_common.config import SiteConfig, parse_closed_days
from qms_common.tomlconf import resolve_path


@dataclass(frozen=True)
class DossierSettings:
    database: Path
    user: str = "dossiers"
    calendar: BusinessCalendar = field(default_factory=BusinessCalendar)
    phone_days: int = 30


def load_dossier_settings(site: SiteConfig) -> DossierSettings:
    t = site.section("dossiers")
    t.used.add("user")  # qms_common.config has checked it
    value = t.str("database")
    # beside the core's database by default: backed up and protected with it
    database = resolve_path(site.path, value) if value else site.storage_path.with_name(f"{site.id}-dossiers.sqlite3")
    if database.resolve() == site.storage_path.resolve():
        t.fail("database", "trùng tệp cơ sở dữ liệu của lõi hàng đợi ([storage] path).",
               "Dùng một tệp riêng, ví dụ \"data/ho-so.sqlite3\", hoặc bỏ khóa này.")
    appointments = site.appointments
    if appointments is not None:
        closed, holidays = parse_closed_days(t, appointments.closed_weekdays, appointments.holidays)
    else:
        closed, holidays = parse_closed_days(t)
    t.reject_unknown()
    return DossierSettings(database=database, user=site.dossiers_user,
                           calendar=BusinessCalendar.of(closed, holidays), phone_days=site.phone_days)
