"""`make run-province`: a province on this machine, to look at.

Starts, in a scratch directory (removed at the end; QMS_KEEP=1 keeps it): a PostgreSQL, the central
Mosquitto as `qms-broker central` writes it, the three offices of examples/province.toml (each its
own Mosquitto bridged to the centre as `qms-broker --bridge` writes it, and a real core), the
aggregator with its dashboard (`python -m province`), and simulated counters in every office: a
kiosk issuing tickets, officers calling, serving and finishing them, citizens rating. Prints the
URLs and the province login; children that die are restarted; Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import random
import shutil
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from display_server.accounts.store import hash_password  # noqa: E402
from province.settings import load_province  # noqa: E402
from qms_common.devbroker import free_port, scratch_dir  # noqa: E402
from scripts.demo import tail  # noqa: E402
from tests.support.postgres import start_postgres  # noqa: E402
from tests.support.province import (  # noqa: E402
    WATCH_USER,
    AggregatorProcess,
    OfficeDriver,
    OfficeNode,
    eventually,
    site_online,
    start_central,
    start_office,
)

EXAMPLE = ROOT / "examples" / "province.toml"
# The province login of this demo (DEMO ONLY: the password is public).
LOGIN = ("tinh", "tinh-demo")
KIOSK_FIELDS = ("dat-dai", "ho-tich")
COUNTERS = ("1", "2", "3")


async def kiosk(d: OfficeDriver, stop: asyncio.Event, mean_gap_s: float) -> None:
    """Citizens taking tickets, now and then."""
    while not stop.is_set():
        with contextlib.suppress(Exception):  # a core restarting: the next citizen tries again
            await d.request(d.topics.cmd_ticket, field=random.choice(KIOSK_FIELDS), source="kiosk-1")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), random.expovariate(1 / mean_gap_s))


async def officer(d: OfficeDriver, counter: str, stop: asyncio.Event, mean_service_s: float) -> None:
    """A counter calling the next ticket, serving it, finishing, and its citizen rating (mostly)."""
    while not stop.is_set():
        called = None
        with contextlib.suppress(Exception):
            called = (await d.request(d.topics.cmd_counter(counter), action="call_next")).get("ticket")
        pause = random.expovariate(1 / mean_service_s) if called else 5.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)  # serving, or an empty queue
        if called:
            with contextlib.suppress(Exception):
                await d.request(d.topics.cmd_counter(counter), action="finish")
                if random.random() < 0.8:
                    await d.request(d.topics.cmd_rating, counter=counter, score=random.choice((1, 2, 3, 3)))


def restart_dead(offices: list[OfficeNode], aggregator: AggregatorProcess) -> None:
    for o in offices:
        for name, proc, start, log in ((f"broker {o.site}", o.broker.process, o.broker.start, o.broker.log_path),
                                       (f"lõi {o.site}", o.core.proc, o.core.start, o.core.log_path)):
            if proc is not None and proc.poll() is not None:
                print(f"[tỉnh] {name} dừng với mã {proc.returncode}; khởi động lại. Nhật ký:\n{tail(log)}",
                      flush=True)
                start()
    if aggregator.proc is not None and aggregator.proc.poll() is not None:
        print(f"[tỉnh] dịch vụ tỉnh dừng với mã {aggregator.proc.returncode}; khởi động lại. Nhật ký:\n"
              f"{tail(aggregator.log_path)}", flush=True)
        aggregator.start()


async def run(tmp: Path, args: argparse.Namespace) -> None:
    example = load_province(EXAMPLE)
    pg = start_postgres()
    offices: list[OfficeNode] = []
    aggregator: AggregatorProcess | None = None
    central = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        dsn = pg.create_database("qms_province")
        web_port = free_port(example.web_port)
        account = (f'\n[[accounts]]\nusername = "{LOGIN[0]}"\npassword_hash = "{hash_password(LOGIN[1])}"\n'
                   'role = "province"\n')
        central, config = start_central(tmp, dsn, list(example.sites), province_id=example.id, web_port=web_port,
                                        accounts=account)
        for s in example.sites:
            offices.append(start_office(tmp / s.id, s.id, central))
        aggregator = AggregatorProcess(config, tmp / "province.log").start()
        async with contextlib.AsyncExitStack() as stack:
            drivers = [await stack.enter_async_context(OfficeDriver(o)) for o in offices]
            for o in offices:
                await eventually(lambda o=o: _online(dsn, o.site), timeout=60, what=f"{o.site} trực tuyến")
            tasks = [asyncio.create_task(kiosk(d, stop, args.ticket_every)) for d in drivers]
            tasks += [asyncio.create_task(officer(d, c, stop, args.service_s)) for d in drivers for c in COUNTERS]
            print_banner(tmp, dsn, central.url(WATCH_USER), config, offices, web_port)
            while not stop.is_set():
                restart_dead(offices, aggregator)
                if central.broker.process is not None and central.broker.process.poll() is not None:
                    print("[tỉnh] broker trung tâm dừng; khởi động lại", flush=True)
                    central.broker.start()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)  # the supervisor's round
            print("\nĐang dừng tỉnh demo...", flush=True)
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        if aggregator is not None:
            aggregator.stop()
        for o in offices:
            o.stop()
        if central is not None:
            central.broker.stop()
        pg.stop()
        if not os.environ.get("QMS_KEEP"):
            shutil.rmtree(pg.root, ignore_errors=True)


async def _online(dsn: str, site: str) -> bool:
    return await site_online(dsn, site) is True


def print_banner(tmp: Path, dsn: str, central_url: str, config: Path, offices: list[OfficeNode], web_port: int) -> None:
    base = f"http://127.0.0.1:{web_port}"
    spec = importlib.util.find_spec("province.web")
    if spec is not None and spec.origin is not None and Path(spec.origin).is_relative_to(ROOT):
        web = f"""  Bảng điều khiển: {base}/            (mọi điểm; lọc theo huyện: {base}/?district=...)
  Một điểm       : {base}/diem/{offices[0].site}
  Báo cáo        : {base}/bao-cao
  API            : {base}/api/v1/sites   (không cần đăng nhập từ 127.0.0.1)
  Đăng nhập tỉnh (CHỈ ĐỂ THỬ, mật khẩu công khai / DEMO ONLY): {LOGIN[0]} / {LOGIN[1]}"""
    else:
        web = (f"  Bảng điều khiển: chưa có (province.web chưa được gộp / not merged yet); sẽ ở {base}/\n"
               f"  Đăng nhập tỉnh (CHỈ ĐỂ THỬ / DEMO ONLY): {LOGIN[0]} / {LOGIN[1]}")
    lines = "\n".join(f"  {o.site:15}: broker {o.url('readonly')}\n"
                      f"                   lõi: {o.core.log_path}" for o in offices)
    print(f"""
