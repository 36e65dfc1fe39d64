"""qms-province / python -m province --config province.toml"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from province.service import ProvinceService
from province.settings import load_province
from province.store import ProvinceStore
from province.web.app import make_app
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
    runner: web.AppRunner | None = None
    web_store: ProvinceStore | None = None
    try:
        # the dashboard has connections of its own: a burst of writes never makes a page wait for one
        web_store = await ProvinceStore.open(settings.postgres_dsn, min_size=1, max_size=4)
        runner = web.AppRunner(make_app(settings, web_store), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, settings.web_host, settings.web_port).start()
        except OSError as exc:
            # the offices' data comes first: the aggregator keeps writing without its dashboard
            log.error("Không mở được cổng bảng điều khiển %s:%d ([web] host/port): %s; dịch vụ vẫn ghi dữ liệu "
                      "nhưng không có bảng điều khiển", settings.web_host, settings.web_port, exc.strerror or exc)
        log.info("Dịch vụ tỉnh %s: %d điểm, broker trung tâm %s, bảng điều khiển http://%s:%d/",
                 settings.id, len(settings.sites), settings.mqtt.url(), settings.web_host, settings.web_port)
        await until_signalled(service.run())
    finally:
        if runner is not None:
            await runner.cleanup()
        if web_store is not None:
            await web_store.close()
        await service.close()
        log.info("Đã dừng dịch vụ tỉnh")


def main(argv: list[str] | None = None) -> int:
    return service_main("qms-province", "Dịch vụ tỉnh: gom sự kiện, trạng thái của mọi điểm vào PostgreSQL; "
                        "bảng điều khiển, API và báo cáo.",
                        "tệp cấu hình tỉnh (province.toml)", "province", serve, argv)
