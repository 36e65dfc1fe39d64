"""Reading a catalogue file (JSON or CSV) into procedures, without I/O beyond the text given.

Columns (JSON keys or the CSV's header row; Vietnamese headers too, in any case and with or
without marks):

  code            mã thủ tục           required, e.g. "1.001193" (letters, digits, . _ -; ≤ 64)
  name            tên thủ tục          required
  field           lĩnh vực             required: the site's field id or name (else no "Lấy số")
  level           cấp thực hiện        e.g. "Cấp xã"
  processing_time thời hạn giải quyết  "5 ngày làm việc", "Trong ngày" or a number of business days
  fees            phí, lệ phí          free text, e.g. "8.000 đồng/bản"
  documents       thành phần hồ sơ     a list (JSON) or lines / ";"-separated (CSV)
  legal_basis     căn cứ pháp lý
  submit_at       nơi tiếp nhận        where to submit

Every bad row is reported with its line and column (named as the file names it), and a file with
any is refused whole.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from display_server.catalogue.model import CODE_RE, Procedure
from display_server.catalogue.search import fold

COLUMNS = ("code", "name", "field", "level", "processing_time", "fees", "documents", "legal_basis", "submit_at")
REQUIRED = ("code", "name", "field")
# other names a column goes by (compared folded: "Thành phần hồ sơ" = "thanh phan ho so")
ALIASES: dict[str, tuple[str, ...]] = {
    "code": ("ma", "ma thu tuc", "ma tthc", "ma so"),
    "name": ("ten", "ten thu tuc", "ten tthc", "thu tuc"),
    "field": ("linh vuc",),
    "level": ("cap", "cap thuc hien", "co quan thuc hien"),
    "processing_time": ("processing days", "processing_days", "thoi han", "thoi han giai quyet",
                        "thoi gian giai quyet", "thoi gian"),
    "fees": ("fee", "phi", "le phi", "phi le phi"),
    "documents": ("required documents", "ho so", "thanh phan ho so", "giay to"),
    "legal_basis": ("legal basis", "can cu", "can cu phap ly"),
    "submit_at": ("where to submit", "noi nop", "noi tiep nhan", "dia diem", "dia diem thuc hien", "noi nop ho so"),
}
_HEADER = {fold(c): c for c in COLUMNS} | {a: c for c, names in ALIASES.items() for a in names}
MAX_NAME = 300
MAX_TEXT = 2000
MAX_DOCUMENTS = 60
MAX_DOCUMENT = 500
MAX_DAYS = 365
MAX_ERRORS = 50
_DAYS_RE = re.compile(r"(\d{1,3})\s*ngày")
_SAME_DAY_RE = re.compile(r"trong ngày|\d+\s*giờ", re.IGNORECASE)


@dataclass(frozen=True)
class RowError:
    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"dòng {self.line}" + (f", cột “{self.column}”" if self.column else "")
        return f"{where}: {self.message}"


class CatalogueFileError(Exception):
    """The file cannot be imported: every bad row's error (at most MAX_ERRORS of them)."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


def header_column(name: str) -> str | None:
    """The column a header names ("Thành phần hồ sơ" → "documents"), None when none."""
    return _HEADER.get(fold(name))


def processing_days(text: str) -> int | None:
    """Business days in a processing time: "05 ngày làm việc" → 5, "Trong ngày" → 0, else None."""
    m = _DAYS_RE.search(text)
    if m:
        return int(m.group(1))
    return 0 if _SAME_DAY_RE.search(text) else None


def split_documents(text: str) -> list[str]:
    """A CSV cell's documents: one a line, or separated by ";"."""
    return [d.strip(" \t-•+") for d in re.split(r"[;\n]", text) if d.strip(" \t-•+")]


class _Row:
    """One row being checked: its values by column, its line, and the errors found in it."""

    def __init__(self, line: int, values: dict[str, Any], lines: dict[str, int] | None = None,
                 names: dict[str, str] | None = None) -> None:
        self.line = line
        self.values = values
        self.lines = lines or {}
        self.names = names or {}  # a column's name as the file writes it ("Tên thủ tục" for name)
        self.errors: list[RowError] = []

    def fail(self, column: str, message: str) -> None:
        self.errors.append(RowError(self.lines.get(column, self.line), self.names.get(column, column), message))

    def text(self, column: str, *, limit: int = MAX_TEXT) -> str:
        value = self.values.get(column)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.fail(column, "cần một chuỗi chữ.")
            return ""
        text = " ".join(str(value).split()) if column != "documents" else str(value)
        if len(text) > limit:
            self.fail(column, f"dài quá {limit} ký tự.")
        return text


