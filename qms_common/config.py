"""The site configuration (TOML) shared by the core, the web server and the broker tools."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, tzinfo
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from qms_common.tomlconf import ConfigError, Table, read_toml, resolve_path

MQTT_URL_ENV = "QMS_MQTT_URL"

# Sections other parts read from the same file; listed so a misspelt section name is caught.
KNOWN_SECTIONS = (
    "site", "mqtt", "storage", "web", "queue", "rating", "fields", "counters", "agents", "integrations",
    "speech", "display", "kiosk", "printer", "accounts", "security", "notify", "remote", "appointments",
    "dossiers", "reports", "bridge", "backup",
    "health",  # the core's health checks (queue_core.health)
    "api_keys", "receipt_printers",  # the web server's dossier API keys and counters' receipt printers
)

DEFAULT_RATING_LEVELS = ("Không hài lòng", "Hài lòng", "Rất hài lòng")
DEFAULT_RATING_WINDOW_S = 600


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None

    @classmethod
    def from_url(cls, url: str) -> MqttSettings:
        """Parse mqtt://user:pass@host:port (mqtts:// for TLS); raise ValueError with a reason."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"lược đồ {parts.scheme!r} không hỗ trợ, dùng mqtt:// hoặc mqtts://")
        tls = parts.scheme in ("mqtts", "ssl")
        if not parts.hostname:
            raise ValueError("thiếu tên máy chủ broker")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ValueError("cổng không hợp lệ") from None
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )

    def url(self, *, with_password: bool = False) -> str:
        cred = ""
        if self.username:
            pw = f":{self.password}" if with_password and self.password else (":***" if self.password else "")
            cred = f"{self.username}{pw}@"
        return f"{'mqtts' if self.tls else 'mqtt'}://{cred}{self.host}:{self.port}"


def parse_mqtt_table(t: Table, *, env: dict[str, str] | None = None) -> MqttSettings:
    """The [mqtt] url, overridden by QMS_MQTT_URL so one file serves every machine."""
    env = os.environ if env is None else env
    url = env.get(MQTT_URL_ENV) or t.str("url", required=True)
    t.used.add("url")
    try:
        settings = MqttSettings.from_url(url)
    except ValueError as exc:
        source = MQTT_URL_ENV if env.get(MQTT_URL_ENV) else t.key("url")
        raise ConfigError(t.path, source, f"địa chỉ broker không hợp lệ: {exc}.",
                          "Dạng đúng: mqtt://user:pass@host:1883") from None
    ca = t.str("ca_file")
    if ca:
        settings = replace(settings, ca_file=str(resolve_path(t.path, ca)))
    return settings


@dataclass(frozen=True)
class FieldConfig:
    id: str
    name: str
    first: int
    last: int
    prefix: str = ""

    @property
    def width(self) -> int:
        return len(str(self.last))

    def format_number(self, value: int) -> str:
        """What people see and hear: "1005", or "A005" where the field has a prefix."""
        if self.prefix:
            return f"{self.prefix}{value:0{self.width}d}"
        return str(value)


@dataclass(frozen=True)
class CounterConfig:
    id: str
    name: str
    fields: tuple[str, ...]
    spoken: str | None = None  # how the announcement says it, e.g. "quầy tiếp nhận số ba"
    officer: str | None = None  # who a keypad's call names when nobody opened the counter by name


@dataclass(frozen=True)
class AgentConfig:
    """A counter agent of the site and the counters it may command (for the broker's ACLs)."""

    id: str
    counters: tuple[str, ...]


@dataclass(frozen=True)
class QueueSettings:
    default_service_s: int = 300
    next_preview: int = 5
    tick_s: float = 1.0


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order
_RANGE_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")

Minutes = tuple[int, int]  # [start, end) in minutes after midnight, site time


def minutes_text(m: int) -> str:
    return f"{m // 60:02d}:{m % 60:02d}"


@dataclass(frozen=True)
class RemoteSettings:
    """[remote]: today's number taken from a phone (docs/protocol.md, remote tickets)."""

    hours: tuple[Minutes, ...]
    checkin_required: bool = True
    per_phone: int = 1
    quota: dict[str, int] = field(default_factory=dict)  # field -> remote tickets a day; absent: none

    def open_at(self, minute: int) -> bool:
        return any(a <= minute < b for a, b in self.hours)


