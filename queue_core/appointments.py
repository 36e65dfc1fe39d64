"""Pure rules of remote tickets and appointments: the slot grid, whether a place may be booked
(with every reason it may not), the check-in window, the fairness share, remote-ticket limits.

No I/O and no state: the callers give the settings, the counts and the moment.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum

from qms_common.config import AppointmentField, AppointmentSettings, RemoteSettings, minutes_text
from qms_common.protocol import CODE_ALPHABET, ErrorCode, ProtocolError

WEEKDAYS_VI = ("thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật")
FAIRNESS_WINDOW = timedelta(minutes=60)


def slot_minute(slot: str) -> int:
    return int(slot[:2]) * 60 + int(slot[3:5])


def day_vi(day: date) -> str:
    return f"{WEEKDAYS_VI[day.weekday()]} {day.day:02d}/{day.month:02d}/{day.year}"


def closed_reason(settings: AppointmentSettings, day: date) -> str | None:
    """Why the office takes no appointment that day, or None when it is open."""
    if day.isoformat() in settings.holidays:
        return f"Ngày {day_vi(day)} là ngày nghỉ lễ."
    if day.weekday() in settings.closed_weekdays:
        return f"Bộ phận Một cửa không nhận lịch hẹn vào {WEEKDAYS_VI[day.weekday()]}."
    return None


def slots_of(settings: AppointmentSettings, af: AppointmentField, day: date) -> list[tuple[str, int]]:
    """The day's slots of a field with their places; none on a closed day."""
    if closed_reason(settings, day) is not None:
        return []
    capacity = af.capacity_on(day.weekday())
    if capacity <= 0:
        return []
    return [(minutes_text(m), capacity) for m in af.grid]


def bookable_days(settings: AppointmentSettings, today: date) -> list[date]:
    """The days one may book now: from tomorrow to days_ahead, open days only."""
    days = (today + timedelta(days=i) for i in range(1, settings.days_ahead + 1))
    return [d for d in days if closed_reason(settings, d) is None]


def _outside(message: str) -> ProtocolError:
    return ProtocolError(ErrorCode.OUTSIDE_HOURS, message)


def place_capacity(settings: AppointmentSettings | None, field_id: str, field_name: str, day_s: str,
                   slot: str, today: date) -> int:
    """The places of a slot that may be booked today, or outside_hours saying why not: a field
    without appointments, today or the past, beyond days_ahead, a closed weekday, a holiday, a
    weekday without places, a time not on the field's grid."""
    af = settings.field(field_id) if settings is not None else None
    if settings is None or af is None:
        raise _outside(f"Lĩnh vực {field_name} không nhận đặt lịch hẹn.")
    day = date.fromisoformat(day_s)
    if day <= today:
        raise _outside("Chỉ đặt lịch cho các ngày sau hôm nay." if day == today
                       else f"Ngày {day_vi(day)} đã qua.")
    if day > today + timedelta(days=settings.days_ahead):
        raise _outside(f"Chỉ đặt lịch trước tối đa {settings.days_ahead} ngày.")
    reason = closed_reason(settings, day)
    if reason is not None:
        raise _outside(reason)
    capacity = af.capacity_on(day.weekday())
    if capacity <= 0:
        raise _outside(f"Lĩnh vực {field_name} không nhận lịch hẹn vào {WEEKDAYS_VI[day.weekday()]}.")
    if slot_minute(slot) not in af.grid:
        ranges = ", ".join(f"{minutes_text(a)}–{minutes_text(b)}" for a, b in af.hours)
        raise _outside(f"Giờ {slot} không phải một lượt hẹn của lĩnh vực {field_name} "
                       f"(mỗi {af.slot_min} phút, trong {ranges}).")
    return capacity