def _procedure(row: _Row) -> Procedure | None:
    for column in REQUIRED:
        if not row.text(column):
            row.fail(column, "bắt buộc, không được để trống.")
    code = row.text("code", limit=64)
    if code and not CODE_RE.match(code):
        row.fail("code", f"mã {code!r} chỉ được có chữ không dấu, chữ số và . _ - (tối đa 64 ký tự).")
    name = row.text("name", limit=MAX_NAME)
    field = row.text("field", limit=200)
    time = row.values.get("processing_time")
    days: int | None
    if isinstance(time, int) and not isinstance(time, bool):
        if not 0 <= time <= MAX_DAYS:
            row.fail("processing_time", f"số ngày làm việc phải từ 0 đến {MAX_DAYS}.")
        days, time_text = time, f"{time} ngày làm việc" if time else "Trong ngày"
    else:
        time_text = row.text("processing_time")
        days = processing_days(time_text)
        if days is not None and days > MAX_DAYS:
            row.fail("processing_time", f"số ngày làm việc phải từ 0 đến {MAX_DAYS}.")
    raw_docs = row.values.get("documents")
    documents: list[str] = []
    if isinstance(raw_docs, list):
        for d in raw_docs:
            if not isinstance(d, str):
                row.fail("documents", "mỗi giấy tờ là một chuỗi chữ.")
                break
            if d.strip():
                documents.append(" ".join(d.split()))
    elif raw_docs is not None:
        documents = [" ".join(d.split()) for d in split_documents(row.text("documents", limit=MAX_TEXT * 10))]
    if len(documents) > MAX_DOCUMENTS:
        row.fail("documents", f"nhiều quá {MAX_DOCUMENTS} giấy tờ.")
    if any(len(d) > MAX_DOCUMENT for d in documents):
        row.fail("documents", f"một giấy tờ dài quá {MAX_DOCUMENT} ký tự.")
    p = Procedure(code=code, name=name, field=None, field_name=field, level=row.text("level", limit=200),
                  processing_days=days, processing_text=time_text, fees=row.text("fees"),
                  documents=tuple(documents), legal_basis=row.text("legal_basis"), submit_at=row.text("submit_at"))
    return None if row.errors else p


def _check_all(rows: list[_Row]) -> list[Procedure]:
    procedures: list[Procedure] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for row in rows:
        p = None if row.errors and not row.values else _procedure(row)  # refused whole for its shape
        if p is not None:
            if p.code in seen:
                row.fail("code", f"mã {p.code!r} đã có ở dòng {seen[p.code]}.")
            else:
                seen[p.code] = row.line
                procedures.append(p)
        errors.extend(sorted(row.errors, key=lambda e: e.line))
    if errors:
        raise CatalogueFileError(errors[:MAX_ERRORS])
    if not procedures:
        raise CatalogueFileError([RowError(1, None, "tệp không có thủ tục nào.")])
    return procedures