@dataclass(frozen=True)
class AppointmentField:
    field: str
    slot_min: int
    hours: tuple[Minutes, ...]
    capacity: int
    weekday_capacity: dict[int, int] = field(default_factory=dict)  # date.weekday() -> places

    def capacity_on(self, weekday: int) -> int:
        return self.weekday_capacity.get(weekday, self.capacity)

    @property
    def grid(self) -> tuple[int, ...]:
        """Every slot's start (minutes after midnight): on the slot_min grid from each range's
        start, each slot ending within its range."""
        return tuple(m for a, b in self.hours for m in range(a, b - self.slot_min + 1, self.slot_min))


@dataclass(frozen=True)
class AppointmentSettings:
    """[appointments]: bookings of a time on a later day."""

    fields: tuple[AppointmentField, ...]
    days_ahead: int = 14
    closed_weekdays: frozenset[int] = frozenset({5, 6})
    holidays: frozenset[str] = frozenset()
    checkin_before_min: int = 30
    checkin_after_min: int = 15
    late: str = "ordinary"   # or "refuse"
    max_share: float = 0.5
    per_phone: int = 2

    def field(self, field_id: str) -> AppointmentField | None:
        return next((f for f in self.fields if f.field == field_id), None)


@dataclass(frozen=True)
class SiteConfig:
    path: Path
    id: str
    name: str
    timezone: str
    day_starts: time
    mqtt: MqttSettings
    storage_path: Path
    web_host: str
    web_port: int
    fields: tuple[FieldConfig, ...]
    counters: tuple[CounterConfig, ...]
    agents: tuple[AgentConfig, ...] = ()
    queue: QueueSettings = field(default_factory=QueueSettings)
    rating_levels: tuple[str, ...] = DEFAULT_RATING_LEVELS
    # a ticket may be rated this long after it was finished, and only then
    rating_window_s: int = DEFAULT_RATING_WINDOW_S
    # [notify]: the core tells the notifier of tickets with a phone (docs/notify.md)
    notify_enabled: bool = False
    notify_ahead: int = 3
    notify_user: str = "notify"
    phone_days: int = 30
    # [dossiers] user: the dossier service's broker user (it reads the rest itself, dossiers/settings.py)
    dossiers_user: str = "dossiers"
    remote: RemoteSettings | None = None              # [remote]; None: no remote tickets
    appointments: AppointmentSettings | None = None  # [appointments]; None: no bookings
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def field(self, field_id: str) -> FieldConfig | None:
        return self.fields_by_id.get(field_id)

    def counter(self, counter_id: str) -> CounterConfig | None:
        return self.counters_by_id.get(counter_id)

    # cached: looked up several times per command, and a large office has hundreds of counters
    @cached_property
    def fields_by_id(self) -> dict[str, FieldConfig]:
        return {f.id: f for f in self.fields}

    @cached_property
    def counters_by_id(self) -> dict[str, CounterConfig]:
        return {c.id: c for c in self.counters}

    def section(self, name: str) -> Table:
        """A section other parts read (speech, printer…), with the same strict helpers."""
        return Table(self.path, name, self.raw.get(name, {}))


def business_day(now: datetime, tz: tzinfo, day_starts: time) -> str:
    """The business day a moment belongs to, in the site's zone; the day starts at day_starts."""
    local = now.astimezone(tz)
    shifted = local - timedelta(hours=day_starts.hour, minutes=day_starts.minute)
    return shifted.date().isoformat()


