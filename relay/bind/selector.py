"""Pick the binding a message leaves from: pure decisions over plain data.

Candidates are the group's bindings (or the message's explicit binding) that have weight,
are plumbed (their bind_address exists on this host) and are not suspended for the domain.
Among them, smooth weighted round robin. The eligible rotation for a (group, domain) is
rebuilt only when the group or that domain's suspensions change, so a pick costs O(1)
however many bindings the group has. A caller-supplied `has_room` check (the binding x
domain ready queue is not full) is probed for at most `max_probe` candidates.
A rotation is also rebuilt once the earliest suspension it left out has ended, so the
selector only reads the table: adaptive delivery, its one writer, lifts ended holds in its
own time. `also`: a second key of the table whose suspensions apply too (a provider's, when
adaptive decisions roll up per binding x provider: schedule/providers.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from relay.bind.caps import CapTable
from relay.bind.rotation import Rotation, smooth_sequence
from relay.bind.suspensions import Suspension, SuspensionTable


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
        self.caps = CapTable()  # bindings at their warm-up cap: left out like suspended ones
        self._max_probe = max_probe
        # (group, domain) -> ((suspension, cap) table versions, rebuild at, rotation)
        self._rotations: dict[tuple[str, str], tuple[tuple[int, int], float, Rotation]] = {}
        # (group, domain, also) -> (the three table versions, rebuild at, rotation)
        self._rollups: dict[tuple[str, str, str], tuple[tuple[int, int, int], float, Rotation]] = {}
        self._members: dict[str, Member] = {
            m.name: m for members in self._groups.values() for m in members
        }

    def members(self, group: str) -> tuple[Member, ...]:
        return self._groups.get(group, ())

    def _suspended(self, domain: str, also: str | None, now: float) -> dict[str, Suspension]:
        """Suspensions (and warm-up caps, as suspensions until the period ends) in force."""
        suspended = self.suspensions.for_domain(domain, now)
        if self.caps:
            for name, until in self.caps.for_domain(domain, now).items():
                known = suspended.get(name)
                if known is None or known.until < until:
                    suspended[name] = Suspension(name, domain, until, "warm-up cap")
        if also is not None:
            for name, entry in self.suspensions.for_domain(also, now).items():
                known = suspended.get(name)
                if known is None or known.until < entry.until:
                    suspended[name] = entry
        return suspended

    def _rotation(self, group: str, domain: str, now: float, also: str | None = None) -> Rotation:
        if also is not None:
            versions = (
                self.suspensions.version(domain),
                self.suspensions.version(also),
                self.caps.version(domain),
            )
            found = self._rollups.get((group, domain, also))
            if found is not None and found[0] == versions and now < found[1]:
                return found[2]
            rotation, rebuild_at = self._build(group, self._suspended(domain, also, now))
            self._rollups[(group, domain, also)] = (versions, rebuild_at, rotation)
            return rotation
        version = (self.suspensions.version(domain), self.caps.version(domain))
        key = (group, domain)
        cached = self._rotations.get(key)
        if cached is not None and cached[0] == version and now < cached[1]:
            return cached[2]
        rotation, rebuild_at = self._build(group, self._suspended(domain, None, now))
        self._rotations[key] = (version, rebuild_at, rotation)
        return rotation

    def _build(self, group: str, suspended: Mapping[str, Suspension]) -> tuple[Rotation, float]:
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
        return Rotation(smooth_sequence(members)), rebuild_at

    def pick(
        self,
        group: str,
        domain: str,
        now: float,
        has_room: Callable[[str], bool],
        binding: str | None = None,
        also: str | None = None,
    ) -> Pick:
        domain = domain.lower()
        if binding is not None:
            return self._pick_explicit(binding, domain, now, has_room, also)
        rotation = self._rotation(group, domain, now, also)
        if len(rotation) == 0:
            return self._why_none(group, domain, now, also)
        for _ in range(min(self._max_probe, len(rotation))):
            name = rotation.next()
            if name is not None and has_room(name):
                return Pick(name)
        return Pick(None, all_full=True)

    def _pick_explicit(
        self,
        binding: str,
        domain: str,
        now: float,
        has_room: Callable[[str], bool],
        also: str | None = None,
    ) -> Pick:
        member = self._members.get(binding)
        if member is None or not member.plumbed:
            return Pick(None, no_candidates=True)
        entry = self._suspended(domain, also, now).get(binding)
        if entry is not None:
            return Pick(None, wait_until=entry.until)
        return Pick(binding) if has_room(binding) else Pick(None, all_full=True)

    def _why_none(self, group: str, domain: str, now: float, also: str | None = None) -> Pick:
        suspended = self._suspended(domain, also, now)
        ends = [
            suspended[m.name].until
            for m in self._groups.get(group, ())
            if m.plumbed and m.weight > 0 and m.name in suspended
        ]
        if ends:
            return Pick(None, wait_until=min(ends))
        return Pick(None, no_candidates=True)
