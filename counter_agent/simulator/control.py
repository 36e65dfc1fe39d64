"""A control socket per simulated bus (`<link>.keys`), so keys can be pressed from another
terminal. One line per command, one line back:

    key <address> <key>     press a key on the keypad at that address      -> ok
    mute <address>          the device stops answering (unmute: again)     -> ok
    raw <hex>               put raw bytes on the line (garbage, on purpose) -> ok
    show                    what every panel of the bus shows              -> one line per panel, then "."
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from counter_agent.simulator.bus import SimulatedBus

SUFFIX = ".keys"


def control_path(link: Path | str) -> Path:
    return Path(str(link) + SUFFIX)


def panel_lines(bus: SimulatedBus) -> list[str]:
    return [f"{p.address} {p.label} {p.text!r}{' nhấp nháy' if p.flashing else ''}{' (im lặng)' if p.muted else ''}"
            for p in bus.panels.values()]


def execute(bus: SimulatedBus, line: str) -> list[str]:
    """One command on one bus; the lines to answer. Never raises for bad input."""
    words = line.split()
    try:
        match words:
            case ["key", address, key]:
                bus.press(int(address, 0), key)
            case ["mute", address]:
                bus.mute(int(address, 0))
            case ["unmute", address]:
                bus.mute(int(address, 0), False)
            case ["raw", *hexbytes]:
                bus.send(bytes.fromhex("".join(hexbytes)))
            case ["show"]:
                return [*panel_lines(bus), "."]
            case _:
                return ["error: lệnh không hiểu; dùng key ADDR KEY, mute ADDR, unmute ADDR, raw HEX, show"]
    except (ValueError, KeyError, RuntimeError) as exc:
        return [f"error: {exc}"]
    return ["ok"]


async def serve_control(bus: SimulatedBus, path: Path) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while line := await reader.readline():
                for answer in execute(bus, line.decode("utf-8", "replace")):
                    writer.write(answer.encode("utf-8") + b"\n")
                await writer.drain()
        writer.close()

    remove(path)  # left by a simulator that was killed
    return await asyncio.start_unix_server(handle, path=str(path))


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def ask(path: Path, command: str, timeout: float = 5.0) -> list[str]:
    """Send one command to a simulator's control socket; its answer lines."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_unix_connection(str(path))
        try:
            writer.write(command.encode("utf-8") + b"\n")
            await writer.drain()
            lines: list[str] = []
            while True:
                line = (await reader.readline()).decode("utf-8").rstrip("\n")
                if not line or line == ".":
                    return lines
                lines.append(line)
                if command.split()[0] != "show":
                    return lines
        finally:
            writer.close()
