"""The systemd units of an office (or of a province's central server), as text: pure, no I/O.

Every long-running part gets the same restart policy and the same hardening; what differs is
what it needs from the machine (the agents' serial ports, a receipt printer, a port below 1024).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

ETC = PurePosixPath("/etc/qms")
VAR = PurePosixPath("/var/lib/qms")
UNIT_DIR = PurePosixPath("/etc/systemd/system")
USER = "qms"

BROKER = "qms-broker.service"
CORE = "qms-core.service"
WEB = "qms-web.service"
NOTIFY = "qms-notify.service"
DOSSIERS = "qms-dossiers.service"
AGENT_TEMPLATE = "qms-agent@.service"
BACKUP = "qms-backup.service"
BACKUP_TIMER = "qms-backup.timer"
CENTRAL_BROKER = "qms-central-broker.service"
PROVINCE = "qms-province.service"

# Serial adapters: USB (FTDI, CH340: ttyUSB; CDC: ttyACM), on-board (ttyS) and a Raspberry Pi's
# UART (ttyAMA). Names from /proc/devices, so a port that appears later is allowed too.
SERIAL_DEVICES = ("char-ttyUSB", "char-ttyACM", "char-ttyS", "char-ttyAMA")


def agent_unit(agent_id: str) -> str:
    return f"qms-agent@{agent_id}.service"


@dataclass(frozen=True)
class Devices:
    """What a service may open under /dev besides the pseudo-devices (null, urandom…)."""

    allow: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.allow)


SERIAL = Devices(allow=SERIAL_DEVICES, groups=("dialout",))


def printer_devices(printer_types: set[str]) -> Devices:
    """A receipt printer on the web server's machine: a serial one, a USB one through libusb, or
    the kernel's usblp (/dev/usb/lp0, `type = "file"`); a network printer needs nothing."""
    allow: list[str] = []
    groups: list[str] = []
    if "serial" in printer_types:
        allow += SERIAL_DEVICES
        groups.append("dialout")
    if "usb" in printer_types:
        allow.append("char-usb_device")
        groups.append("plugdev")
    if "file" in printer_types:
        allow += ["char-usb", "char-lp"]
        groups.append("lp")
    return Devices(tuple(allow), tuple(groups))


@dataclass(frozen=True)
class Service:
    name: str
    description: str
    exec_start: str
    after: tuple[str, ...] = ()
    wants: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    env_file: str | None = None
    read_write: tuple[str, ...] = (str(VAR),)
    devices: Devices = field(default_factory=Devices)
    bind_low_port: bool = False
    exec_reload: str | None = None
    oneshot: bool = False
    user: str = USER
    capabilities: tuple[str, ...] = ()
    background: bool = False  # yields the CPU and the disk to the office's services


def _hardening(s: Service) -> list[str]:
    lines = [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ReadWritePaths={' '.join(s.read_write)}",
        "ProtectHome=yes",
        "PrivateTmp=yes",
    ]
    if s.devices.any:
        # PrivateDevices would hide the ports; a closed policy still denies everything else
        lines += ["PrivateDevices=no", "DevicePolicy=closed"]
        lines += [f"DeviceAllow={d} rw" for d in s.devices.allow]
        lines.append(f"SupplementaryGroups={' '.join(s.devices.groups)}")
    else:
        lines.append("PrivateDevices=yes")
    if s.bind_low_port:
        lines += ["CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE"]
    elif s.capabilities:
        lines += [f"CapabilityBoundingSet={' '.join(s.capabilities)}", "AmbientCapabilities="]
    else:
        lines += ["CapabilityBoundingSet=", "AmbientCapabilities="]
    lines += [
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "ProtectProc=invisible",
        # AF_NETLINK: getaddrinfo asks the kernel for the machine's addresses (AI_ADDRCONFIG)
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RemoveIPC=yes",
        "PrivateMounts=yes",
        # CPython and Mosquitto never need memory both writable and executable (no JIT)
        "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service",
    ]
    if not s.capabilities:
        # the pair systemd.exec(5) suggests: nothing of ours changes owners, users or limits
        lines.append("SystemCallFilter=~@privileged @resources")
    lines += [
        "SystemCallErrorNumber=EPERM",
        "SystemCallArchitectures=native",
        "UMask=0077",
    ]
    return lines


