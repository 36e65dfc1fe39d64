"""A minimal reading of province.toml: the province, its central broker and its offices.

Only what the central broker's configuration needs ([province], [mqtt], [[sites]]); the province
service reads its other sections itself, so unknown sections are left alone here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qms_common.config import MqttSettings
from qms_common.tomlconf import ConfigError, Table, read_toml


@dataclass(frozen=True)
class ProvinceSite:
    id: str
    name: str
    district: str


@dataclass(frozen=True)
class ProvinceConfig:
    path: Path
    id: str
    name: str
    mqtt_url: str
    sites: tuple[ProvinceSite, ...]

    @property
    def mqtt(self) -> MqttSettings:
        return MqttSettings.from_url(self.mqtt_url)


def load_province_config(path: Path) -> ProvinceConfig:
    data = read_toml(path)
    root = Table(path, "", data)
    province = root.table("province", required=True)
    pid = province.slug("id")
    name = province.str("name", required=True)
    mqtt = root.table("mqtt", required=True)
    url = mqtt.str("url", required=True)
    try:
        MqttSettings.from_url(url)
    except ValueError as exc:
        raise ConfigError(path, "mqtt.url", f"địa chỉ broker trung tâm không hợp lệ: {exc}.",
                          "Dạng đúng: mqtt://user:pass@trung-tam:1883") from None
    sites: list[ProvinceSite] = []
    for t in root.tables("sites", required=True):
        sid = t.slug("id")
        if any(s.id == sid for s in sites):
            t.fail("id", f"mã điểm {sid!r} bị lặp.", "Mỗi điểm một mã riêng.")
        sites.append(ProvinceSite(sid, t.str("name", required=True), t.str("district", default="")))
    return ProvinceConfig(path=path, id=pid, name=name, mqtt_url=url, sites=tuple(sites))
