"""[backup] of site.toml and of province.toml: where qms-admin backup writes, how many it keeps,
the second disk. One parser for both, so an office and a province's server read the same keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qms_common.tomlconf import Table, resolve_path

DEFAULT_DIR = Path("/var/lib/qms/backups")
DEFAULT_KEEP = 14


@dataclass(frozen=True)
class BackupSettings:
    dir: Path
    keep: int
    copy_to: Path | None
    include: tuple[Path, ...]   # configuration files and directories (the broker's users, TLS keys)


def parse_backup(t: Table, config: Path) -> BackupSettings:
    """The [backup] table `t` of the file `config` (relative paths are relative to that file)."""
    d = t.str("dir")
    directory = resolve_path(config, d) if d else DEFAULT_DIR
    keep = t.int("keep", DEFAULT_KEEP, minimum=1, maximum=3650)
    c = t.str("copy_to")
    copy_to = resolve_path(config, c) if c else None
    if copy_to is not None and copy_to.resolve() == directory.resolve():
        t.fail("copy_to", "trùng với [backup] dir: bản sao thứ hai phải ở đĩa khác.",
               "Ví dụ copy_to = \"/mnt/usb-sao-luu/qms\", hoặc bỏ khóa này.")
    include = t.str_list("include")
    # /etc/qms holds the configuration, the broker's users, passwords and TLS keys (docs/install.md)
    paths = tuple(resolve_path(config, v) for v in include) if include is not None else (config.parent,)
    t.reject_unknown()
    return BackupSettings(dir=directory, keep=keep, copy_to=copy_to, include=paths)
