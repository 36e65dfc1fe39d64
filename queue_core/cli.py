"""qms-core / python -m queue_core --config site.toml"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
from pathlib import Path

from qms_common.config import load_site_config
from qms_common.logs import setup_logging
from qms_common.runner import exit_on_config_error, until_signalled
from qms_common.tomlconf import ConfigError
from queue_core.clock import SystemClock
from queue_core.link import CoreLink
from queue_core.service import QueueService
from queue_core.store import Store

log = logging.getLogger("queue_core")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="qms-core", description="Lõi hàng đợi (queue core) của hệ thống xếp hàng.")
    p.add_argument("--config", required=True, type=Path, help="tệp cấu hình điểm (site.toml)")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (mặc định INFO)")
    return p.parse_args(argv)


async def serve(config: Path) -> None:
    site = load_site_config(config)
    try:
        store = await Store.open(site.storage_path)
    except Exception as exc:
        raise SystemExit(f"Không mở được cơ sở dữ liệu {site.storage_path}: {exc}") from None
    service = QueueService(site, store, SystemClock())
    await service.load()
    # The day's book is long-lived: keep the cyclic collector from rescanning it under load
    # (every command allocates a few hundred short-lived objects; none form cycles we keep).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    link = CoreLink(service)
    log.info("Lõi hàng đợi điểm %s (%s), broker %s, dữ liệu %s", site.id, site.name,
             site.mqtt.url(), site.storage_path)
    try:
        await until_signalled(link.run(), link.stop)
    finally:
        await store.close()
        log.info("Đã dừng lõi hàng đợi")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level, "core")
    try:
        asyncio.run(serve(args.config))
    except ConfigError as exc:
        return exit_on_config_error(exc)
    return 0
