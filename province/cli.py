"""qms-province / python -m province --config province.toml"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from province.service import ProvinceService
from province.settings import load_province
from province.store import ProvinceStore
from qms_common.runner import service_main, until_signalled

log = logging.getLogger("province")


def safe_dsn(dsn: str) -> str:
    """The DSN as a log may show it: without its password."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


async def serve(config: Path) -> None:
    settings = load_province(config)
    try:
        store = await ProvinceStore.open(settings.postgres_dsn)
    except Exception as exc:
        raise SystemExit(f"Không kết nối được PostgreSQL {safe_dsn(settings.postgres_dsn)}: {exc}") from None
    service = ProvinceService(settings, store)
    log.info("Dịch vụ tỉnh %s: %d điểm, broker trung tâm %s", settings.id, len(settings.sites),
             settings.mqtt.url())
    try:
        await until_signalled(service.run())
    finally:
        await service.close()
        log.info("Đã dừng dịch vụ tỉnh")


def main(argv: list[str] | None = None) -> int:
    return service_main("qms-province", "Dịch vụ tỉnh: gom sự kiện, trạng thái của mọi điểm vào PostgreSQL.",
                        "tệp cấu hình tỉnh (province.toml)", "province", serve, argv)
