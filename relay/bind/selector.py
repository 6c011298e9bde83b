"""Pick the binding a message leaves from: pure decisions over plain data.

Candidates are the group's bindings (or the message's explicit binding) that have weight,
are plumbed (their bind_address exists on this host) and are not suspended for the domain.
Among them, smooth weighted round robin. The eligible rotation for a (group, domain) is
rebuilt only when the group or that domain's suspensions change, so a pick costs O(1)
however many bindings the group has. A caller-supplied `has_room` check (the binding x
domain ready queue is not full) is probed for at most `max_probe` candidates.
A rotation is also rebuilt once the earliest suspension it left out has ended, so the
selector only reads the table: adaptive delivery, its one writer, lifts ended holds in its
own time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from relay.bind.rotation import Rotation, smooth_sequence
from relay.bind.suspensions import SuspensionTable


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    weight: int
    plumbed: bool = True


@dataclass(frozen=True, slots=True)
class Pick:
    """A binding, or why there is none: `wait_until` (every candidate suspended) or full."""

    binding: str | None
    wait_until: float | None = None
    all_full: bool = False
    no_candidates: bool = False


class Selector:
    def __init__(
        self,
        groups: Mapping[str, Sequence[Member]],
        suspensions: SuspensionTable,
        max_probe: int = 8,
    ) -> None:
        self._groups = {name: tuple(members) for name, members in groups.items()}
        self.suspensions = suspensions
        self._max_probe = max_probe
        # (group, domain) -> (table version, rebuild at, rotation)
        self._rotations: dict[tuple[str, str], tuple[int, float, Rotation]] = {}
        self._members: dict[str, Member] = {
            m.name: m for members in self._groups.values() for m in members
        }

    def members(self, group: str) -> tuple[Member, ...]:
        return self._groups.get(group, ())

    def _rotation(self, group: str, domain: str, now: float) -> Rotation:
        version = self.suspensions.version(domain)
        key = (group, domain)
        cached = self._rotations.get(key)
        if cached is not None and cached[0] == version and now < cached[1]:
            return cached[2]
        suspended = self.suspensions.for_domain(domain, now)
        members = []
        rebuild_at = math.inf
        for m in self._groups.get(group, ()):
            if not m.plumbed:
                continue
            entry = suspended.get(m.name)
            if entry is None:
                members.append((m.name, m.weight))
            elif entry.until < rebuild_at:
                rebuild_at = entry.until
        rotation = Rotation(smooth_sequence(members))
        self._rotations[key] = (version, rebuild_at, rotation)
        return rotation

    def pick(
        self,
        group: str,
        domain: str,
        now: float,
        has_room: Callable[[str], bool],
        binding: str | None = None,
    ) -> Pick:
        domain = domain.lower()
        if binding is not None:
            return self._pick_explicit(binding, domain, now, has_room)
        rotation = self._rotation(group, domain, now)
        if len(rotation) == 0:
            return self._why_none(group, domain, now)
        for _ in range(min(self._max_probe, len(rotation))):
            name = rotation.next()
            if name is not None and has_room(name):
                return Pick(name)
        return Pick(None, all_full=True)

    def _pick_explicit(
        self, binding: str, domain: str, now: float, has_room: Callable[[str], bool]
    ) -> Pick:
        member = self._members.get(binding)
        if member is None or not member.plumbed:
            return Pick(None, no_candidates=True)
        entry = self.suspensions.for_domain(domain, now).get(binding)
        if entry is not None:
            return Pick(None, wait_until=entry.until)
        return Pick(binding) if has_room(binding) else Pick(None, all_full=True)

    def _why_none(self, group: str, domain: str, now: float) -> Pick:
        suspended = self.suspensions.for_domain(domain, now)
        ends = [
            suspended[m.name].until
            for m in self._groups.get(group, ())
            if m.plumbed and m.weight > 0 and m.name in suspended
        ]
        if ends:
            return Pick(None, wait_until=min(ends))
        return Pick(None, no_candidates=True)
