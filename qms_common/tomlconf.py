"""Strict reading of TOML configuration tables, with errors that name the file, the key and the fix.

Every part (core, agent, web server) reads its own sections with these helpers, so an installer
always gets the same kind of one-line message instead of a stack trace.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


class ConfigError(Exception):
    """A configuration problem: the file, the key, what is wrong and what to do."""

    def __init__(self, path: Path | str, key: str, problem: str, fix: str = "") -> None:
        self.path = str(path)
        self.key = key
        self.problem = problem
        self.fix = fix
        text = f"Lỗi cấu hình {self.path}, khóa {key}: {problem}"
        if fix:
            text += f" {fix}"
        super().__init__(text)


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file or raise ConfigError naming what went wrong."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, "(tệp)", "không tìm thấy tệp.", "Kiểm tra đường dẫn --config.") from None
    except OSError as exc:
        raise ConfigError(path, "(tệp)", f"không đọc được tệp ({exc.strerror}).") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(path, "(tệp)", "tệp không phải UTF-8.", "Lưu lại tệp với mã hóa UTF-8.") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "(cú pháp)", f"TOML không hợp lệ: {exc}.",
                          "Sửa cú pháp tại dòng được chỉ ra.") from None


class Table:
    """One TOML table being read: remembers its dotted name and which keys were used."""

    def __init__(self, path: Path, name: str, data: Any) -> None:
        self.path = path
        self.name = name
        if not isinstance(data, Mapping):
            self.fail("", "phải là một bảng TOML.", f"Viết nó dạng [{name}] với các khóa bên dưới.")
        self.data: Mapping[str, Any] = data
        self.used: set[str] = set()

    def key(self, k: str) -> str:
        if not self.name:
            return k
        return f"{self.name}.{k}" if k else self.name

    def fail(self, k: str, problem: str, fix: str = "") -> NoReturn:
        raise ConfigError(self.path, self.key(k), problem, fix)

    def _get(self, k: str, kind: type | tuple[type, ...], kind_name: str, default: Any,
             required: bool) -> Any:
        self.used.add(k)
        if k not in self.data:
            if required:
                self.fail(k, "thiếu khóa bắt buộc.", f"Thêm {k} = {kind_name} vào [{self.name}].")
            return default
        value = self.data[k]
        # bool is a subclass of int, and a flag written as 1 is almost always a mistake
        if isinstance(value, bool) and kind is not bool:
            self.fail(k, f"phải là {kind_name}, không phải true/false.")
        if not isinstance(value, kind):
            self.fail(k, f"phải là {kind_name} (đang là {value!r}).")
        return value

    def str(self, k: str, default: str | None = None, *, required: bool = False) -> Any:
        value = self._get(k, str, "một chuỗi", default, required)
        if isinstance(value, str) and required and not value.strip():
            self.fail(k, "không được để trống.")
        return value

    def int(self, k: str, default: int | None = None, *, required: bool = False,
            minimum: int | None = None, maximum: int | None = None) -> Any:
        value = self._get(k, int, "một số nguyên", default, required)
        if value is not None:
            if minimum is not None and value < minimum:
                self.fail(k, f"phải lớn hơn hoặc bằng {minimum} (đang là {value}).")
            if maximum is not None and value > maximum:
                self.fail(k, f"phải nhỏ hơn hoặc bằng {maximum} (đang là {value}).")
        return value

    def float(self, k: str, default: float | None = None, *, required: bool = False,
              minimum: float | None = None) -> Any:
        value = self._get(k, (int, float), "một số", default, required)
        if value is not None:
            value = float(value)
            if minimum is not None and value < minimum:
                self.fail(k, f"phải lớn hơn hoặc bằng {minimum} (đang là {value}).")
        return value

    def bool(self, k: str, default: bool | None = None, *, required: bool = False) -> Any:
        return self._get(k, bool, "true hoặc false", default, required)

    def str_list(self, k: str, default: list[str] | None = None, *, required: bool = False) -> Any:
        value = self._get(k, list, "một danh sách chuỗi", default, required)
        if value is not None and not all(isinstance(v, str) for v in value):
            self.fail(k, "mọi phần tử phải là chuỗi.")
        return value

    def choice(self, k: str, choices: tuple[str, ...], default: str | None = None, *,
               required: bool = False) -> Any:
        value = self.str(k, default, required=required)
        if value is not None and value not in choices:
            self.fail(k, f"giá trị {value!r} không hợp lệ.", f"Chọn một trong: {', '.join(choices)}.")
        return value

    def slug(self, k: str, *, required: bool = True, default: str | None = None) -> Any:
        value = self.str(k, default, required=required)
        if value is not None and not SLUG_RE.match(value):
            self.fail(k, f"mã {value!r} không hợp lệ.",
                      "Chỉ dùng chữ thường không dấu, chữ số và dấu gạch ngang, ví dụ \"dat-dai\".")
        return value

    def table(self, k: str, *, required: bool = False) -> Table:
        self.used.add(k)
        if k not in self.data:
            if required:
                self.fail(k, "thiếu bảng bắt buộc.", f"Thêm [{self.key(k)}].")
            return Table(self.path, self.key(k), {})
        return Table(self.path, self.key(k), self.data[k])

    def tables(self, k: str, *, required: bool = False) -> list[Table]:
        self.used.add(k)
        if k not in self.data:
            if required:
                self.fail(k, "thiếu danh sách bắt buộc.", f"Thêm ít nhất một mục [[{self.key(k)}]].")
            return []
        items = self.data[k]
        if not isinstance(items, list):
            self.fail(k, "phải là danh sách bảng.", f"Viết mỗi mục dạng [[{self.key(k)}]].")
        return [Table(self.path, f"{self.key(k)}[{i + 1}]", item) for i, item in enumerate(items)]

    def reject_unknown(self, allowed_extra: tuple[str, ...] = ()) -> None:
        """Refuse keys nobody reads: a typo must not be silently ignored."""
        for k in self.data:
            if k not in self.used and k not in allowed_extra:
                self.fail(k, "khóa không được hỗ trợ.", "Kiểm tra lỗi chính tả hoặc xóa khóa này.")


def resolve_path(config_path: Path, value: str) -> Path:
    """Relative paths in a configuration file are relative to that file, not to the cwd."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else (config_path.parent / p).resolve()
