"""backup, restore (filled in by the backup work)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds backup and restore."""
