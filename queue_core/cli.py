"""qms-core / python -m queue_core --config site.toml"""

from __future__ import annotations

import logging
from pathlib import Path

from qms_common.config import load_site_config
from qms_common.runner import service_main, settle_memory, until_signalled
from queue_core.clock import SystemClock
from queue_core.health import HealthSettings
from queue_core.link import CoreLink
from queue_core.service import QueueService
from queue_core.store import Store

log = logging.getLogger("queue_core")


async def serve(config: Path) -> None:
    site = load_site_config(config)
    health = HealthSettings.of(site)  # a mistake in [health] stops the core before it opens anything
    try:
        store = await Store.open(site.storage_path)
    except Exception as exc:
        raise SystemExit(f"Không mở được cơ sở dữ liệu {site.storage_path}: {exc}") from None
    service = QueueService(site, store, SystemClock())
    await service.load()
    settle_memory()  # the day's book is loaded: long-lived from here
    link = CoreLink(service, health)
    log.info("Lõi hàng đợi điểm %s (%s), broker %s, dữ liệu %s", site.id, site.name,
             site.mqtt.url(), site.storage_path)
    try:
        await until_signalled(link.run(), link.stop)
    finally:
        await store.close()
        log.info("Đã dừng lõi hàng đợi")


def main(argv: list[str] | None = None) -> int:
    return service_main("qms-core", "Lõi hàng đợi (queue core) của hệ thống xếp hàng.",
                        "tệp cấu hình điểm (site.toml)", "core", serve, argv)
