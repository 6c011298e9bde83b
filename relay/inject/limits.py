"""Concurrent connection limits per listener and per client IP (pure bookkeeping)."""

from __future__ import annotations

from collections import Counter

from relay.inject import replies


class ConnectionLimits:
    """Counts open connections; `admit` says whether one more may get a greeting.

    Per-IP counts are shared by every listener started together.
    """

    def __init__(self, *, per_ip: int | None) -> None:
        self._per_ip_limit = per_ip
        self._by_listener: Counter[str] = Counter()
        self._by_ip: Counter[str] = Counter()

    def admit(
        self, listener: str, listener_limit: int | None, ip: str, hostname: str
    ) -> str | None:
        """Count the connection and return None, or return the 421 reply (not counted)."""
        if listener_limit is not None and self._by_listener[listener] >= listener_limit:
            return replies.TOO_MANY_CONNECTIONS.format(host=hostname)
        if self._per_ip_limit is not None and self._by_ip[ip] >= self._per_ip_limit:
            return replies.TOO_MANY_FROM_IP.format(host=hostname)
        self._by_listener[listener] += 1
        self._by_ip[ip] += 1
        return None

    def set_per_ip(self, per_ip: int | None) -> None:
        """A new per-IP limit (a reload): connections already open stay open."""
        self._per_ip_limit = per_ip

    def release(self, listener: str, ip: str) -> None:
        _release(self._by_listener, listener)
        _release(self._by_ip, ip)

    def open_connections(self, listener: str | None = None) -> int:
        if listener is None:
            return sum(self._by_listener.values())
        return self._by_listener[listener]


def _release(counter: Counter[str], key: str) -> None:
    left = counter[key] - 1
    if left > 0:
        counter[key] = left
    else:
        counter.pop(key, None)
