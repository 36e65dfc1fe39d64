"""Logging set-up shared by every process: one line per event, UTF-8 whatever the locale, and a
stable code on every line (qms_common.codes).

A line reads `2026-11-29 07:00:00,123 core WARNING QMS-CORE-W101 queue_core.health: Ghi đĩa chậm…`.
Under systemd (stderr is the journal stream JOURNAL_STREAM names) the timestamp is left out, as
journald stamps each line itself, and the line starts with the syslog priority `<N>`, which
journald takes as the entry's level (`journalctl -p warning` works). The lines of a traceback
carry the priority and the code too: journald stores each line as an entry of its own.
"""

from __future__ import annotations

import logging
import os
import sys
import unicodedata

from qms_common.codes import OTHER_AREA, area_of, derived_code

JOURNAL_ENV = "JOURNAL_STREAM"

# logging level -> syslog priority (sd-daemon(3): the `<N>` prefix journald understands)
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


def syslog_priority(level: int) -> int:
    return next((p for floor, p in _PRIORITIES if level >= floor), 7)


def code_of(record: logging.LogRecord) -> str:
    explicit = getattr(record, "code", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    if area_of(record.name) == OTHER_AREA:
        # libraries often log text already formatted (asyncio's "Task exception was never
        # retrieved…" with the task in it): their logger and level are what stays the same
        return derived_code(record.name, record.levelname)
    return derived_code(record.name, record.msg)


class CodedFormatter(logging.Formatter):
    def __init__(self, name: str = "", *, journal: bool = False) -> None:
        prefix = f"{name} " if name else ""
        stamp = "" if journal else "%(asctime)s "
        super().__init__(f"{stamp}{prefix}%(levelname)s %(qms_code)s %(name)s: %(message)s")
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        code = code_of(record)
        record.qms_code = code
        text = super().format(record)
        if not unicodedata.is_normalized("NFC", text):  # a value from outside, decomposed
            text = unicodedata.normalize("NFC", text)
        lead = f"<{syslog_priority(record.levelno)}>" if self.journal else ""
        if "\n" not in text:
            return lead + text
        first, *rest = text.split("\n")
        return "\n".join([lead + first, *(f"{lead}{code} | {line}" for line in rest)])


def under_journald(env: dict[str, str] | None = None) -> bool:
    """Whether stderr is the journal stream systemd gave this process. JOURNAL_STREAM is
    "device:inode" of that stream; a child that inherited the variable but writes elsewhere (a
    file, a pipe) must keep its timestamps (systemd.exec(5))."""
    value = (os.environ if env is None else env).get(JOURNAL_ENV, "")
    try:
        device, inode = (int(part) for part in value.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def setup_logging(level: str = "INFO", name: str = "", *, env: dict[str, str] | None = None) -> None:
    # A C locale would turn Vietnamese log lines into escapes or errors.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding="utf-8", errors="replace")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(CodedFormatter(name, journal=under_journald(env)))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True)
    # paho/aiomqtt are chatty at INFO about things our own lines already say
    logging.getLogger("mqtt").setLevel(logging.WARNING)
