"""The agent's configuration file (TOML), read as strictly as the site's.

    [agent]      id, notice_s, request_timeout_s, health_s
    [mqtt]       url, site                (QMS_MQTT_URL overrides url)
    [serial]     ack_timeout_s, retries, ping_s, reopen_max_s
    [[counters]] id, port, baudrate, driver, address, digits (modbus-led only)
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from counter_agent.drivers import DRIVERS
from qms_common.config import MqttSettings, parse_mqtt_table
from qms_common.tomlconf import ConfigError, Table, read_toml

SECTIONS = ("agent", "mqtt", "serial", "counters")
BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


@dataclass(frozen=True)
class SerialSettings:
    ack_timeout_s: float = 0.5   # a device answers within this, or the frame is sent again
    retries: int = 2             # sent again this many times before the device is offline
    ping_s: float = 5.0          # a device quiet this long is pinged; an offline one this often
    reopen_max_s: float = 10.0   # the longest wait between two tries to reopen a lost port


@dataclass(frozen=True)
class DeviceConfig:
    """One panel and/or keypad: a [[counters]] entry. A counter may have several (a keypad on
    the desk and a Modbus panel on the wall), and a port several counters (an RS-485 bus)."""

    counter: str
    port: str
    baudrate: int
    driver: str
    address: int
    digits: int | None = None
    key: str = ""  # where in the file, for messages

    @property
    def label(self) -> str:
        return f"quầy {self.counter} ({self.driver} {self.address:02X} @ {self.port})"


@dataclass(frozen=True)
class AgentConfig:
    path: Path
    id: str
    site: str
    mqtt: MqttSettings
    devices: tuple[DeviceConfig, ...]
    serial: SerialSettings = SerialSettings()
    notice_s: float = 3.0           # an error code or a confirmation stays this long
    request_timeout_s: float = 5.0  # the core answers a key press within this
    health_s: float = 1.0           # the health topic is published at most this often

    @property
    def counters(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.counter for d in self.devices))

    def ports(self) -> dict[str, list[DeviceConfig]]:
        by_port: dict[str, list[DeviceConfig]] = defaultdict(list)
        for d in self.devices:
            by_port[d.port].append(d)
        return dict(by_port)


def _port(path: Path, value: str) -> str:
    """A device path (relative ones are relative to this file) or a pyserial URL as written.
    Symbolic links are kept, never resolved: /dev/serial/by-id/... names the same adapter after
    it is plugged in again as another ttyUSB, and a simulator's link moves to its new pty."""
    if "://" in value:
        return value
    return os.path.abspath(path.parent / Path(value).expanduser())


def load_agent_config(path: Path | str, *, env: dict[str, str] | None = None) -> AgentConfig:
    path = Path(path)
    data = read_toml(path)
    root = Table(path, "", data)
    for k in data:
        if k not in SECTIONS:
            root.fail(k, "mục không được hỗ trợ.", f"Các mục hợp lệ: {', '.join(SECTIONS)}.")

    agent = root.table("agent", required=True)
    agent_id = agent.slug("id")
    notice_s = agent.float("notice_s", 3.0, minimum=0.1)
    request_timeout_s = agent.float("request_timeout_s", 5.0, minimum=0.1)
    health_s = agent.float("health_s", 1.0, minimum=0.05)
    agent.reject_unknown()

    mt = root.table("mqtt", required=True)
    mqtt = parse_mqtt_table(mt, env=env)
    site = mt.slug("site")
    mt.reject_unknown()

    st = root.table("serial")
    serial = SerialSettings(
        ack_timeout_s=st.float("ack_timeout_s", 0.5, minimum=0.01),
        retries=st.int("retries", 2, minimum=0, maximum=10),
        ping_s=st.float("ping_s", 5.0, minimum=0.05),
        reopen_max_s=st.float("reopen_max_s", 10.0, minimum=0.05),
    )
    st.reject_unknown()

    devices = _parse_devices(root, path)
    return AgentConfig(path=path, id=agent_id, site=site, mqtt=mqtt, devices=devices, serial=serial,
                       notice_s=notice_s, request_timeout_s=request_timeout_s, health_s=health_s)


def _parse_devices(root: Table, path: Path) -> tuple[DeviceConfig, ...]:
    devices: list[DeviceConfig] = []
    tables = root.tables("counters", required=True)
    for t in tables:
        cid = t.slug("id")
        port = t.str("port", required=True)
        baudrate = t.int("baudrate", 9600)
        if baudrate not in BAUDRATES:
            t.fail("baudrate", f"tốc độ {baudrate} không hỗ trợ.", f"Dùng một trong: {', '.join(map(str, BAUDRATES))}.")
        driver_name = t.choice("driver", tuple(DRIVERS), required=True)
        driver = DRIVERS[driver_name]
        address = t.int("address", 1)
        if not driver.min_address <= address <= driver.max_address:
            t.fail("address", f"địa chỉ {address} ngoài khoảng của {driver_name}.",
                   f"Dùng {driver.min_address}–{driver.max_address}.")
        digits = None
        if driver_name == "modbus-led":
            digits = t.int("digits", 4, minimum=1, maximum=16)
        t.reject_unknown()
        devices.append(DeviceConfig(counter=cid, port=_port(path, port), baudrate=baudrate,
                                    driver=driver_name, address=address, digits=digits, key=t.name))
    _check_buses(path, devices)
    return tuple(devices)


def _check_buses(path: Path, devices: list[DeviceConfig]) -> None:
    """Devices sharing a port share one bus: one speed, one protocol, one device per address."""
    first: dict[str, DeviceConfig] = {}
    seen: dict[tuple[str, int], DeviceConfig] = {}
    for d in devices:
        f = first.setdefault(d.port, d)
        if d.baudrate != f.baudrate:
            raise ConfigError(path, f"{d.key}.baudrate", f"cổng {d.port} đã dùng tốc độ {f.baudrate} ở {f.key}.",
                              "Các thiết bị trên cùng một cổng (một bus RS-485) phải cùng tốc độ.")
        if d.driver != f.driver:
            raise ConfigError(path, f"{d.key}.driver", f"cổng {d.port} đã dùng driver {f.driver} ở {f.key}.",
                              "Các thiết bị trên cùng một cổng phải cùng giao thức; dùng một cổng khác.")
        other = seen.get((d.port, d.address))
        if other is not None:
            raise ConfigError(path, f"{d.key}.address",
                              f"địa chỉ {d.address} trên cổng {d.port} đã dùng ở {other.key}.",
                              "Mỗi thiết bị trên một bus cần một địa chỉ riêng.")
        seen[(d.port, d.address)] = d
