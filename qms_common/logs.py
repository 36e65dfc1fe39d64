"""Logging set-up shared by every process: one line per event, UTF-8 whatever the locale."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "INFO", name: str = "") -> None:
    # A C locale would turn Vietnamese log lines into escapes or errors.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding="utf-8", errors="replace")
    prefix = f"{name} " if name else ""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    # paho/aiomqtt are chatty at INFO about things our own lines already say
    logging.getLogger("mqtt").setLevel(logging.WARNING)
