"""python -m counter_agent.simulator: simulated panels and keypads on ptys, and a way to press
their keys from another terminal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from counter_agent.config import load_agent_config
from counter_agent.drivers import DRIVERS
from counter_agent.simulator.bus import SimulatedBus
from counter_agent.simulator.control import ask, control_path, execute, remove, serve_control
from counter_agent.simulator.devices import Panel, Shown
from qms_common.logs import setup_logging
from qms_common.runner import exit_on_config_error, until_signalled
from qms_common.tomlconf import ConfigError

COMMANDS = ("run", "press", "show")


@dataclass
class BusSpec:
    link: Path
    driver: str
    panels: list[Panel]
    digits: int | None = None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in (*COMMANDS, "-h", "--help"):
        args.insert(0, "run")
    p = argparse.ArgumentParser(prog="python -m counter_agent.simulator",
                                description="Giả lập bảng LED và bàn phím quầy trên cổng nối tiếp ảo (pty).")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="chạy các bus giả lập (mặc định)")
    run.add_argument("--config", type=Path, help="tệp cấu hình tác tử: giả lập mọi cổng trong đó")
    run.add_argument("--port", action="append", default=[], help="chỉ giả lập cổng này của --config (lặp lại được)")
    run.add_argument("--link", type=Path, help="không dùng --config: đường dẫn cổng sẽ tạo (symlink tới pty)")
    run.add_argument("--driver", choices=sorted(DRIVERS), default="qms-serial", help="giao thức, với --link")
    run.add_argument("--device", action="append", default=[], metavar="ADDR[=NHÃN]",
                     help="một thiết bị trên bus --link, ví dụ 1=1 (địa chỉ 1, quầy 1)")
    run.add_argument("--digits", type=int, default=None, help="số chữ số của bảng modbus-led, với --link")
    run.add_argument("--script", type=Path, help="tệp lệnh: mỗi dòng '<quầy> <phím>', 'sleep S', 'wait <quầy> <chữ>'")
    run.add_argument("--exit", action="store_true", help="dừng khi chạy xong --script")
    run.add_argument("--trace", action="store_true", help="in mọi khung (hex) hai chiều")

    press = sub.add_parser("press", help="bấm một phím trên bàn phím giả lập đang chạy")
    press.add_argument("--config", type=Path, help="tệp cấu hình tác tử (tìm cổng và địa chỉ của quầy)")
    press.add_argument("--counter", help="mã quầy, với --config")
    press.add_argument("--socket", type=Path, help="hoặc: ổ điều khiển <cổng>.keys của bus")
    press.add_argument("--address", type=lambda s: int(s, 0), help="địa chỉ thiết bị, với --socket")
    press.add_argument("key", help="N R S F P T1..T9 1..5")

    show = sub.add_parser("show", help="in những gì các bảng giả lập đang hiện")
    show.add_argument("--config", type=Path)
    show.add_argument("--socket", type=Path)
    ns = p.parse_args(args)
    if ns.command == "run" and (ns.config is None) == (ns.link is None):
        p.error("cần đúng một trong --config hoặc --link")
    if ns.command == "press" and not ((ns.config and ns.counter) or (ns.socket and ns.address is not None)):
        p.error("cần --config và --counter, hoặc --socket và --address")
    if ns.command == "show" and (ns.config is None) == (ns.socket is None):
        p.error("cần đúng một trong --config hoặc --socket")
    return ns


def specs_from_args(ns: argparse.Namespace) -> list[BusSpec]:
    if ns.link is not None:
        panels = []
        for item in ns.device or ["1"]:
            address, _, label = item.partition("=")
            panels.append(Panel(int(address, 0), label or str(int(address, 0))))
        return [BusSpec(ns.link, ns.driver, panels, ns.digits)]
    cfg = load_agent_config(ns.config, env={})
    wanted = {str(Path(p).absolute()) for p in ns.port}
    specs = []
    for port, devices in cfg.ports().items():
        if wanted and port not in wanted:
            continue
        if "://" in port:
            print(f"Bỏ qua {port}: chỉ giả lập được cổng là đường dẫn tệp.", file=sys.stderr)
            continue
        specs.append(BusSpec(Path(port), devices[0].driver, [Panel(d.address, d.counter) for d in devices],
                             devices[0].digits))
    return specs


def stamp() -> str:
    return time.strftime("%H:%M:%S")


def print_shown(bus: SimulatedBus, s: Shown) -> None:
    if s.kind == "ping" or not s.changed:  # pings and repaints of the same text: --trace shows them
        return
    label = bus.panels[s.address].label
    text = s.text if s.text else "(tắt)"
    print(f"{stamp()} {bus.link.name:<12} {s.address:02X} quầy {label:<4} │ {text:^6} │"
          f"{' nhấp nháy' if s.flash else ''}", flush=True)


def print_traffic(bus: SimulatedBus, direction: str, data: bytes) -> None:
    who = "tác tử → thiết bị" if direction == "<" else "thiết bị → tác tử"
    printable = data.decode("ascii", "replace").replace("\x02", "␂").replace("\x03", "␃")
    print(f"{stamp()} {bus.link.name:<12} {who}: {data.hex(' ')}  {printable!r}", flush=True)


class Simulator:
    def __init__(self, specs: list[BusSpec], *, trace: bool) -> None:
        self.buses = [SimulatedBus(s.link, s.driver, s.panels, digits=s.digits, on_shown=print_shown,
                                   on_traffic=print_traffic if trace else None) for s in specs]
        self.servers: list[asyncio.Server] = []

    async def start(self) -> None:
        for bus in self.buses:
            bus.plug()
            self.servers.append(await serve_control(bus, control_path(bus.link)))
            devices = ", ".join(f"{p.address:02X} quầy {p.label}" for p in bus.panels.values())
            print(f"Bus {bus.link} ({bus.driver}) -> {bus.tty_name}; điều khiển: {control_path(bus.link)}; "
                  f"thiết bị: {devices}", flush=True)

    def stop(self) -> None:
        for server in self.servers:
            server.close()
        for bus in self.buses:
            bus.close()
            remove(control_path(bus.link))

    def find(self, label: str | None) -> tuple[SimulatedBus, int]:
        """The keypad a line of stdin or a script means: by counter (label), or the only one."""
        keypads = [(b, p.address) for b in self.buses if b.devices.has_keys for p in b.panels.values()
                   if label is None or p.label == label]
        if not keypads or (label is None and len(keypads) > 1):
            raise KeyError(f"không có bàn phím quầy {label}" if label else "có nhiều bàn phím: ghi rõ quầy")
        return keypads[0]

    async def line(self, text: str) -> None:
        """One line of stdin or of a script."""
        words = text.split("#", 1)[0].split()
        match words:
            case []:
                return
            case ["sleep", seconds]:
                await asyncio.sleep(float(seconds))
            case ["wait", label, *shown]:
                # until the panel shows it: now, or after a frame still to come
                bus, address = self.find_panel(label)
                if bus.panels[address].text != " ".join(shown):
                    await bus.wait_shown(address, " ".join(shown), timeout=30, start=bus.mark())
            case [("mute" | "unmute") as verb, label]:
                bus, address = self.find_panel(label)
                print(execute(bus, f"{verb} {address}")[0], flush=True)
            case [key]:
                bus, address = self.find(None)
                bus.press(address, key)
            case [label, key]:
                bus, address = self.find(label)
                bus.press(address, key)
            case _:
                raise ValueError(f"không hiểu dòng {text.strip()!r}")

    def find_panel(self, label: str) -> tuple[SimulatedBus, int]:
        for b in self.buses:
            for p in b.panels.values():
                if p.label == label:
                    return b, p.address
        raise KeyError(f"không có bảng quầy {label}")

    async def read_stdin(self) -> None:
        if not stdin_is_interactive():
            return  # /dev/null or a file (a service, the demo): keys come from --script or `press`
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            try:
                await self.line(line.decode("utf-8", "replace"))
            except (KeyError, ValueError, TimeoutError) as exc:
                print(f"Lỗi: {exc}", flush=True)

    async def run_script(self, path: Path, lines: list[str]) -> None:
        for number, text in enumerate(lines, 1):
            try:
                await self.line(text)
            except (KeyError, ValueError, TimeoutError) as exc:
                raise SystemExit(f"{path}:{number}: {exc or 'hết thời gian chờ'}") from None


def stdin_is_interactive() -> bool:
    """A terminal or a pipe: what the event loop can wait on."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return os.isatty(sys.stdin.fileno()) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


