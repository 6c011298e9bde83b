"""The suppression list in memory: what injection asks for every recipient (pure, no I/O).

An entry is (tenant, address): the tenant "" (GLOBAL) suppresses the address for every
message, a tenant's entry only for that tenant's messages. Addresses compare lowered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

GLOBAL = ""  # the tenant of an entry that holds for every message
Action = Literal["reject", "drop"]
ACTIONS: tuple[Action, ...] = ("reject", "drop")
DropReport = Callable[[dict[str, object]], None]


@dataclass(frozen=True, slots=True)
class Entry:
    tenant: str  # GLOBAL ("") or a tenant's name
    address: str  # lowered
    reason: str = ""  # the bounce reply, the complaint's feedback type, an operator's note
    source: str = ""  # "bounce", "complaint" or "operator"
    created: float = 0.0  # unix time

    def describe(self) -> dict[str, object]:
        return {
            "tenant": self.tenant or None,
            "address": self.address,
            "reason": self.reason,
            "source": self.source,
            "created": self.created,
        }


def key(tenant: str | None, address: str) -> tuple[str, str]:
    """The (tenant, address) an entry is kept under."""
    return (tenant or GLOBAL, address.lower())


class Suppressions:
    """Every entry, by address: one dict lookup per recipient (a few hundred ns), and
    nothing more for the addresses not on the list."""

    def __init__(self, *, enabled: bool = True, action: Action = "reject") -> None:
        self.enabled = enabled
        self.action: Action = action
        self._tenants: dict[str, set[str]] = {}  # lowered address -> tenants ("" = global)
        self._count = 0
        self.on_drop: DropReport | None = None  # told of each recipient dropped (action drop)

    def __len__(self) -> int:
        return self._count

    def add(self, tenant: str | None, address: str) -> bool:
        """True if the entry is new."""
        scope, lowered = key(tenant, address)
        tenants = self._tenants.get(lowered)
        if tenants is None:
            tenants = self._tenants[lowered] = set()
        elif scope in tenants:
            return False
        tenants.add(scope)
        self._count += 1
        return True

    def remove(self, tenant: str | None, address: str) -> bool:
        """True if there was such an entry."""
        scope, lowered = key(tenant, address)
        tenants = self._tenants.get(lowered)
        if tenants is None or scope not in tenants:
            return False
        tenants.discard(scope)
        if not tenants:
            del self._tenants[lowered]
        self._count -= 1
        return True

    def replace(self, entries: Iterable[tuple[str, str]]) -> None:
        """Start over from (tenant, address) pairs (a full load)."""
        self._tenants.clear()
        self._count = 0
        for tenant, address in entries:
            self.add(tenant, address)

    def suppressed(self, tenant: str | None, address: str) -> bool:
        """Is `address` suppressed for a message of `tenant` (None: no tenant)? False
        whenever the list is turned off."""
        if not self.enabled:
            return False
        tenants = self._tenants.get(address.lower())
        if tenants is None:
            return False
        return GLOBAL in tenants or (tenant is not None and tenant in tenants)

    def refuses(self, tenant: str | None, address: str) -> bool:
        """Should injection refuse `address` outright (action reject)?"""
        return self.action == "reject" and self.suppressed(tenant, address)

    def split(self, tenant: str | None, recipients: Sequence[str]) -> list[int]:
        """The indexes of the suppressed recipients of a message of `tenant` ([] for most
        messages: nothing is built for them)."""
        if not self._tenants or not self.enabled:
            return []
        return [i for i, r in enumerate(recipients) if self.suppressed(tenant, r)]
