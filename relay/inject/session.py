"""The aiosmtpd glue: one protocol object per client connection.

Thin on purpose: it moves bytes between the socket and the pure modules (addresses,
policy, data, message, limits) and hands finished messages to the spool. What it adds to
aiosmtpd 1.4.6's `SMTP`:
- its own DATA reader (`data.DataReader`): ends only at <CRLF>.<CRLF>, refuses bare CR/LF
  and NUL, enforces size and line limits and a whole-DATA deadline;
- strict path parsing (`addresses.parse_path`) in place of aiosmtpd's lenient one;
- connection limits (421 4.7.0 instead of the greeting), 421 4.4.2 on timeouts;
- AUTH PLAIN / LOGIN checked off the event loop against the credentials file;
- enhanced status codes on every reply (aiosmtpd's stock replies are rewritten).
aiosmtpd already discards anything pipelined after STARTTLS (it clears its read buffer
when the TLS handshake completes) and resets the session, so the client must EHLO again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import logging
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import BOGUS_LIMIT, MISSING, SMTP, AuthResult, TLSSetupException, syntax
from aiosmtpd.smtp import Envelope as AiosmtpdEnvelope
from aiosmtpd.smtp import Session as AiosmtpdSession

from relay.inject import addresses, policy, replies
from relay.inject.auth import Credentials
from relay.inject.data import DataReader
from relay.inject.handoff import MessageStore, failure_reply, submit
from relay.inject.limits import ConnectionLimits
from relay.inject.message import Prepared, Reception, prepare
from relay.inject.settings import InjectSettings, IPAddress, IPNetwork, ListenerSettings
from relay.spool.model import Envelope, NewMessage

log = logging.getLogger("relay.inject")
smtp_log = logging.getLogger("mail.log")  # aiosmtpd's logger, for the lines its loop wrote

COMMAND_LINE_LIMIT = 510  # octets before CRLF: 512 with it (RFC 5321 §4.5.3.1.4)
SIZE_PARAMETER_EXTRA = 26  # RFC 1870 §3: MAIL may grow by " SIZE=" and 20 digits
AUTH_LINE_LIMIT = 1000  # RFC 4954 allows 12288; aiosmtpd's reader stops at 1001
DATA_READ_SIZE = 256 * 1024  # octets taken from the stream at once during DATA
TIMER_SLACK = 0.001  # a deadline timer firing this early counts as on time

_encoded: dict[str, bytes] = {}  # reply text -> enhanced wire bytes (cleared when full)
_ENCODED_MAX = 256
_QUEUED = replies.QUEUED.partition("{")[0]

# Fast path states: reading commands, reading a message's content, spooling it.
_COMMANDS, _BODY, _SPOOLING = 0, 1, 2
HELD_LIMIT = 64 * 1024  # pipelined input held while spooling before reading pauses


def _wire(status: str) -> bytes:
    """A reply's bytes on the wire (enhanced status code added), cached by text."""
    data = _encoded.get(status)
    if data is None:
        if status.startswith(_QUEUED):  # one per message: already enhanced, not cached
            return status.encode("ascii") + b"\r\n"
        data = replies.enhance(status).encode("ascii") + b"\r\n"
        if len(_encoded) >= _ENCODED_MAX:
            _encoded.clear()
        _encoded[status] = data
    return data


@dataclass(slots=True)
class ListenerContext:
    """What every session of one listener shares."""

    settings: InjectSettings
    listener: ListenerSettings
    spool: MessageStore
    credentials: Credentials | None
    tls_context: ssl.SSLContext | None
    limits: ConnectionLimits
    clock: Callable[[], float]
    sessions: set[InjectProtocol] = field(default_factory=set)
    draining: bool = False

    @property
    def relay_hosts(self) -> tuple[IPNetwork, ...]:
        if self.listener.relay_hosts is not None:
            return self.listener.relay_hosts
        return self.settings.relay_hosts


