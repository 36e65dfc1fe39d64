"""[reports]: defaults, and mistakes named clearly in Vietnamese."""

from __future__ import annotations

from pathlib import Path

import pytest

from display_server.settings import ReportSettings, load_server_settings
from qms_common.config import load_site_config
from qms_common.tomlconf import ConfigError
from tests.support.site import write_site


def settings(tmp_path: Path, extra: str = "") -> ReportSettings:
    config, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", extra=extra)
    reports = load_server_settings(load_site_config(config, env={})).reports
    assert reports is not None
    return reports


def test_defaults_without_the_section(tmp_path: Path) -> None:
    s = settings(tmp_path)
    site = load_site_config(next(tmp_path.glob("*.toml")), env={})
    assert s.database == site.storage_path.with_name(f"{site.id}-reports.sqlite3")
    assert s.target_wait_min == 15


def test_a_database_and_a_target(tmp_path: Path) -> None:
    s = settings(tmp_path, '[reports]\ndatabase = "data/bao-cao.sqlite3"\ntarget_wait_min = 10\n')
    assert s.database == tmp_path / "data" / "bao-cao.sqlite3" and s.target_wait_min == 10


@pytest.mark.parametrize(("extra", "words"), [
    ("[reports]\ntarget_wait_min = 0\n", "target_wait_min"),
    ('[reports]\ntarget_wait_min = "15"\n', "số nguyên"),
    ('[reports]\ndatabase = "{core}"\n', "trùng tệp cơ sở dữ liệu của lõi"),
    ('[reports]\ndatabase = "{dossiers}"\n', "dịch vụ hồ sơ"),
    ("[reports]\ntarget = 15\n", "target"),
])
def test_mistakes_are_named(tmp_path: Path, extra: str, words: str) -> None:
    site_id = "bc"
    extra = extra.format(core=tmp_path / f"{site_id}.sqlite3", dossiers=tmp_path / f"{site_id}-dossiers.sqlite3")
    config, _ = write_site(tmp_path, "mqtt://127.0.0.1:1", site_id=site_id, extra=extra)
    with pytest.raises(ConfigError, match=words):
        load_server_settings(load_site_config(config, env={}))
