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
