"""The scheduler's Transport over relay/deliver: route and connect (SMTP, ESMTP, LMTP), or
open an HTTP session (delivery_method HTTP); the session it opens sends and reports
`RecipientResult`s itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from relay.deliver.connection import open_connection
from relay.deliver.errors import ConnectError, FailureKind, RouteError
from relay.deliver.http_post import open_http_session
from relay.deliver.route import Router
from relay.deliver.settings import DeliverySettings
from relay.deliver.tls_policy import OutboundTls, sts_hosts
from relay.outcome import Reply
from relay.schedule.limits import Cap
from relay.schedule.shared import SHARED_RETRY, SharedLimits
from relay.schedule.transport import ConnectFailed, Session

# A connection waits this long for a cluster host-scope lease before it counts as refused by
# relay's own limit (and is retried after LOCAL_LIMIT_RETRY).
HOST_LEASE_WAIT = 2.0


@dataclass(frozen=True, slots=True)
class HostLimits:
    """Host-scope max_outbound_connections, compiled per binding: destination IP (as the
    configuration's host stanzas name it, lower case) -> limit. No entry: no per-host limit."""

    by_binding: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # Host-scope cluster_scope_max_outbound_connections: binding -> ip -> the cap, keyed by the
    # host stanza that sets it (global host: one cap across all bindings, as the page says).
    cluster: Mapping[str, Mapping[str, Cap]] = field(default_factory=dict)

    def limit(self, binding: str, ip: str) -> int:
        """The limit for connections from binding to ip; < 0: unlimited."""
        hosts = self.by_binding.get(binding)
        if not hosts:
            return -1
        return hosts.get(ip.lower(), -1)

    def cluster_cap(self, binding: str, ip: str) -> Cap | None:
        hosts = self.cluster.get(binding)
        return hosts.get(ip.lower()) if hosts else None


class HostGates:
    """Host-scope max_outbound_connections: connections per destination IP, per binding; and
    host-scope cluster_scope_max_outbound_connections as leases from `shared` (the cluster's
    limits), waited for up to HOST_LEASE_WAIT. `limits` is replaced on reload; open
    connections keep counting."""

    def __init__(
        self,
        limits: HostLimits,
        shared: SharedLimits | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.shared = shared
        self.now = now
        self._open: dict[tuple[str, str], int] = {}

    async def _lease(self, caps: tuple[Cap, ...]) -> bool:
        assert self.shared is not None
        deadline = time.monotonic() + HOST_LEASE_WAIT
        while not self.shared.acquire(caps, self.now()):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(SHARED_RETRY)
        return True

    def gate(self, binding: str) -> Callable[[str], AbstractAsyncContextManager[bool]]:
        @asynccontextmanager
        async def enter(ip: str) -> AsyncIterator[bool]:
            key = (binding, ip)
            limit = self.limits.limit(binding, ip)
            if 0 <= limit <= self._open.get(key, 0):
                yield False
                return
            cap = self.limits.cluster_cap(binding, ip) if self.shared is not None else None
            caps = () if cap is None else (cap,)
            self._open[key] = self._open.get(key, 0) + 1
            try:
                if caps and not await self._lease(caps):
                    caps = ()
                    yield False
                    return
                yield True
            finally:
                left = self._open[key] - 1
                if left:
                    self._open[key] = left
                else:
                    del self._open[key]
                if caps and self.shared is not None:
                    self.shared.release(caps)

        return enter


class SmtpTransport:
    """`tls`: MTA-STS / DANE / TLS counts (None: neither is ever applied)."""

    def __init__(
        self, router: Router, gates: HostGates | None = None, tls: OutboundTls | None = None
    ) -> None:
        self.router = router
        self.gates = gates
        self.tls = tls

    async def open(self, binding: str, domain: str, settings: DeliverySettings) -> Session:
        """An open connection: it is the scheduler's `Session` (send, usable, close).
        delivery_method HTTP: a session to the web endpoint (no route, no SMTP)."""
        if settings.method == "HTTP":
            try:
                return await open_http_session(settings, domain)
            except ValueError as err:  # no http_host for a /regex/ domain: fix and reload
                raise ConnectFailed(Reply.make(451, "4.3.5", str(err))) from err
        policy = None
        enforced = None
        if self.tls is not None:
            settings, enforced, policy = await self.tls.attempt(settings, domain)
        try:
            route = await self.router.resolve(settings, domain)
            if policy is not None:
                policy.mx_authenticated = route.authenticated
            if enforced is not None and self.tls is not None:
                allowed = sts_hosts(route, enforced)
                if not allowed.hosts:  # MTA-STS enforce: wait, never bounce at once
                    self.tls.no_matching_mx(domain, enforced, route)
                    names = ", ".join(h.name for h in route.hosts)
                    text = f"no MX host of {domain} ({names}) matches its MTA-STS policy"
                    raise ConnectFailed(Reply.make(451, "4.7.5", text), tls=True)
                route = allowed
            connection = await open_connection(
                settings,
                domain,
                self.router.destinations(settings, route),
                host_gate=self.gates.gate(binding) if self.gates is not None else None,
                tls_policy=policy,
            )
        except RouteError as err:
            raise ConnectFailed(err.reply, permanent=err.permanent) from err
        except ConnectError as err:
            raise ConnectFailed(
                err.reply,
                permanent=False,
                remote=err.failure.remote,
                local=err.local_only,
                tls=err.failure.kind is FailureKind.TLS,
            ) from err
        return connection
