"""Weighted round robin over a group's bindings: pure, O(1) per pick.

The rotation is built once (per config load, or when the eligible set changes) as a smooth
weighted sequence (nginx's algorithm), so weights 3:1 give a b a a, not a a a b; a pick is
one step of a cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import gcd


def smooth_sequence(members: Sequence[tuple[str, int]]) -> tuple[str, ...]:
    """One period of smooth weighted round robin; weight 0 members never appear."""
    live = [(name, weight) for name, weight in members if weight > 0]
    if not live:
        return ()
    divisor = 0
    for _, weight in live:
        divisor = gcd(divisor, weight)
    weights = [weight // divisor for _, weight in live]
    total = sum(weights)
    if total > 65536:
        # Keep one period bounded: scale down, keeping every member at least once.
        scale = total / 65536
        weights = [max(1, round(w / scale)) for w in weights]
        total = sum(weights)
    current = [0] * len(live)
    out: list[str] = []
    for _ in range(total):
        best = 0
        for i, weight in enumerate(weights):
            current[i] += weight
            if current[i] > current[best]:
                best = i
        current[best] -= total
        out.append(live[best][0])
    return tuple(out)


class Rotation:
    """A cursor over a smooth weighted sequence."""

    __slots__ = ("_cursor", "sequence")

    def __init__(self, sequence: tuple[str, ...]) -> None:
        self.sequence = sequence
        self._cursor = 0

    def __len__(self) -> int:
        return len(self.sequence)

    def next(self) -> str | None:
        if not self.sequence:
            return None
        name = self.sequence[self._cursor]
        self._cursor = (self._cursor + 1) % len(self.sequence)
        return name
