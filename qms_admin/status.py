"""qms-admin status --config site.toml: what runs, what is offline, what needs attention.

Two sources: systemd (each unit's state, when systemd runs this machine) and the site's broker
(the retained presence `status/#` and health `health/#`, which arrive at once on subscribing).
`assess` turns those observations into Vietnamese lines; it is pure, so every case is tested
directly. Exit code: 0 all is well, 1 something needs attention, 2 a configuration mistake.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from province.settings import load_province
from qms_admin import units as u
from qms_common.config import MqttSettings, SiteConfig, load_site_config
from qms_common.protocol import Topics
from qms_common.tomlconf import read_toml

ONLINE = "online"


@dataclass(frozen=True)
class Expected:
    """What the site's configuration says should run."""

    site_id: str
    site_name: str
    notify: bool = False
    agents: tuple[str, ...] = ()
    displays: tuple[str, ...] = ()
    bridge: bool = False

    @classmethod
    def from_site(cls, site: SiteConfig) -> Expected:
        display = site.raw.get("display", {})
        ids = display.get("ids", []) if isinstance(display, dict) else []
        bridge = site.raw.get("bridge", {})
        return cls(site.id, site.name, site.notify_enabled, tuple(a.id for a in site.agents),
                   tuple(i for i in ids if isinstance(i, str)),
                   isinstance(bridge, dict) and bool(bridge.get("url")))


@dataclass(frozen=True)
class Observed:
    retained: dict[str, bytes] = field(default_factory=dict)  # topic under qms/{site}/ -> payload
    broker_error: str | None = None                          # None: connected and read
    units: dict[str, str] | None = None                      # unit -> is-active; None: not asked
    why_no_units: str = "máy này không chạy systemd"


@dataclass
class Report:
    running: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.offline or self.attention else 0

    def text(self, title: str) -> str:
        lines = [title]
        for heading, items, mark in (("Đang chạy", self.running, "✓"), ("Ngoại tuyến", self.offline, "✗"),
                                     ("Cần chú ý", self.attention, "!")):
            lines.append(f"{heading}:")
            lines += [f"  {mark} {item}" for item in items] or ["  (không có)"]
        lines += [f"Ghi chú: {n}" for n in self.notes]
        lines.append("Kết luận: mọi thứ bình thường." if self.exit_code == 0
                     else "Kết luận: có việc cần xử lý (xem ở trên).")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Part:
    label: str
    unit: str | None       # its systemd unit on this machine
    presence: str | None   # its presence topic; "status/web/+" matches any web server


def _parts(e: Expected) -> list[Part]:
    parts = [Part("broker MQTT", u.BROKER, None), Part("lõi hàng đợi", u.CORE, "status/core"),
             Part("máy chủ web", u.WEB, "status/web/+"), Part("dịch vụ hồ sơ", u.DOSSIERS, "status/dossiers")]
    if e.notify:
        parts.append(Part("bộ gửi tin nhắn", u.NOTIFY, "status/notify"))
    parts += [Part(f"tác tử quầy {a}", u.agent_unit(a), f"status/agent/{a}") for a in e.agents]
    return parts


def _presence(retained: dict[str, bytes], topic: str) -> str | None:
    if topic.endswith("/+"):
        prefix = topic[:-1]
        values = [v.decode("utf-8", "replace") for k, v in retained.items() if k.startswith(prefix) and v]
        if not values:
            return None
        return ONLINE if ONLINE in values else values[0]
    value = retained.get(topic)
    return value.decode("utf-8", "replace") if value else None


def _json(payload: bytes | None) -> dict[str, Any] | None:
    if not payload:
        return None
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _core_health(r: Report, payload: bytes | None) -> None:
    health = _json(payload)
    if health is None:
        r.notes.append("lõi chưa công bố tình trạng (health/core): chưa biết cảnh báo về đĩa và đồng hồ.")
        return
    warnings = health.get("warnings")
    if not isinstance(warnings, list):
        r.attention.append("tình trạng của lõi (health/core) không đọc được: thiếu danh sách cảnh báo.")
        return
    for w in warnings:
        if isinstance(w, dict):
            since = f" (từ {w['since']})" if w.get("since") else ""
            r.attention.append(f"lõi cảnh báo [{w.get('code', '?')}] {w.get('message', '')}{since}")
    details = []
    if isinstance(health.get("disk_free_bytes"), int):
        details.append(f"đĩa còn trống {health['disk_free_bytes'] / 1e9:.1f} GB")
    if isinstance(health.get("commit_ms_p99"), int | float):
        details.append(f"ghi đĩa p99 {health['commit_ms_p99']:.0f} ms")
    if not warnings:
        r.running.append("lõi không có cảnh báo" + (f" ({', '.join(details)})" if details else ""))


