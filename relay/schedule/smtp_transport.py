"""The scheduler's Transport over relay/deliver: route, connect, send, translate results."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from relay.deliver.connection import OutboundConnection, open_connection
from relay.deliver.errors import ConnectError, RouteError
from relay.deliver.route import Router
from relay.deliver.settings import DeliverySettings
from relay.outcome import RecipientResult
from relay.schedule.transport import ConnectFailed, OutboundMessage

HostLimit = Callable[[str, str], int]  # (binding, destination ip) -> limit, < 0 unlimited


class HostGates:
    """Host-scope max_outbound_connections: connections per destination IP, per binding."""

    def __init__(self, limit: HostLimit) -> None:
        self.limit = limit
        self._open: dict[tuple[str, str], int] = {}

    def gate(self, binding: str) -> Callable[[str], AbstractAsyncContextManager[bool]]:
        @asynccontextmanager
        async def enter(ip: str) -> AsyncIterator[bool]:
            key = (binding, ip)
            limit = self.limit(binding, ip)
            if 0 <= limit <= self._open.get(key, 0):
                yield False
                return
            self._open[key] = self._open.get(key, 0) + 1
            try:
                yield True
            finally:
                left = self._open[key] - 1
                if left:
                    self._open[key] = left
                else:
                    del self._open[key]

        return enter


class SmtpSession:
    def __init__(self, connection: OutboundConnection) -> None:
        self.connection = connection

    @property
    def usable(self) -> bool:
        return self.connection.usable

    async def send(self, message: OutboundMessage) -> list[RecipientResult]:
        outcomes = await self.connection.send(message)
        return [
            RecipientResult(
                o.recipient,
                o.outcome,
                str(o.reply),
                str(o.remote) if o.remote else "",
                o.reply.local,
            )
            for o in outcomes
        ]

    async def close(self) -> None:
        await self.connection.close()


class SmtpTransport:
    def __init__(self, router: Router, gates: HostGates | None = None) -> None:
        self.router = router
        self.gates = gates

    async def open(self, binding: str, domain: str, policy: DeliverySettings) -> SmtpSession:
        try:
            route = await self.router.resolve(policy, domain)
            connection = await open_connection(
                policy,
                domain,
                self.router.destinations(policy, route),
                host_gate=self.gates.gate(binding) if self.gates is not None else None,
            )
        except RouteError as err:
            raise ConnectFailed(str(err.reply), permanent=err.permanent) from err
        except ConnectError as err:
            remote = err.failure.remote
            raise ConnectFailed(
                str(err.reply),
                permanent=False,
                remote=str(remote) if remote else "",
                local=err.local_only,
            ) from err
        return SmtpSession(connection)