_DAY_STARTS_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def load_site_config(path: Path | str, *, env: dict[str, str] | None = None) -> SiteConfig:
    path = Path(path)
    data = read_toml(path)
    root = Table(path, "", data)
    for k in data:
        if k not in KNOWN_SECTIONS:
            raise ConfigError(path, k, "mục không được hỗ trợ.",
                              f"Các mục hợp lệ: {', '.join(KNOWN_SECTIONS)}.")

    site = root.table("site", required=True)
    site_id = site.slug("id")
    site_name = site.str("name", required=True)
    tz_name = site.str("timezone", "Asia/Ho_Chi_Minh")
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        site.fail("timezone", f"múi giờ {tz_name!r} không tồn tại.",
                  "Dùng tên IANA, ví dụ \"Asia/Ho_Chi_Minh\".")
    day_starts_s = site.str("day_starts", "00:00")
    m = _DAY_STARTS_RE.match(day_starts_s)
    if not m:
        site.fail("day_starts", f"giờ {day_starts_s!r} không hợp lệ.", "Viết dạng HH:MM, ví dụ \"00:00\".")
    site.reject_unknown()

    mqtt = parse_mqtt_table(root.table("mqtt", required=True), env=env)

    storage = root.table("storage", required=True)
    storage_path = resolve_path(path, storage.str("path", required=True))
    storage.reject_unknown()

    web = root.table("web")
    web_host = web.str("host", "127.0.0.1")
    web_port = web.int("port", 8080, minimum=0, maximum=65535)
    # the web server owns the rest of [web]; it checks its own keys

    q = root.table("queue")
    queue = QueueSettings(
        default_service_s=q.int("default_service_s", 300, minimum=1),
        next_preview=q.int("next_preview", 5, minimum=0, maximum=50),
        tick_s=q.float("tick_s", 1.0, minimum=0.05),
    )
    q.reject_unknown()

    r = root.table("rating")
    levels = tuple(r.str_list("levels", list(DEFAULT_RATING_LEVELS)))
    if not 2 <= len(levels) <= 5:
        r.fail("levels", "cần từ 2 đến 5 mức đánh giá.",
               "Liệt kê từ mức thấp nhất đến cao nhất, ví dụ [\"Không hài lòng\", \"Hài lòng\", \"Rất hài lòng\"].")
    rating_window_s = r.int("window_s", DEFAULT_RATING_WINDOW_S, minimum=10, maximum=86_400)
    r.reject_unknown()

    # The notifier owns the rest of [notify] and checks it strictly (notifier/settings.py).
    n = root.table("notify")
    notify_enabled = "notify" in data
    notify_ahead = n.int("ahead", 3, minimum=1, maximum=20)
    notify_user = n.slug("user", required=False, default="notify")
    phone_days = n.int("phone_days", 30, minimum=1, maximum=3650)
    # The dossier service owns the rest of [dossiers] (dossiers/settings.py); the broker tool needs its user.
    dossiers_user = root.table("dossiers").slug("user", required=False, default="dossiers")

    fields = _parse_fields(root)
    counters = _parse_counters(root, {f.id for f in fields})
    agents = _parse_agents(root, {c.id for c in counters})
    field_ids = {f.id for f in fields}
    remote = _parse_remote(root.table("remote"), field_ids) if "remote" in data else None
    appointments = _parse_appointments(root.table("appointments"), field_ids) if "appointments" in data else None

    return SiteConfig(
        path=path, id=site_id, name=site_name, timezone=tz_name,
        day_starts=time(int(m.group(1)), int(m.group(2))),
        mqtt=mqtt, storage_path=storage_path, web_host=web_host, web_port=web_port,
        fields=fields, counters=counters, agents=agents, queue=queue, rating_levels=levels,
        rating_window_s=rating_window_s, notify_enabled=notify_enabled, notify_ahead=notify_ahead,
        notify_user=notify_user, phone_days=phone_days, dossiers_user=dossiers_user, remote=remote,
        appointments=appointments, raw=data,
    )


def _ranges(t: Table, k: str, *, required: bool = True) -> tuple[Minutes, ...]:
    """["07:30-11:00", "13:30-16:30"]: ascending ranges of the day that do not overlap."""
    items = t.str_list(k, required=required) or []
    out: list[Minutes] = []
    for item in items:
        m = _RANGE_RE.match(item.strip())
        a = int(m.group(1)) * 60 + int(m.group(2)) if m else 0
        b = int(m.group(3)) * 60 + int(m.group(4)) if m else 0
        if not m or b > 24 * 60 or a >= b:
            t.fail(k, f"khoảng giờ {item!r} không hợp lệ.",
                   "Viết dạng \"HH:MM-HH:MM\", giờ bắt đầu trước giờ kết thúc, ví dụ \"07:30-11:00\".")
        if out and a < out[-1][1]:
            t.fail(k, f"khoảng giờ {item!r} trùng hoặc đứng trước khoảng trước nó.",
                   "Liệt kê các khoảng theo thứ tự thời gian, không chồng lên nhau.")
        out.append((a, b))
    if required and not out:
        t.fail(k, "cần ít nhất một khoảng giờ.", "Ví dụ [\"07:30-11:00\", \"13:30-16:30\"].")
    return tuple(out)


