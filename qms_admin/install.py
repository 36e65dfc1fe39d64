"""install, uninstall, status (filled in by the install work)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds install, uninstall and status."""
