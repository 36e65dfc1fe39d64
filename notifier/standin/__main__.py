"""python -m notifier.standin --port P: the stand-in providers on 127.0.0.1 until SIGTERM/SIGINT.

Prints `standin listening on http://HOST:PORT` once it accepts connections (with --port 0, the
port the system chose)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiohttp import web

from notifier.standin.server import make_app
from notifier.standin.state import StandinSettings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m notifier.standin",
                                description="Máy chủ giả lập Zalo ZNS, eSMS, SpeedSMS và webhook")
    p.add_argument("--port", type=int, required=True, help="cổng lắng nghe (0: để hệ thống chọn)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--zalo-app-id", default=StandinSettings.zalo_app_id)
    p.add_argument("--zalo-secret", default=StandinSettings.zalo_secret)
    p.add_argument("--zalo-oa-secret", default=None, help="khóa ký sự kiện webhook của OA (mặc định: --zalo-secret)")
    p.add_argument("--zalo-refresh-token", default=None, help="refresh token đầu tiên được chấp nhận")
    p.add_argument("--token-lifetime", type=int, default=StandinSettings.token_lifetime_s,
                   help="thời hạn access token (giây)")
    p.add_argument("--receipt-url", default=None, help="nơi gửi báo nhận user_received_message")
    p.add_argument("--webhook-secret", default=None, help="khóa kiểm tra chữ ký webhook")
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error("--port phải từ 0 đến 65535")
    if args.token_lifetime <= 0:
        p.error("--token-lifetime phải dương")
    return args


async def serve(args: argparse.Namespace) -> None:
    settings = StandinSettings(zalo_app_id=args.zalo_app_id, zalo_secret=args.zalo_secret,
                               zalo_oa_secret=args.zalo_oa_secret,
                               zalo_refresh_token=args.zalo_refresh_token, token_lifetime_s=args.token_lifetime,
                               receipt_url=args.receipt_url, webhook_secret=args.webhook_secret)
    runner = web.AppRunner(make_app(settings), shutdown_timeout=2)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        port = runner.addresses[0][1]
        print(f"standin listening on http://{args.host}:{port}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(args))
    except OSError as e:
        print(f"Không mở được cổng {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
