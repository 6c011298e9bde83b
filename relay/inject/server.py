"""Start and stop the injection listeners inside the caller's running event loop.

    listeners = await start_listeners(settings, spool)
    ...
    await listeners.close(grace=30)   # stop accepting, let sessions finish, then 421

Works on any asyncio loop (the daemon uses uvloop); no threads besides the default
executor that checks passwords and loads files.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from relay.inject.auth import Credentials
from relay.inject.connection import InjectConnection, ListenerContext
from relay.inject.limits import ConnectionLimits
from relay.inject.settings import InjectSettings, ListenerSettings
from relay.inject.shared_counts import CountTable
from relay.inject.spooling import MessageStore
from relay.inject.steering import SteeringError, attach
from relay.suppress.entries import Suppressions

log = logging.getLogger("relay.inject")


class ListenError(OSError):
    """A listener could not be started; the message names its `listen` address."""


@dataclass(frozen=True, slots=True)
class BoundListener:
    listen: str  # as configured
    sockets: tuple[tuple[str, int], ...]  # (host, port) actually bound (port 0 resolved)


class Listeners:
    """The running listeners of one InjectSettings."""

    def __init__(
        self,
        limits: ConnectionLimits,
        *,
        spool: MessageStore,
        clock: Callable[[], float],
        reuse_port: bool = False,
        suppression: Suppressions | None = None,
        steer: int | None = None,
    ) -> None:
        self._steer = steer
        self._suppression = suppression
        self._servers: list[tuple[ListenerContext, asyncio.Server]] = []
        self._spool = spool
        self._clock = clock
        self._retired: list[tuple[ListenerContext, asyncio.Server]] = []  # removed by reload
        self._limits = limits
        self._reuse_port = reuse_port
        self._closed = False

    @property
    def bound(self) -> tuple[BoundListener, ...]:
        result = []
        for ctx, server in self._servers:
            names = tuple(
                (str(sock.getsockname()[0]), int(sock.getsockname()[1])) for sock in server.sockets
            )
            result.append(BoundListener(ctx.listener.listen, names))
        return tuple(result)

    @property
    def open_connections(self) -> int:
        return self._limits.open_connections()

    async def reconfigure(self, settings: InjectSettings) -> None:
        """Apply reloaded settings: every session that starts from now on (and what the
        open ones check next: relay_hosts, limits, binding groups) uses them. Credentials
        and TLS files are read again first; if that fails, it raises and nothing changes.
        A listen address that is gone stops accepting (its sessions finish); a new one is
        opened (if it cannot be, that is logged and the rest still applies)."""
        credentials, tls_context = await _load_security(settings)
        wanted = {listener.listen: listener for listener in settings.listeners}
        kept: list[tuple[ListenerContext, asyncio.Server]] = []
        for ctx, server in self._servers:
            listener = wanted.pop(ctx.listener.listen, None)
            if listener is None:
                server.close()  # stop accepting; the sessions it has go on
                self._retired.append((ctx, server))
                log.info("stopped listening on %s", ctx.listener.listen)
                listener = ctx.listener
            else:
                kept.append((ctx, server))
            ctx.settings = settings
            ctx.listener = listener
            ctx.credentials = credentials
            ctx.tls_context = tls_context
        self._servers = kept
        self._limits.set_per_ip(settings.max_connections_per_ip)
        for listener in wanted.values():  # new addresses
            try:
                await self._open(settings, listener, credentials, tls_context)
            except ListenError as error:
                log.error("reload: %s", error)
        log.info("injection settings reloaded")

    async def _open(
        self,
        settings: InjectSettings,
        listener: ListenerSettings,
        credentials: Credentials | None,
        tls_context: ssl.SSLContext | None,
    ) -> None:
        ctx = ListenerContext(
            settings=settings,
            listener=listener,
            spool=self._spool,
            credentials=credentials,
            tls_context=tls_context,
            limits=self._limits,
            clock=self._clock,
            suppression=self._suppression,
        )
        self._servers.append((ctx, await _serve(ctx, self._reuse_port, self._steer)))

    async def close(self, grace: float = 30.0) -> None:
        """Stop accepting; idle sessions get 421 4.3.2 now, sessions in a transaction when
        it ends or when `grace` seconds have passed, whichever comes first."""
        if self._closed:
            return
        self._closed = True
        for ctx, server in [*self._servers, *self._retired]:
            ctx.draining = True
            server.close()
        for session in self._sessions():
            session.shutdown(force=False)
        waiting = [session.closed for session in self._sessions()]
        if waiting:
            await asyncio.wait(waiting, timeout=grace)
        for session in self._sessions():
            session.shutdown(force=True)
        waiting = [session.closed for session in self._sessions()]
        if waiting:
            await asyncio.wait(waiting, timeout=1.0)
        for _, server in [*self._servers, *self._retired]:
            await server.wait_closed()
        log.info("injection listeners closed")

    def _sessions(self) -> list[InjectConnection]:
        everything = [*self._servers, *self._retired]
        return [session for ctx, _ in everything for session in list(ctx.sessions)]

    async def __aenter__(self) -> Listeners:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def make_tls_context(settings: InjectSettings) -> ssl.SSLContext | None:
    """Server-side context for STARTTLS from tls_certificate / tls_key (TLS 1.2+), built
    once when the listeners start (a reload builds it again), shared by every connection."""
    if settings.tls_certificate is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_certificate, settings.tls_key)
    # One TLS 1.3 session ticket per handshake, not OpenSSL's two: a mail client resumes
    # its next connection with one, and each ticket costs the server an encryption (a full
    # handshake's server CPU 0.84 of the two-ticket one, median of 6 alternated pairs).
    context.num_tickets = 1
    return context


async def start_listeners(
    settings: InjectSettings,
    spool: MessageStore,
    *,
    clock: Callable[[], float] = time.time,
    reuse_port: bool = False,
    suppression: Suppressions | None = None,
    steer: int | None = None,
    shared: tuple[CountTable, CountTable] | None = None,
) -> Listeners:
    """Open every configured listener in the running loop and start serving.

    `reuse_port` sets SO_REUSEPORT so several worker processes can share the addresses;
    `steer` (the number of worker processes) sends every connection from one client
    address to the same one of them; `shared`: the workers' (listeners, addresses)
    tables that make max_connections and max_connections_per_ip totals over them all;
    `suppression`: the suppression list every RCPT and message is checked against.
    Raises ListenError (nothing left listening) if any listener cannot be opened, and
    CredentialsError / ssl.SSLError / OSError for a bad credentials file or certificate.
    """
    credentials, tls_context = await _load_security(settings)
    limits = ConnectionLimits(per_ip=settings.max_connections_per_ip, shared=shared)
    listeners = Listeners(
        limits,
        spool=spool,
        clock=clock,
        reuse_port=reuse_port,
        suppression=suppression,
        steer=steer,
    )
    try:
        for listener in settings.listeners:
            await listeners._open(settings, listener, credentials, tls_context)
    except BaseException:
        for _, server in listeners._servers:
            server.close()
        raise
    return listeners


async def _load_security(
    settings: InjectSettings,
) -> tuple[Credentials | None, ssl.SSLContext | None]:
    """The credentials file and the TLS context, read off the event loop."""
    credentials = None
    if settings.auth_credentials_file is not None:
        credentials = await asyncio.to_thread(Credentials.load, settings.auth_credentials_file)
    return credentials, await asyncio.to_thread(make_tls_context, settings)


async def _serve(ctx: ListenerContext, reuse_port: bool, steer: int | None) -> asyncio.Server:
    """Listen on ctx.listener's address; ListenError names it if that fails."""
    listener = ctx.listener
    host, port = listener.address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        if steer is not None:
            server = await asyncio.get_running_loop().create_server(
                _factory(ctx), sock=_steered_socket(listener, family, steer)
            )
        else:
            server = await asyncio.get_running_loop().create_server(
                _factory(ctx),
                host=host,
                port=port,
                family=family,
                reuse_address=True,
                reuse_port=reuse_port or listener.reuse_port or None,
                backlog=listener.backlog,
            )
    except OSError as error:
        raise ListenError(
            error.errno, f"cannot listen on {listener.listen!r}: {error.strerror}"
        ) from error
    log.info("listening on %s", listener.listen)
    return server


def _steered_socket(listener: ListenerSettings, family: int, workers: int) -> socket.socket:
    """A listening SO_REUSEPORT socket whose group steers each client address to one of
    `workers` sockets; if the kernel refuses the program, the socket still listens and
    shared counts still hold the limits (logged)."""
    host, port = listener.address
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(listener.backlog)
        try:
            attach(sock, workers)
        except SteeringError as error:
            log.warning(
                "%s: %s; client addresses are spread by the kernel's hash (the limits"
                " still hold; simultaneous connections from one address may be refused"
                " a little early)",
                listener.listen,
                error,
            )
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _factory(ctx: ListenerContext) -> Callable[[], InjectConnection]:
    def make() -> InjectConnection:
        return InjectConnection(ctx)

    return make
