"""Every text the pages show, in one place: Vietnamese first, English for the pages that offer it.

Templates read them as `t.key`, scripts get the ones they need as JSON. A key missing in English
falls back to Vietnamese, never to the key itself.
"""

from __future__ import annotations

from collections.abc import Mapping

VI: dict[str, str] = {
    # the TV page
    "display_title": "Màn hình gọi số",
    "counter": "Quầy",
    "now_calling": "Mời số",
    "to_counter": "đến",
    "recent_calls": "Số vừa gọi",
    "waiting": "Đang chờ",
    "people": "người",
    "no_calls": "Chưa gọi số nào",
    "counter_open": "Sẵn sàng",
    "counter_paused": "Tạm dừng",
    "counter_closed": "Đóng",
    "offline": "mất kết nối",
    "sound_on": "bật âm thanh",
    "sound_blocked": "Trình duyệt đang chặn âm thanh",
    "recall": "Mời lại",
    "weekdays": "Chủ nhật,Thứ hai,Thứ ba,Thứ tư,Thứ năm,Thứ sáu,Thứ bảy",
    # errors
    "bad_filter": "Tham số không hợp lệ",
    "unknown_fields": "Lĩnh vực không có",
    "unknown_counters": "Quầy không có",
    "bad_display_id": "Mã màn hình (id) chỉ gồm chữ thường không dấu, chữ số và dấu gạch ngang",
    "valid_values": "Các giá trị hợp lệ",
    "not_found": "Không tìm thấy trang",
}

EN: dict[str, str] = {
    "display_title": "Calling display",
    "counter": "Counter",
    "now_calling": "Now calling",
    "to_counter": "to",
    "recent_calls": "Recent calls",
    "waiting": "Waiting",
    "people": "people",
    "no_calls": "No calls yet",
    "counter_open": "Ready",
    "counter_paused": "Paused",
    "counter_closed": "Closed",
    "offline": "connection lost",
    "sound_on": "turn sound on",
    "sound_blocked": "The browser is blocking sound",
    "recall": "Recall",
    "weekdays": "Sunday,Monday,Tuesday,Wednesday,Thursday,Friday,Saturday",
    "bad_filter": "Invalid parameter",
    "unknown_fields": "Unknown fields",
    "unknown_counters": "Unknown counters",
    "bad_display_id": "The display id may hold lowercase letters, digits and hyphens only",
    "valid_values": "Valid values",
    "not_found": "Page not found",
}

LANGUAGES: dict[str, dict[str, str]] = {"vi": VI, "en": EN}
DEFAULT_LANGUAGE = "vi"


class Texts(Mapping[str, str]):
    """The texts of one language; attribute access for templates (`t.recent_calls`)."""

    def __init__(self, lang: str = DEFAULT_LANGUAGE) -> None:
        self.lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
        self._own = LANGUAGES[self.lang]

    def __getitem__(self, key: str) -> str:
        if key in self._own:
            return self._own[key]
        return VI[key]

    def __getattr__(self, key: str) -> str:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(VI)

    def __len__(self) -> int:
        return len(VI)

    def pick(self, *keys: str) -> dict[str, str]:
        """The texts a script needs, for a JSON blob in the page."""
        return {k: self[k] for k in keys}
