"""qms-admin COMMAND --config site.toml ...: one command per operator task, each in its own module.

Each module adds its sub-commands with `register(subparsers)`; a sub-command's function takes the
parsed arguments and returns the exit code. A configuration mistake is one Vietnamese line (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from qms_common.logs import setup_logging
from qms_common.tomlconf import ConfigError

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _modules() -> list[Register]:
    from qms_admin import backup, install
    return [install.register, backup.register]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="qms-admin",
                                description="Cài đặt, theo dõi, sao lưu và khôi phục một điểm một cửa.")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (mặc định INFO)")
    sub = p.add_subparsers(dest="command", required=True, metavar="LỆNH")
    for register in _modules():
        register(sub)
    args = p.parse_args(argv)
    setup_logging(args.log_level, "admin")
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
