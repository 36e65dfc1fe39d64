"""Site configurations for tests: each test gets its own site id, so retained state of one test
never leaks into another on the shared broker."""

from __future__ import annotations

import itertools
from pathlib import Path

_counter = itertools.count(1)

DEFAULT_FIELDS = """
[[fields]]
id = "dat-dai"
name = "Đất đai"
first = 1001
last = 1999

[[fields]]
id = "ho-tich"
name = "Hộ tịch"
first = 2001
last = 2999

[[fields]]
id = "chung-thuc"
name = "Chứng thực"
first = 1
last = 3
prefix = "C"
"""

DEFAULT_COUNTERS = """
[[counters]]
id = "1"
name = "Quầy 1"
fields = ["dat-dai"]

[[counters]]
id = "2"
name = "Quầy 2"
fields = ["dat-dai", "ho-tich"]

[[counters]]
id = "3"
name = "Quầy 3"
fields = ["ho-tich", "chung-thuc"]
"""


def write_site(tmp: Path, broker_url: str, *, site_id: str | None = None, fields: str = DEFAULT_FIELDS,
               counters: str = DEFAULT_COUNTERS, extra: str = "", db: Path | None = None) -> tuple[Path, str]:
    site_id = site_id or f"t{next(_counter)}"
    db = db or tmp / f"{site_id}.sqlite3"
    path = tmp / f"{site_id}.toml"
    path.write_text(f"""
[site]
id = "{site_id}"
name = "Bộ phận Một cửa thử nghiệm"

[mqtt]
url = "{broker_url}"

[storage]
path = "{db}"

[queue]
tick_s = 0.05
{extra}
{fields}
{counters}
""", encoding="utf-8")
    return path, site_id
