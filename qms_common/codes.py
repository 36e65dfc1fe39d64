"""Stable codes of the conditions an operator acts on, and the code of any other log line.

Every log line carries a code (qms_common.logs puts it there), so an operator can search the
journal, a monitoring rule can match it, and docs/operations.md can say what to do about it.

Two kinds:
- explicit codes, listed here: `QMS-{AREA}-{L}{NNN}` (L: I information, W warning, E error), each
  with a Vietnamese message template and what to do; a line gets one by `log_code()` or by
  `extra={"code": "QMS-..."}`. They never change meaning; a retired code is never reused.
- derived codes for every other line: `QMS-{AREA}-{HHHHHH}`, six upper-case hex digits of the
  SHA-256 of "{logger name}\\n{message template}" (the template before its %-arguments, NFC,
  UTF-8). The same line of the same code has the same code in every run, on every machine, and
  whatever values it carries; editing the line's wording gives it a new code. AREA is the
  logger's top package (AREAS). A library's logger (area LIB) often logs text already formatted:
  its lines' code is derived from "{logger name}\n{level name}" instead. An explicit code has a
  letter and three digits, a derived one six hex digits: the two can never be mistaken for each
  other.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import unicodedata
from dataclasses import dataclass
from typing import Any

# The logger's top package -> the AREA part of its lines' codes.
AREAS = {
    "queue_core": "CORE", "display_server": "WEB", "notifier": "NOTIFY", "counter_agent": "AGENT",
    "dossiers": "DOSSIERS", "province": "PROVINCE", "qms_admin": "ADMIN", "broker_config": "BROKER",
    "qms_common": "COMMON", "root": "MAIN",
}
OTHER_AREA = "LIB"  # a library's logger (aiohttp, asyncio…)


@dataclass(frozen=True)
class Code:
    """One operator-facing condition: its code, level, Vietnamese message template (str.format
    fields), and, for docs/operations.md, what it means and what to do."""

    code: str
    level: int
    template: str
    meaning: str
    action: str

    def text(self, **values: Any) -> str:
        return unicodedata.normalize("NFC", self.template.format(**values))


def _c(code: str, level: int, template: str, meaning: str, action: str) -> Code:
    return Code(code, level, template, meaning, action)


W, E, I_ = logging.WARNING, logging.ERROR, logging.INFO

DISK_COMMIT_SLOW = _c(
    "QMS-CORE-W101", W, "Ghi đĩa chậm: p99 thời gian ghi {p99_ms:.0f} ms (ngưỡng {limit_ms:.0f} ms)",
    "Mỗi lệnh (lấy số, gọi số) chờ đĩa ghi xong mới trả lời; ghi chậm làm ki-ốt và bảng LED chậm theo.",
    "Kiểm tra thẻ nhớ/ổ đĩa (thẻ SD cũ, ổ USB chậm), tiến trình khác đang ghi nhiều (sao lưu), "
    "dmesg có lỗi I/O không; thay ổ SSD nếu lặp lại.")
DISK_COMMIT_OK = _c(
    "QMS-CORE-I102", I_, "Ghi đĩa bình thường trở lại: p99 {p99_ms:.0f} ms",
    "Cảnh báo QMS-CORE-W101 đã hết.", "Không cần làm gì.")
DISK_LOW = _c(
    "QMS-CORE-W111", W, "Đĩa sắp đầy: còn {free_mib:.0f} MiB ({free_pct:.1f}%) tại {path}",
    "Phân vùng chứa cơ sở dữ liệu của lõi còn ít chỗ trống (dưới ngưỡng cảnh báo).",
    "Xoá bản sao lưu cũ, nhật ký cũ (journalctl --vacuum-size=200M), tệp tạm; "
    "chuyển bản sao lưu sang ổ khác ([backup] copy_to).")
DISK_FULL = _c(
    "QMS-CORE-E112", E, "Đĩa gần hết chỗ: chỉ còn {free_mib:.0f} MiB ({free_pct:.1f}%) tại {path}",
    "Dưới ngưỡng nguy hiểm: khi đĩa đầy, lõi không ghi được vé và từ chối lệnh.",
    "Giải phóng chỗ ngay (bản sao lưu cũ, nhật ký, tệp tạm) rồi kiểm tra lại bằng qms-admin status.")
DISK_OK = _c(
    "QMS-CORE-I113", I_, "Chỗ trống trên đĩa bình thường trở lại: còn {free_mib:.0f} MiB",
    "Cảnh báo QMS-CORE-W111/E112 đã hết.", "Không cần làm gì.")
CLOCK_FORWARD = _c(
    "QMS-CORE-W121", W, "Đồng hồ hệ thống nhảy tới {jump_s:.0f} giây",
    "Giờ của máy đổi đột ngột về phía trước (đồng bộ NTP sau khi mất điện, ai đó chỉnh giờ): "
    "giờ trên vé, thời gian chờ và ngày làm việc có thể sai.",
    "Kiểm tra timedatectl (NTP đã bật, múi giờ Asia/Ho_Chi_Minh); máy không có pin RTC nên "
    "cần mạng để lấy giờ sau mỗi lần mất điện.")
CLOCK_BACKWARD = _c(
    "QMS-CORE-W122", W, "Đồng hồ hệ thống lùi {jump_s:.0f} giây",
    "Giờ của máy bị lùi lại: thứ tự thời gian của vé và báo cáo có thể sai.",
    "Kiểm tra timedatectl và nguồn NTP; không chỉnh giờ bằng tay trong giờ làm việc.")
MQTT_LOST = _c(
    "QMS-MQTT-E201", E, "{name}: mất kết nối broker {url} ({reason}); tự kết nối lại",
    "Tiến trình không nói chuyện được với broker MQTT: ki-ốt, quầy và màn hình ngừng cập nhật.",
    "Kiểm tra systemctl status qms-broker, mạng, mật khẩu trong /etc/qms; tiến trình tự kết nối lại.")
MQTT_RESTORED = _c(
    "QMS-MQTT-I202", I_, "{name}: đã kết nối broker {url}",
    "Kết nối tới broker đã có (lần đầu hoặc sau khi mất).", "Không cần làm gì.")
DATABASE_ERROR = _c(
    "QMS-DB-E301", E, "Không ghi được thay đổi vào cơ sở dữ liệu ({error}); nạp lại trạng thái từ cơ sở dữ liệu",
    "Một giao dịch SQLite thất bại (đĩa đầy, lỗi I/O, tệp hỏng): lệnh đó bị từ chối, lõi nạp lại dữ liệu.",
    "Xem chỗ trống (df -h /var/lib/qms), dmesg; nếu lặp lại, dừng lõi và khôi phục bản sao lưu gần nhất.")
CONFIG_ERROR = _c(
    "QMS-CFG-E401", E, "Cấu hình sai: {error}",
    "Tệp cấu hình có lỗi; tiến trình không khởi động.",
    "Sửa tệp và khoá được nêu trong thông báo, rồi systemctl restart dịch vụ đó.")

CODES: tuple[Code, ...] = (DISK_COMMIT_SLOW, DISK_COMMIT_OK, DISK_LOW, DISK_FULL, DISK_OK, CLOCK_FORWARD,
                           CLOCK_BACKWARD, MQTT_LOST, MQTT_RESTORED, DATABASE_ERROR, CONFIG_ERROR)
BY_CODE = {c.code: c for c in CODES}


def area_of(logger_name: str) -> str:
    return AREAS.get(logger_name.split(".", 1)[0], OTHER_AREA)


def derived_code(logger_name: str, template: object) -> str:
    """The stable code of a line without an explicit one (see the module's docstring)."""
    if isinstance(template, str):
        return _derived(logger_name, template)
    return _derived.__wrapped__(logger_name, str(template))


@functools.lru_cache(maxsize=4096)  # a process has a few hundred lines; the core logs one per command
def _derived(logger_name: str, template: str) -> str:
    text = unicodedata.normalize("NFC", f"{logger_name}\n{template}")
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:6].upper()
    return f"QMS-{area_of(logger_name)}-{digest}"


def log_code(logger: logging.Logger, code: Code, *, exc_info: bool = False, **values: Any) -> str:
    """Log one operator-facing condition with its code; returns the text it logged."""
    text = code.text(**values)
    # "%s": the values are in the text already, and may hold a % of their own
    logger.log(code.level, "%s", text, extra={"code": code.code}, exc_info=exc_info)
    return text