def _identifier(unit: str) -> str:
    """qms-core.service -> qms-core; qms-agent@.service -> qms-agent (journalctl -t qms-agent)."""
    return unit.removesuffix(".service").split("@")[0]


def service_text(s: Service) -> str:
    after = ["network-online.target", *s.after]
    wants = ["network-online.target", *s.wants]
    unit = [
        "# Written by qms-admin install; run it again rather than editing this file",
        "# (local changes belong in a drop-in: systemctl edit " + s.name + ").",
        "[Unit]",
        f"Description={s.description}",
        f"After={' '.join(after)}",
        f"Wants={' '.join(wants)}",
    ]
    if s.conflicts:
        unit.append(f"Conflicts={' '.join(s.conflicts)}")
    if not s.oneshot:
        # a crash loop (a broken disk, a bad upgrade) stops after 30 starts in 10 minutes instead
        # of filling the journal; qms-admin status then names the failed unit
        unit += ["StartLimitIntervalSec=600", "StartLimitBurst=30"]
    svc = ["", "[Service]", f"Type={'oneshot' if s.oneshot else 'exec'}", f"User={s.user}", f"Group={s.user}",
           f"WorkingDirectory={VAR}"]
    if s.background:
        svc += ["Nice=10", "IOSchedulingClass=idle"]
    if s.env_file:
        svc.append(f"EnvironmentFile={s.env_file}")
    svc += ["Environment=PYTHONUNBUFFERED=1", "Environment=LANG=C.UTF-8", f"ExecStart={s.exec_start}"]
    if s.exec_reload:
        svc.append(f"ExecReload={s.exec_reload}")
    if not s.oneshot:
        # exit 2 is a configuration mistake: restarting cannot fix it, the operator must
        svc += ["Restart=on-failure", "RestartSec=5s", "RestartPreventExitStatus=2", "TimeoutStopSec=20s"]
    svc += ["StandardOutput=journal", "StandardError=journal", f"SyslogIdentifier={_identifier(s.name)}"]
    svc += _hardening(s)
    install = [] if s.oneshot else ["", "[Install]", "WantedBy=multi-user.target"]
    return "\n".join(unit + svc + install) + "\n"


@dataclass(frozen=True)
class SiteUnits:
    """What the office's units need to know about the machine and the site."""

    prefix: str                      # the venv: {prefix}/bin/qms-core…
    mosquitto: str                   # /usr/sbin/mosquitto
    notify: bool = False             # [notify]: the notifier runs
    web_devices: Devices = field(default_factory=Devices)
    web_low_port: bool = False
    backup_paths: tuple[str, ...] = ()  # [backup] dir and copy_to outside /var/lib/qms


def _bin(prefix: str, name: str) -> str:
    return f"{prefix.rstrip('/')}/bin/{name}"


