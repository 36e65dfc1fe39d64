"""What a key on the counter keypad asks the core to do. Pure: no I/O, no clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qms_common.protocol import Action, CounterStatus, Topics, counter_command, rating_command

SIMPLE_KEYS = {"N": Action.CALL_NEXT, "R": Action.RECALL, "S": Action.SKIP, "F": Action.FINISH}
RATING_KEYS = {str(score): score for score in range(1, 6)}
KEY_LIST = "N R S F P T1…T9 1…5"  # docs/hardware.md, "Keys"


def is_key(key: str) -> bool:
    """A key the keypad has: a firmware or a simulator never sends any other."""
    return (key in SIMPLE_KEYS or key == "P" or key in RATING_KEYS
            or (len(key) == 2 and key[0] == "T" and key[1] in "123456789"))


@dataclass(frozen=True)
class KeyCommand:
    """A request for the core: a counter action or a rating of the counter's last ticket."""

    action: Action | None = None
    to_field: str | None = None
    score: int | None = None

    def topic(self, topics: Topics, counter: str) -> str:
        return topics.cmd_rating if self.score is not None else topics.cmd_counter(counter)

    def payload(self, request_id: str, counter: str) -> dict[str, Any]:
        if self.score is not None:
            return rating_command(request_id, self.score, counter=counter)
        assert self.action is not None
        return counter_command(request_id, self.action, to_field=self.to_field)


@dataclass(frozen=True)
class NoSuchField:
    """T<digit> names a position the site has no field at: refused without asking the core."""

    position: int


def command_for(key: str, *, status: str | None, fields: Sequence[str]) -> KeyCommand | NoSuchField | None:
    """The command of a key, given the counter's status and the site's fields in order (for
    T<digit>, 1-based); None for a key this protocol does not have."""
    if key in SIMPLE_KEYS:
        return KeyCommand(SIMPLE_KEYS[key])
    if key == "P":
        # one key for both: it toggles by what the counter is doing now
        return KeyCommand(Action.RESUME if status == CounterStatus.PAUSED else Action.PAUSE)
    if key in RATING_KEYS:
        return KeyCommand(score=RATING_KEYS[key])
    if len(key) == 2 and key[0] == "T" and key[1] in "0123456789":
        position = int(key[1])
        if not 1 <= position <= len(fields):
            return NoSuchField(position)
        return KeyCommand(Action.TRANSFER, to_field=fields[position - 1])
    return None
