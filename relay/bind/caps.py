"""Which bindings are at their warm-up cap (schedule/warmup.py), for which domain (or all),
and until when. Pure data + a clock value, like the suspension table: the queue core writes,
the selector leaves a capped binding out of a destination's rotation until the period ends,
so selection stays O(1) in the number of bindings (a rotation is rebuilt once per binding
reaching its cap, not probed through on every pick)."""

from __future__ import annotations


class CapTable:
    def __init__(self) -> None:
        self._by_domain: dict[str, dict[str, float]] = {}  # domain -> binding -> until
        self._wide: dict[str, float] = {}  # binding -> until: capped for every domain
        self._versions: dict[str, int] = {}
        self._wide_version = 0

    def cap(self, binding: str, domain: str | None, until: float) -> None:
        if domain is None:
            if self._wide.get(binding) == until:
                return
            self._wide[binding] = until
            self._wide_version += 1
            return
        table = self._by_domain.setdefault(domain, {})
        if table.get(binding) == until:
            return
        table[binding] = until
        self._versions[domain] = self._versions.get(domain, 0) + 1

    def clear(self) -> None:
        """Forget every cap (each binding found at its cap again is capped again)."""
        self._by_domain.clear()
        self._wide.clear()
        self._wide_version += 1

    def version(self, domain: str) -> int:
        """Changes whenever a cap for `domain` or a binding-wide one is added."""
        return self._versions.get(domain, 0) + self._wide_version

    def for_domain(self, domain: str, now: float) -> dict[str, float]:
        """Binding -> until, for the caps in force now."""
        found = {b: t for b, t in self._wide.items() if t > now}
        for b, t in self._by_domain.get(domain, {}).items():
            if t > now and t > found.get(b, 0.0):
                found[b] = t
        return found

    def until(self, binding: str, domain: str, now: float) -> float | None:
        t = max(self._wide.get(binding, 0.0), self._by_domain.get(domain, {}).get(binding, 0.0))
        return t if t > now else None

    def __bool__(self) -> bool:
        return bool(self._wide or self._by_domain)