================ Tỉnh demo đang chạy / the demo province is running ================
{web}
  Broker trung tâm: {central_url}   (chỉ đọc / read-only)
  PostgreSQL     : {dsn}
  Cấu hình tỉnh  : {config}
  Nhật ký (logs) : {tmp}/  (province.log, central.log, <điểm>/core.log, <điểm>/broker.log)
  Các điểm (quầy mô phỏng: ki-ốt lấy số, cán bộ gọi/xong, công dân đánh giá):
{lines}

Thử / Try:
  mosquitto_sub -L '{central_url}/qms/+/event/#' -v
  psql '{dsn}' -c 'SELECT site, online, status_at, last_seq FROM sites'

Nhấn Ctrl-C để dừng (Ctrl-C stops everything).
""", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description="Một tỉnh demo: broker trung tâm, 3 điểm, PostgreSQL, dịch vụ tỉnh "
                                "(a demo province on this machine).")
    p.add_argument("--ticket-every", type=float, default=10.0, help="trung bình giây giữa hai vé ở mỗi điểm (10)")
    p.add_argument("--service-s", type=float, default=28.0,
                   help="trung bình giây phục vụ một vé (28: ba quầy gần kín việc, có người chờ)")
    args = p.parse_args()
    if args.ticket_every <= 0 or args.service_s <= 0:
        p.error("--ticket-every và --service-s phải lớn hơn 0")
    with scratch_dir("qms-province-") as tmp:
        asyncio.run(run(tmp, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
