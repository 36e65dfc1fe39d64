"""qms-web / python -m display_server --config site.toml: the web server.
qms-web hash-password: a password hash for [[accounts]] of the site file.
qms-web import-procedures FILE --config site.toml: the procedure catalogue from JSON or CSV."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sqlite3
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


def import_procedures_command(argv: list[str]) -> int:
    """Reads the whole file first: any bad row and nothing is written; then one transaction."""
    from collections import Counter

    from display_server.catalogue import catalogue_path
    from display_server.catalogue.importer import CatalogueFileError, parse
    from display_server.catalogue.search import FieldMap
    from display_server.catalogue.store import write_procedures
    from qms_common.config import load_site_config
    from qms_common.runner import exit_on_config_error
    from qms_common.tomlconf import ConfigError

    p = argparse.ArgumentParser(
        prog="qms-web import-procedures",
        description="Nhập danh mục thủ tục hành chính từ tệp JSON hoặc CSV (imports the procedure catalogue). "
                    "Nhập lại thì cập nhật theo mã, không bao giờ trùng. Cột/khóa: code, name, field, level, "
                    "processing_time, fees, documents, legal_basis, submit_at (xem docs/web.md).")
    p.add_argument("file", type=Path, help="tệp .json hoặc .csv")
    p.add_argument("--config", type=Path, help="tệp cấu hình điểm (site.toml): nơi lưu và các lĩnh vực")
    p.add_argument("--database", type=Path, help="tệp SQLite của danh mục (mặc định theo --config)")
    p.add_argument("--format", choices=("json", "csv"), help="mặc định theo đuôi tệp")
    p.add_argument("--replace", action="store_true", help="xóa các thủ tục không có trong tệp")
    args = p.parse_args(argv)
    if args.config is None and args.database is None:
        p.error("cần --config site.toml (hoặc --database TỆP)")
    fields = FieldMap([])
    database = args.database
    if args.config is not None:
        try:
            site = load_site_config(args.config)
            database = database or catalogue_path(site)
        except ConfigError as exc:
            return exit_on_config_error(exc)
        fields = FieldMap((f.id, f.name) for f in site.fields)
    kind = args.format or args.file.suffix.lower().lstrip(".")
    if kind not in ("json", "csv"):
        print(f"Không biết định dạng của {args.file}: dùng tệp .json hoặc .csv, hoặc --format.", file=sys.stderr)
        return 1
    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"Không đọc được {args.file}: {exc}", file=sys.stderr)
        return 1
    try:
        procedures = parse(text, kind)
    except CatalogueFileError as exc:
        print(f"{args.file}: {len(exc.errors)} lỗi, chưa nhập gì (nothing imported):", file=sys.stderr)
        for e in exc.errors:
            print(f"  {e}", file=sys.stderr)
        return 1
    print(f"{args.file}: {len(procedures)} thủ tục hợp lệ, đang ghi vào {database}…", flush=True)

    def progress(done: int, total: int) -> None:
        print(f"  … {done}/{total}", flush=True)

    try:
        result = write_procedures(database, procedures, replace=args.replace, progress=progress)
    except (OSError, sqlite3.Error) as exc:
        print(f"Không ghi được {database}: {exc}. Chưa nhập gì (nothing imported).", file=sys.stderr)
        return 1
    print(f"Đã nhập {len(procedures)} thủ tục: thêm {result.added}, cập nhật {result.updated}, "
          f"không đổi {result.unchanged}" + (f", xóa {result.removed}" if args.replace else "") + ".")
    unmapped = Counter(p.field_name for p in procedures if fields.resolve(p.field_name)[0] is None)
    if args.config is not None:
        for name, n in unmapped.items():
            print(f"Lưu ý: lĩnh vực “{name}” ({n} thủ tục) không có trong [[fields]] của {args.config}: "
                  "các thủ tục này không có nút “Lấy số”.")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["hash-password"]:
        return hash_password_command(argv[1:])
    if argv[:1] == ["import-procedures"]:
        return import_procedures_command(argv[1:])
    return service_main("qms-web", "Máy chủ web: TV phòng chờ, ki-ốt, bàn điều khiển quầy, đánh giá, giám sát. "
                        "`qms-web hash-password` tạo mã băm mật khẩu cho [[accounts]]; "
                        "`qms-web import-procedures TỆP --config site.toml` nhập danh mục thủ tục.",
                        "tệp cấu hình điểm (site.toml)", "web", serve, argv)
