"""qms-web / python -m display_server --config site.toml: the web server.
qms-web hash-password: a password hash for [[accounts]] of the site file."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from pathlib import Path

from aiohttp import web

from display_server.accounts.store import hash_password
from qms_common.runner import service_main, settle_memory, until_signalled

log = logging.getLogger("display_server")


async def serve(config: Path) -> None:
    # imported here: `qms-web hash-password` needs none of the server
    from display_server.app import create_app
    from display_server.settings import load_server_settings
    from qms_common.config import load_site_config

    site = load_site_config(config)
    settings = load_server_settings(site)
    app = create_app(site, settings)
    runner = web.AppRunner(app, shutdown_timeout=5, access_log=None)
    await runner.setup()
    settle_memory()
    try:
        try:
            await web.TCPSite(runner, settings.web.host, settings.web.port).start()
        except OSError as exc:
            raise SystemExit(f"Không mở được cổng web {settings.web.host}:{settings.web.port}: {exc.strerror}. "
                             f"Đổi [web] port trong {config} hoặc dừng chương trình đang dùng cổng đó.") from None
        host = "127.0.0.1" if settings.web.host in ("0.0.0.0", "::") else settings.web.host
        base = f"http://{host}:{settings.web.port}"
        log.info("Máy chủ web điểm %s (%s), broker %s: màn hình TV %s/display, ki-ốt %s/kiosk, quầy %s/counter, "
                 "giám sát %s/supervisor", site.id, site.name, site.mqtt.url(), base, base, base, base)
        if not settings.accounts:
            log.warning("Chưa có tài khoản [[accounts]]: bàn điều khiển quầy và trang giám sát chưa dùng được "
                        "(tạo mã băm mật khẩu: qms-web hash-password)")
        await until_signalled(asyncio.Event().wait())
    finally:
        await runner.cleanup()
        log.info("Đã dừng máy chủ web")


MIN_PASSWORD = 8


def hash_password_command(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="qms-web hash-password",
                                description="In mã băm mật khẩu cho mục [[accounts]] của tệp cấu hình "
                                            "(prints a password hash for [[accounts]]).")
    p.add_argument("--stdin", action="store_true", help="đọc mật khẩu từ dòng đầu của stdin (cho script)")
    args = p.parse_args(argv)
    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Mật khẩu (password): ")
        if getpass.getpass("Nhập lại (again): ") != password:
            print("Hai lần nhập không khớp (the two do not match).", file=sys.stderr)
            return 1
    if len(password) < MIN_PASSWORD:
        print(f"Mật khẩu cần ít nhất {MIN_PASSWORD} ký tự (at least {MIN_PASSWORD} characters).", file=sys.stderr)
        return 1
    print(f'password_hash = "{hash_password(password)}"')
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["hash-password"]:
        return hash_password_command(argv[1:])
    return service_main("qms-web", "Máy chủ web: TV phòng chờ, ki-ốt, bàn điều khiển quầy, đánh giá, giám sát. "
                        "`qms-web hash-password` tạo mã băm mật khẩu cho [[accounts]].",
                        "tệp cấu hình điểm (site.toml)", "web", serve, argv)
