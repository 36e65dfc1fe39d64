"""qms-admin install / uninstall / status: an office (or a province's central server) as systemd
services, from the Python package itself (docs/install.md says why this form).

install builds a Plan (qms_admin/plan.py) from the site's configuration: the user `qms`, /etc/qms
(configuration and secrets, root:qms), /var/lib/qms (data, qms:qms), the broker's files (the
functions of qms-broker), one environment file per broker user (its MQTT URL with the password,
read by systemd as root, so no service reads another's password) and the units (qms_admin/units.py).
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from qms_admin import units as u
from qms_admin.plan import CommandFailed, Plan, run, write_dry_run, write_tree
from qms_admin.siteplan import build_province_plan, build_site_plan, is_province
from qms_common.tomlconf import read_toml


@dataclass(frozen=True)
class InstallOptions:
    config: Path
    agents: tuple[Path, ...] = ()
    port: int = 1883
    tls_port: int = 8883
    hostnames: tuple[str, ...] = ()
    prefix: str = sys.prefix
    mosquitto: str = "/usr/sbin/mosquitto"


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


def _is_root() -> bool:
    return os.geteuid() == 0


def build_plan(opts: InstallOptions, existing: Path) -> Plan:
    """`existing`: where /etc/qms is now (/ for a real install, the dry run's DIR), so secrets
    and certificates already made are kept rather than replaced."""
    if is_province(read_toml(opts.config)):
        return build_province_plan(opts.config, existing=existing, port=opts.port, tls_port=opts.tls_port,
                                   hostnames=opts.hostnames, prefix=opts.prefix, mosquitto=opts.mosquitto)
    return build_site_plan(opts.config, existing=existing, agent_files=opts.agents, port=opts.port,
                           tls_port=opts.tls_port, hostnames=opts.hostnames, prefix=opts.prefix,
                           mosquitto=opts.mosquitto)


def _user_command(plan: Plan) -> Plan:
    try:
        pwd.getpwnam(u.USER)
    except KeyError:
        return plan
    return replace(plan, user_command=None)


def install(args: argparse.Namespace) -> int:
    if args.out is not None and not args.dry_run:
        return _fail("Lỗi: --out chỉ dùng cùng --dry-run (cài thật luôn ghi vào /etc/qms, /var/lib/qms "
                     "và /etc/systemd/system).")
    if args.dry_run and args.out is None:
        return _fail("Lỗi: --dry-run cần --out THƯ_MỤC để ghi các tệp sẽ cài vào đó.")
    if not args.dry_run and not _is_root():
        return _fail("Lỗi: cần quyền root để cài đặt (tạo người dùng qms, /etc/qms, /var/lib/qms và các dịch vụ "
                     "systemd). Chạy lại bằng sudo, hoặc thử trước với --dry-run --out THƯ_MỤC.")
    mosquitto = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/bin")
    if mosquitto is None:
        return _fail("Lỗi: không tìm thấy mosquitto. Cài bằng: apt-get install mosquitto")
    opts = InstallOptions(config=args.config, agents=tuple(args.agent), port=args.port, tls_port=args.tls_port,
                          hostnames=tuple(args.hostname or ()), mosquitto=mosquitto)
    if args.dry_run:
        out: Path = args.out.resolve()
        if out == Path("/"):
            return _fail("Lỗi: --out không được là /; chọn một thư mục trống, ví dụ /tmp/qms-thu.")
        plan = build_plan(opts, existing=out)
        write_dry_run(plan, out)
        print(f"Đã ghi {len(plan.files)} tệp sẽ cài cho {plan.what} vào {out} (không thay đổi gì trên máy). "
              f"Kế hoạch: {out / 'plan.txt'}")
        return 0
    plan = _user_command(build_plan(opts, existing=Path("/")))
    try:
        if plan.user_command:
            run(plan.user_command)
        write_tree(plan, Path("/"), chown=True)
        for command in plan.commands:
            run(command)
    except CommandFailed as exc:
        print(f"Lỗi: {exc} Các tệp đã ghi vẫn giữ nguyên; sửa lỗi rồi chạy lại lệnh cài.", file=sys.stderr)
        return 1
    print(f"Đã cài {plan.what}. Xem tình trạng: qms-admin status --config {_installed_config(plan)}")
    return 0


def _installed_config(plan: Plan) -> str:
    names = {f.path.name for f in plan.files if f.path.parent == u.ETC}
    return str(u.ETC / ("province.toml" if "province.toml" in names else "site.toml"))


# -- uninstall ---------------------------------------------------------------------------------

def installed_units(root: Path) -> list[str]:
    """Our units on the machine, agent instances included (the enabled ones are symlinks in the
    .wants directories), in the order to stop them: the broker last."""
    unit_dir = root / u.UNIT_DIR.relative_to("/")
    found: set[str] = set()
    for path in [unit_dir, *unit_dir.glob("*.wants")] if unit_dir.is_dir() else []:
        found.update(p.name for p in path.glob("qms-*") if p.name.endswith((".service", ".timer")))
    found.discard(u.AGENT_TEMPLATE)  # a template is not started or stopped itself
    last = (u.BROKER, u.CENTRAL_BROKER)
    return sorted(found, key=lambda n: (n in last, n))


def uninstall_plan(root: Path, purge: bool) -> tuple[list[list[str]], list[Path], list[Path]]:
    """(commands, unit files to remove, data directories to remove)."""
    names = installed_units(root)
    unit_dir = root / u.UNIT_DIR.relative_to("/")
    files = sorted(p for p in unit_dir.glob("qms-*") if p.is_file() and not p.is_symlink()) if unit_dir.is_dir() \
        else []
    modules = root / "etc/modules-load.d/qms-serial.conf"
    if modules.is_file():
        files.append(modules)
    commands: list[list[str]] = []
    if names:
        commands.append(["systemctl", "disable", "--now", *names])
    commands.append(["systemctl", "daemon-reload"])
    data = [root / u.ETC.relative_to("/"), root / u.VAR.relative_to("/")] if purge else []
    if purge:
        commands.append(["userdel", u.USER])
    return commands, files, data


def uninstall(args: argparse.Namespace) -> int:
    root: Path = args.root.resolve()
    if not args.dry_run and root != Path("/"):
        return _fail("Lỗi: --root chỉ dùng cùng --dry-run.")
    if not args.dry_run and not _is_root():
        return _fail("Lỗi: cần quyền root để gỡ cài đặt. Chạy lại bằng sudo, hoặc xem trước với --dry-run.")
    commands, files, data = uninstall_plan(root, args.purge)
    print("Gỡ cài đặt hệ thống xếp hàng:")
    print(*(f"  chạy: {' '.join(c)}" for c in commands if c[0] == "systemctl"), sep="\n")
    print(*(f"  xóa tệp: {p}" for p in files), sep="\n")
    if data:
        print(*(f"  XÓA DỮ LIỆU: {p}" for p in data), sep="\n")
        print(f"  chạy: userdel {u.USER}")
    else:
        print(f"  giữ lại cấu hình {u.ETC} và dữ liệu {u.VAR} (xóa hẳn: --purge)")
    if args.dry_run:
        print("(--dry-run: chưa thay đổi gì)")
        return 0
    if data and not args.yes:
        try:
            answer = input(f"Xóa vĩnh viễn {u.ETC} và {u.VAR} (mọi vé, hồ sơ, bản sao lưu trong đó)? "
                           "Gõ 'xoa' để đồng ý: ").strip().lower()
        except EOFError:  # no terminal: never take silence for a yes
            answer = ""
        if answer not in ("xoa", "xóa"):
            print("Đã hủy, không xóa gì.")
            return 1
    try:
        for command in commands:
            if command[0] == "userdel":
                continue
            run(command)
        for path in files:
            path.unlink()
        run(["systemctl", "daemon-reload"])
        for path in data:
            shutil.rmtree(path, ignore_errors=True)
        if data:
            run(["userdel", u.USER])
    except CommandFailed as exc:
        print(f"Lỗi: {exc}", file=sys.stderr)
        return 1
    print("Đã gỡ các dịch vụ." + ("" if data else f" Cấu hình và dữ liệu vẫn còn trong {u.ETC} và {u.VAR}."))
    return 0


# -- the command line --------------------------------------------------------------------------

def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds install, uninstall and status."""
    p = sub.add_parser("install", help="cài điểm (hoặc máy chủ tỉnh) thành các dịch vụ systemd",
                       description="Tạo người dùng qms, /etc/qms, /var/lib/qms, cấu hình broker và các dịch vụ "
                       "systemd, rồi bật chúng. Với province.toml: máy chủ trung tâm của tỉnh.")
    p.add_argument("--config", required=True, type=Path, help="site.toml của điểm, hoặc province.toml")
    p.add_argument("--agent", action="append", default=[], type=Path, metavar="AGENT.toml",
                   help="tệp cấu hình của một tác tử quầy chạy trên máy này (lặp lại được; mặc định "
                   "agents/{mã}.toml cạnh site.toml)")
    p.add_argument("--port", type=int, default=1883, help="cổng MQTT của broker trên máy này (mặc định 1883)")
    p.add_argument("--tls-port", type=int, default=8883, help="cổng MQTT qua TLS cho máy khác (mặc định 8883)")
    p.add_argument("--hostname", action="append", help="tên máy/IP trong chứng chỉ TLS (lặp lại được)")
    p.add_argument("--dry-run", action="store_true", help="không thay đổi gì; ghi mọi tệp vào --out")
    p.add_argument("--out", type=Path, help="thư mục cho --dry-run")
    p.set_defaults(run=install)

    p = sub.add_parser("uninstall", help="dừng và gỡ các dịch vụ (giữ dữ liệu trừ khi --purge)")
    p.add_argument("--purge", action="store_true", help="xóa cả /etc/qms, /var/lib/qms và người dùng qms")
    p.add_argument("--yes", action="store_true", help="không hỏi lại khi --purge")
    p.add_argument("--dry-run", action="store_true", help="chỉ in những gì sẽ làm")
    p.add_argument("--root", type=Path, default=Path("/"), help=argparse.SUPPRESS)
    p.set_defaults(run=uninstall)

    from qms_admin.status import register as register_status
    register_status(sub)

