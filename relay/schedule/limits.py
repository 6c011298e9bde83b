"""Connection caps shared by reference: each cap is (key, limit) and counts every open
connection of every binding x domain that resolved to it.

max_outbound_connections counts per binding x domain; scope_max_outbound_connections and
server_max_outbound_connections per the scope that defines them; the host scope per
destination IP (checked at connect time). A limit < 0 means unlimited.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

Cap = tuple[Hashable, int]


class ConnectionCaps:
    def __init__(self) -> None:
        self._open: dict[Hashable, int] = {}

    def can_open(self, caps: Sequence[Cap]) -> bool:
        return all(limit < 0 or self._open.get(key, 0) < limit for key, limit in caps)

    def opened(self, caps: Sequence[Cap]) -> None:
        for key, _ in caps:
            self._open[key] = self._open.get(key, 0) + 1

    def closed(self, caps: Sequence[Cap]) -> None:
        for key, _ in caps:
            left = self._open.get(key, 0) - 1
            if left > 0:
                self._open[key] = left
            else:
                self._open.pop(key, None)

    def count(self, key: Hashable) -> int:
        return self._open.get(key, 0)