def _agent_health(r: Report, agent: str, payload: bytes | None) -> None:
    health = _json(payload)
    if health is None:
        return
    for port in health.get("ports", []) if isinstance(health.get("ports"), list) else []:
        if isinstance(port, dict) and port.get("open") is False:
            reason = f": {port['error']}" if port.get("error") else ""
            r.attention.append(f"tác tử {agent}: cổng {port.get('port')} đang đóng{reason} "
                               "(kiểm tra cáp và bộ chuyển USB)")
    for dev in health.get("counters", []) if isinstance(health.get("counters"), list) else []:
        if isinstance(dev, dict) and dev.get("device") == "offline":
            r.attention.append(f"tác tử {agent}: thiết bị quầy {dev.get('counter')} ({dev.get('driver')}, "
                               f"địa chỉ {dev.get('address')}) không phản hồi")


def assess(e: Expected, o: Observed) -> Report:
    """The observations as three lists of Vietnamese lines."""
    r = Report()
    if o.units is None:
        r.notes.append(f"{o.why_no_units}: chỉ kiểm tra các dịch vụ qua MQTT.")
    broker_ok = o.broker_error is None
    for part in _parts(e):
        state = o.units.get(part.unit) if o.units is not None and part.unit else None
        where = f"{part.unit}: {state}" if state else ""
        if part.presence is None:  # the broker: seen by connecting to it
            if broker_ok:
                r.running.append(f"{part.label}" + (f" ({where})" if where else ""))
            else:
                r.offline.append(f"{part.label}: không kết nối được ({o.broker_error})"
                                 + (f"; {where}" if where else ""))
            continue
        presence = _presence(o.retained, part.presence) if broker_ok else None
        if state is not None and state != "active":
            r.offline.append(f"{part.label}: dịch vụ {where}" + (" (xem: journalctl -u " + part.unit + ")"
                                                                 if state == "failed" else ""))
        elif presence == ONLINE:
            r.running.append(f"{part.label}" + (f" ({where})" if where else ""))
        elif not broker_ok:
            if state == "active":
                r.running.append(f"{part.label} ({where}; không kiểm tra được qua MQTT)")
        elif presence is None:
            r.offline.append(f"{part.label}: chưa từng kết nối broker" + (f" ({where})" if where else ""))
        else:
            r.offline.append(f"{part.label}: {presence}" + (f" ({where})" if where else ""))
    if broker_ok:
        _core_health(r, o.retained.get("health/core"))
        for agent in e.agents:
            _agent_health(r, agent, o.retained.get(f"health/agent/{agent}"))
        for display in e.displays:
            presence = _presence(o.retained, f"status/display/{display}")
            if presence != ONLINE:
                r.attention.append(f"TV {display}: {presence or 'chưa từng mở'} (kiểm tra TV và trình duyệt)")
        if e.bridge:
            link = _presence(o.retained, "status/bridge")
            if link != "1":
                r.attention.append("mất kết nối lên broker trung tâm của tỉnh (status/bridge "
                                   f"{link or 'chưa có'})")
            else:
                r.running.append("kết nối lên broker trung tâm của tỉnh")
    if o.units is not None:
        if o.units.get(u.BACKUP_TIMER, "active") != "active":
            r.attention.append(f"lịch sao lưu hằng đêm ({u.BACKUP_TIMER}) đang {o.units[u.BACKUP_TIMER]}")
        if o.units.get(u.BACKUP) == "failed":
            r.attention.append(f"lần sao lưu gần nhất thất bại (journalctl -u {u.BACKUP})")
    return r


def assess_province(units: dict[str, str] | None, why_no_units: str = "máy này không chạy systemd") -> Report:
    """A province's central server: its units only. Its broker lets each user one connection, and
    its users are the offices' bridges and the province service: reading as any of them would
    cut it off, so the offices' presence is the province dashboard's job (qms-province)."""
    r = Report()
    r.notes.append("các điểm trực tuyến hay không: xem trang tổng quan của tỉnh (qms-province).")
    if units is None:
        r.notes.append(f"{why_no_units}: không kiểm tra được các dịch vụ của tỉnh.")
        return r
    for label, unit in (("broker trung tâm", u.CENTRAL_BROKER), ("dịch vụ tỉnh", u.PROVINCE)):
        state = units.get(unit, "không được cài")
        if state == "active":
            r.running.append(f"{label} ({unit}: active)")
        else:
            r.offline.append(f"{label}: dịch vụ {unit}: {state}")
    return r


