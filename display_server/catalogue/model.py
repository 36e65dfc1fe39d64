"""A procedure of the catalogue (thủ tục hành chính), as the pages and the console see it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# a procedure's code is part of its page's address (/thu-tuc/{code}): no slash, nothing to escape.
# National codes look like "1.001193" or "2.000889.000.00.00.H12".
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Procedure:
    code: str
    name: str
    # the site's field id ([[fields]] id) when the file's field maps to one; None: no "Lấy số" button
    field: str | None
    # the field's name: the site's name when mapped, else what the file says
    field_name: str
    level: str = ""
    # business days to process (the promised return date); None when the file's text gives no number
    processing_days: int | None = None
    processing_text: str = ""
    fees: str = ""
    documents: tuple[str, ...] = field(default_factory=tuple)
    legal_basis: str = ""
    submit_at: str = ""

    @property
    def field_key(self) -> str:
        """What browsing by field names this procedure's field by: the site's id, else the name."""
        return self.field if self.field is not None else self.field_name

    def as_json(self) -> dict[str, object]:
        return {"code": self.code, "name": self.name, "field": self.field, "field_name": self.field_name,
                "level": self.level, "processing_days": self.processing_days,
                "processing_text": self.processing_text, "fees": self.fees, "documents": list(self.documents),
                "legal_basis": self.legal_basis, "submit_at": self.submit_at}