def site_units(u: SiteUnits) -> dict[str, str]:
    conf = f"--config {ETC}/site.toml"
    after_broker = (BROKER,)
    # Wants, not Requires: every part reconnects by itself, so a broker restart must not restart
    # the core (and the core's restart must not drop the web server's TV connections)
    services = [
        Service(BROKER, "Hệ thống xếp hàng: broker MQTT (Mosquitto)",
                f"{u.mosquitto} -c {ETC}/broker/mosquitto.conf",
                conflicts=("mosquitto.service",), read_write=(f"{VAR}/broker",),
                exec_reload="/bin/kill -HUP $MAINPID"),
        Service(CORE, "Hệ thống xếp hàng: lõi hàng đợi", f"{_bin(u.prefix, 'qms-core')} {conf}",
                after=after_broker, wants=after_broker, env_file=f"{ETC}/env/core.env"),
        Service(WEB, "Hệ thống xếp hàng: máy chủ web (TV, ki-ốt, quầy)", f"{_bin(u.prefix, 'qms-web')} {conf}",
                after=(BROKER, CORE), wants=after_broker, env_file=f"{ETC}/env/web.env",
                devices=u.web_devices, bind_low_port=u.web_low_port),
        Service(DOSSIERS, "Hệ thống xếp hàng: dịch vụ hồ sơ", f"{_bin(u.prefix, 'qms-dossiers')} {conf}",
                after=(BROKER, CORE), wants=after_broker, env_file=f"{ETC}/env/dossiers.env"),
    ]
    if u.notify:
        services.append(Service(NOTIFY, "Hệ thống xếp hàng: gửi tin nhắn cho công dân",
                                f"{_bin(u.prefix, 'qms-notify')} {conf}", after=(BROKER, CORE),
                                wants=after_broker, env_file=f"{ETC}/env/notify.env"))
    services.append(Service(AGENT_TEMPLATE, "Hệ thống xếp hàng: tác tử quầy %i",
                            f"{_bin(u.prefix, 'qms-agent')} --config {ETC}/agents/%i.toml",
                            after=(BROKER, CORE), wants=after_broker, env_file=f"{ETC}/env/agent-%i.env",
                            devices=SERIAL))
    units = {s.name: service_text(s) for s in services}
    return {**units, **backup_units(u.prefix, conf, u.backup_paths)}


def backup_units(prefix: str, conf: str, backup_paths: tuple[str, ...]) -> dict[str, str]:
    """qms-backup.service and its nightly timer: `qms-admin backup {conf}` (an office's site.toml
    or a province's province.toml)."""
    backup = Service(BACKUP, "Hệ thống xếp hàng: sao lưu hằng đêm",
                     f"{_bin(prefix, 'qms-admin')} backup {conf}",
                     # "-": a second disk that is not plugged in must not stop the backup
                     # to /var/lib/qms (qms-admin backup says the copy failed)
                     read_write=(str(VAR), *(f"-{p}" for p in backup_paths)), oneshot=True,
                     # root, to read the secrets of /etc/qms (the env files are root's alone).
                     # The databases are qms's, 0600: reading one in WAL mode opens its -shm
                     # read-write, and SQLite, as root, hands a -wal/-shm it creates to the
                     # database's owner (fchown), or the service could not open it again.
                     user="root", capabilities=("CAP_DAC_OVERRIDE", "CAP_CHOWN", "CAP_FOWNER"),
                     background=True)
    return {BACKUP: service_text(backup), BACKUP_TIMER: backup_timer_text()}


def backup_timer_text() -> str:
    return "\n".join([
        "# Written by qms-admin install.",
        "[Unit]",
        "Description=Hệ thống xếp hàng: sao lưu hằng đêm (02:30)",
        "",
        "[Timer]",
        "OnCalendar=*-*-* 02:30:00",
        # an office PC is often switched off at night: the missed backup runs at the next boot
        "Persistent=true",
        "RandomizedDelaySec=10min",
        f"Unit={BACKUP}",
        "",
        "[Install]",
        "WantedBy=timers.target",
    ]) + "\n"


def province_units(prefix: str, mosquitto: str, backup_paths: tuple[str, ...] = ()) -> dict[str, str]:
    services = [
        Service(CENTRAL_BROKER, "Hệ thống xếp hàng cấp tỉnh: broker MQTT trung tâm",
                f"{mosquitto} -c {ETC}/central-broker/mosquitto.conf", conflicts=("mosquitto.service",),
                read_write=(f"{VAR}/central-broker",), exec_reload="/bin/kill -HUP $MAINPID"),
        # PostgreSQL is ordered before when it runs on this machine; a remote one is reconnected to
        Service(PROVINCE, "Hệ thống xếp hàng cấp tỉnh: dịch vụ tỉnh",
                f"{_bin(prefix, 'qms-province')} --config {ETC}/province.toml",
                after=(CENTRAL_BROKER, "postgresql.service"), wants=(CENTRAL_BROKER,)),
    ]
    units = {s.name: service_text(s) for s in services}
    return {**units, **backup_units(prefix, f"--config {ETC}/province.toml", backup_paths)}