# -- observing ----------------------------------------------------------------------------------

def systemd_runs() -> bool:
    """sd_booted(): systemd is PID 1 when this directory exists."""
    return Path("/run/systemd/system").is_dir()


def unit_states(names: list[str]) -> dict[str, str]:
    result = subprocess.run(["systemctl", "is-active", *names], capture_output=True, text=True, check=False)
    states = result.stdout.split()
    return dict(zip(names, states + ["unknown"] * (len(names) - len(states)), strict=True))


def watch_settings(site: SiteConfig) -> MqttSettings:
    """Who reads presence and health: the broker's `admin` user when its credentials are beside
    the configuration (an installed office: /etc/qms/broker/credentials.toml), else [mqtt] url."""
    creds = site.path.parent / "broker" / "credentials.toml"
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError):
        url = tomllib.loads(creds.read_text(encoding="utf-8"))["users"]["admin"]["url"]
        return MqttSettings.from_url(url)
    return site.mqtt


async def read_retained(settings: MqttSettings, site_id: str, wait_s: float = 2.0) -> Observed:
    """Everything retained under status/# and health/# (it comes at once after subscribing);
    `wait_s` bounds how long to listen for it."""
    t = Topics(site_id)
    tls = aiomqtt.TLSParameters(ca_certs=settings.ca_file, cert_reqs=ssl.CERT_REQUIRED) if settings.tls else None
    retained: dict[str, bytes] = {}
    prefix = f"{t.root}/"
    try:
        async with aiomqtt.Client(settings.host, settings.port, username=settings.username,
                                  password=settings.password, tls_params=tls, timeout=5) as client:
            await client.subscribe([(t.status_all, 1), (t.health_all, 1)])
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    async for message in client.messages:
                        payload = message.payload
                        data = bytes(payload) if isinstance(payload, bytes | bytearray) else \
                            str(payload or "").encode()
                        retained[str(message.topic).removeprefix(prefix)] = data
    except aiomqtt.MqttError as exc:
        return Observed(broker_error=f"broker {settings.url()}: {exc}")
    return Observed(retained=retained)


def _why_no_units(mqtt_only: bool) -> str | None:
    if mqtt_only:
        return "đã chọn --mqtt-only"
    return None if systemd_runs() else "máy này không chạy systemd"


def province_status(path: Path, mqtt_only: bool) -> int:
    province = load_province(path)
    why = _why_no_units(mqtt_only)
    report = assess_province(None if why else unit_states([u.CENTRAL_BROKER, u.PROVINCE]), why or "")
    sys.stdout.write(report.text(f"Tình trạng máy chủ tỉnh {province.id} ({province.name}):"))
    return report.exit_code


def status(args: argparse.Namespace) -> int:
    if "province" in read_toml(args.config):
        return province_status(args.config, args.mqtt_only)
    site = load_site_config(args.config)
    expected = Expected.from_site(site)
    observed = asyncio.run(read_retained(watch_settings(site), site.id, args.wait))
    why = _why_no_units(args.mqtt_only)
    if why:
        observed = Observed(observed.retained, observed.broker_error, None, why)
    else:
        from qms_admin.install import installed_units
        names = installed_units(Path("/"))  # a part not installed here runs elsewhere: MQTT only
        observed = Observed(observed.retained, observed.broker_error, unit_states(names) if names else {})
    report = assess(expected, observed)
    sys.stdout.write(report.text(f"Tình trạng điểm {site.id} ({site.name}):"))
    return report.exit_code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="in tình trạng các dịch vụ của điểm",
                       description="Cái gì đang chạy, cái gì ngoại tuyến, cái gì cần chú ý. Mã thoát: 0 bình "
                       "thường, 1 cần chú ý, 2 lỗi cấu hình.")
    p.add_argument("--config", required=True, type=Path, help="site.toml của điểm (đã cài: /etc/qms/site.toml)")
    p.add_argument("--wait", type=float, default=2.0, help="số giây chờ tin giữ lại từ broker (mặc định 2)")
    p.add_argument("--mqtt-only", action="store_true",
                   help="bỏ qua systemd, chỉ kiểm tra qua MQTT (khi các dịch vụ chạy ở máy khác)")
    p.set_defaults(run=status)
