"""qms-notify / python -m notifier --config site.toml"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from notifier.service import build, receipt_app
from notifier.settings import load_notify_settings
from qms_common.config import load_site_config
from qms_common.runner import service_main, until_signalled

log = logging.getLogger("notifier")


async def serve(config: Path) -> None:
    site = load_site_config(config)
    settings = load_notify_settings(site)
    if settings is None:
        raise SystemExit(f"{config}: không có mục [notify]; điểm này không gửi tin nhắn (xem docs/notify.md).")
    try:
        notifier = await build(site, settings)
    except Exception as exc:
        raise SystemExit(f"Không khởi động được bộ gửi tin: {exc}") from None
    runner: web.AppRunner | None = None
    app = receipt_app(notifier)
    if app is not None and settings.listen is not None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, port = settings.listen
        await web.TCPSite(runner, host, port).start()
        log.info("Nhận báo nhận tin Zalo tại http://%s:%d/zalo/events", host, port)
    log.info("Bộ gửi tin điểm %s: kênh %s, %d webhook, hộp thư đi %s", site.id,
             ", ".join(notifier.channels) or "không có", len(notifier.webhooks), settings.store)
    try:
        await until_signalled(notifier.run(), notifier.close)
    finally:
        if runner is not None:
            await runner.cleanup()
        await notifier.close()
        await notifier.outbox.close()
        log.info("Đã dừng bộ gửi tin")


def main(argv: list[str] | None = None) -> int:
    return service_main("qms-notify", "Bộ gửi tin nhắn Zalo, SMS và webhook cho công dân và các hệ thống khác.",
                        "tệp cấu hình điểm (site.toml)", "notifier", serve, argv)
