"""Putting figures side by side in words: a tie within 10%, ratios past that.

This module knows no cells; it words (value, name) pairs that the reading
has ranked, best first, with a :class:`Wording` per kind of figure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Closer than this and a run names no winner: on a shared host noise alone
# moves a median by a few per cent, so a 4% gap says nothing.
CLOSE = 1.1


def plural(n: int, word: str) -> str:
    """``1 cell``, ``2 cells``, ``1,000 samples``."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def close(a: float, b: float) -> bool:
    """True if the larger of ``a`` and ``b`` is less than 10% above the smaller."""
    low, high = sorted((a, b))
    return high < low * CLOSE if low > 0 else high == low


def _times(value: float, base: float) -> str:
    return f"{value / base:.3g}×" if base > 0 else "n/a×"


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


@dataclass(frozen=True)
class Wording:
    """How one kind of figure is compared.

    ``lead(name, value)`` names a clear leader ("uds has the fastest median
    round trip (23.1 µs)"); ``what`` names the figure in a tie; a value reads
    ``number(value) unit``; ``say(ratio, value)`` words one of the rest
    against the leader ("takes 1.6× as long (37.0 µs)"); ``last`` names the
    far end of the field ("slowest").
    """

    lead: Callable[[str, float], str]
    what: str
    number: Callable[[float], str]
    unit: str
    say: Callable[[str, float], str]
    last: str

    def value(self, v: float) -> str:
        return f"{self.number(v)} {self.unit}"

    def span(self, values: Sequence[float]) -> str:
        if self.number(min(values)) == self.number(max(values)):
            return f"{self.value(values[0])} each"
        if len(values) == 2:
            return f"{self.number(values[0])} and {self.value(values[1])}"
        return f"{self.number(min(values))} to {self.value(max(values))}"


def compare(ranked: Sequence[tuple[float, str]], w: Wording) -> str:
    """Words for two or more (value, name) pairs, best first.

    Names within 10% of the best are a tie, not a ranking. Past the tie the
    next and the last are put against the best; a long field's middle is
    left to the table.
    """
    best, leader = ranked[0]
    k = next((i for i, (v, _) in enumerate(ranked) if not close(v, best)), len(ranked))
    if k == 1:
        head = w.lead(leader, best)
    else:
        names, span = _names([r for _, r in ranked[:k]]), w.span([v for v, _ in ranked[:k]])
        head = f"{names} are within 10% of each other on {w.what} ({span})"
    rest = ranked[k:]
    if not rest:
        return f"{head}, so {'neither' if k == 2 else 'none'} is ahead in this run"
    against = "" if k == 1 else f"measured against {leader}'s {w.value(best)}, "
    (v1, r1), (vn, rn) = rest[0], rest[-1]
    if len(rest) == 1:
        return f"{head}; {against}{r1} {w.say(_times(v1, best), v1)}"
    return (
        f"{head}; {against}the next, {r1}, {w.say(_times(v1, best), v1)}; "
        f"the {w.last} of {len(ranked)}, {rn}, {w.say(_times(vn, best), vn)}"
    )
