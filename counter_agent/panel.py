"""What a counter's LED panel shows. Pure: the agent feeds it state, replies and the time.

Everything fits a 4-digit 7-segment panel (docs/hardware.md has the table for officers):
the ticket number, `----` (the counter is open with no ticket; blinking only right after `N`:
nobody is waiting), blank (counter closed), `PAUS` (paused), `OFF` (broker or core unreachable),
`r-3` (rating 3 taken) and error codes `E-01`...`E-09` when a key is refused.

A blink belongs to the text it was for: a call's blink that has not reached the panel before the
counter moved on (a call finished at once, a panel that was away) is dropped, never shown on the
next text, where a blinking `----` would tell the officer that nobody is waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qms_common.protocol import CounterStatus, ErrorCode, TicketStatus

OFF = "OFF"
EMPTY = "----"
CLOSED = ""
PAUSED = "PAUS"

# Error codes shown (blinking, for notice_s) when a key is refused.
E_INVALID_STATE = "E-01"    # nothing to recall/skip/finish/transfer, or nothing to rate
E_COUNTER_CLOSED = "E-02"   # the counter is closed: N opens it
E_UNKNOWN_FIELD = "E-03"    # T<digit>: no field at that position
E_UNKNOWN_COUNTER = "E-04"  # the core has no counter with this id: the agent's file is wrong
E_BAD_REQUEST = "E-05"      # refused as malformed (a rating above the site's levels, say)
E_UNKNOWN_TICKET = "E-06"
E_RANGE_EXHAUSTED = "E-07"  # the field issued every number of its range today
E_TIMEOUT = "E-08"          # the core did not answer in time, or refused the key as late: it never takes effect
E_INTERNAL = "E-09"         # the core could not save; nothing changed, try again

ERROR_TEXT: dict[str, str] = {
    ErrorCode.INVALID_STATE: E_INVALID_STATE,
    ErrorCode.RATING_CLOSED: E_INVALID_STATE,  # nothing to rate any more: the window has passed
    ErrorCode.COUNTER_CLOSED: E_COUNTER_CLOSED,
    ErrorCode.UNKNOWN_FIELD: E_UNKNOWN_FIELD,
    ErrorCode.UNKNOWN_COUNTER: E_UNKNOWN_COUNTER,
    ErrorCode.BAD_REQUEST: E_BAD_REQUEST,
    ErrorCode.UNKNOWN_TICKET: E_UNKNOWN_TICKET,
    ErrorCode.RANGE_EXHAUSTED: E_RANGE_EXHAUSTED,
    ErrorCode.QUEUE_EMPTY: EMPTY,
    ErrorCode.EXPIRED: E_TIMEOUT,
    ErrorCode.INTERNAL: E_INTERNAL,
}


def error_text(code: str | None) -> str:
    return ERROR_TEXT.get(code or "", E_INTERNAL)


def rating_text(score: int) -> str:
    return f"r-{score}"


def steady_text(state: dict[str, Any] | None) -> str:
    """What the panel shows for the counter's state while the core is reachable."""
    if state is None:
        return CLOSED
    status = state.get("status")
    if status == CounterStatus.CLOSED:
        return CLOSED
    if status == CounterStatus.PAUSED:
        return PAUSED
    number = _serving_number(state.get("ticket"))
    return number if number is not None else EMPTY


def _serving_number(ticket: Any) -> str | None:
    if isinstance(ticket, dict) and ticket.get("status") == TicketStatus.SERVING:
        number = ticket.get("number")
        return str(number) if number is not None else None
    return None


def call_identity(ticket: Any) -> tuple[str, int] | None:
    """A call as the panel sees it: the ticket and how many times it was called. A new identity
    is a new call (or a recall) and blinks."""
    if isinstance(ticket, dict) and ticket.get("status") == TicketStatus.SERVING:
        return (str(ticket.get("id")), int(ticket.get("calls") or 0))
    return None


@dataclass(frozen=True)
class Display:
    """The text a panel should show; a new flash number asks for a blink, if `blinks` (the flash
    was for this text)."""

    text: str
    flash: int = 0
    blinks: bool = True


@dataclass
class CounterView:
    """One counter as its panels should show it: the retained state, a call confirmed by a
    reply before its state arrived, and a short notice (an error code) over it."""

    counter: str
    state: dict[str, Any] | None = None
    seq: int = 0
    unknown: bool = False   # the site has no such counter
    provisional: dict[str, Any] | None = None  # a called ticket from a reply
    provisional_after: int = 0
    flashed: tuple[str, int] | None = None
    flash: int = 0
    notice: str | None = None
    notice_until: float = 0.0
    seen_state: bool = False
    flash_text: str | None = None  # what the latest flash was for

    def _flash(self, text: str) -> None:
        self.flash += 1
        self.flash_text = text

    def apply_state(self, state: dict[str, Any], *, retained: bool) -> bool:
        """A state/counter message. Live ones older than what we hold are dropped (QoS 1 may
        bring them late); a retained one, delivered at (re)subscribe, is the present."""
        seq = state.get("seq")
        seq = seq if isinstance(seq, int) else 0
        if not retained and seq <= self.seq:
            return False
        before = self._steady()
        self.state, self.seq = state, seq
        if self.provisional is not None and (retained or seq > self.provisional_after):
            self.provisional = None
        ident = call_identity(state.get("ticket"))
        if ident is not None and ident != self.flashed:
            if self.seen_state:
                self._flash(self._steady())  # a call made anywhere (keypad, web console) blinks
            self.flashed = ident
        self.seen_state = True
        if self._steady() != before:
            self.notice = None  # the counter moved on: show that rather than an old error
        return True

    def forget_seq(self) -> None:
        """The core went away: whatever it publishes next is the present, even with a lower
        seq (a core restored from another database)."""
        self.seq = 0

    def apply_call(self, ticket: dict[str, Any]) -> None:
        """An ok reply that calls a ticket: blink it now, even if its state is still on its way."""
        ident = call_identity(ticket)
        if ident is None or ident == self.flashed:
            return
        self.flashed = ident
        self.provisional = ticket
        self.provisional_after = self.seq
        self.notice = None
        self._flash(self._steady())

    def show_notice(self, text: str, until: float) -> None:
        self.notice, self.notice_until = text, until
        self._flash(text)

    def refuse(self) -> None:
        """A key pressed while the core is unreachable: blink OFF, send nothing."""
        self.notice = None
        self._flash(OFF)

    def display(self, *, online: bool, now: float) -> Display:
        if not online:
            text = OFF
        elif self.notice is not None and now < self.notice_until:
            text = self.notice
        else:
            self.notice = None
            text = self._steady()
        return Display(text, self.flash, blinks=text == self.flash_text)

    def _steady(self) -> str:
        if self.unknown:
            return E_UNKNOWN_COUNTER
        if self.provisional is not None:
            return _serving_number(self.provisional) or EMPTY
        return steady_text(self.state)
