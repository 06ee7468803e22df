"""Sets of byte ranges: what an image holds, what was written, what must read as zero.

One job: :class:`Ranges`, a sorted list of disjoint half-open ``[start, end)`` intervals with
union, difference, clipping and alignment. Pure; the other imaging modules build on it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator


class Ranges:
    """Disjoint, sorted, merged ``[start, end)`` byte ranges."""

    __slots__ = ("_starts", "_ends")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for a, b in sorted(ranges):
            self.add(a, b)

    def add(self, start: int, end: int) -> None:
        if start >= end:
            return
        i = bisect.bisect_left(self._ends, start)  # first range that ends at or after start
        j = bisect.bisect_right(self._starts, end)  # ranges starting after end stay
        if i < j:
            start = min(start, self._starts[i])
            end = max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def update(self, other: Iterable[tuple[int, int]]) -> None:
        for a, b in other:
            self.add(a, b)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self._starts, self._ends, strict=True)

    def __len__(self) -> int:
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ranges) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"Ranges({list(self)!r})"

    @property
    def total(self) -> int:
        return sum(b - a for a, b in self)

    def contains(self, pos: int) -> bool:
        i = bisect.bisect_right(self._starts, pos) - 1
        return i >= 0 and pos < self._ends[i]

    def covers(self, start: int, end: int) -> bool:
        """Whether all of ``[start, end)`` is in the set."""
        i = bisect.bisect_right(self._starts, start) - 1
        return i >= 0 and self._ends[i] >= end

    def minus(self, other: Ranges) -> Ranges:
        out = Ranges()
        for a, b in self:
            pos = a
            i = bisect.bisect_right(other._ends, a)
            while pos < b and i < len(other._starts) and other._starts[i] < b:
                if other._starts[i] > pos:
                    out.add(pos, other._starts[i])
                pos = max(pos, other._ends[i])
                i += 1
            if pos < b:
                out.add(pos, b)
        return out

    def clip(self, start: int, end: int) -> Ranges:
        return Ranges((max(a, start), min(b, end)) for a, b in self if a < end and b > start)

    def shifted(self, delta: int) -> Ranges:
        return Ranges((a + delta, b + delta) for a, b in self)

    def aligned(self, block: int) -> Ranges:
        """Every range widened to whole ``block``-sized blocks."""
        return Ranges((a // block * block, -(-b // block) * block) for a, b in self)


__all__ = ["Ranges"]
