"""A site with remote tickets and appointments, for the tests of issue 12."""

from __future__ import annotations

REMOTE_AND_APPOINTMENTS = """
[remote]
hours = ["07:30-11:00", "13:30-16:30"]
checkin_required = true
per_phone = 1
[remote.quota]
dat-dai = 3
ho-tich = 2

[appointments]
days_ahead = 14
closed_weekdays = {closed}
holidays = ["2026-11-26"]
checkin_before_min = 30
checkin_after_min = 15
late = "{late}"
max_share = {max_share}
per_phone = {per_phone}

[[appointments.fields]]
field = "dat-dai"
slot_min = 30
hours = ["08:00-11:00", "13:30-16:00"]
capacity = {capacity}
[appointments.fields.weekday_capacity]
fri = 1
"""


def appointment_site(*, late: str = "ordinary", max_share: float = 0.5, per_phone: int = 2,
                     capacity: int = 2, notify: bool = False, closed: str = '["sat", "sun"]') -> str:
    text = REMOTE_AND_APPOINTMENTS.format(late=late, max_share=max_share, per_phone=per_phone, capacity=capacity,
                                          closed=closed)
    return text + ("\n[notify]\nahead = 2\n" if notify else "")
