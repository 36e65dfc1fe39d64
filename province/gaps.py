"""Which seqs of a site are missing: pure, so the backfill can be planned and tested without I/O."""

from __future__ import annotations

from collections.abc import Iterable


def missing_ranges(seen: Iterable[int], *, after: int = 0, upto: int | None = None) -> list[tuple[int, int]]:
    """Inclusive ranges of seqs absent from `seen`, between `after` (excluded) and `upto` (included).

    `upto` defaults to the highest seq seen: what comes after it is not missing yet, only not sent.
    A core's seqs start at 1, so with the default `after=0` a first message with seq 5 means 1-4
    were missed (they may be private messages the province never sees; the backfill tells).
    """
    seqs = sorted({s for s in seen if s > after})
    top = upto if upto is not None else (seqs[-1] if seqs else after)
    gaps: list[tuple[int, int]] = []
    expected = after + 1
    for s in seqs:
        if s > top:
            break
        if s > expected:
            gaps.append((expected, s - 1))
        expected = s + 1
    if expected <= top:
        gaps.append((expected, top))
    return gaps
