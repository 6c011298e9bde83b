"""One outbound SMTP connection for a binding x domain, and the messages sent over it.

`open_connection` walks the destinations in order until one gives a usable session
(connected from the binding's bind_address, greeted, EHLO'd, STARTTLS per settings);
`OutboundConnection.send` delivers one message in batches and reports one
`relay.outcome.RecipientResult` per recipient; given the message that follows on the
connection (`then`), it may send that one's MAIL, RCPTs and DATA behind this one's content.
Nothing here schedules, retries later or writes state: the scheduler decides what the
results mean.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, replace

from relay.deliver.channel import SessionFailed, SmtpChannel, translate
from relay.deliver.content import prepare_content
from relay.deliver.dane import TlsaRecord
from relay.deliver.errors import ConnectError, DeliveryFailure, FailureKind, MessageLike
from relay.deliver.lmtp import LHLO, data_replies
from relay.deliver.pipeline import (
    DATA_LINE,
    END_OF_DATA,
    Unsendable,
    bdat_line,
    crlf_only,
    data_content,
    ehlo_extensions,
    envelope_block,
    hello_line,
    mail_line,
    rcpt_line,
    size_limit,
)
from relay.deliver.route import Destination, is_ip_literal
from relay.deliver.settings import DeliverySettings
from relay.deliver.tls import client_context, peer_matches
from relay.deliver.tls_policy import DeliveryTlsPolicy, classify_tls_failure
from relay.deliver.xclient import XCLIENT_OK, xclient_line
from relay.outcome import Outcome, Phase, RecipientResult, Remote, Reply

__all__ = ["HostGate", "OutboundConnection", "open_connection"]

HostGate = Callable[[str], AbstractAsyncContextManager[bool]]
"""`host_gate(ip)` is entered before connecting to `ip` and held until the connection
closes; it yields False to veto the destination (e.g. host-scope max_outbound_connections
reached), and may wait inside `__aenter__` to queue."""

# To a server that offers CHUNKING (RFC 3030) a message goes by BDAT, as spooled, without
# DATA's dot-stuffing pass (measured: 1 ms per 100 kB, 13 ms per MB of CPU on the event
# loop). With PIPELINING too, every message: `BDAT <size> LAST` and the content go out with
# MAIL and the RCPTs, one round trip per message where DATA needs two (its 354 first), as
# Exim does. Without PIPELINING, only a message at least this large (a small one's round
# trips are DATA's).
BDAT_MIN_SIZE = 64 * 1024

# Linux: bind() reserves no port until connect(), so many connections from one source
# address do not exhaust the ephemeral port range (value from <linux/in.h>).
_IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


class _AttemptFailed(Exception):
    def __init__(self, failure: DeliveryFailure, tls_fallback: bool = False) -> None:
        super().__init__(str(failure))
        self.failure = failure
        self.tls_fallback = tls_fallback  # opportunistic TLS failed: retry in plain text


async def open_connection(
    settings: DeliverySettings,
    domain: str,
    destinations: Iterable[Destination] | AsyncIterable[Destination],
    *,
    host_gate: HostGate | None = None,
    tls_policy: DeliveryTlsPolicy | None = None,
) -> OutboundConnection:
    """Connect to the first destination that gives a usable session.

    Moves to the next destination on a refused/failed/timed-out connection, a 4xx/5xx
    greeting, a refused EHLO (and HELO), or a TLS failure; an opportunistic TLS failure
    with tls_ifavailable_fallback reconnects to the same destination in plain text.
    Raises ConnectError (every failure in `attempts`), or RouteError from a lazily
    resolved route. `tls_policy` (MTA-STS / DANE, relay/deliver/tls_policy.py) may
    demand DANE verification of a host, refuse it, and counts each session."""
    attempts: list[DeliveryFailure] = []
    async for destination in _iterate(destinations):
        use_tls = settings.tls != "no"
        while True:
            try:
                return await _open_one(
                    settings, domain, destination, use_tls, host_gate, tls_policy
                )
            except _AttemptFailed as failed:
                attempts.append(failed.failure)
                if not (failed.tls_fallback and use_tls):
                    break
                use_tls = False
    if not attempts:
        reply = Reply.make(451, "4.4.4", f"no destination to try for {domain}")
        failure = DeliveryFailure(FailureKind.DNS, Phase.RESOLVE, reply, settings.binding, domain)
        raise ConnectError(failure)
    raise ConnectError(attempts[-1], attempts)


async def _iterate(
    items: Iterable[Destination] | AsyncIterable[Destination],
) -> AsyncIterator[Destination]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def _open_one(
    settings: DeliverySettings,
    domain: str,
    destination: Destination,
    use_tls: bool,
    host_gate: HostGate | None,
    tls_policy: DeliveryTlsPolicy | None = None,
) -> OutboundConnection:
    remote = destination.remote
    stack = AsyncExitStack()
    channel: SmtpChannel | None = None
    handed_over = False
    phase = Phase.GATE

    def fail(kind: FailureKind, reply: Reply, detail: str = "", fallback: bool = False) -> None:
        failure = DeliveryFailure(kind, phase, reply, settings.binding, domain, remote, detail)
        raise _AttemptFailed(failure, fallback)

    try:
        dane: tuple[TlsaRecord, ...] = ()
        if tls_policy is not None:
            needs = await tls_policy.for_host(destination)
            if needs.refuse is not None:
                tls_policy.failed(destination, needs.result or "dnssec-invalid")
                fail(FailureKind.TLS, Reply.make(451, "4.7.5", f"{remote}: {needs.refuse}"))
            dane = needs.dane
            use_tls = use_tls or bool(dane)  # DANE: STARTTLS is mandatory
        if host_gate is not None and not await stack.enter_async_context(host_gate(destination.ip)):
            fail(FailureKind.LOCAL, Reply.make(451, "4.4.5", f"host limit for {remote} reached"))
        phase = Phase.CONNECT
        sock = await _connect_socket(settings, destination)
        try:
            channel = await SmtpChannel.open(sock, settings)
        except OSError as exc:
            raise translate(exc, Phase.CONNECT, settings.connect_timeout) from exc
        phase = Phase.GREETING
        reply = await channel.reply(Phase.GREETING, settings.connect_timeout)
        if reply.code != 220:
            fail(FailureKind.REPLY, reply)
        phase = Phase.EHLO
        reply, extensions = await _hello(channel, settings)
        if reply.code != 250:
            fail(FailureKind.REPLY, reply)
        tls_active = False
        if use_tls:
            phase = Phase.STARTTLS
            fallback = (
                not dane and settings.tls == "ifavailable" and settings.tls_ifavailable_fallback
            )
            if "starttls" not in extensions:
                if settings.tls == "required" or dane:
                    why = f"{remote} offers no STARTTLS"
                    if settings.method == "SMTP":
                        why = "tls = required, but delivery_method SMTP (HELO) has no STARTTLS"
                    if tls_policy is not None:
                        tls_policy.failed(destination, "starttls-not-supported")
                    fail(FailureKind.TLS, Reply.make(451, "4.7.4", why))
            else:
                try:
                    await _starttls(channel, settings, domain, destination, dane, tls_policy)
                except SessionFailed as exc:
                    if tls_policy is not None and exc.kind is FailureKind.TLS:
                        tls_policy.failed(destination, classify_tls_failure(exc.detail))
                    fail(exc.kind, exc.reply, exc.detail, fallback)
                tls_active = True
                phase = Phase.EHLO
                reply, extensions = await _hello(channel, settings)
                if reply.code != 250:
                    fail(FailureKind.REPLY, reply)
        if settings.xclient == "required" and "xclient" not in extensions:
            phase = Phase.XCLIENT
            reply = Reply.make(451, "4.7.0", f"{remote} offers no XCLIENT (xclient = required)")
            fail(FailureKind.PROTOCOL, reply)
        connection = OutboundConnection(
            settings, domain, channel, extensions, remote, tls_active, stack
        )
        connection.dane_verified = tls_active and bool(dane)
        if tls_policy is not None:
            chain = channel.peer_chain() if tls_active else []
            tls_policy.succeeded(destination, tls_active, chain[0] if chain else None)
        handed_over = True
        return connection
    except SessionFailed as exc:
        failure = DeliveryFailure(
            exc.kind, exc.phase, exc.reply, settings.binding, domain, remote, exc.detail
        )
        raise _AttemptFailed(failure) from exc
    finally:
        if not handed_over:
            if channel is not None:
                channel.close()
            await stack.aclose()


async def _connect_socket(settings: DeliverySettings, destination: Destination) -> socket.socket:
    """A connected non-blocking socket from bind_address to the destination."""
    family = socket.AF_INET6 if ":" in destination.ip else socket.AF_INET
    if settings.bind_address is not None:
        bind_family = socket.AF_INET6 if ":" in settings.bind_address else socket.AF_INET
        if bind_family != family:
            reply = Reply.make(
                451, "4.4.1", f"bind_address {settings.bind_address} cannot reach {destination.ip}"
            )
            raise SessionFailed(FailureKind.NETWORK, Phase.CONNECT, reply, "address family")
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if settings.bind_address is not None:
            if sys.platform.startswith("linux"):
                sock.setsockopt(socket.IPPROTO_IP, _IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((settings.bind_address, 0))
        loop = asyncio.get_running_loop()
        address = (destination.ip, destination.port)
        # asyncio.timeout, unlike wait_for, makes no task per connect
        async with asyncio.timeout(settings.connect_timeout):
            await loop.sock_connect(sock, address)
    except (OSError, TimeoutError) as exc:
        sock.close()
        raise translate(exc, Phase.CONNECT, settings.connect_timeout) from exc
    except BaseException:
        sock.close()
        raise
    return sock


async def _hello(channel: SmtpChannel, settings: DeliverySettings) -> tuple[Reply, dict[str, str]]:
    """EHLO, and the extensions it offers; HELO (which offers none) only if delivery_method
    allows plain SMTP and EHLO was refused (or ESMTP is not allowed at all); LHLO for LMTP."""
    seconds = settings.ehlo_timeout
    if settings.method == "LMTP":  # RFC 2033: LHLO, never HELO or EHLO
        reply = await channel.command(_hello_line(LHLO, settings), Phase.EHLO, seconds)
        return reply, ehlo_extensions(reply.text) if reply.code == 250 else {}
    if settings.allows_esmtp:
        reply = await channel.command(_hello_line(b"EHLO", settings), Phase.EHLO, seconds)
        if reply.code == 250:
            return reply, ehlo_extensions(reply.text)
        if not settings.allows_helo or not channel.connected:
            return reply, {}
    return await channel.command(_hello_line(b"HELO", settings), Phase.EHLO, seconds), {}


def _hello_line(verb: bytes, settings: DeliverySettings) -> bytes:
    try:
        return hello_line(verb, settings.ehlo_hostname)
    except Unsendable as exc:  # nothing was sent; the connection stays usable
        reply = Reply.make(501, "5.5.2", f"refused to send {verb.decode()}: {exc}")
        raise SessionFailed(FailureKind.LOCAL, Phase.EHLO, reply, str(exc), broken=False) from exc


async def _starttls(
    channel: SmtpChannel,
    settings: DeliverySettings,
    domain: str,
    destination: Destination,
    dane: tuple[TlsaRecord, ...] = (),
    tls_policy: DeliveryTlsPolicy | None = None,
) -> None:
    """STARTTLS under ehlo_timeout; with tls_verify=host the certificate must name the
    MX host (or the domain), never just the IP we connected to. With DANE records the
    chain must match them instead, and nothing else is checked (RFC 7672)."""
    context = await client_context(replace(settings, tls_verify="no") if dane else settings)
    name = None if is_ip_literal(destination.mx_host) else destination.mx_host
    reply = await channel.starttls(context, name, settings.ehlo_timeout)
    if reply.code != 220:
        channel.close()
        raise SessionFailed(FailureKind.TLS, Phase.STARTTLS, reply, "STARTTLS refused")
    if dane and tls_policy is not None:
        why = tls_policy.check_dane(dane, channel.peer_chain(), destination)
        if why is not None:
            channel.close()
            text = f"certificate of {destination.mx_host} fails its TLSA records ({why})"
            reply = Reply.make(451, "4.7.5", text)
            raise SessionFailed(FailureKind.TLS, Phase.STARTTLS, reply, why)
        return
    if settings.tls_verify == "host":
        cert = channel.peer_certificate() or {}
        names: tuple[str, ...] = (destination.mx_host, domain)
        if tls_policy is not None:
            names = tls_policy.certificate_names(destination)
        if not peer_matches(cert, names):
            channel.close()
            wanted = " or ".join(names)
            reply = Reply.make(451, "4.7.5", f"certificate does not name {wanted}")
            raise SessionFailed(FailureKind.TLS, Phase.STARTTLS, reply, "host name mismatch")


class OutboundConnection:
    """An open SMTP session to one destination, used by one worker at a time."""

    def __init__(
        self,
        settings: DeliverySettings,
        domain: str,
        channel: SmtpChannel,
        extensions: dict[str, str],
        remote: Remote,
        tls: bool,
        resources: AsyncExitStack,
    ) -> None:
        self.settings = settings
        self.domain = domain
        self.remote = remote
        self.tls = tls
        self.dane_verified = False  # the certificate matched the MX host's TLSA records
        self._channel = channel
        self._extensions = extensions  # from the last EHLO, lower-case names
        self._pipelining = "pipelining" in extensions  # RFC 2920
        self._resources = resources  # the host_gate slot, released on close()
        self._deliveries = 0
        self._recipients_sent = 0
        self._broken = False
        self._closed = False
        self._dirty = False  # a failed transaction left state: RSET before the next MAIL
        self._lmtp = settings.method == "LMTP"  # a reply per recipient after the final dot
        self._xclient: bytes | None = None  # the XCLIENT the session now runs under
        self._ahead: _Ahead | None = None  # the next transaction, already on the wire
        self._sends_ahead = True  # until a server refuses a MAIL sent that way

    @property
    def deliveries(self) -> int:
        """Messages with at least one recipient accepted over this connection."""
        return self._deliveries

    @property
    def recipients_sent(self) -> int:
        """RCPT commands sent over this connection."""
        return self._recipients_sent

    @property
    def peer_ip(self) -> str:
        return self.remote.ip

    @property
    def mx_host(self) -> str:
        return self.remote.mx_host

    @property
    def extensions(self) -> dict[str, str]:
        return dict(self._extensions)

    @property
    def pipelining(self) -> bool:
        """Whether transactions go out as one RFC 2920 command block."""
        return self._pipelining

    @property
    def sends_ahead(self) -> bool:
        """Whether `send(message, then)` may put `then`'s commands on the wire behind
        `message`'s content: PIPELINING over SMTP, without XCLIENT, and no CHUNKING (a
        message goes by BDAT there, in one round trip already)."""
        return (
            self._sends_ahead
            and self._pipelining
            and not self._lmtp
            and "chunking" not in self._extensions
            and (self.settings.xclient == "no" or "xclient" not in self._extensions)
        )

    @property
    def usable(self) -> bool:
        settings = self.settings
        if self._closed or self._broken or not self._channel.connected:
            return False
        if 0 < settings.max_deliveries_per_connection <= self._deliveries:
            return False
        return not 0 < settings.max_recipients_per_connection <= self._recipients_sent

    async def close(self) -> None:
        """QUIT (tolerant of a dead peer) and release the host_gate slot. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._ahead is not None:  # a transaction sent ahead and not used: QUIT would
            self._channel.close()  # be read as its content; the server drops it unfinished
        try:
            await self._channel.quit(self.settings.rset_timeout)
        finally:
            await self._resources.aclose()

    async def __aenter__(self) -> OutboundConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ---- sending ---------------------------------------------------------------------

    async def send(
        self, message: MessageLike, then: MessageLike | None = None
    ) -> list[RecipientResult]:
        """Deliver `message` over this connection, max_recipients_per_batch recipients per
        transaction. One outcome per recipient, in the message's order. Recipients beyond
        max_recipients_per_connection, or left when the connection broke between
        transactions, come back NOT_ATTEMPTED. `then`: the message this connection sends
        next, which must then be the next one given to `send` (see `_next_ahead`)."""
        recipients = list(message.recipients)
        results: dict[int, RecipientResult] = {}
        settings = self.settings
        ahead, self._ahead = self._ahead, None

        esmtp = message.esmtp
        dsn = esmtp is not None and "dsn" in self._extensions  # NOTIFY etc. passed on

        def settle(indexes: Iterable[int], outcome: Outcome, reply: Reply, phase: Phase) -> None:
            for i in indexes:
                if i not in results:
                    results[i] = RecipientResult(
                        recipients[i], outcome, reply, self.remote, phase, dsn
                    )

        def finish() -> list[RecipientResult]:
            settle(range(len(recipients)), Outcome.NOT_ATTEMPTED, _NOT_ATTEMPTED, Phase.MAIL)
            if any(r.outcome is Outcome.DELIVERED for r in results.values()):
                self._deliveries += 1
            return [results[i] for i in range(len(recipients))]

        if ahead is not None and (ahead.message is not message or not self.usable):
            self._broken = True  # the replies on the wire are another transaction's
            self._channel.close()
            return finish()
        if not self.usable:
            return finish()
        if ahead is not None:
            plan: _Plan | None = ahead.plan
        else:
            room = len(recipients)
            if settings.max_recipients_per_connection > 0:
                room = max(0, settings.max_recipients_per_connection - self._recipients_sent)
            todo = list(range(min(room, len(recipients))))
            if todo and settings.xclient != "no" and "xclient" in self._extensions:
                # Before anything reads the extensions: the EHLO after XCLIENT renews them.
                try:
                    refused = await self._pass_client(message.client)
                except SessionFailed as exc:  # the session is gone: never a verdict on the mail
                    self._broken = True
                    settle(todo, Outcome.TEMPORARY, exc.reply, exc.phase)
                    return finish()
                if refused is not None and settings.xclient == "required":
                    reply = Reply.make(451, "4.7.0", f"XCLIENT refused: {refused}")
                    settle(todo, Outcome.TEMPORARY, reply, Phase.XCLIENT)
                    return finish()
                if refused is not None and self._xclient is not None:
                    # ifavailable, but the session speaks for an earlier message's client:
                    # never send under it; a fresh connection sends this one without XCLIENT.
                    self._broken = True
                    self._channel.close()
                    return finish()
            plan = self._plan(message, todo, settle)
        if plan is None:
            return finish()
        todo = plan.todo
        batch_size = max(1, settings.max_recipients_per_batch)
        try:
            for start in range(0, len(todo), batch_size):
                if not self._can_transact:
                    break
                batch = todo[start : start + batch_size]
                mail_failed = await self._transaction(
                    message.sender,
                    recipients,
                    batch,
                    plan,
                    settle,
                    ahead if start == 0 else None,
                    then if start + batch_size >= len(todo) else None,
                )
                if mail_failed is not None:
                    # The sender was refused: the same answer holds for every batch left.
                    settle(todo, mail_failed.outcome, mail_failed, Phase.MAIL)
                    break
        except _TransactionBroken as broken:
            self._broken = True
            failed = broken.failed
            settle(broken.pending, failed.reply.outcome, failed.reply, failed.phase)
        return finish()

    def _plan(
        self,
        message: MessageLike,
        todo: list[int],
        settle: Callable[[Iterable[int], Outcome, Reply, Phase], None],
    ) -> _Plan | None:
        """The message made ready for this connection: its content as it goes out, MAIL's
        and each RCPT's options, DATA or BDAT. What cannot go at all is settled here; None
        when nothing is left to send."""
        settings = self.settings
        prepared = prepare_content(message.content, settings, "8bitmime" in self._extensions)
        if prepared.refused is not None:
            reply = Reply.make(554, "5.6.3", prepared.refused)
            settle(todo, Outcome.PERMANENT, reply, Phase.CONTENT)
            return None
        refusal = self._refusal(message, len(prepared.data))
        if refusal is not None:
            settle(todo, Outcome.PERMANENT, refusal, Phase.MAIL)
            return None
        mail_options = list(prepared.mail_options)
        todo, utf8 = self._smtputf8(message, todo, settle)
        if not todo:
            return None
        if utf8:
            mail_options.append("SMTPUTF8")
        if "size" in self._extensions:
            mail_options.insert(0, f"SIZE={len(prepared.data)}")
        rcpt_options: list[list[str]] | None = None
        esmtp = message.esmtp
        if esmtp is not None:
            if "dsn" in self._extensions:
                mail_options += esmtp.mail_options(dsn=True)
                indexes = message.indexes
                count = len(message.recipients)
                rcpt_options = [esmtp.rcpt_options(indexes[i]) for i in range(count)]
            if esmtp.requiretls:
                mail_options.append("REQUIRETLS")
        bdat = (  # LMTP keeps DATA: its one reply per recipient is read after the dot
            not self._lmtp
            and (self._pipelining or len(prepared.data) >= BDAT_MIN_SIZE)
            and "chunking" in self._extensions
            and crlf_only(prepared.data)
        )
        body = prepared.data if bdat else data_content(prepared.data)
        return _Plan(todo, body, mail_options, utf8, rcpt_options, bdat)

    def _next_ahead(self, message: MessageLike) -> _Ahead | None:
        """`message`'s MAIL, RCPTs and DATA, to go out behind the content being sent now
        (RFC 2920 3.1: the content may start a command group), so its replies are there
        when it is sent: one round trip less per message on a busy connection. Only when
        its MAIL needs nothing first: DATA (after a BDAT the server's state is not sure
        enough to pipeline past), one transaction, every line sendable, nothing refused
        before sending, and room under this connection's caps (counting the message being
        sent now as delivered)."""
        settings = self.settings
        count = len(message.recipients)
        if not self.sends_ahead or not 0 < count <= max(1, settings.max_recipients_per_batch):
            return None
        if 0 < settings.max_deliveries_per_connection <= self._deliveries + 1:
            return None
        if 0 < settings.max_recipients_per_connection < self._recipients_sent + count:
            return None
        refused: list[int] = []

        def settle(indexes: Iterable[int], outcome: Outcome, reply: Reply, phase: Phase) -> None:
            refused.extend(indexes)

        plan = self._plan(message, list(range(count)), settle)
        if plan is None or refused or plan.bdat:
            return None
        options = plan.rcpt_options
        try:
            mail = mail_line(message.sender, plan.mail_options, plan.utf8)
            rcpts = [
                rcpt_line(
                    message.recipients[i], plan.utf8, options[i] if options is not None else ()
                )
                for i in plan.todo
            ]
        except Unsendable:
            return None
        return _Ahead(message, plan, mail, rcpts)

    def _refusal(self, message: MessageLike, size: int) -> Reply | None:
        """Why this message cannot go over this connection at all (a permanent failure for
        each recipient): REQUIRETLS (RFC 8689) without verified TLS (tls_verify = host,
        or DANE) or a next hop that offers REQUIRETLS, or more octets than the server's
        SIZE."""
        esmtp = message.esmtp
        if esmtp is not None and esmtp.requiretls:
            verified = self.settings.tls_verify == "host" or self.dane_verified
            if not self.tls or not verified:
                return Reply.make(
                    550,
                    "5.7.10",
                    f"REQUIRETLS: no verified TLS to {self.remote.mx_host} "
                    "(delivery needs tls = required and tls_verify = host)",
                )
            if "requiretls" not in self._extensions:
                return Reply.make(
                    550, "5.7.30", f"REQUIRETLS support required: {self.remote} does not offer it"
                )
        limit = size_limit(self._extensions)
        if limit is not None and size > limit:
            return Reply.make(
                552, "5.3.4", f"message of {size} octets exceeds {self.remote}'s SIZE {limit}"
            )
        return None

    def _smtputf8(
        self,
        message: MessageLike,
        todo: list[int],
        settle: Callable[[Iterable[int], Outcome, Reply, Phase], None],
    ) -> tuple[list[int], bool]:
        """SMTPUTF8 (RFC 6531): (the recipients that can go, whether MAIL says SMTPUTF8).
        A message that needs it (a UTF-8 address, or UTF-8 headers of a message injected
        with SMTPUTF8) goes with it to a server that offers it; to one that does not, each
        recipient that needs it fails (5.6.7): nothing is downgraded."""
        recipients = message.recipients
        offered = "smtputf8" in self._extensions
        esmtp = message.esmtp
        flagged = esmtp is not None and esmtp.smtputf8
        if offered:
            utf8 = flagged or not message.sender.isascii()
            return todo, utf8 or any(not recipients[i].isascii() for i in todo)
        whole = not message.sender.isascii() or (flagged and _utf8_headers(message.content))
        refused = [i for i in todo if whole or not recipients[i].isascii()]
        if refused:
            reply = Reply.make(553, "5.6.7", "non-ASCII address or header and no SMTPUTF8 offered")
            settle(refused, Outcome.PERMANENT, reply, Phase.MAIL)
            gone = set(refused)
            todo = [i for i in todo if i not in gone]
        return todo, False

    @property
    def _can_transact(self) -> bool:
        return not (self._closed or self._broken or not self._channel.connected)

    async def _transaction(
        self,
        sender: str,
        recipients: Sequence[str],
        batch: list[int],
        plan: _Plan,
        settle: Callable[[Iterable[int], Outcome, Reply, Phase], None],
        presented: _Ahead | None = None,
        then: MessageLike | None = None,
    ) -> Reply | None:
        """One MAIL/RCPT.../DATA transaction: with PIPELINING, MAIL, the RCPTs and DATA (or
        BDAT LAST and the content) go out in one write; without it, one command per round
        trip. `presented`: they went out already, behind the previous message's content;
        `then`: the next message, whose commands may go behind this one's content. The
        replies are read in order either way, each under its phase's timeout. A pipelined
        BDAT whose recipients were all refused is refused too (RFC 3030 4.2): its reply is
        read and nothing is delivered. Returns the MAIL reply if the sender was refused;
        raises _TransactionBroken if the connection failed."""
        settings = self.settings
        channel = self._channel
        pipelined = self._pipelining
        body, bdat = plan.body, plan.bdat
        pending: list[int] = list(batch)
        try:
            lines: list[bytes | Unsendable]
            if presented is not None:
                lines = list(presented.rcpts)
                sendable: list[bytes] = presented.rcpts
            else:
                await self._reset()
                try:
                    mail = mail_line(sender, plan.mail_options, plan.utf8)
                except Unsendable as exc:  # as if the sender was refused; nothing was sent
                    return _refused_locally(Phase.MAIL, exc)
                lines = []
                for i in batch:
                    try:
                        options = plan.rcpt_options[i] if plan.rcpt_options is not None else ()
                        lines.append(rcpt_line(recipients[i], plan.utf8, options))
                    except Unsendable as exc:
                        lines.append(exc)
                sendable = [line for line in lines if isinstance(line, bytes)]
            ahead = pipelined and bdat and bool(sendable)  # the content goes with the RCPTs
            if presented is not None:
                pass  # on the wire since the previous message's content
            elif pipelined:
                expected = 1 + len(sendable) + (1 if sendable else 0)  # 354, or BDAT's reply
                block = envelope_block(mail, sendable, not bdat)
                if ahead and len(body) < BDAT_MIN_SIZE:  # one write; a large body is not copied
                    channel.write(
                        b"".join((block, bdat_line(len(body)), body)), expected, Phase.MAIL
                    )
                elif ahead:
                    channel.write(block + bdat_line(len(body)), expected, Phase.MAIL)
                    channel.write(body, 0, Phase.DATA)
                else:
                    channel.write(block, expected, Phase.MAIL)
            else:
                channel.write(mail, 1, Phase.MAIL)
            try:
                reply = await channel.reply(Phase.MAIL, settings.mailfrom_timeout)
            except SessionFailed:
                if presented is None:
                    raise
                # Gone before it answered anything of this transaction (a server that
                # closes after a message): as if never sent, the message goes again now.
                self._broken = True
                channel.close()
                return None
            self._dirty = True
            if not reply.is_positive:
                if presented is not None and reply.code == _BAD_SEQUENCE:
                    # This server does not take a MAIL behind the content: not the mail's
                    # fault, and the connection's next messages wait for each 250.
                    self._sends_ahead = False
                    reply = Reply.make(
                        451, "4.5.0", f"MAIL sent ahead refused by {self.remote}: {reply}"
                    )
                if pipelined:
                    await self._drain(len(sendable), bool(sendable) and not bdat, ahead)
                return reply
            accepted: list[int] = []
            for i, line in zip(batch, lines, strict=True):
                self._recipients_sent += 1
                if isinstance(line, Unsendable):
                    refused = _refused_locally(Phase.RCPT, line)
                    settle((i,), refused.outcome, refused, Phase.RCPT)
                    pending.remove(i)
                    continue
                if not pipelined:
                    channel.write(line, 1, Phase.RCPT)
                reply = await channel.reply(Phase.RCPT, settings.rcptto_timeout)
                if reply.is_positive:
                    accepted.append(i)
                else:
                    settle((i,), reply.outcome, reply, Phase.RCPT)
                    pending.remove(i)
                if not channel.connected:  # e.g. 421: the server is closing the connection
                    self._broken = True
                    lost = Reply.make(451, "4.4.2", "connection closed by the server")
                    raise SessionFailed(FailureKind.NETWORK, Phase.RCPT, lost)
            if not accepted:
                if pipelined and sendable:  # DATA or BDAT went out too: read its reply
                    await self._drain(0, not bdat, ahead)
                return None
            if bdat:  # the content as it is, in one chunk; its reply is the message's
                if not ahead:
                    channel.write(bdat_line(len(body)), 1, Phase.DATA)
                    channel.write(body, 0, Phase.DATA)
                reply = await channel.reply(Phase.DATA, settings.body_timeout)
                settle(accepted, reply.outcome, reply, Phase.DATA)
                if reply.outcome is Outcome.DELIVERED:
                    self._dirty = False
                return None
            if not pipelined:
                channel.write(DATA_LINE, 1, Phase.DATA)
            code, text = await channel.read(Phase.DATA, settings.body_timeout)
            if code != _START_MAIL_INPUT:
                reply = channel.parse(code, text)
                settle(accepted, reply.outcome, reply, Phase.DATA)
                return None
            if self._lmtp:
                await self._lmtp_data(body, accepted, settle)
                return None
            following = self._next_ahead(then) if then is not None else None
            if following is None:
                channel.write(body, 1, Phase.DATA)
            else:
                block = envelope_block(following.mail, following.rcpts)
                replies = 2 + len(following.rcpts)  # MAIL, each RCPT, DATA
                if len(body) < BDAT_MIN_SIZE:  # one write; a large body is not copied
                    channel.write(body + block, 1 + replies, Phase.DATA)
                else:
                    channel.write(body, 1, Phase.DATA)
                    channel.write(block, replies, Phase.MAIL)
                self._ahead = following
            reply = await channel.reply(Phase.DATA, settings.body_timeout)
            settle(accepted, reply.outcome, reply, Phase.DATA)
            # The final reply ends the transaction whatever it says (RFC 5321 4.1.1.4); the
            # RSET after a failed one is for servers that think otherwise, unless the next
            # MAIL went already.
            if reply.outcome is Outcome.DELIVERED or following is not None:
                self._dirty = False
            return None
        except SessionFailed as exc:
            channel.close()
            raise _TransactionBroken(exc, pending) from exc

    async def _reset(self) -> None:
        """RSET when a failed transaction left state behind; raises SessionFailed."""
        if not self._dirty:
            return
        channel = self._channel
        channel.write(b"RSET\r\n", 1, Phase.RSET)
        reply = await channel.reply(Phase.RSET, self.settings.rset_timeout)
        if reply.code is None or reply.code >= 300:
            channel.close()
            raise SessionFailed(FailureKind.REPLY, Phase.RSET, reply, "RSET refused")
        self._dirty = False

    async def _lmtp_data(
        self,
        body: bytes,
        accepted: list[int],
        settle: Callable[[Iterable[int], Outcome, Reply, Phase], None],
    ) -> None:
        """The content, and one reply per accepted recipient (RFC 2033 4.2). The replies
        that came stand; if the connection fails before the rest, raises SessionFailed
        (the recipients still unanswered share its reply)."""
        channel = self._channel
        channel.write(body, len(accepted), Phase.DATA)
        replies: list[Reply] = []
        lost: SessionFailed | None = None
        try:
            for _ in accepted:
                replies.append(await channel.reply(Phase.DATA, self.settings.body_timeout))
        except SessionFailed as exc:
            lost = exc
        for index, reply in data_replies(accepted, replies, lost.reply if lost else _NO_REPLY):
            settle((index,), reply.outcome, reply, Phase.DATA)
        if lost is not None:
            raise lost
        self._dirty = False  # every recipient answered: the transaction is over

    async def _pass_client(self, client: tuple[str, str | None] | None) -> Reply | None:
        """XCLIENT before a message whose client differs from the session's (then EHLO
        again, as the 220 restarts the session). None when the next hop knows the client
        (or accepts none of the attributes); else its refusing reply, the session as it
        was. Raises SessionFailed (the connection closed) when the session is lost."""
        line = xclient_line(self._extensions.get("xclient", ""), client)
        if line is None or line == self._xclient:
            return None
        channel, settings = self._channel, self.settings
        try:
            await self._reset()
            reply = await channel.command(line, Phase.XCLIENT, settings.ehlo_timeout)
            if reply.code != XCLIENT_OK:
                if not channel.connected:  # 421
                    raise SessionFailed(FailureKind.REPLY, Phase.XCLIENT, reply, "XCLIENT")
                return reply
            self._xclient = line
            reply, extensions = await _hello(channel, settings)
            if reply.code != 250:
                raise SessionFailed(FailureKind.REPLY, Phase.EHLO, reply, "EHLO after XCLIENT")
        except SessionFailed:
            channel.close()
            raise
        self._extensions = extensions
        self._pipelining = "pipelining" in extensions
        return None

    async def _drain(self, rcpts: int, data: bool, bdat: bool = False) -> None:
        """Read the rest of a pipelined block's replies after the transaction already
        failed (sender refused, or every recipient), so the next one starts in step. A DATA
        accepted anyway is ended with a lone "." and no content (RFC 2920 3.1); a pipelined
        BDAT's reply (`bdat`) is read and dropped. A failure here closes the connection;
        the recipients keep the outcome they have."""
        settings = self.settings
        channel = self._channel
        try:
            for _ in range(rcpts):
                if not channel.connected:
                    return
                await channel.read(Phase.RCPT, settings.rcptto_timeout)
            if data and channel.connected:
                code, _ = await channel.read(Phase.DATA, settings.body_timeout)
                if code == _START_MAIL_INPUT:
                    channel.write(END_OF_DATA, 1, Phase.DATA)
                    await channel.read(Phase.DATA, settings.body_timeout)
            if bdat and channel.connected:
                await channel.read(Phase.DATA, settings.body_timeout)
        except SessionFailed:
            self._broken = True


