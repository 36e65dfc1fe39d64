"""How long the dashboard takes to load, for the benchmark (scripts/bench_province.py) and tests.

Logs in through the form like a person, then loads the dashboard `repeat` times, reading for each
load the time seen by the client (request sent to the last byte) and the server's own share from
its Server-Timing header (the database queries and the page's rendering).

    QMS_PROVINCE_PASSWORD=... python -m province.web.measure --url http://127.0.0.1:8090 --user tinh
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass

import aiohttp

_TIMING_RE = re.compile(r"(\w+);dur=([0-9.]+)")


@dataclass(frozen=True)
class DashboardTiming:
    wall_s: float      # at the client: request sent to the whole page read
    server_s: float    # the handler's own time (Server-Timing total)
    db_s: float        # of which the database queries
    offices: int       # rows on the page
    size_bytes: int


class LoginFailed(Exception):
    pass


async def dashboard_timings(base_url: str, username: str, password: str, *, repeat: int = 5,
                            path: str = "/") -> list[DashboardTiming]:
    base = base_url.rstrip("/")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(base + "/dang-nhap") as form:
            token = re.search(r'name="csrf" value="([^"]+)"', await form.text())
        if token is None:
            raise LoginFailed("không thấy biểu mẫu đăng nhập")
        async with http.post(base + "/dang-nhap", allow_redirects=False, data={
                "csrf": token.group(1), "username": username, "password": password, "next": path}) as r:
            if r.status != 303:
                raise LoginFailed(f"đăng nhập không thành công (HTTP {r.status})")
        out = []
        for _ in range(repeat):
            started = time.perf_counter()
            async with http.get(base + path, allow_redirects=False) as page:
                body = await page.read()
                wall = time.perf_counter() - started
                if page.status != 200:
                    raise LoginFailed(f"bảng điều khiển trả HTTP {page.status}")
                timing = dict(_TIMING_RE.findall(page.headers.get("Server-Timing", "")))
            out.append(DashboardTiming(wall, float(timing.get("total", "nan")) / 1000,
                                       float(timing.get("db", "nan")) / 1000, body.count(b"<tr data-site="),
                                       len(body)))
        return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m province.web.measure",
        description="Đo thời gian tải bảng điều khiển tỉnh (mật khẩu trong QMS_PROVINCE_PASSWORD).")
    p.add_argument("--url", default="http://127.0.0.1:8090")
    p.add_argument("--user", required=True)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    password = os.environ.get("QMS_PROVINCE_PASSWORD")
    if not password:
        print("Thiếu mật khẩu: đặt biến môi trường QMS_PROVINCE_PASSWORD.", file=sys.stderr)
        return 2
    try:
        timings = asyncio.run(dashboard_timings(args.url, args.user, password, repeat=args.repeat))
    except (LoginFailed, aiohttp.ClientError) as exc:
        print(f"Không đo được: {exc}", file=sys.stderr)
        return 1
    print(json.dumps([asdict(t) for t in timings], ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
