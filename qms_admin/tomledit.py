"""Set single-line keys of a TOML file in place, keeping the operator's comments and layout.

Only for simple values (a string, a number) under a plain `[section]` header: the installer
points paths into /var/lib/qms and URLs at the local broker. The caller reads the result back
with the real parser and checks it, so a layout this cannot handle is refused, never guessed.
"""

from __future__ import annotations

import json
import re

_HEADER_RE = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-\"]+)\s*\]\]?\s*(#.*)?$")


def toml_string(value: str) -> str:
    # a JSON string is a valid TOML basic string (same escapes)
    return json.dumps(value, ensure_ascii=False)


def set_key(text: str, section: str, key: str, value: str) -> str:
    """`value` is TOML source (e.g. toml_string(...)). Replaces `key = ...` in [section], or adds
    it right after the header, or appends the section when the file has none."""
    lines = text.splitlines()
    key_re = re.compile(rf"^\s*{re.escape(key)}\s*=")
    start: int | None = None
    for i, line in enumerate(lines):
        m = _HEADER_RE.match(line)
        if start is not None and m:
            break
        if m and line.strip().startswith("[") and not line.strip().startswith("[[") and m.group(1) == section:
            start = i
            continue
        if start is not None and key_re.match(line):
            lines[i] = f"{key} = {value}"
            return "\n".join(lines) + "\n"
    if start is None:
        return text.rstrip("\n") + f"\n\n[{section}]\n{key} = {value}\n"
    lines.insert(start + 1, f"{key} = {value}")
    return "\n".join(lines) + "\n"