async def run(ns: argparse.Namespace) -> None:
    sim = Simulator(specs_from_args(ns), trace=ns.trace)
    await sim.start()
    print("Gõ '<quầy> <phím>' rồi Enter (ví dụ: 1 N), hoặc từ terminal khác: "
          "python -m counter_agent.simulator press ... (Ctrl-C để dừng)", flush=True)

    async def main() -> None:
        if ns.script is not None:
            await sim.run_script(ns.script, ns.script.read_text(encoding="utf-8").splitlines())
            if ns.exit:
                return
        await sim.read_stdin()
        await asyncio.Event().wait()

    try:
        await until_signalled(main())
    finally:
        sim.stop()


async def press(ns: argparse.Namespace) -> int:
    if ns.config is not None:
        cfg = load_agent_config(ns.config, env={})
        keypads = [d for d in cfg.devices if d.counter == ns.counter and DRIVERS[d.driver].has_keys]
        if not keypads:
            print(f"Quầy {ns.counter} không có bàn phím trong {ns.config}.", file=sys.stderr)
            return 1
        path, address = control_path(keypads[0].port), keypads[0].address
    else:
        path, address = ns.socket, ns.address
    return await talk(path, f"key {address} {ns.key}")


async def show(ns: argparse.Namespace) -> int:
    paths = [ns.socket] if ns.socket else [control_path(p) for p in load_agent_config(ns.config, env={}).ports()]
    status = 0
    for path in paths:
        print(f"{path}:", flush=True)
        status |= await talk(path, "show")
    return status


async def talk(path: Path, command: str) -> int:
    try:
        lines = await ask(path, command)
    except (OSError, TimeoutError) as exc:
        print(f"Không nói chuyện được với trình giả lập tại {path} ({exc}). Nó đang chạy chứ?", file=sys.stderr)
        return 1
    with contextlib.suppress(BrokenPipeError):  # `... show | head`
        for line in lines:
            print(line, flush=True)
    return 1 if any(line.startswith("error") for line in lines) else 0


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    setup_logging("WARNING", "simulator")
    try:
        if ns.command == "press":
            return asyncio.run(press(ns))
        if ns.command == "show":
            return asyncio.run(show(ns))
        asyncio.run(run(ns))
    except ConfigError as exc:
        return exit_on_config_error(exc)
    return 0