def _field_ref(t: Table, k: str, fid: str, field_ids: set[str]) -> None:
    if fid not in field_ids:
        t.fail(k, f"lĩnh vực {fid!r} không có trong [[fields]].",
               f"Dùng một trong: {', '.join(sorted(field_ids))}.")


def _parse_remote(t: Table, field_ids: set[str]) -> RemoteSettings:
    hours = _ranges(t, "hours")
    checkin_required = t.bool("checkin_required", True)
    per_phone = t.int("per_phone", 1, minimum=1, maximum=10)
    q = t.table("quota")
    quota: dict[str, int] = {}
    for fid in q.data:
        _field_ref(q, fid, fid, field_ids)
        quota[fid] = q.int(fid, minimum=0, maximum=100_000)
    t.reject_unknown()
    return RemoteSettings(hours=hours, checkin_required=checkin_required, per_phone=per_phone, quota=quota)


def _weekday(t: Table, k: str, name: object) -> int:
    if not isinstance(name, str) or name.lower() not in WEEKDAYS:
        t.fail(k, f"thứ {name!r} không hợp lệ.", f"Dùng một trong: {', '.join(WEEKDAYS)}.")
    return WEEKDAYS.index(name.lower())


def parse_closed_days(t: Table, default_weekdays: frozenset[int] = frozenset({5, 6}),
                      default_holidays: frozenset[str] = frozenset()) -> tuple[frozenset[int], frozenset[str]]:
    """A section's `closed_weekdays` (["sat", "sun"]) and `holidays` (["YYYY-MM-DD", ...]), each
    the given default when absent: the days an office is closed ([appointments], [dossiers])."""
    closed = default_weekdays
    if "closed_weekdays" in t.data:
        closed = frozenset(_weekday(t, "closed_weekdays", d) for d in t.str_list("closed_weekdays"))
        if len(closed) == len(WEEKDAYS):
            t.fail("closed_weekdays", "mọi ngày trong tuần đều nghỉ.", "Để ít nhất một ngày làm việc.")
    t.used.update({"closed_weekdays", "holidays"})
    if "holidays" not in t.data:
        return closed, default_holidays
    holidays: set[str] = set()
    for d in t.str_list("holidays", []):
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", d):
                raise ValueError(d)
            holidays.add(date.fromisoformat(d).isoformat())
        except ValueError:
            t.fail("holidays", f"ngày {d!r} không hợp lệ.", "Viết dạng \"YYYY-MM-DD\", ví dụ \"2027-01-01\".")
    return closed, frozenset(holidays)


def _parse_appointments(t: Table, field_ids: set[str]) -> AppointmentSettings:
    days_ahead = t.int("days_ahead", 14, minimum=1, maximum=90)
    closed, holidays = parse_closed_days(t)
    before = t.int("checkin_before_min", 30, minimum=0, maximum=240)
    after = t.int("checkin_after_min", 15, minimum=0, maximum=240)
    late = t.choice("late", ("ordinary", "refuse"), "ordinary")
    max_share = t.float("max_share", 0.5, minimum=0.0)
    if max_share > 1:
        t.fail("max_share", f"phải từ 0 đến 1 (đang là {max_share}).", "Ví dụ 0.5: tối đa nửa số lượt gọi mỗi giờ.")
    per_phone = t.int("per_phone", 2, minimum=1, maximum=20)
    fields: list[AppointmentField] = []
    for ft in t.tables("fields", required=True):
        fid = ft.slug("field")
        _field_ref(ft, "field", fid, field_ids)
        if any(f.field == fid for f in fields):
            ft.fail("field", f"lĩnh vực {fid!r} đã có lịch hẹn ở mục trước.", "Mỗi lĩnh vực chỉ một mục.")
        slot_min = ft.int("slot_min", required=True, minimum=5, maximum=240)
        hours = _ranges(ft, "hours")
        for a, b in hours:
            if b - a < slot_min:
                ft.fail("hours", f"khoảng {minutes_text(a)}-{minutes_text(b)} ngắn hơn một lượt hẹn ({slot_min} phút).",
                        "Kéo dài khoảng giờ hoặc giảm slot_min.")
        capacity = ft.int("capacity", required=True, minimum=1, maximum=1000)
        wt = ft.table("weekday_capacity")
        weekday_capacity = {_weekday(wt, k, k): wt.int(k, minimum=0, maximum=1000) for k in wt.data}
        ft.reject_unknown()
        fields.append(AppointmentField(fid, slot_min, hours, capacity, weekday_capacity))
    t.reject_unknown()
    return AppointmentSettings(fields=tuple(fields), days_ahead=days_ahead, closed_weekdays=closed,
                               holidays=holidays, checkin_before_min=before, checkin_after_min=after,
                               late=late, max_share=max_share, per_phone=per_phone)


