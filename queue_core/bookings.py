"""The bookings of today and later days in memory, with the counts the rules need.

Pure: no I/O. Like the book, it changes only when a committed Change is applied.
"""

from __future__ import annotations

from collections.abc import Iterable

from qms_common.protocol import BookingStatus
from queue_core.model import Booking

Place = tuple[str, str, str]  # (field, day, slot)


class BookingIndex:
    def __init__(self, bookings: Iterable[Booking] = ()) -> None:
        self.by_code: dict[str, Booking] = {}
        self._used: dict[Place, int] = {}     # live bookings per place
        self._arrived: dict[Place, int] = {}  # bookings checked in per place
        self._booked: dict[str, int] = {}     # bookings still `booked` per phone
        for b in bookings:
            self.put(b)

    def put(self, new: Booking) -> None:
        old = self.by_code.get(new.code)
        if old is not None:
            self._count(old, -1)
        self.by_code[new.code] = new
        self._count(new, +1)

    def _count(self, b: Booking, sign: int) -> None:
        place = (b.field, b.day, b.slot)
        if b.live:
            self._used[place] = self._used.get(place, 0) + sign
        if b.status is BookingStatus.CHECKED_IN:
            self._arrived[place] = self._arrived.get(place, 0) + sign
        if b.status is BookingStatus.BOOKED and b.phone:
            self._booked[b.phone] = self._booked.get(b.phone, 0) + sign

    def used(self, field: str, day: str, slot: str) -> int:
        return self._used.get((field, day, slot), 0)

    def checked_in(self, field: str, day: str, slot: str) -> int:
        return self._arrived.get((field, day, slot), 0)

    def booked_for_phone(self, phone: str) -> int:
        return self._booked.get(phone, 0)

    def taken(self, code: str) -> bool:
        """Given to a booking held in memory (today's and later ones, and those not yet
        committed); the store answers for the bookings of ended days (QueueService._booking_code):
        a core does not hold every code ever given, which would grow with history."""
        return code in self.by_code

    def get(self, code: str) -> Booking | None:
        return self.by_code.get(code)

    def forget_before(self, day: str) -> None:
        """Bookings of ended days leave memory (their codes stay taken: the store keeps them)."""
        for b in [b for b in self.by_code.values() if b.day < day]:
            self._count(b, -1)
            del self.by_code[b.code]

    def live_from(self, day: str) -> list[Booking]:
        """Bookings still `booked` of this day and later, in order of day and slot."""
        return sorted((b for b in self.by_code.values() if b.day >= day and b.status is BookingStatus.BOOKED),
                      key=lambda b: (b.day, b.slot, b.code))
