"""The site configuration: the example loads, and every mistake stops start-up with one message
that names the file, the key and what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qms_common.config import MqttSettings, load_site_config
from qms_common.tomlconf import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "site.toml"


def test_example_site_loads() -> None:
    site = load_site_config(EXAMPLE, env={})
    assert site.id == "demo"
    assert [f.name for f in site.fields] == ["Đất đai", "Hộ tịch", "Đăng ký kinh doanh", "Chứng thực"]
    assert [(f.first, f.last) for f in site.fields] == [(1001, 1999), (2001, 2999), (3001, 3999), (4001, 4999)]
    assert len(site.counters) == 6
    # overlapping service: several counters share each field
    for f in site.fields:
        assert sum(f.id in c.fields for c in site.counters) >= 2
    assert site.timezone == "Asia/Ho_Chi_Minh"
    assert site.storage_path == (ROOT / "var" / "demo.sqlite3").resolve()


def test_environment_overrides_the_broker_url() -> None:
    site = load_site_config(EXAMPLE, env={"QMS_MQTT_URL": "mqtt://core:s%40cret@10.0.0.5:18830"})
    assert site.mqtt == MqttSettings(host="10.0.0.5", port=18830, username="core", password="s@cret")


BASE = """
[site]
id = "x"
name = "Xã X"
{site_extra}

[mqtt]
url = "mqtt://localhost:1883"

[storage]
path = "x.sqlite3"

[[fields]]
id = "dat-dai"
name = "Đất đai"
first = 1001
last = 1999
{fields_extra}

