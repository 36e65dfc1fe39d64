"""The install plan of an office (site.toml) or of a province's central server (province.toml).

The broker's files come from qms-broker's own functions (broker_config), generated in a scratch
directory that starts from what is installed already: passwords and certificates survive a second
install (adding an agent must not change everyone's password, nor the CA the agents trust).
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from broker_config import bridge as broker_bridge
from broker_config import tool as broker_tool
from counter_agent.config import load_agent_config
from qms_admin import units as u
from qms_admin.plan import Plan
from qms_admin.tomledit import set_key, toml_string
from qms_common.config import SiteConfig, load_site_config
from qms_common.tomlconf import ConfigError

ROOT = "root"
ETC, VAR = u.ETC, u.VAR

# Optional keys of site.toml naming a file of the site's data: moved into /var/lib/qms (the
# only place the services may write) under the same file name.
DATA_KEYS = (("notify", "store"), ("dossiers", "database"), ("reports", "database"), ("web", "secret_file"))


MODULES_LOAD = PurePosixPath("/etc/modules-load.d/qms-serial.conf")
# DeviceAllow=char-ttyUSB is resolved to a device number when the unit starts, from the drivers
# loaded then: an adapter whose driver loads later (plugged in after boot, or udev slower than the
# agent) would stay forbidden until a restart. Loading the two serial cores at boot avoids that.
SERIAL_MODULES = ("# qms-admin install: serial cores loaded at boot, before the agents start\n"
                  "# (their units allow char-ttyUSB and char-ttyACM).\nusbserial\ncdc_acm\n")


def is_province(data: dict[str, Any]) -> bool:
    return "province" in data


def _local_url(port: int, user: str | None = None, password: str | None = None) -> str:
    cred = f"{user}:{password}@" if user and password else ""
    return f"mqtt://{cred}127.0.0.1:{port}"


def _user_command() -> list[str]:
    return ["useradd", "--system", "--user-group", "--home-dir", str(VAR), "--no-create-home",
            "--shell", "/usr/sbin/nologin", "--comment", "He thong xep hang", u.USER]


@contextmanager
def _scratch(existing: Path, rel: str) -> Iterator[Path]:
    """A scratch copy of an installed broker directory (its credentials and certificates)."""
    with tempfile.TemporaryDirectory(prefix="qms-install-") as tmp:
        work = Path(tmp) / "broker"
        work.mkdir(mode=0o700)
        source = existing / rel
        for name in ("credentials.toml", "tls"):
            src = source / name
            if src.is_dir():
                shutil.copytree(src, work / name)
            elif src.is_file():
                shutil.copy2(src, work / name)
        yield work


def _persistence(conf: str, etc_dir: PurePosixPath, var_dir: PurePosixPath) -> str:
    """qms-broker keeps Mosquitto's retained store beside its configuration; an installed broker
    may write only under /var/lib/qms (ProtectSystem=strict)."""
    old = f"persistence_location {etc_dir}/data/"
    if old not in conf:
        raise RuntimeError("mosquitto.conf của qms-broker không còn dòng persistence_location như mong đợi")
    return conf.replace(old, f"persistence_location {var_dir}/")


def _tls_files(plan: Plan, work: Path, etc_dir: PurePosixPath) -> None:
    plan.dir(etc_dir / "tls", 0o750, ROOT, u.USER)
    modes = {"ca.crt": (0o644, ROOT, u.USER), "server.crt": (0o644, ROOT, u.USER),
             "server.key": (0o640, ROOT, u.USER), "ca.key": (0o600, ROOT, ROOT)}
    for name, (mode, owner, group) in modes.items():
        path = work / "tls" / name
        if path.exists():
            plan.file(etc_dir / "tls" / name, path.read_bytes(), mode, owner, group)


def _common_dirs(plan: Plan) -> None:
    plan.dir(ETC, 0o750, ROOT, u.USER)
    plan.dir(ETC / "env", 0o700, ROOT, ROOT)
    plan.dir(VAR, 0o750, u.USER, u.USER)


def _env_file(plan: Plan, name: str, url: str) -> None:
    # read by systemd (as root) before it drops to the user qms: no service can read another's
    plan.file(ETC / "env" / f"{name}.env", f"# qms-admin install: the MQTT URL of this service\nQMS_MQTT_URL={url}\n",
              0o600, ROOT, ROOT)


def _debian_mosquitto() -> list[list[str]]:
    """Debian's mosquitto package starts its own broker on 1883: ours takes its place (the units
    also say Conflicts=mosquitto.service)."""
    if any(Path(d, "mosquitto.service").exists() for d in ("/lib/systemd/system", "/usr/lib/systemd/system")):
        return [["systemctl", "disable", "--now", "mosquitto.service"]]
    return []


# -- an office ---------------------------------------------------------------------------------

def _site_toml(site: SiteConfig, text: str, port: int, bridge_files: dict[str, str]) -> str:
    text = set_key(text, "mqtt", "url", toml_string(_local_url(port)))
    text = set_key(text, "storage", "path", toml_string(str(VAR / site.storage_path.name)))
    for section, key in DATA_KEYS:
        value = site.raw.get(section, {}).get(key) if isinstance(site.raw.get(section), dict) else None
        if isinstance(value, str) and value:
            text = set_key(text, section, key, toml_string(str(VAR / Path(value).name)))
    text = set_key(text, "speech", "cache_dir", toml_string(str(VAR / "speech-cache")))
    for key, installed in bridge_files.items():
        text = set_key(text, "bridge", key, toml_string(installed))
    return text


def _check_site_toml(original: SiteConfig, text: str, scratch: Path) -> None:
    """Read the rewritten file back with the real parser: what the services will read."""
    path = scratch / "site.toml"
    path.write_text(text, encoding="utf-8")
    try:
        site = load_site_config(path, env={})
    except ConfigError as exc:
        raise ConfigError(original.path, exc.key, f"không viết lại được cấu hình để cài ({exc.problem}).",
                          "Báo lỗi này kèm tệp cấu hình.") from None
    if site.storage_path != Path(VAR / original.storage_path.name) or site.id != original.id:
        raise ConfigError(original.path, "storage.path", "không viết lại được đường dẫn dữ liệu vào /var/lib/qms.",
                          "Viết [storage] path trên một dòng, dạng path = \"...\".")


def _agents(site: SiteConfig, agent_files: tuple[Path, ...]) -> dict[str, Path]:
    """The agents of this machine: the files given, else agents/{id}.toml beside site.toml.
    An agent without a file runs on another machine (a Raspberry Pi at the counters)."""
    if not agent_files:
        agent_files = tuple(p for a in site.agents if (p := site.path.parent / "agents" / f"{a.id}.toml").is_file())
    known = {a.id for a in site.agents}
    found: dict[str, Path] = {}
    for path in agent_files:
        cfg = load_agent_config(path, env={})
        if cfg.id not in known:
            raise ConfigError(path, "agent.id", f"tác tử {cfg.id!r} không có trong [[agents]] của {site.path}.",
                              "Thêm nó vào site.toml (mã và các quầy) rồi cài lại.")
        if cfg.site != site.id:
            raise ConfigError(path, "mqtt.site", f"tác tử thuộc điểm {cfg.site!r}, không phải {site.id!r}.")
        if cfg.id in found:
            raise ConfigError(path, "agent.id", f"tác tử {cfg.id!r} được cho hai lần.")
        found[cfg.id] = path
    return found


def _printer_types(site: SiteConfig) -> set[str]:
    tables = [site.raw.get("printer", {}), *site.raw.get("receipt_printers", [])]
    return {t.get("type", "none") for t in tables if isinstance(t, dict)}


def _backup_paths(site: SiteConfig) -> tuple[str, ...]:
    """[backup] dir and copy_to (qms-admin backup) outside /var/lib/qms: the backup unit may write there."""
    section = site.raw.get("backup", {})
    paths: list[str] = []
    for key in ("dir", "copy_to"):
        value = section.get(key) if isinstance(section, dict) else None
        if isinstance(value, str) and value and Path(value).is_absolute() and not value.startswith(f"{VAR}/"):
            paths.append(value)
    return tuple(paths)


def build_site_plan(config: Path, *, existing: Path, agent_files: tuple[Path, ...], port: int, tls_port: int,
                    hostnames: tuple[str, ...], prefix: str, mosquitto: str) -> Plan:
    site = load_site_config(config, env={})
    users = broker_tool.site_users(site)
    bridge = broker_bridge.bridge_settings(site, broker_tool.parse_args(["--config", str(config), "--out", "-"]))
    agents = _agents(site, agent_files)
    plan = Plan(f"điểm {site.id}", user_command=_user_command())
    _common_dirs(plan)
    broker_etc, broker_var = ETC / "broker", VAR / "broker"
    plan.dir(broker_etc, 0o750, ROOT, u.USER)
    plan.dir(broker_var, 0o700, u.USER, u.USER)
    for sub in ("backups", "speech-cache"):
        plan.dir(VAR / sub, 0o700, u.USER, u.USER)

    bridge_files: dict[str, str] = {}
    if bridge is not None:
        plan.dir(ETC / "bridge", 0o750, ROOT, u.USER)
        raw = site.raw.get("bridge", {})
        for key, mode in (("password_file", 0o600), ("cafile", 0o644)):
            if isinstance(raw.get(key), str):
                source = (site.path.parent / raw[key]).resolve()
                bridge_files[key] = str(ETC / "bridge" / source.name)
                plan.file(ETC / "bridge" / source.name, source.read_bytes(), mode, ROOT, u.USER)
        if bridge.cafile is not None:
            bridge = replace(bridge, cafile=Path(bridge_files.get("cafile", str(bridge.cafile))))

    with _scratch(existing, str(broker_etc.relative_to("/"))) as work:
        passwords = broker_tool.load_credentials(work / "credentials.toml")
        for user in users:
            passwords.setdefault(user.name, secrets.token_urlsafe(18))
        passwords = {user.name: passwords[user.name] for user in users}
        names = list(hostnames) or ["localhost", "127.0.0.1"]
        broker_tool.make_tls(work / "tls", names)
        _tls_files(plan, work, broker_etc)
        conf = broker_tool.render_conf(Path(str(broker_etc)), port=port, bind="127.0.0.1", tls_port=tls_port,
                                       ws_port=None, run_as=u.USER,
                                       bridge=broker_bridge.bridge_conf(site.id, bridge) if bridge else "")
        plan.file(broker_etc / "mosquitto.conf", _persistence(conf, broker_etc, broker_var), 0o640, ROOT, u.USER)
        plan.file(broker_etc / "passwd", "".join(f"{n}:{broker_tool.password_hash(pw)}\n"
                                                 for n, pw in passwords.items()), 0o640, ROOT, u.USER)
        # its header names the file it came from: the installed one, which the next install reads
        installed = replace(site, path=Path(str(ETC / "site.toml")))
        plan.file(broker_etc / "acl", broker_tool.acl_text(installed, users), 0o640, ROOT, u.USER)
        plan.file(broker_etc / "credentials.toml",
                  broker_tool.credentials_text(site, users, passwords, names[0], port, tls_port), 0o600, ROOT, ROOT)

        text = _site_toml(site, config.read_text(encoding="utf-8"), port, bridge_files)
        _check_site_toml(site, text, work)
    plan.file(ETC / "site.toml", text, 0o640, ROOT, u.USER)

    services = {"core": "core", "web": broker_tool.WEB_CLIENT_ID, "dossiers": site.dossiers_user}
    if site.notify_enabled:
        services["notify"] = site.notify_user
    for name, user in services.items():
        _env_file(plan, name, _local_url(port, user, passwords[user]))
    if agents:
        plan.dir(ETC / "agents", 0o750, ROOT, u.USER)
    for agent_id, path in agents.items():
        agent_text = set_key(path.read_text(encoding="utf-8"), "mqtt", "url", toml_string(_local_url(port)))
        plan.file(ETC / "agents" / f"{agent_id}.toml", agent_text, 0o640, ROOT, u.USER)
        _env_file(plan, f"agent-{agent_id}", _local_url(port, agent_id, passwords[agent_id]))

    web_devices = u.printer_devices(_printer_types(site))
    if agents or web_devices.any:
        plan.file(MODULES_LOAD, SERIAL_MODULES, 0o644)

    web_port = site.web_port
    unit_texts = u.site_units(u.SiteUnits(
        prefix=prefix, mosquitto=mosquitto, notify=site.notify_enabled,
        web_devices=web_devices, web_low_port=0 < web_port < 1024,
        backup_paths=_backup_paths(site)))
    for name, text in unit_texts.items():
        plan.file(u.UNIT_DIR / name, text, 0o644)

    enabled = [n for n in unit_texts if n not in (u.AGENT_TEMPLATE, u.BACKUP)]
    enabled[-1:-1] = [u.agent_unit(a) for a in agents]  # before the timer, after the services
    plan.commands += [*_debian_mosquitto(), ["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", *enabled]]
    for agent in site.agents:
        if agent.id not in agents:
            plan.notes.append(f"Tác tử {agent.id}: không có tệp cấu hình trên máy này (agents/{agent.id}.toml); "
                              "nó chạy ở máy khác, nối tới broker qua TLS (xem docs/install.md).")
    return plan


# -- a province's central server ---------------------------------------------------------------

def build_province_plan(config: Path, *, existing: Path, port: int, tls_port: int, hostnames: tuple[str, ...],
                        prefix: str, mosquitto: str) -> Plan:
    from broker_config import central
    from province.settings import load_province

    province = load_province(config)
    plan = Plan(f"tỉnh {province.id}", user_command=_user_command())
    _common_dirs(plan)
    broker_etc, broker_var = ETC / "central-broker", VAR / "central-broker"
    plan.dir(broker_etc, 0o750, ROOT, u.USER)
    plan.dir(broker_var, 0o700, u.USER, u.USER)
    with _scratch(existing, str(broker_etc.relative_to("/"))) as work:
        passwords = central.write_central(province, work, port=port, tls_port=tls_port,
                                          hostnames=list(hostnames) or None, run_as="root")
        conf = central.central_conf(Path(str(broker_etc)), port=port, bind="127.0.0.1", tls_port=tls_port,
                                    run_as=u.USER)
        plan.file(broker_etc / "mosquitto.conf", _persistence(conf, broker_etc, broker_var), 0o640, ROOT, u.USER)
        for name in ("passwd", "acl"):
            plan.file(broker_etc / name, (work / name).read_bytes(), 0o640, ROOT, u.USER)
        plan.file(broker_etc / "credentials.toml", (work / "credentials.toml").read_bytes(), 0o600, ROOT, ROOT)
        _tls_files(plan, work, broker_etc)
    url = _local_url(port, central.SERVICE_USER, passwords[central.SERVICE_USER])
    # the province service reads its [mqtt] url as written (QMS_MQTT_URL names an office's broker)
    plan.file(ETC / "province.toml", set_key(config.read_text(encoding="utf-8"), "mqtt", "url", toml_string(url)),
              0o640, ROOT, u.USER)
    plan.dir(VAR / "backups", 0o700, u.USER, u.USER)
    b = province.backup
    backup_paths = tuple(str(p) for p in (b.dir, b.copy_to)
                         if p is not None and not str(p).startswith(f"{VAR}/"))
    for name, text in u.province_units(prefix, mosquitto, backup_paths).items():
        plan.file(u.UNIT_DIR / name, text, 0o644)
    plan.commands += [*_debian_mosquitto(), ["systemctl", "daemon-reload"],
                      ["systemctl", "enable", "--now", u.CENTRAL_BROKER, u.PROVINCE, u.BACKUP_TIMER]]
    plan.notes.append("PostgreSQL ([postgres] dsn) được cài riêng (docs/province.md); qms-province.service chạy sau "
                      "postgresql.service khi nó ở trên máy này.")
    plan.notes.append(f"Mật khẩu của từng điểm trên broker trung tâm: {broker_etc}/credentials.toml "
                      "(đưa cho điểm làm [bridge] password_file).")
    return plan
