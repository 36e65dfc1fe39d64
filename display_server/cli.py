"""qms-web / python -m display_server --config site.toml"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from aiohttp import web

from display_server.app import create_app
from display_server.settings import load_server_settings
from qms_common.config import load_site_config
from qms_common.logs import setup_logging
from qms_common.runner import exit_on_config_error, until_signalled
from qms_common.tomlconf import ConfigError

log = logging.getLogger("display_server")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="qms-web",
                                description="Máy chủ web: màn hình TV phòng chờ và giọng đọc tiếng Việt.")
    p.add_argument("--config", required=True, type=Path, help="tệp cấu hình điểm (site.toml)")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (mặc định INFO)")
    return p.parse_args(argv)


async def serve(config: Path) -> None:
    site = load_site_config(config)
    settings = load_server_settings(site)
    app = create_app(site, settings)
    runner = web.AppRunner(app, shutdown_timeout=5, access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, settings.web.host, settings.web.port).start()
        except OSError as exc:
            raise SystemExit(f"Không mở được cổng web {settings.web.host}:{settings.web.port}: {exc.strerror}. "
                             f"Đổi [web] port trong {config} hoặc dừng chương trình đang dùng cổng đó.") from None
        host = "127.0.0.1" if settings.web.host in ("0.0.0.0", "::") else settings.web.host
        log.info("Máy chủ web điểm %s (%s), broker %s: màn hình TV http://%s:%d/display", site.id, site.name,
                 site.mqtt.url(), host, settings.web.port)
        await until_signalled(asyncio.Event().wait())
    finally:
        await runner.cleanup()
        log.info("Đã dừng máy chủ web")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level, "web")
    try:
        asyncio.run(serve(args.config))
    except ConfigError as exc:
        return exit_on_config_error(exc)
    return 0
