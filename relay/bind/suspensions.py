"""Which bindings may not send to which domain, and until when. Pure data + a clock value.

A suspension is per binding x domain (adaptive's own, or an operator's through adaptive
delivery): the adaptive engine is the table's one writer, the binding selector reads it.
`suspend_delivery` in the configuration is resolved by the selector's caller. Each change
bumps a per-domain version so selectors rebuild their eligible rotation only when something
changed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Suspension:
    binding: str
    domain: str
    until: float  # unix time
    reason: str


class SuspensionTable:
    def __init__(self) -> None:
        self._by_domain: dict[str, dict[str, Suspension]] = {}
        self._versions: dict[str, int] = {}

    def suspend(self, binding: str, domain: str, until: float, reason: str) -> Suspension:
        entry = Suspension(binding, domain.lower(), until, reason)
        self._by_domain.setdefault(entry.domain, {})[binding] = entry
        self._bump(entry.domain)
        return entry

    def resume(self, binding: str, domain: str) -> bool:
        domain = domain.lower()
        table = self._by_domain.get(domain)
        if not table or binding not in table:
            return False
        del table[binding]
        if not table:
            del self._by_domain[domain]
        self._bump(domain)
        return True

    def clear(self) -> None:
        for entry in self.all():
            self.resume(entry.binding, entry.domain)

    def for_domain(self, domain: str, now: float) -> dict[str, Suspension]:
        table = self._by_domain.get(domain.lower(), {})
        return {b: s for b, s in table.items() if s.until > now}

    def is_suspended(self, binding: str, domain: str, now: float) -> bool:
        entry = self._by_domain.get(domain.lower(), {}).get(binding)
        return entry is not None and entry.until > now

    def version(self, domain: str) -> int:
        return self._versions.get(domain.lower(), 0)

    def earliest_end(self, now: float) -> float | None:
        """When the first suspension still in force ends (ended ones wait to be lifted)."""
        ends = [
            s.until for table in self._by_domain.values() for s in table.values() if s.until > now
        ]
        return min(ends) if ends else None

    def all(self) -> list[Suspension]:
        return [s for table in self._by_domain.values() for s in table.values()]

    def _bump(self, domain: str) -> None:
        self._versions[domain] = self._versions.get(domain, 0) + 1
