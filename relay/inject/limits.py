"""Concurrent connection limits per listener and per client IP (pure bookkeeping)."""

from __future__ import annotations

import logging
from collections import Counter

from relay.inject import replies
from relay.inject.shared_counts import CountTable, CountTableFull

log = logging.getLogger("relay.inject")


class ConnectionLimits:
    """Counts open connections; `admit` says whether one more may get a greeting.

    Per-IP counts are shared by every listener started together. With `shared` (the
    injection workers' (listeners, addresses) tables) both limits hold for the totals over
    every worker process.
    """

    def __init__(
        self, *, per_ip: int | None, shared: tuple[CountTable, CountTable] | None = None
    ) -> None:
        self._per_ip_limit = per_ip
        self._shared = shared
        self._by_listener: Counter[str] = Counter()
        self._by_ip: Counter[str] = Counter()

    def admit(
        self, listener: str, listener_limit: int | None, ip: str, hostname: str
    ) -> str | None:
        """Count the connection and return None, or return the 421 reply (not counted)."""
        if self._shared is not None:
            refusal = self._admit_shared(listener, listener_limit, ip, hostname)
            if refusal is not None:
                return refusal
        elif listener_limit is not None and self._by_listener[listener] >= listener_limit:
            return replies.TOO_MANY_CONNECTIONS.format(host=hostname)
        elif self._per_ip_limit is not None and self._by_ip[ip] >= self._per_ip_limit:
            return replies.TOO_MANY_FROM_IP.format(host=hostname)
        self._by_listener[listener] += 1
        self._by_ip[ip] += 1
        return None

    def _admit_shared(
        self, listener: str, listener_limit: int | None, ip: str, hostname: str
    ) -> str | None:
        assert self._shared is not None
        listeners, addresses = self._shared
        try:
            if not listeners.claim(listener, listener_limit):
                return replies.TOO_MANY_CONNECTIONS.format(host=hostname)
            try:
                if addresses.claim(ip, self._per_ip_limit):
                    return None
            except CountTableFull:
                listeners.release(listener)
                raise
            listeners.release(listener)
            return replies.TOO_MANY_FROM_IP.format(host=hostname)
        except CountTableFull as error:
            log.error("%s: %s; connection from %s refused", listener, error, ip)
            return replies.TOO_MANY_CONNECTIONS.format(host=hostname)

    def set_per_ip(self, per_ip: int | None) -> None:
        """A new per-IP limit (a reload): connections already open stay open."""
        self._per_ip_limit = per_ip

    def release(self, listener: str, ip: str) -> None:
        if self._shared is not None:
            self._shared[0].release(listener)
            self._shared[1].release(ip)
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