class _CommandLimits:
    """Fixed per-command line limits (aiosmtpd's class-level table is shared and grows)."""

    def __getitem__(self, command: str) -> int:
        if command == "MAIL":
            return COMMAND_LINE_LIMIT + SIZE_PARAMETER_EXTRA
        if command == "AUTH":
            return AUTH_LINE_LIMIT
        return COMMAND_LINE_LIMIT

    def __setitem__(self, command: str, value: int) -> None:
        """Ignored: aiosmtpd adds to MAIL's limit on every EHLO."""

    def values(self) -> list[int]:
        return [COMMAND_LINE_LIMIT, COMMAND_LINE_LIMIT + SIZE_PARAMETER_EXTRA, AUTH_LINE_LIMIT]


class _Hooks:
    """aiosmtpd's handler: each hook defers to the session that called it."""

    async def handle_EHLO(
        self, server: InjectProtocol, session: Any, envelope: Any, hostname: str, lines: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return server.ehlo_lines(lines)

    async def handle_MAIL(
        self, server: InjectProtocol, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        return server.on_mail(envelope, address, options)

    async def handle_RCPT(
        self, server: InjectProtocol, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        return server.on_rcpt(session, envelope, address)

    async def handle_exception(self, error: Exception) -> str:
        log.error("session error: %r", error, exc_info=error)
        return replies.SPOOL_FAILED


_HOOKS = _Hooks()


class InjectProtocol(SMTP):
    command_size_limit = COMMAND_LINE_LIMIT
    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"

    def __init__(self, ctx: ListenerContext) -> None:
        # Set before SMTP.__init__, which inspects every attribute of self.
        self._ctx = ctx
        self._client_ip: IPAddress | None = None
        self._client_text = "unknown"
        self._counted_ip: str | None = None
        self._refusal: str | None = None
        self._address_error: str | None = None
        self._last_path: addresses.ParsedPath | None = None
        self._relay_verdict: tuple[tuple[IPNetwork, ...], bool, bool] | None = None
        self._busy = False
        self._closed_by_us = False
        # The fast path (see data_received): where it is, and what it holds.
        self._parked = False  # the command loop waits for a line and has nothing buffered
        self._fast_state = _COMMANDS
        self._fast_body: DataReader | None = None
        self._held = bytearray()  # input that came while a message was being spooled
        self._deadline = 0.0
        settings = ctx.settings
        super().__init__(
            _HOOKS,
            data_size_limit=None,  # SIZE is ours: advertised in ehlo_lines, checked in on_mail
            enable_SMTPUTF8=False,
            decode_data=False,
            hostname=settings.hostname,
            ident="ESMTP relay",
            tls_context=ctx.tls_context,
            timeout=settings.idle_timeout,
            auth_require_tls=True,
            auth_exclude_mechanism=[] if ctx.credentials else ["PLAIN", "LOGIN"],
            loop=asyncio.get_running_loop(),
        )
        self.command_size_limits = _CommandLimits()  # type: ignore[assignment]

    # --- connection life ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None and self._original_transport is None
        super().connection_made(transport)
        if not first:
            return  # the TLS layer after STARTTLS: same connection
        ctx = self._ctx
        self._client_ip = policy.client_address(transport.get_extra_info("peername"))
        ip_key = str(self._client_ip) if self._client_ip is not None else "unknown"
        self._client_text = ip_key  # for every Received: field of the session
        limit = ctx.listener.max_connections
        if limit is None:
            limit = ctx.settings.max_connections_per_listener
        self._refusal = ctx.limits.admit(ctx.listener.listen, limit, ip_key, self.hostname)
        if self._refusal is None:
            self._counted_ip = ip_key
        ctx.sessions.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted_ip is not None:
            self._ctx.limits.release(self._ctx.listener.listen, self._counted_ip)
            self._counted_ip = None
        self._ctx.sessions.discard(self)
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        """aiosmtpd's command loop, for the options relay uses (no PROXY, no call limits,
        no require_starttls), without its per-command logging; replies are identical."""
        if self._refusal is not None:
            self.say_and_close(self._refusal)
            return
        await self.push(f"220 {self.hostname} {self.__ident__}")
        bogus_budget = BOGUS_LIMIT
        reader = self._reader
        methods = self._smtp_methods
        limits = self.command_size_limits
        while self.transport is not None:
            try:
                try:
                    self._parked = not reader._buffer  # type: ignore[attr-defined]
                    try:
                        line: bytes = await reader.readuntil(b"\n")
                    finally:
                        self._parked = False
                except asyncio.LimitOverrunError as error:
                    # Line too long: read to its end before saying so.
                    await reader.read(error.consumed)
                    while True:
                        try:
                            await reader.readuntil(b"\n")
                            break
                        except asyncio.LimitOverrunError as more:
                            await reader.read(more.consumed)
                    await self.push("500 Command line too long")
                    continue
                line = line.rstrip(b"\r\n")
                if not line:
                    await self.push("500 Error: bad syntax")
                    continue
                command_bytes, _, arg_bytes = line.partition(b" ")
                try:
                    command = command_bytes.upper().decode("ascii")
                except UnicodeDecodeError:
                    await self.push("500 Error: bad syntax")
                    continue
                arg: str | None = None
                if arg_bytes:
                    try:
                        arg = arg_bytes.strip().decode("ascii")
                    except UnicodeDecodeError:
                        await self.push("500 Error: strict ASCII mode")
                        continue
                session = self._session()
                limit = limits[command] if session.extended_smtp else COMMAND_LINE_LIMIT
                if len(line) > limit:
                    await self.push("500 Command line too long")
                    continue
                if not self._tls_handshake_okay and command != "QUIT":
                    await self.push("554 Command refused due to lack of security")
                    continue
                method = methods.get(command)
                if method is None:
                    smtp_log.warning("%r unrecognised: %s", session.peer, command)
                    bogus_budget -= 1
                    if bogus_budget < 1:
                        smtp_log.warning("%r too many bogus commands", session.peer)
                        await self.push("502 5.5.1 Too many unrecognized commands, goodbye.")
                        self.transport.close()
                        continue
                    await self.push(f'500 Error: command "{command}" not recognized')
                    continue
                self._reset_timeout()
                await method(arg)
            except (asyncio.CancelledError, ConnectionResetError):
                self._writer.close()
                raise
            except Exception as error:
                status = "500 Error: Cannot describe error"
                try:
                    status = await self.handle_exception(error)
                except Exception as inner:
                    try:
                        smtp_log.exception(
                            "%r Exception in handle_exception()", self._session().peer
                        )
                        status = f"500 Error: ({inner.__class__.__name__}) {inner}"
                    except Exception:
                        status = "500 Error: Cannot describe error"
                finally:
                    if isinstance(error, TLSSetupException):
                        self.transport.close()
                        self.connection_lost(error)
                    else:
                        await self.push(status)

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Move the deadline; the timer is re-armed only when it must fire earlier (or was
        cancelled), not on every command."""
        loop = self.loop
        deadline = loop.time() + (duration or self._timeout_duration)
        self._deadline = deadline
        handle = self._timeout_handle
        if handle is None or handle.cancelled() or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._timeout_handle = loop.call_at(deadline, self._on_deadline)

    def _on_deadline(self) -> None:
        if self.loop.time() < self._deadline - TIMER_SLACK:
            self._timeout_handle = self.loop.call_at(self._deadline, self._on_deadline)
            return
        self._timeout_cb()

    def _timeout_cb(self) -> None:
        log.info("%s: timeout", self._client_ip)
        self.say_and_close(replies.TIMEOUT.format(host=self.hostname))

    def say_and_close(self, reply: str) -> None:
        """Send a last reply and close (buffered output is flushed before the close)."""
        transport = self.transport
        if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
            return
        transport.write(reply.encode("ascii") + b"\r\n")
        transport.close()

    def shutdown(self, *, force: bool) -> None:
        """Server closing: say 421 now unless mid-transaction (then after it, or if forced)."""
        in_transaction = self._busy or (
            self.envelope is not None and self.envelope.mail_from is not None
        )
        if force or not in_transaction:
            self.say_and_close(replies.SHUTTING_DOWN.format(host=self.hostname))

    @property
    def handler_task(self) -> asyncio.Task[None] | None:
        task: asyncio.Task[None] | None = self._handler_coroutine
        return task

    # --- the fast path ------------------------------------------------------------------
    #
    # A bulk injector's transactions (MAIL, RCPT, DATA, content) are handled right here as
    # the bytes arrive, without the stream reader and a coroutine step per command: same
    # checks, same replies, about a fifth less CPU per message. Only while the command
    # loop is parked with nothing buffered, only for those commands in their plain form;
    # anything else (a partial line, parameters, an error, EHLO, AUTH, STARTTLS, RSET,
    # QUIT...) goes to the stream reader and the loop above, exactly as before.

    def data_received(self, data: bytes) -> None:
        state = self._fast_state
        if state == _BODY:
            self._fast_feed(data)
            return
        if state == _SPOOLING:
            self._held += data
            if len(self._held) > HELD_LIMIT and self.transport is not None:
                self.transport.pause_reading()  # type: ignore[attr-defined]
            return
        if (
            self._parked
            and not self._reader._buffer  # type: ignore[attr-defined]
            and not self._paused  # type: ignore[attr-defined]
        ):
            data = self._fast_commands(data)
            if not data:
                return
        super().data_received(data)

    def _fast_commands(self, data: bytes) -> bytes:
        """Handle the complete command lines at the front of `data` that the fast path
        can; return the rest for the command loop."""
        pos, end = 0, len(data)
        while pos < end:
            nl = data.find(b"\n", pos)
            if nl < 0 or nl - pos > COMMAND_LINE_LIMIT + 1:
                break
            if not self._fast_command(data[pos:nl].rstrip(b"\r")):
                break
            pos = nl + 1
            if self._fast_state == _BODY:
                if pos < end:
                    self._fast_feed(data[pos:])
                return b""
        return data[pos:]

    def _fast_command(self, line: bytes) -> bool:
        session, envelope = self.session, self.envelope
        if (
            session is None
            or envelope is None
            or not session.host_name
            or self.transport is None
            or self._ctx.draining
        ):
            return False
        verb = line[:5].upper()
        if verb == b"RCPT ":
            if not envelope.mail_from or line[5:8].upper() != b"TO:":
                return False
            address = self._fast_address(line[8:])
            if address is None:
                return False
            reply = self._add_recipient(session, envelope, address, null_path=address == "<>")
        elif verb == b"MAIL ":
            if envelope.mail_from or line[5:10].upper() != b"FROM:":
                return False
            address = self._fast_address(line[10:])
            if address is None:
                return False
            envelope.mail_from = address  # on_mail without options: nothing to refuse
            reply = replies.SENDER_OK
        elif line.upper() == b"DATA" and envelope.rcpt_tos:
            settings = self._ctx.settings
            self._busy = True
            self._fast_state = _BODY
            self._fast_body = DataReader(
                max_size=settings.max_message_size,
                normalize=settings.normalize_bare_line_endings,
            )
            self._reset_timeout(settings.data_timeout)
            self.transport.write(_wire(replies.START_DATA))  # type: ignore[attr-defined]
            return True
        else:
            return False
        self._reset_timeout()
        self.transport.write(_wire(reply))  # type: ignore[attr-defined]
        return True

    def _fast_address(self, raw: bytes) -> str | None:
        """The address of a parameterless path as the loop would read it (`<>` for the
        null path); None leaves the line to the loop."""
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            return None
        address = addresses.plain_address(text)
        if address is not None:
            return address
        path = self._parse_path(text)
        return path.address if path is not None and not path.params else None

    def _fast_feed(self, data: bytes) -> None:
        body = self._fast_body
        assert body is not None
        rest = body.feed(data)
        if not body.done:
            return
        self._fast_body = None
        self._fast_state = _SPOOLING
        if rest:
            self._held += rest
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()  # the spool's time is not the client's
        try:
            outcome = self._begin(body)
        except Exception as error:  # a bug, not the client's fault: 451, and keep going
            log.exception("%s: message not spooled", self._client_ip)
            outcome = failure_reply(error)
        if isinstance(outcome, str):
            self.loop.call_soon(self._fast_reply, outcome)  # not nested: input may follow
        else:
            outcome.add_done_callback(self._fast_stored)

    def _fast_stored(self, future: asyncio.Future[Envelope]) -> None:
        try:
            reply = self._outcome(future)
        except Exception as error:
            log.exception("%s: after spooling", self._client_ip)
            reply = failure_reply(error)
        self._fast_reply(reply)

    def _fast_reply(self, reply: str) -> None:
        """The reply to a message's content; then what came meanwhile is read on."""
        self._busy = False
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # the client left; what was spooled stays spooled
        self.envelope = self._create_envelope()
        self._reset_timeout()
        transport.write(_wire(reply))  # type: ignore[attr-defined]
        self._fast_state = _COMMANDS
        if self._ctx.draining:
            self.say_and_close(replies.SHUTTING_DOWN.format(host=self.hostname))
            return
        held, self._held = bytes(self._held), bytearray()
        if len(held) > HELD_LIMIT:
            transport.resume_reading()  # type: ignore[attr-defined]
        if held:
            self.data_received(held)

    # --- replies ------------------------------------------------------------------------

    async def push(self, status: str | bytes) -> None:
        if isinstance(status, bytes):
            await super().push(status)  # AUTH challenges
            return
        if self._address_error is not None:
            if status.startswith("553 5.1.3 Error: malf"):
                status = self._address_error
            else:
                status = replies.enhance(status)
            self._address_error = None
            await self._send(status.encode("ascii") + b"\r\n")
            return
        await self._send(_wire(status))

    async def _send(self, data: bytes) -> None:
        """Write a reply; wait only when the transport asks us to (or is going away)."""
        writer = self._writer
        writer.write(data)
        flow = self._paused or self._connection_lost  # type: ignore[attr-defined]
        if flow or writer.transport.is_closing():
            await writer.drain()

    def ehlo_lines(self, lines: list[str]) -> list[str]:
        """aiosmtpd's EHLO lines with ours added and an empty AUTH line dropped."""
        body = [line[4:] for line in lines[1:-1] if line.strip() != "250-AUTH"]
        size = self._ctx.settings.max_message_size
        extra = ["PIPELINING", "ENHANCEDSTATUSCODES"]
        if size:
            extra.insert(0, f"SIZE {size}")
        keywords = [*extra, *body]
        return [lines[0], *(f"250-{k}" for k in keywords), "250 HELP"]

    # --- envelope -----------------------------------------------------------------------

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        self._last_path = None
        try:
            path = addresses.parse_path(arg)
        except addresses.AddressError as error:
            self._address_error = error.reply
            return None, None
        self._last_path = path
        return path.address, path.params

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        """The common case (after HELO, no transaction, no parameters) decided here, the
        rest by aiosmtpd; the replies are the same either way."""
        session, envelope = self._session(), self._envelope()
        if (
            arg is not None
            and session.host_name
            and not envelope.mail_from
            and arg[:5].upper() == "FROM:"
        ):
            path = self._parse_path(arg[5:])
            if path is not None and not path.params:
                await self.push(self.on_mail(envelope, path.address, []))
                return
        await super().smtp_MAIL(arg)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        session, envelope = self._session(), self._envelope()
        if (
            arg is not None
            and session.host_name
            and envelope.mail_from
            and arg[:3].upper() == "TO:"
        ):
            path = self._parse_path(arg[3:])
            if path is not None and not path.params:
                await self.push(self.on_rcpt(session, envelope, path.address))
                return
        await super().smtp_RCPT(arg)

    def _parse_path(self, text: str) -> addresses.ParsedPath | None:
        try:
            path = addresses.parse_path(text)
        except addresses.AddressError:
            return None
        self._last_path = path
        return path

    def on_mail(self, envelope: Any, address: str, options: list[str]) -> str:
        refusal = policy.check_declared_size(
            policy.declared_size(options), self._ctx.settings.max_message_size
        )
        if refusal is not None:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return replies.SENDER_OK

    def on_rcpt(self, session: Any, envelope: Any, address: str) -> str:
        path = self._last_path
        if path is None or path.address != address:
            return replies.bad_address("Malformed address")
        return self._add_recipient(session, envelope, address, null_path=path.mailbox is None)

    def _add_recipient(self, session: Any, envelope: Any, address: str, *, null_path: bool) -> str:
        refusal = policy.check_recipient(
            null_path,
            may_relay=self._may_relay(bool(session.authenticated)),
            accepted=len(envelope.rcpt_tos),
            max_recipients=self._ctx.settings.max_recipients,
        )
        if refusal is not None:
            log.info("%s: RCPT %s refused: %s", self._client_ip, address, refusal)
            return refusal
        envelope.rcpt_tos.append(address)
        return replies.RECIPIENT_OK

    def _may_relay(self, authenticated: bool) -> bool:
        """policy.may_relay for this client, kept until AUTH or a reload changes its inputs
        (it is asked at every RCPT)."""
        hosts = self._ctx.relay_hosts
        cached = self._relay_verdict
        if cached is not None and cached[0] is hosts and cached[1] == authenticated:
            return cached[2]
        allowed = policy.may_relay(self._client_ip, hosts, authenticated)
        self._relay_verdict = (hosts, authenticated, allowed)
        return allowed

    # --- DATA ---------------------------------------------------------------------------

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:
        if not self._session().host_name:
            await self.push("503 Error: send HELO first")
            return
        if not self._envelope().rcpt_tos:
            await self.push(replies.NEED_RCPT)
            return
        if arg:
            await self.push(replies.DATA_SYNTAX)
            return
        settings = self._ctx.settings
        await self.push(replies.START_DATA)
        self._busy = True
        try:
            self._reset_timeout(settings.data_timeout)
            reader = DataReader(
                max_size=settings.max_message_size,
                normalize=settings.normalize_bare_line_endings,
            )
            stream = self._reader
            while True:
                chunk: bytes = await stream.read(DATA_READ_SIZE)
                if not chunk:  # EOF before the terminator
                    if self.transport is not None:
                        self.transport.close()
                    return
                rest = reader.feed(chunk)
                if reader.done:
                    if rest:  # pipelined commands: back to the front of the stream
                        stream._buffer[:0] = rest  # type: ignore[attr-defined]
                    break
            if self._timeout_handle is not None:
                self._timeout_handle.cancel()  # the spool's time is not the client's
            reply = await self._finish(reader)
        finally:
            self._busy = False
        self.envelope = self._create_envelope()
        self._reset_timeout()
        await self.push(reply)
        if self._ctx.draining:
            self.say_and_close(replies.SHUTTING_DOWN.format(host=self.hostname))

    async def _finish(self, reader: DataReader) -> str:
        outcome = self._begin(reader)
        if isinstance(outcome, str):
            return outcome
        # Shielded: a client hanging up mid-handoff (which cancels the command loop's
        # task) must not interrupt the spool.
        try:
            await asyncio.shield(outcome)
        except asyncio.CancelledError:
            if not outcome.done():
                raise
        except Exception:
            pass  # the outcome says it
        return self._outcome(outcome)

    def _begin(self, reader: DataReader) -> str | asyncio.Future[Envelope]:
        """Hand a received message to the spool: the reply refusing it, or the future of
        its envelope."""
        if reader.refusal is not None:
            log.info("%s: DATA refused: %s", self._client_ip, reader.refusal)
            return reader.refusal
        ctx = self._ctx
        session, envelope = self._session(), self._envelope()
        now = ctx.clock()
        queue_id = f"{random.getrandbits(64):016x}"  # a trace id, not a secret
        group, binding = self._listener_assignment()
        reception = Reception(
            client_ip=self._client_text,
            helo=session.host_name,
            esmtp=bool(session.extended_smtp),
            tls=self._tls_protocol is not None,
            authenticated=bool(session.authenticated),
            recipients=tuple(envelope.rcpt_tos),
            queue_id=queue_id,
            received_at=datetime.datetime.fromtimestamp(now, datetime.UTC),
            listener_group=group,
            listener_binding=binding,
        )
        prepared = prepare(
            reader.content(),
            reception,
            hostname=ctx.settings.hostname,
            groups=ctx.settings.binding_groups,
            max_received=ctx.settings.max_received_headers,
        )
        if not isinstance(prepared, Prepared):
            log.info("%s: message refused: %s", self._client_ip, prepared)
            return prepared
        sender = envelope.mail_from or "<>"
        message = NewMessage(
            sender="" if sender == "<>" else sender,
            recipients=reception.recipients,
            binding_group=prepared.binding_group,
            binding=prepared.binding,
            content=prepared.content,
            received_at=now,
        )
        try:
            return submit(ctx.spool, message)
        except Exception as error:
            log.warning("%s: spool refused message: %r", self._client_ip, error)
            return failure_reply(error)

    def _outcome(self, future: asyncio.Future[Envelope]) -> str:
        """The reply for a finished hand-off: 250 with the id, or why not (never a 2xx)."""
        if future.cancelled():
            log.warning("%s: spooling was cancelled", self._client_ip)
            return replies.SPOOL_FAILED
        error = future.exception()
        if error is not None:
            log.warning("%s: spool refused message: %r", self._client_ip, error)
            return failure_reply(error)
        stored = future.result()
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "received %s from %s group=%s binding=%s rcpts=%d size=%d",
                stored.message_id,
                self._client_ip,
                stored.binding_group,
                stored.binding,
                len(stored.recipients),
                stored.size,
            )
        return replies.QUEUED.format(id=stored.message_id)

    def _session(self) -> AiosmtpdSession:
        assert self.session is not None
        return self.session

    def _envelope(self) -> AiosmtpdEnvelope:
        assert self.envelope is not None
        return self.envelope

    def _listener_assignment(self) -> tuple[str | None, str | None]:
        listener = self._ctx.listener
        peer = listener.peer_for(self._client_ip) if self._client_ip is not None else None
        if peer is not None and (peer.binding_group is not None or peer.binding is not None):
            return peer.binding_group, peer.binding
        return listener.binding_group, listener.binding

    # --- AUTH (PLAIN, LOGIN): the password check runs in a worker thread ----------------

    async def auth_PLAIN(self, _: object, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = base64.b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await self.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._check_password(parts[1], parts[2])

    async def auth_LOGIN(self, _: object, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await self.challenge_auth(self.AuthLoginUsernameChallenge)
            if login is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                login = base64.b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        return await self._check_password(login, password)

    async def _check_password(self, login: bytes, password: bytes) -> AuthResult:
        credentials = self._ctx.credentials
        ok = credentials is not None and await asyncio.to_thread(
            credentials.verify, login, password
        )
        user = login.decode("utf-8", errors="replace")
        if not ok:
            log.warning("%s: AUTH failed for %r", self._client_ip, user)
            return AuthResult(success=False, handled=False, message=replies.AUTH_FAILED)
        log.info("%s: authenticated as %r", self._client_ip, user)
        return AuthResult(success=True, auth_data=user, message=replies.AUTH_OK)