def parse_csv(text: str) -> list[Procedure]:
    """A CSV with a header row (comma, semicolon or tab; a spreadsheet's UTF-8 with BOM too)."""
    text = text.removeprefix("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise CatalogueFileError([RowError(1, None, "tệp trống.")]) from None
    columns: list[str | None] = []
    errors: list[RowError] = []
    for h in header:
        c = header_column(h)
        if c is None and h.strip():
            errors.append(RowError(1, h, f"không biết cột này. Các cột: {', '.join(COLUMNS)} "
                                         "(hoặc tên tiếng Việt như “Tên thủ tục”, “Thành phần hồ sơ”)."))
        if c is not None and c in columns:
            errors.append(RowError(1, h, f"cột “{c}” có hai lần."))
        columns.append(c)
    for c in REQUIRED:
        if c not in columns:
            errors.append(RowError(1, c, "thiếu cột bắt buộc."))
    if errors:
        raise CatalogueFileError(errors)
    names = {c: h.strip() for c, h in zip(columns, header, strict=True) if c is not None}
    rows: list[_Row] = []
    try:
        start = reader.line_num + 1
        for cells in reader:
            if any(c.strip() for c in cells):
                if len(cells) > len(columns):
                    rows.append(_Row(start, {}))
                    rows[-1].errors.append(RowError(start, None, f"có {len(cells)} ô, nhiều hơn "
                                                                 f"{len(columns)} cột của dòng tiêu đề."))
                else:
                    rows.append(_Row(start, {c: v.strip() for c, v in zip(columns, cells, strict=False)
                                             if c is not None and v.strip()}, names=names))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise CatalogueFileError([RowError(reader.line_num, None, f"CSV hỏng: {exc}.")]) from None
    return _check_all(rows)


def _line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def parse_json(text: str) -> list[Procedure]:
    """A JSON array of objects (or {"procedures": [...]}), each with the columns as keys."""
    text = text.removeprefix("\ufeff")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        error = RowError(exc.lineno, None, f"JSON hỏng: {exc.msg} (ký tự thứ {exc.colno}).")
        raise CatalogueFileError([error]) from None
    if isinstance(data, dict) and set(data) == {"procedures"}:
        data = data["procedures"]
    if not isinstance(data, list):
        raise CatalogueFileError([RowError(1, None, "cần một mảng JSON các thủ tục ([{\"code\": …}, …]).")])
    starts = _object_lines(text)
    text_lines = text.split("\n")
    rows: list[_Row] = []
    for n, item in enumerate(data):
        line = starts[n] if n < len(starts) else 1
        if not isinstance(item, dict):
            row = _Row(line, {})
            row.errors.append(RowError(line, None, "mỗi thủ tục là một đối tượng JSON {…}."))
            rows.append(row)
            continue
        values: dict[str, Any] = {}
        end = starts[n + 1] - 1 if n + 1 < len(starts) else len(text_lines)
        row = _Row(line, values, _key_lines(text_lines, line, end, item))
        for key, value in item.items():
            column = header_column(key)
            if column is None:
                row.errors.append(RowError(row.lines.get(key, line), key, f"không biết khóa này. Các khóa: "
                                                                            f"{', '.join(COLUMNS)}."))
            elif column in values:
                row.errors.append(RowError(row.lines.get(key, line), key, f"trùng với khóa “{column}”."))
            else:
                values[column] = value
                row.names[column] = key
                if key in row.lines:
                    row.lines[column] = row.lines[key]
        rows.append(row)
    return _check_all(rows)


def _object_lines(text: str) -> list[int]:
    """The line on which each element of the file's procedure array begins."""
    decoder = json.JSONDecoder()
    pos = text.index("[")
    lines: list[int] = []
    ws = re.compile(r"[\s,]*")
    pos = ws.match(text, pos + 1).end()  # type: ignore[union-attr]
    while pos < len(text) and text[pos] != "]":
        lines.append(_line_at(text, pos))
        _, pos = decoder.raw_decode(text, pos)
        pos = ws.match(text, pos).end()  # type: ignore[union-attr]
    return lines


def _key_lines(lines: list[str], start_line: int, end_line: int, item: dict[str, Any]) -> dict[str, int]:
    """Best effort: the line of each key of an object on lines start_line..end_line (one key a line)."""
    found: dict[str, int] = {}
    for key in item:
        needle = json.dumps(key, ensure_ascii=False) + ":"
        needle_ascii = json.dumps(key) + ":"
        for n in range(start_line - 1, min(len(lines), end_line)):
            compact = lines[n].replace('" :', '":')
            if needle in compact or needle_ascii in compact:
                found[key] = n + 1
                break
    return found


PARSERS: dict[str, Callable[[str], list[Procedure]]] = {"json": parse_json, "csv": parse_csv}


def parse(text: str, kind: str) -> list[Procedure]:
    """Procedures from a file's text ("json" or "csv"); CatalogueFileError with every bad row otherwise.
    Each procedure's field_name is the file's field (FieldMap maps it to the site's)."""
    return PARSERS[kind](text)