[[counters]]
id = "1"
name = "Quầy 1"
fields = ["dat-dai"]
{counters_extra}
"""


@pytest.mark.parametrize(("site_extra", "fields_extra", "counters_extra", "key", "words"), [
    ("", "", '[[counters]]\nid = "2"\nname = "Quầy 2"\nfields = ["thue"]', "counters[2].fields",
     ["thue", "dat-dai"]),
    ("", '[[fields]]\nid = "ho-tich"\nname = "Hộ tịch"\nfirst = 1500\nlast = 2999', "", "fields[2].first",
     ["trùng", "dat-dai"]),
    ('timezone = "Asia/Hanoi_City"', "", "", "site.timezone", ["Asia/Hanoi_City", "Asia/Ho_Chi_Minh"]),
    ('day_starts = "25:00"', "", "", "site.day_starts", ["HH:MM"]),
    ("", '[[fields]]\nid = "ho-tich"\nfirst = 2001\nlast = 2999', "", "fields[2].name", ["thiếu"]),
    ("", '[[fields]]\nid = "Hộ Tịch"\nname = "Hộ tịch"\nfirst = 2001\nlast = 2999', "", "fields[2].id",
     ["chữ thường"]),
    ("", "", 'fileds = ["dat-dai"]', "counters[1].fileds", ["không được hỗ trợ"]),
    ("", "", '[[counters]]\nid = "1"\nname = "Quầy 1 bis"\nfields = ["dat-dai"]', "counters[2].id", ["trùng"]),
    ("", '[[fields]]\nid = "ho-tich"\nname = "Hộ tịch"\nfirst = 2999\nlast = 2001', "", "fields[2].last",
     ["nhỏ hơn"]),
])
def test_mistakes_name_file_key_and_fix(tmp_path: Path, site_extra: str, fields_extra: str,
                                        counters_extra: str, key: str, words: list[str]) -> None:
    path = tmp_path / "site.toml"
    path.write_text(BASE.format(site_extra=site_extra, fields_extra=fields_extra, counters_extra=counters_extra),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_site_config(path, env={})
    err = info.value
    assert err.key == key
    text = str(err)
    assert str(path) in text and key in text
    for w in words:
        assert w in text


def test_missing_section_bad_toml_and_bad_url(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(BASE.format(site_extra="", fields_extra="", counters_extra="").replace("[storage]", "[storag]"),
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="storag"):
        load_site_config(path, env={})
    path.write_text("[site\nid = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match="TOML"):
        load_site_config(path, env={})
    path.write_text(BASE.format(site_extra="", fields_extra="", counters_extra=""), encoding="utf-8")
    with pytest.raises(ConfigError, match="QMS_MQTT_URL"):
        load_site_config(path, env={"QMS_MQTT_URL": "http://x"})
    with pytest.raises(ConfigError, match="không tìm thấy"):
        load_site_config(tmp_path / "absent.toml", env={})


def test_prefixes_let_ranges_overlap(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    extra = '[[fields]]\nid = "ho-tich"\nname = "Hộ tịch"\nfirst = 1001\nlast = 1999\nprefix = "B"'
    path.write_text(BASE.format(site_extra="", fields_extra=extra, counters_extra=""), encoding="utf-8")
    site = load_site_config(path, env={})
    assert site.fields[1].format_number(1005) == "B1005"


def test_core_refuses_to_start_with_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(BASE.format(site_extra='timezone = "Mars/Olympus"', fields_extra="", counters_extra=""),
                    encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "queue_core", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "site.timezone" in lines[0] and "Mars/Olympus" in lines[0] and str(path) in lines[0]
    assert "Traceback" not in proc.stderr


def test_example_shows_remote_tickets_and_appointments() -> None:
    site = load_site_config(EXAMPLE, env={})
    assert site.remote is not None and site.appointments is not None
    assert site.remote.hours == ((7 * 60 + 30, 11 * 60), (13 * 60 + 30, 16 * 60 + 30))
    assert site.remote.quota == {"dat-dai": 30, "ho-tich": 20} and site.remote.per_phone == 1
    a = site.appointments
    assert a.closed_weekdays == {5, 6} and "2027-01-01" in a.holidays and a.late == "ordinary"
    dat_dai = a.field("dat-dai")
    assert dat_dai is not None and dat_dai.capacity_on(4) == 1 and dat_dai.capacity_on(0) == 2
    # 08:00–11:00 and 13:30–16:00 by 30 minutes: each slot ends inside its range
    assert len(dat_dai.grid) == 6 + 5 and dat_dai.grid[0] == 480 and dat_dai.grid[-1] == 15 * 60 + 30


def test_a_site_without_the_sections_has_neither(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(BASE.format(site_extra="", fields_extra="", counters_extra=""), encoding="utf-8")
    site = load_site_config(path, env={})
    assert site.remote is None and site.appointments is None


APPT = '[appointments]\n{top}\n[[appointments.fields]]\nfield = "dat-dai"\nslot_min = 30\n' \
       'hours = ["08:00-11:00"]\ncapacity = 2\n{field}'


@pytest.mark.parametrize(("extra", "key", "words"), [
    ('[remote]\nhours = ["11:00-07:30"]', "remote.hours", ["11:00-07:30", "HH:MM-HH:MM"]),
    ('[remote]\nhours = ["7h30-11h"]', "remote.hours", ["7h30-11h"]),
    ('[remote]\nhours = ["08:00-11:00", "10:00-12:00"]', "remote.hours", ["trùng"]),
    ('[remote]\nhours = []', "remote.hours", ["ít nhất"]),
    ('[remote]\nhours = ["08:00-11:00"]\n[remote.quota]\nthue = 3', "remote.quota.thue", ["thue", "dat-dai"]),
    ('[remote]\nhours = ["08:00-11:00"]\n[remote.quota]\ndat-dai = -1', "remote.quota.dat-dai", ["0"]),
    ('[remote]\nhours = ["08:00-11:00"]\nper_phon = 1', "remote.per_phon", ["không được hỗ trợ"]),
    (APPT.format(top="days_ahead = 0", field=""), "appointments.days_ahead", ["1"]),
    (APPT.format(top="days_ahead = 91", field=""), "appointments.days_ahead", ["90"]),
    (APPT.format(top='closed_weekdays = ["saturday"]', field=""), "appointments.closed_weekdays",
     ["saturday", "mon"]),
    (APPT.format(top='holidays = ["2027-02-30"]', field=""), "appointments.holidays", ["2027-02-30", "YYYY-MM-DD"]),
    (APPT.format(top='holidays = ["20270101"]', field=""), "appointments.holidays", ["20270101"]),
    (APPT.format(top='late = "maybe"', field=""), "appointments.late", ["ordinary", "refuse"]),
    (APPT.format(top="max_share = 1.5", field=""), "appointments.max_share", ["0 đến 1"]),
    (APPT.format(top="", field="").replace('"dat-dai"', '"thue"'), "appointments.fields[1].field", ["thue"]),
    (APPT.format(top="", field="").replace("slot_min = 30", "slot_min = 2"), "appointments.fields[1].slot_min",
     ["5"]),
    (APPT.format(top="", field="").replace('"08:00-11:00"', '"08:00-08:20"'), "appointments.fields[1].hours",
     ["08:00-08:20", "slot_min"]),
    (APPT.format(top="", field="").replace("capacity = 2", "capacity = 0"), "appointments.fields[1].capacity",
     ["1"]),
    (APPT.format(top="", field="[appointments.fields.weekday_capacity]\nfriday = 1"),
     "appointments.fields[1].weekday_capacity.friday", ["friday"]),
    (APPT.format(top="", field="") + '\n[[appointments.fields]]\nfield = "dat-dai"\nslot_min = 15\n'
     'hours = ["08:00-09:00"]\ncapacity = 1', "appointments.fields[2].field", ["dat-dai"]),
    ("[appointments]\ndays_ahead = 3", "appointments.fields", ["thiếu"]),
])
def test_remote_and_appointment_mistakes_name_the_key(tmp_path: Path, extra: str, key: str, words: list[str]) -> None:
    path = tmp_path / "site.toml"
    path.write_text(BASE.format(site_extra="", fields_extra="", counters_extra=extra), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_site_config(path, env={})
    assert info.value.key == key, str(info.value)
    for w in words:
        assert w in str(info.value)