def check_free(capacity: int, used: int, slot: str, day_s: str) -> None:
    if used >= capacity:
        raise ProtocolError(ErrorCode.SLOT_FULL, f"Lượt {slot} ngày {day_vi(date.fromisoformat(day_s))} "
                                                 "đã kín chỗ. Vui lòng chọn lượt khác.")


def check_phone_bookings(settings: AppointmentSettings, live_for_phone: int) -> None:
    if live_for_phone >= settings.per_phone:
        raise ProtocolError(ErrorCode.QUOTA_REACHED,
                            f"Mỗi số điện thoại chỉ giữ tối đa {settings.per_phone} lịch hẹn chưa đến. "
                            "Hãy huỷ một lịch hẹn trước khi đặt thêm.")


# ---------------------------------------------------------------- check-in


class Window(StrEnum):
    EARLY = "early"
    OPEN = "open"
    LATE = "late"


@dataclass(frozen=True)
class CheckinTime:
    window: Window
    opens: datetime   # slot − checkin_before_min
    closes: datetime  # slot + checkin_after_min


def slot_moment(day_s: str, slot: str, tz: tzinfo) -> datetime:
    m = slot_minute(slot)
    return datetime.combine(date.fromisoformat(day_s), time(m // 60, m % 60), tzinfo=tz)


def checkin_time(settings: AppointmentSettings, day_s: str, slot: str, tz: tzinfo, now: datetime) -> CheckinTime:
    """Where `now` falls against the check-in window [slot − before, slot + after] (inclusive)."""
    start = slot_moment(day_s, slot, tz)
    opens = start - timedelta(minutes=settings.checkin_before_min)
    closes = start + timedelta(minutes=settings.checkin_after_min)
    window = Window.EARLY if now < opens else Window.LATE if now > closes else Window.OPEN
    return CheckinTime(window, opens, closes)


# ---------------------------------------------------------------- fairness


def appointment_may_go_first(appointment_calls: int, calls: int, max_share: float) -> bool:
    """Whether the counter may call an appointment ticket before a walk-in that waits for it.

    Not when the calls of the last 60 minutes that went to appointments are already at least
    `max_share` of those calls counting the one about to be made: with 0.5, appointments and
    walk-ins alternate while both wait."""
    return appointment_calls < max_share * (calls + 1)


# ---------------------------------------------------------------- remote tickets


def check_remote(remote: RemoteSettings | None, field_id: str, field_name: str, minute: int,
                 issued_today: int, live_for_phone: int) -> None:
    """A remote ticket of `field_id` may be taken at `minute` (site time), with so many remote
    tickets of the field issued today and so many live ones for this phone."""
    if remote is None:
        raise _outside("Bộ phận Một cửa không nhận lấy số từ xa.")
    if not remote.open_at(minute):
        ranges = ", ".join(f"{minutes_text(a)}–{minutes_text(b)}" for a, b in remote.hours)
        raise _outside(f"Chỉ lấy số từ xa trong giờ {ranges}.")
    quota = remote.quota.get(field_id, 0)
    if issued_today >= quota:
        raise ProtocolError(ErrorCode.QUOTA_REACHED,
                            f"Lĩnh vực {field_name} đã hết lượt lấy số từ xa hôm nay" +
                            (f" ({quota} lượt)." if quota else ".") + " Mời ông/bà đến lấy số tại ki-ốt.")
    if live_for_phone >= remote.per_phone:
        raise ProtocolError(ErrorCode.QUOTA_REACHED,
                            f"Số điện thoại này đã có {live_for_phone} số đang chờ ở lĩnh vực {field_name} "
                            f"(tối đa {remote.per_phone}).")


# ---------------------------------------------------------------- codes


def fresh_code(length: int, taken: Callable[[str], bool], rng: random.Random) -> str:
    """A code of CODE_ALPHABET no one has: drawn again while taken (26^6 and 26^8 leave room)."""
    while True:
        code = "".join(rng.choice(CODE_ALPHABET) for _ in range(length))
        if not taken(code):
            return code