def _parse_fields(root: Table) -> tuple[FieldConfig, ...]:
    fields: list[FieldConfig] = []
    seen: dict[str, str] = {}
    for t in root.tables("fields", required=True):
        fid = t.slug("id")
        if fid in seen:
            t.fail("id", f"mã lĩnh vực {fid!r} bị trùng với {seen[fid]}.", "Mỗi lĩnh vực cần một mã riêng.")
        seen[fid] = t.name
        name = t.str("name", required=True)
        first = t.int("first", required=True, minimum=0)
        last = t.int("last", required=True, minimum=0, maximum=999_999)
        if last < first:
            t.fail("last", f"số cuối {last} nhỏ hơn số đầu {first}.", "Đặt last lớn hơn first.")
        prefix = t.str("prefix", "")
        if prefix and not re.fullmatch(r"[A-ZĐ]{1,3}", prefix):
            t.fail("prefix", f"tiền tố {prefix!r} không hợp lệ.", "Dùng 1–3 chữ cái in hoa, ví dụ \"A\".")
        t.reject_unknown()
        f = FieldConfig(id=fid, name=name, first=first, last=last, prefix=prefix)
        for other in fields:
            # Ranges may overlap only where prefixes tell the tickets apart ("A005" vs "B005").
            if other.prefix == f.prefix and f.first <= other.last and other.first <= f.last:
                t.fail("first", f"dải số {first}–{last} trùng với lĩnh vực {other.id!r} "
                       f"({other.first}–{other.last}).",
                       "Mỗi lĩnh vực cần dải số riêng, hoặc một tiền tố (prefix) khác.")
        fields.append(f)
    return tuple(fields)


def _parse_counters(root: Table, field_ids: set[str]) -> tuple[CounterConfig, ...]:
    counters: list[CounterConfig] = []
    seen: set[str] = set()
    for t in root.tables("counters", required=True):
        cid = t.slug("id")
        if cid in seen:
            t.fail("id", f"mã quầy {cid!r} bị trùng.", "Mỗi quầy cần một mã riêng.")
        seen.add(cid)
        name = t.str("name", required=True)
        cfields = t.str_list("fields", required=True)
        if not cfields:
            t.fail("fields", "quầy phải phục vụ ít nhất một lĩnh vực.")
        for fid in cfields:
            if fid not in field_ids:
                t.fail("fields", f"lĩnh vực {fid!r} không có trong [[fields]].",
                       f"Dùng một trong: {', '.join(sorted(field_ids))}, hoặc thêm lĩnh vực đó.")
        spoken = t.str("spoken")
        officer = t.str("officer")
        t.reject_unknown()
        counters.append(CounterConfig(id=cid, name=name, fields=tuple(dict.fromkeys(cfields)),
                                      spoken=spoken, officer=officer.strip()[:64] if officer else None))
    return tuple(counters)


def _parse_agents(root: Table, counter_ids: set[str]) -> tuple[AgentConfig, ...]:
    agents: list[AgentConfig] = []
    owner: dict[str, str] = {}
    for t in root.tables("agents"):
        aid = t.slug("id")
        if any(a.id == aid for a in agents):
            t.fail("id", f"mã tác tử {aid!r} bị trùng.", "Mỗi tác tử quầy cần một mã riêng.")
        counters = t.str_list("counters", required=True)
        for cid in counters:
            if cid not in counter_ids:
                t.fail("counters", f"quầy {cid!r} không có trong [[counters]].",
                       f"Dùng một trong: {', '.join(sorted(counter_ids))}.")
            if cid in owner:
                t.fail("counters", f"quầy {cid!r} đã thuộc tác tử {owner[cid]!r}.",
                       "Mỗi quầy chỉ do một tác tử điều khiển.")
            owner[cid] = aid
        t.reject_unknown()
        agents.append(AgentConfig(id=aid, counters=tuple(counters)))
    return tuple(agents)
