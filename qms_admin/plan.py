"""What an install does, as data: the user, the directories and files with their modes and
owners, and the commands. Written either onto the machine or, for --dry-run, under a directory
with a plan file beside it; the same plan both ways, so the dry run shows exactly the install."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class DirEntry:
    path: PurePosixPath
    mode: int
    owner: str
    group: str


@dataclass(frozen=True)
class FileEntry:
    path: PurePosixPath
    content: bytes
    mode: int
    owner: str
    group: str


@dataclass
class Plan:
    what: str  # "điểm demo" / "tỉnh tinh-demo": for messages
    user_command: list[str] | None = None  # None when the user exists already
    dirs: list[DirEntry] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def dir(self, path: PurePosixPath, mode: int, owner: str = "root", group: str = "root") -> None:
        self.dirs.append(DirEntry(path, mode, owner, group))

    def file(self, path: PurePosixPath, content: str | bytes, mode: int, owner: str = "root",
             group: str = "root") -> None:
        data = content.encode("utf-8") if isinstance(content, str) else content
        self.files.append(FileEntry(path, data, mode, owner, group))

    def text(self) -> str:
        lines = [f"# Kế hoạch cài đặt {self.what} (qms-admin install --dry-run)", ""]
        lines.append("## Người dùng hệ thống")
        lines.append(shlex.join(self.user_command) if self.user_command else "qms (đã có)")
        lines += ["", "## Thư mục (quyền chủ:nhóm đường dẫn)"]
        lines += [f"{d.mode:04o} {d.owner}:{d.group} {d.path}" for d in self.dirs]
        lines += ["", "## Tệp (quyền chủ:nhóm đường dẫn)"]
        lines += [f"{f.mode:04o} {f.owner}:{f.group} {f.path}" for f in self.files]
        lines += ["", "## Lệnh sẽ chạy"]
        lines += [shlex.join(c) for c in self.commands]
        if self.notes:
            lines += ["", "## Ghi chú", *self.notes]
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict[str, object]:
        return {
            "what": self.what,
            "user_command": self.user_command,
            "dirs": [{"path": str(d.path), "mode": f"{d.mode:04o}", "owner": d.owner, "group": d.group}
                     for d in self.dirs],
            "files": [{"path": str(f.path), "mode": f"{f.mode:04o}", "owner": f.owner, "group": f.group}
                      for f in self.files],
            "commands": self.commands,
            "notes": self.notes,
        }


def _under(root: Path, path: PurePosixPath) -> Path:
    return root / path.relative_to("/")


def _chown(path: Path, owner: str, group: str) -> None:
    os.chown(path, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid)


def write_tree(plan: Plan, root: Path, *, chown: bool) -> None:
    """Directories first, then each file through a temporary name: a reader (or a crash) never
    sees a file half written, nor a secret with the wrong mode for a moment."""
    for d in plan.dirs:
        target = _under(root, d.path)
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, d.mode)
        if chown:
            _chown(target, d.owner, d.group)
    for f in plan.files:
        target = _under(root, f.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.qms-tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, f.content)
            os.fchmod(fd, f.mode)
            if chown:
                os.fchown(fd, pwd.getpwnam(f.owner).pw_uid, grp.getgrnam(f.group).gr_gid)
        finally:
            os.close(fd)
        os.replace(tmp, target)


def write_dry_run(plan: Plan, out: Path) -> None:
    write_tree(plan, out, chown=False)
    (out / "plan.txt").write_text(plan.text(), encoding="utf-8")
    (out / "plan.json").write_text(json.dumps(plan.as_json(), ensure_ascii=False, indent=2) + "\n",
                                   encoding="utf-8")


def run(command: list[str]) -> None:
    """A command of the plan; its own error output goes to the operator as it is."""
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise CommandFailed(command, result.returncode)


class CommandFailed(Exception):
    def __init__(self, command: list[str], code: int) -> None:
        super().__init__(f"Lệnh {' '.join(command)} thất bại (mã {code}).")
        self.command = command
        self.code = code
