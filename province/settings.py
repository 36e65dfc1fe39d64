"""province.toml: the province, its central broker, its PostgreSQL, its dashboard, offices, accounts,
API keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from display_server.settings import ApiKeys, parse_api_keys
from qms_common.backup_settings import DEFAULT_DIR, DEFAULT_KEEP, BackupSettings, parse_backup
from qms_common.config import MqttSettings
from qms_common.tomlconf import ConfigError, Table, read_toml

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"

ROLES = ("province",)


@dataclass(frozen=True)
class SiteEntry:
    id: str
    name: str
    district: str


@dataclass(frozen=True)
class Account:
    username: str
    password_hash: str
    role: str


@dataclass(frozen=True)
class BackfillSettings:
    """[backfill]: asking offices again for what a seq gap may have lost (docs/province.md)."""
    every_s: float = 300.0    # at most one backfill per office this often after seq gaps
    timeout_s: float = 30.0   # an office's answer to one page
    retry_s: float = 60.0     # after an office did not answer; doubled at each failure in a row
    retry_max_s: float = 3600.0  # up to this
    page: int = 200           # ticket records per page
    # A gap of fewer seqs is not a loss: the core's messages to the notifier (private/…, a
    # citizen's phone) take a few seqs per command and never leave the office. A bridge queue or a
    # central queue that overflowed loses far more; a core restart skips thousands (one backfill).
    gap_min: int = 16
    # Smaller gaps are still asked about, this seldom: a few lost messages (a central broker that
    # crashed between two saves) are repaired within the hour, at one backfill an hour an office.
    small_gap_every_s: float = 3600.0


@dataclass(frozen=True)
class ProvinceSettings:
    path: Path
    id: str
    name: str
    mqtt: MqttSettings
    postgres_dsn: str
    web_host: str
    web_port: int
    sites: tuple[SiteEntry, ...]
    accounts: tuple[Account, ...]
    # the day "today" means on the dashboard, and the days of a report
    timezone: str = DEFAULT_TIMEZONE
    api_keys: ApiKeys = field(default_factory=ApiKeys)
    backfill: BackfillSettings = BackfillSettings()
    # qms-admin backup of this server: the same [backup] keys as an office's site.toml
    backup: BackupSettings = field(default_factory=lambda: BackupSettings(DEFAULT_DIR, DEFAULT_KEEP, None, ()))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def site(self, site_id: str) -> SiteEntry | None:
        return next((s for s in self.sites if s.id == site_id), None)


def _mqtt(t: Table) -> MqttSettings:
    # read as written: QMS_MQTT_URL names an office's own broker, never the central one
    url = t.str("url", required=True)
    try:
        settings = MqttSettings.from_url(url)
    except ValueError as exc:
        t.fail("url", f"địa chỉ broker trung tâm không hợp lệ: {exc}.", "Dạng đúng: mqtt://user:pass@host:1883")
    t.reject_unknown()
    return settings


def _dsn(t: Table) -> str:
    dsn = t.str("dsn", required=True)
    if urlsplit(dsn).scheme not in ("postgresql", "postgres"):
        t.fail("dsn", f"chuỗi kết nối {dsn!r} không hợp lệ.",
               "Dạng đúng: postgresql://user@host:5432/qms_province")
    t.reject_unknown()
    return dsn


def parse_province(path: Path, data: dict[str, object]) -> ProvinceSettings:
    root = Table(path, "", data)
    p = root.table("province", required=True)
    pid = p.slug("id")
    name = p.str("name", required=True)
    timezone = p.str("timezone", DEFAULT_TIMEZONE)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        p.fail("timezone", f"múi giờ {timezone!r} không tồn tại.", "Dùng tên IANA, ví dụ \"Asia/Ho_Chi_Minh\".")
    p.reject_unknown()
    mqtt = _mqtt(root.table("mqtt", required=True))
    dsn = _dsn(root.table("postgres", required=True))
    w = root.table("web")
    host = w.str("host", "127.0.0.1")
    port = w.int("port", 8090, minimum=1, maximum=65535)
    w.reject_unknown()
    sites: list[SiteEntry] = []
    for s in root.tables("sites", required=True):
        entry = SiteEntry(s.slug("id"), s.str("name", required=True), s.str("district", required=True))
        s.reject_unknown()
        if any(e.id == entry.id for e in sites):
            s.fail("id", f"điểm {entry.id!r} khai báo hai lần.", "Mỗi điểm một mục [[sites]].")
        sites.append(entry)
    accounts: list[Account] = []
    for a in root.tables("accounts"):
        account = Account(a.str("username", required=True), a.str("password_hash", required=True),
                          a.choice("role", ROLES, required=True))
        a.reject_unknown()
        if any(x.username == account.username for x in accounts):
            a.fail("username", f"tài khoản {account.username!r} khai báo hai lần.")
        accounts.append(account)
    api_keys = parse_api_keys(root)
    b = root.table("backfill")
    backfill = BackfillSettings(b.float("every_s", 300.0, minimum=1), b.float("timeout_s", 30.0, minimum=1),
                                b.float("retry_s", 60.0, minimum=1), b.float("retry_max_s", 3600.0, minimum=1),
                                b.int("page", 200, minimum=1, maximum=1000),
                                b.int("gap_min", 16, minimum=1, maximum=1_000_000),
                                b.float("small_gap_every_s", 3600.0, minimum=1))
    b.reject_unknown()
    backup = parse_backup(root.table("backup"), path)
    root.reject_unknown()
    return ProvinceSettings(path, pid, name, mqtt, dsn, host, port, tuple(sites), tuple(accounts),
                            timezone, api_keys, backfill=backfill, backup=backup)


def load_province(path: Path) -> ProvinceSettings:
    """Read province.toml or raise ConfigError with a Vietnamese message naming the key."""
    return parse_province(path, read_toml(path))


__all__ = ["Account", "BackfillSettings", "ConfigError", "ProvinceSettings", "SiteEntry", "load_province",
           "parse_province"]
