"""Searching the catalogue, without I/O: diacritic-, case- and word-order-insensitive, ranked.

Text is folded (NFC, lower case, đ→d, tone and vowel marks dropped) and split into words, so
"kết hôn đăng ký", "dang ky ket hon" and "KET HON" all name "Đăng ký kết hôn". Every word of the
query must be found in the procedure (its name, or its code, field, level and documents), whole
or as the start of a word (the citizen is still typing); a word found in the name counts more than
one found elsewhere, a whole word more than a prefix, the query's words in the name's order more
still, and among equals the shorter name wins: "ket hon" puts "Đăng ký kết hôn" before "Đăng ký
kết hôn có yếu tố nước ngoài".

An inverted index (word → procedures) and the sorted vocabulary (prefixes by bisection) keep a
search over thousands of procedures to a few milliseconds.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from display_server.catalogue.model import Procedure

_NON_WORD = re.compile(r"[^0-9a-z]+")

# what one query word is worth, by where and how it was found
NAME_WORD, NAME_PREFIX, OTHER_WORD, OTHER_PREFIX = 8, 5, 2, 1
PHRASE_BONUS = 6      # the query's words in order, side by side, in the name
START_BONUS = 3       # …at the very start of the name
CODE_BONUS = 1000     # the query is the procedure's code


def fold(text: str) -> str:
    """Lower case without marks, words separated by single spaces: "Đăng ký  KẾT HÔN" → "dang ky ket hon"."""
    text = unicodedata.normalize("NFC", text).lower().replace("đ", "d")
    text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", text).strip()


def words(text: str) -> list[str]:
    return fold(text).split()


class FieldMap:
    """The site's fields, to map a file's field (an id, or a name in any spelling) to one."""

    def __init__(self, fields: Iterable[tuple[str, str]]) -> None:
        self.names: dict[str, str] = {}
        self._by_folded: dict[str, str] = {}
        for fid, name in fields:
            self.names[fid] = name
            self._by_folded.setdefault(fold(name), fid)

    def resolve(self, text: str) -> tuple[str | None, str]:
        """(site field id or None, the name to show)."""
        text = text.strip()
        if text in self.names:
            return text, self.names[text]
        fid = self._by_folded.get(fold(text))
        if fid is not None:
            return fid, self.names[fid]
        return None, text

    def apply(self, p: Procedure) -> Procedure:
        """The procedure with its field mapped to this site's (p.field_name is the file's text)."""
        fid, name = self.resolve(p.field_name)
        return replace(p, field=fid, field_name=name)


@dataclass(frozen=True)
class _Entry:
    procedure: Procedure
    name_words: tuple[str, ...]
    name_text: str       # " dang ky ket hon ": the folded name padded, for phrase tests
    position: int


class SearchIndex:
    """The procedures of one catalogue, in import order, ready to search."""

    def __init__(self, procedures: Sequence[Procedure]) -> None:
        self.entries: list[_Entry] = []
        self.by_code: dict[str, Procedure] = {}
        self._by_folded_code: dict[str, int] = {}
        self._name: dict[str, set[int]] = {}
        self._other: dict[str, set[int]] = {}
        self._fields: dict[str, list[int]] = {}        # field key → entries
        self._field_names: dict[str, str] = {}         # field key → name
        self._field_aliases: dict[str, str] = {}      # folded name or key → field key
        for i, p in enumerate(procedures):
            name_words = tuple(words(p.name))
            self.entries.append(_Entry(p, name_words, " " + " ".join(name_words) + " ", i))
            self.by_code[p.code] = p
            self._by_folded_code.setdefault(p.code.lower(), i)
            for w in name_words:
                self._name.setdefault(w, set()).add(i)
            for text in (p.code, p.field_name, p.level, *p.documents):
                for w in words(text):
                    self._other.setdefault(w, set()).add(i)
            key = p.field_key
            self._fields.setdefault(key, []).append(i)
            self._field_names.setdefault(key, p.field_name)
            self._field_aliases.setdefault(key, key)
            self._field_aliases.setdefault(fold(p.field_name), key)
        self._vocabulary = sorted(set(self._name) | set(self._other))

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, code: str) -> Procedure | None:
        return self.by_code.get(code)

    def fields(self) -> list[tuple[str, str, int]]:
        """(field key, name, how many procedures), in the order the file first names them."""
        return [(key, self._field_names[key], len(ids)) for key, ids in self._fields.items()]

    def _field_key(self, field: str) -> str | None:
        return self._field_aliases.get(field) or self._field_aliases.get(fold(field))

    def by_field(self, field: str) -> list[Procedure]:
        key = self._field_key(field)
        return [self.entries[i].procedure for i in self._fields.get(key, ())] if key is not None else []

    def _prefixed(self, word: str) -> list[str]:
        """The vocabulary's words that start with `word` (itself first when it is one)."""
        start = bisect_left(self._vocabulary, word)
        found = []
        for w in self._vocabulary[start:]:
            if not w.startswith(word):
                break
            found.append(w)
        return found

    def _best(self, word: str) -> dict[int, int]:
        """Entry → what this query word is worth there (the best of its matches)."""
        best: dict[int, int] = {}
        for w in self._prefixed(word):
            exact = w == word
            for index, weight in ((self._name, NAME_WORD if exact else NAME_PREFIX),
                                  (self._other, OTHER_WORD if exact else OTHER_PREFIX)):
                for i in index.get(w, ()):
                    if best.get(i, 0) < weight:
                        best[i] = weight
        return best

    def search(self, text: str, field: str | None = None, limit: int = 20) -> list[Procedure]:
        """The best `limit` procedures for the query, best first; [] for a query without words."""
        query = list(dict.fromkeys(words(text)))
        if not query or limit <= 0:
            return []
        allowed: set[int] | None = None
        if field:
            key = self._field_key(field)
            allowed = set(self._fields.get(key, ())) if key is not None else set()
        per_word = sorted((self._best(w) for w in query), key=len)
        candidates = set(per_word[0])
        for best in per_word[1:]:
            candidates.intersection_update(best)
            if not candidates:
                break
        if allowed is not None:
            candidates &= allowed
        code = self._by_folded_code.get(text.strip().lower())
        phrase = " " + " ".join(words(text))  # in the query's order, repeats kept
        scored = []
        for i in candidates:
            e = self.entries[i]
            score = sum(best[i] for best in per_word)
            at = e.name_text.find(phrase)
            if at >= 0:
                score += PHRASE_BONUS + (START_BONUS if at == 0 else 0)
            if i == code:
                score += CODE_BONUS
            scored.append((-score, len(e.name_words), i))
        scored.sort()
        return [self.entries[i].procedure for _, _, i in scored[:limit]]
