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
    return _by_weight_class(live, weights, total)


def _by_weight_class(
    live: list[tuple[str, int]], weights: list[int], total: int
) -> tuple[str, ...]:
    """nginx's loop (every member's `current` += its weight, the largest — first on ties —
    is picked and loses `total`) in O(period x distinct weights), not O(period x members):
    members of one weight are picked in turn, so each weight class has one candidate, the
    member after the last one picked, with `current` = step x weight - total x rounds."""
    classes: dict[int, list[int]] = {}
    for index, weight in enumerate(weights):
        classes.setdefault(weight, []).append(index)
    if len(classes) == 1:
        return tuple(name for name, _ in live)  # equal weights: plain round robin
    groups = [(weight, members, [0]) for weight, members in classes.items()]
    out: list[str] = []
    for step in range(1, total + 1):
        best_current = best_index = 0
        best_group: list[int] | None = None
        for weight, members, picked in groups:
            size = len(members)
            rounds, turn = divmod(picked[0], size)
            current = step * weight - total * rounds
            index = members[turn]
            if (
                best_group is None
                or current > best_current
                or (current == best_current and index < best_index)
            ):
                best_current, best_index, best_group = current, index, picked
        assert best_group is not None
        best_group[0] += 1
        out.append(live[best_index][0])
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