def _utf8_headers(content: bytes) -> bool:
    end = content.find(b"\r\n\r\n")
    return not (content if end < 0 else content[:end]).isascii()


_START_MAIL_INPUT = 354
_BAD_SEQUENCE = 503
_NOT_ATTEMPTED = Reply.make(451, "4.4.0", "not attempted on this connection")  # immutable
_NO_REPLY = Reply.make(451, "4.4.2", "no LMTP reply for this recipient")


def _refused_locally(phase: Phase, exc: Unsendable) -> Reply:
    return Reply.make(501, "5.5.2", f"refused to send {phase.value.upper()}: {exc}")


@dataclass(slots=True)
class _Plan:
    """A message made ready for one connection's transactions (`_plan`)."""

    todo: list[int]  # the recipients to send, by index
    body: bytes  # as it goes out: dot-stuffed and ended for DATA, as spooled for BDAT
    mail_options: list[str]
    utf8: bool  # MAIL says SMTPUTF8
    rcpt_options: list[list[str]] | None  # per recipient index (DSN)
    bdat: bool


@dataclass(slots=True)
class _Ahead:
    """The next message's transaction, sent behind the previous message's content."""

    message: MessageLike
    plan: _Plan
    mail: bytes
    rcpts: list[bytes]


class _TransactionBroken(Exception):
    """The connection failed mid-transaction; `pending` recipients share its reply."""

    def __init__(self, failed: SessionFailed, pending: list[int]) -> None:
        super().__init__(str(failed))
        self.failed = failed
        self.pending = pending
