"""The driver: one asyncio protocol per client connection, around a `protocol.Session`.

It only moves bytes between the socket and the machine and answers the machine's events:
- every byte received goes to `Session.receive`, and its replies out in one write;
- `MessageComplete`: the message is handed to the spool (spooling.accept; the store's
  future and a done callback, no task per message); input that comes meanwhile is kept by
  the machine, and reading pauses once more than HELD_LIMIT octets are waiting;
- `CheckCredentials`: the password is checked in a worker thread (scrypt is slow);
- `StartTLS`: `loop.start_tls` upgrades the connection (public asyncio; works on uvloop);
- `Close`: the transport is closed once the last reply is written.
It also keeps the deadlines (idle_timeout per command, data_timeout for the whole DATA,
421 4.4.2 when one passes), admits the connection against the listener's limits (421 4.7.0
instead of the greeting) and says 421 4.3.2 when the server shuts down.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from relay.inject import checks, replies
from relay.inject.auth import Credentials
from relay.inject.limits import ConnectionLimits
from relay.inject.message import Reception
from relay.inject.protocol import (
    MECHANISMS,
    CheckCredentials,
    Close,
    Event,
    MessageComplete,
    MessageRefused,
    Session,
    StartTLS,
)
from relay.inject.settings import InjectSettings, IPAddress, IPNetwork, ListenerSettings
from relay.inject.spooling import MessageStore, accept, failure_reply, stored_reply
from relay.spool.model import Envelope
from relay.suppress.entries import Suppressions

log = logging.getLogger("relay.inject")

_MESSAGE_EVENTS = (MessageComplete, MessageRefused)
HELD_LIMIT = 64 * 1024  # input kept while an event is answered before reading pauses
TIMER_SLACK = 0.001  # a deadline timer firing this early counts as on time


@dataclass(slots=True)
class ListenerContext:
    """What every connection of one listener shares (a reload swaps the fields)."""

    settings: InjectSettings
    listener: ListenerSettings
    spool: MessageStore
    credentials: Credentials | None
    tls_context: ssl.SSLContext | None
    limits: ConnectionLimits
    clock: Callable[[], float]
    sessions: set[InjectConnection] = field(default_factory=set)
    draining: bool = False
    suppression: Suppressions | None = None  # None: no suppression list (turned off)

    @property
    def relay_hosts(self) -> tuple[IPNetwork, ...]:
        if self.listener.relay_hosts is not None:
            return self.listener.relay_hosts
        return self.settings.relay_hosts

    def labels(self, client: IPAddress | None) -> tuple[str | None, str | None]:
        """The tenant and campaign of mail without X-Tenant / X-Campaign from `client`:
        its peer stanza's, else the listener's."""
        listener = self.listener
        peer = listener.peer_for(client) if client is not None and listener.peers else None
        if peer is None:
            return listener.tenant, listener.campaign
        return peer.tenant or listener.tenant, peer.campaign or listener.campaign

    def priority(self, client: IPAddress | None) -> str | None:
        """The class of mail without X-Priority-Class from `client` (peer's, listener's;
        None: the tenant's)."""
        listener = self.listener
        peer = listener.peer_for(client) if client is not None and listener.peers else None
        return (peer.priority if peer is not None else None) or listener.priority

    def suppressed(self, client: IPAddress | None, address: str) -> str | None:
        """At RCPT: refused if suppressed globally or for the listener's (peer's) tenant
        (a tenant named by X-Tenant is known only at the end of DATA: spooling.py)."""
        if self.suppression is None:
            return None
        return checks.suppressed_recipient(self.suppression, self.labels(client)[0], address)


class InjectConnection(asyncio.Protocol):
    def __init__(self, ctx: ListenerContext) -> None:
        self._ctx = ctx
        self._loop = asyncio.get_running_loop()
        settings = ctx.settings  # what a connection keeps from its start
        self._hostname = settings.hostname
        self._idle_timeout = settings.idle_timeout
        self._tls_context = ctx.tls_context
        self._transport: asyncio.Transport | None = None
        self._machine: Session | None = None
        self._client_ip: IPAddress | None = None
        self._client_text = "unknown"
        self._counted_ip: str | None = None
        self._waiting = False  # an event is being answered: the machine keeps what comes
        self._reading_paused = False
        self._writing_paused = False
        self._tls_pending = False
        self._commands = 0  # the machine's count when the idle deadline last moved
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None  # an AUTH check or a TLS handshake
        self._closed: asyncio.Future[None] | None = None  # made when a shutdown waits for it
        self._gone = False

    @property
    def closed(self) -> asyncio.Future[None]:
        """Done once the connection is gone (made on demand: only a shutdown waits)."""
        if self._closed is None:
            self._closed = self._loop.create_future()
            if self._gone:
                self._closed.set_result(None)
        return self._closed

    # --- connection life ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not derive from asyncio's classes: no isinstance).
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        ctx = self._ctx
        ctx.sessions.add(self)
        # ip_key: for the log and every Received: field of the session
        self._client_ip, ip_key = checks.client_identity(transport.get_extra_info("peername"))
        self._client_text = ip_key
        limit = ctx.listener.max_connections
        if limit is None:
            limit = ctx.settings.max_connections_per_listener
        refusal = ctx.limits.admit(ctx.listener.listen, limit, ip_key, self._hostname)
        if refusal is not None:
            self.say_and_close(refusal)
            return
        self._counted_ip = ip_key
        machine = Session(
            ctx,
            hostname=self._hostname,
            client=self._client_ip,
            tls_available=self._tls_context is not None,
            mechanisms=tuple(MECHANISMS) if ctx.credentials is not None else (),
        )
        self._machine = machine
        transport.write(machine.take_output())
        self._reset_timeout()

    def connection_lost(self, error: Exception | None) -> None:
        self._lost()

    def _lost(self) -> None:
        """Once per connection (also for a TLS handshake that failed: asyncio does not
        call connection_lost then)."""
        if self._counted_ip is not None:
            self._ctx.limits.release(self._ctx.listener.listen, self._counted_ip)
            self._counted_ip = None
        self._ctx.sessions.discard(self)
        self._stop_timer()
        self._transport = None
        self._gone = True
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        """The client does not read its replies: stop reading its commands meanwhile."""
        self._writing_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._maybe_resume_reading()

    def say_and_close(self, reply: str) -> None:
        """Send a last reply and close (buffered output is flushed before the close)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if not self._tls_pending:  # mid-handshake, plaintext would only corrupt it
            transport.write(reply.encode("ascii") + b"\r\n")
        transport.close()

    def shutdown(self, *, force: bool) -> None:
        """Server closing: say 421 now unless mid-transaction (then after it, or if forced)."""
        machine = self._machine
        if force or machine is None or not machine.in_transaction:
            self.say_and_close(replies.SHUTTING_DOWN.format(host=self._hostname))

    # --- bytes in, replies out ----------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        machine = self._machine
        if machine is None:
            return
        event = machine.receive(data)
        if self._waiting:  # the machine kept it
            if machine.buffered > HELD_LIMIT:
                self._pause_reading()
            return
        # What _flush does, inline: this is every command of every message.
        out = machine.take_output()
        if out and self._transport is not None:
            self._transport.write(out)
        if machine.commands != self._commands:  # it took a command: the deadline moves
            self._commands = machine.commands
            self._reset_timeout(
                self._ctx.settings.data_timeout if machine.reading_content else None
            )
        if event is not None:
            self._answer(event)

    def _flush(self) -> None:
        """Write what the machine said; move the deadline if it took a command (after DATA,
        to the whole-DATA deadline)."""
        machine, transport = self._machine, self._transport
        assert machine is not None
        out = machine.take_output()
        if out and transport is not None:
            transport.write(out)
        if machine.commands != self._commands:
            self._commands = machine.commands
            self._reset_timeout(
                self._ctx.settings.data_timeout if machine.reading_content else None
            )

    def _answer(self, event: Event | None) -> None:
        """Answer the machine's events: those answered at once let it read on (so this
        loops); the others return and resume from their callback or task."""
        machine = self._machine
        assert machine is not None
        while event is not None:
            transport = self._transport
            if transport is None or transport.is_closing():
                return
            if isinstance(event, _MESSAGE_EVENTS):
                # The spool's time is not the client's: no deadline until the reply (the
                # timer stays armed, not cancelled and made again for every message).
                self._deadline = math.inf
                if isinstance(event, MessageComplete):
                    outcome = self._hand_over(event)
                else:
                    log.info("%s: DATA refused: %s", self._client_text, event.reply)
                    outcome = event.reply
                if not isinstance(outcome, str):
                    self._waiting = True
                    outcome.add_done_callback(self._stored)
                    return
                if not self._message_done(outcome):
                    return
                event = machine.receive()
                self._flush()
            elif isinstance(event, Close):
                transport.close()
                return
            elif isinstance(event, StartTLS):
                self._waiting = True
                self._tls_pending = True
                self._stop_timer()
                transport.pause_reading()  # nothing more in plaintext: the rest is TLS
                self._task = self._loop.create_task(self._start_tls(transport))
                return
            else:
                self._waiting = True
                self._task = self._loop.create_task(self._check_credentials(event))
                return

    def _resume(self) -> None:
        """An answer was given: read on through what the machine kept."""
        machine = self._machine
        assert machine is not None
        if self._reading_paused:
            self._maybe_resume_reading()
        event = machine.receive() if machine.buffered else None
        self._flush()
        if event is not None:
            self._answer(event)

    # --- messages -----------------------------------------------------------------------

    def _hand_over(self, event: MessageComplete) -> str | asyncio.Future[Envelope]:
        ctx = self._ctx
        now = ctx.clock()
        group, binding = self._listener_assignment()
        tenant, campaign = ctx.labels(self._client_ip)
        session = event.session
        reception = Reception(
            client_ip=self._client_text,
            helo=session.helo,
            esmtp=session.esmtp,
            tls=session.tls,
            authenticated=session.authenticated,
            recipients=event.recipients,
            queue_id=f"{random.getrandbits(64):016x}",  # a trace id, not a secret
            received_at=datetime.datetime.fromtimestamp(now, datetime.UTC),
            listener_group=group,
            listener_binding=binding,
            listener_tenant=tenant,
            listener_campaign=campaign,
            listener_priority=ctx.priority(self._client_ip),
        )
        try:
            return accept(
                ctx.spool,
                event.content,
                reception,
                sender=event.sender,
                settings=ctx.settings,
                received_at=now,
                esmtp=event.esmtp,
                suppression=ctx.suppression,
            )
        except Exception as error:  # a bug, not the client's fault: 451, and keep going
            log.exception("%s: message not spooled", self._client_text)
            return failure_reply(error)

    def _listener_assignment(self) -> tuple[str | None, str | None]:
        listener = self._ctx.listener
        peer = listener.peer_for(self._client_ip) if self._client_ip is not None else None
        if peer is not None and (peer.binding_group is not None or peer.binding is not None):
            return peer.binding_group, peer.binding
        return listener.binding_group, listener.binding

        return peer.tenant or listener.tenant, peer.campaign or listener.campaign

    def _stored(self, future: asyncio.Future[Envelope]) -> None:
        self._waiting = False
        try:
            reply = stored_reply(future, self._client_text)
        except Exception as error:
            log.exception("%s: after spooling", self._client_text)
            reply = failure_reply(error)
        transport, machine = self._transport, self._machine
        if transport is None or transport.is_closing() or machine is None:
            return  # the client left; what was spooled stays spooled
        if self._message_done(reply):
            self._resume()

    def _message_done(self, reply: str) -> bool:
        """Say the message's reply; False if the session ends there (draining)."""
        machine = self._machine
        assert machine is not None
        machine.message_done(reply)
        self._reset_timeout()
        if not self._ctx.draining:
            return True
        transport = self._transport
        if transport is not None:
            transport.write(machine.take_output())
        self.say_and_close(replies.SHUTTING_DOWN.format(host=self._hostname))
        return False

    # --- AUTH and STARTTLS --------------------------------------------------------------

    async def _check_credentials(self, event: CheckCredentials) -> None:
        credentials = self._ctx.credentials
        try:
            ok = credentials is not None and await asyncio.to_thread(
                credentials.verify, event.login, event.password
            )
        except Exception:
            log.exception("%s: password check failed", self._client_text)
            ok = False
        user = event.login.decode("utf-8", errors="replace")
        if ok:
            log.info("%s: authenticated as %r", self._client_text, user)
        else:
            log.warning("%s: AUTH failed for %r", self._client_text, user)
        self._waiting = False
        machine = self._machine
        if self._transport is None or self._transport.is_closing() or machine is None:
            return
        machine.credentials_checked(ok, user)
        self._resume()

    async def _start_tls(self, transport: asyncio.Transport) -> None:
        context = self._tls_context
        assert context is not None
        tls: asyncio.Transport | None = None
        try:
            tls = await self._loop.start_tls(
                transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self._idle_timeout,
            )
        except Exception as error:
            log.info("%s: TLS handshake failed: %r", self._client_text, error)
        self._tls_pending = False
        machine = self._machine
        if tls is None or machine is None or self._transport is None:
            transport.close()
            self._lost()
            return
        self._transport = tls
        self._waiting = False
        self._reading_paused = False
        machine.tls_started()
        self._reset_timeout()
        self._resume()

    # --- flow control and deadlines -----------------------------------------------------

    def _pause_reading(self) -> None:
        transport = self._transport
        if not self._reading_paused and transport is not None and not self._tls_pending:
            self._reading_paused = True
            transport.pause_reading()

    def _maybe_resume_reading(self) -> None:
        if not self._reading_paused or self._writing_paused:
            return
        machine = self._machine
        if self._waiting and machine is not None and machine.buffered > HELD_LIMIT:
            return
        self._reading_paused = False
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Move the deadline; the timer is re-armed only when it must fire earlier (or was
        stopped), not on every command."""
        deadline = self._loop.time() + (duration or self._idle_timeout)
        self._deadline = deadline
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(deadline, self._on_deadline)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_deadline(self) -> None:
        self._timer = None
        if self._deadline == math.inf:  # waiting for the spool: _reset_timeout re-arms
            return
        if self._loop.time() < self._deadline - TIMER_SLACK:
            self._timer = self._loop.call_at(self._deadline, self._on_deadline)
            return
        log.info("%s: timeout", self._client_text)
        self.say_and_close(replies.TIMEOUT.format(host=self._hostname))
