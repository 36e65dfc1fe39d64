"""[dossiers]: defaults, the calendar borrowed from [appointments], and mistakes named clearly."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from dossiers.settings import DossierSettings, load_dossier_settings
from qms_common.config import load_site_config
from qms_common.tomlconf import ConfigError
from tests.support.site import write_site

APPOINTMENTS = """
[appointments]
closed_weekdays = ["sun"]
holidays = ["2027-01-01"]
[[appointments.fields]]
field = "dat-dai"
slot_min = 30
hours = ["08:00-11:00"]
capacity = 2
"""


def settings(tmp_path: Path, extra: str = "") -> DossierSettings:
    tmp_path.mkdir(exist_ok=True)
    config, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra=extra)
    return load_dossier_settings(load_site_config(config, env={}))


def test_defaults_without_the_section(tmp_path: Path) -> None:
    s = settings(tmp_path)
    site = load_site_config(next(tmp_path.glob("*.toml")), env={})
    assert s.database == site.storage_path.with_name(f"{site.id}-dossiers.sqlite3")
    assert (s.user, s.phone_days) == ("dossiers", 30)
    assert s.calendar.closed_weekdays == {5, 6} and not s.calendar.holidays


def test_the_calendar_of_appointments_unless_its_own(tmp_path: Path) -> None:
    s = settings(tmp_path / "a", APPOINTMENTS)
    assert s.calendar.closed_weekdays == {6} and s.calendar.holidays == {date(2027, 1, 1)}
    own = settings(tmp_path / "b", APPOINTMENTS + '\n[dossiers]\nuser = "ho-so"\ndatabase = "hs.sqlite3"\n'
                   'closed_weekdays = ["sat", "sun"]\nholidays = ["2027-02-16", "2027-02-17"]\n')
    assert own.user == "ho-so" and own.database == tmp_path / "b" / "hs.sqlite3"
    assert own.calendar.closed_weekdays == {5, 6}
    assert own.calendar.holidays == {date(2027, 2, 16), date(2027, 2, 17)}


@pytest.mark.parametrize(("extra", "key"), [
    ('[dossiers]\nclosed_weekdays = ["thu7"]\n', "dossiers.closed_weekdays"),
    ('[dossiers]\nclosed_weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\n', "dossiers.closed_weekdays"),
    ('[dossiers]\nholidays = ["2027-02-30"]\n', "dossiers.holidays"),
    ('[dossiers]\nuser = "Hồ Sơ"\n', "dossiers.user"),
    ('[dossiers]\ndatabse = "x.sqlite3"\n', "dossiers.databse"),
])
def test_mistakes_are_named(tmp_path: Path, extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        settings(tmp_path, extra)
    assert key in str(exc.value)


def test_the_service_refuses_to_start_with_one_clear_line(tmp_path: Path) -> None:
    config, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra='[dossiers]\nholidays = ["mai"]\n')
    proc = subprocess.run([sys.executable, "-m", "dossiers", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "dossiers.holidays" in lines[0] and "Traceback" not in proc.stderr
