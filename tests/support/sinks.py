"""SMTP sink servers for tests: aiosmtpd inside the test's own event loop.

    sink = SmtpSink("127.0.0.2", port)                 # port 0: pick a free one
    sink.script.rcpt["bad@x.test"] = ["550 5.1.1 no such user"]
    sink.script.rcpt["slow@x.test"] = ["451 4.3.0 later", "451 4.3.0 later"]  # then 250
    async with sink:
        ...                                             # deliver to 127.0.0.2:port
    sink.messages     # [Received(peer_ip, ehlo, mail_from, mail_options, rcpt_tos, content, tls)]
    sink.connections, sink.max_active, sink.ehlo_names

Script (all optional; a list of replies is consumed one per command, then the default):
  greeting   "421 4.3.2 busy": sent instead of the 220 banner, then the connection closes
  ehlo/helo/mail/data: lists of replies; rcpt: {address: [replies]}, "*" for any address
  stall      "EHLO" | "MAIL" | "RCPT" | "DATA": never answer that command
  eightbitmime / smtputf8 / pipelining: advertise those extensions (8BITMIME on by
                default); aiosmtpd answers pipelined commands in order either way
  xclient    the attribute list to offer as XCLIENT ("NAME ADDR HELO"); None: not offered.
             A 220 to XCLIENT restarts the session (EHLO again); `Received.xclient` holds
             the attributes in force for the transaction; script.xclient_replies refuse it
A scripted reply is written as is, so "garbage" (no code) tests invalid replies.
STARTTLS is offered when `tls_context` (a server SSLContext, see `server_tls_context`) is
given; `Received.tls` says whether the transaction ran over TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["Received", "Script", "SmtpSink", "server_tls_context"]


@dataclass
class Received:
    peer_ip: str
    ehlo: str | None
    mail_from: str
    mail_options: list[str]
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    xclient: dict[str, str] | None = None


@dataclass
class Script:
    greeting: str | None = None
    ehlo: list[str] = field(default_factory=list)
    helo: list[str] = field(default_factory=list)
    mail: list[str] = field(default_factory=list)
    rcpt: dict[str, list[str]] = field(default_factory=dict)
    data: list[str] = field(default_factory=list)
    stall: str | None = None
    # Decide a RCPT reply from (peer ip, address); None falls through to `rcpt`.
    rcpt_hook: Callable[[str, str], str | None] | None = None
    eightbitmime: bool = True
    smtputf8: bool = False
    pipelining: bool = False
    xclient: str | None = None
    xclient_replies: list[str | None] = field(default_factory=list)  # None: accept that one
    data_delay: float = 0.0  # seconds before answering DATA (holds connections busy)


def server_tls_context(cert: Any) -> ssl.SSLContext:
    """A server context from a trustme LeafCert (`ca.issue_cert("mx.example.test")`)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


class SmtpSink:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        script: Script | None = None,
        tls_context: ssl.SSLContext | None = None,
        hostname: str = "sink.test",
    ) -> None:
        self.host = host
        self.port = port
        self.script = script or Script()
        self.tls_context = tls_context
        self.hostname = hostname
        self.messages: list[Received] = []
        self.ehlo_names: list[str] = []
        self.commands: list[str] = []  # MAIL/RCPT/DATA/RSET/... in order, as seen
        self.xclient_lines: list[str] = []  # the XCLIENT arguments, as received
        self.connections = 0
        self.arrivals: list[float] = []  # time.monotonic() of each message accepted
        self.active = 0
        self.max_active = 0
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()
        self._transports: set[asyncio.BaseTransport] = set()

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> SmtpSink:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
        for transport in list(self._transports):
            transport.close()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        await asyncio.sleep(0)

    async def __aenter__(self) -> SmtpSink:
        return await self.start()

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def recipients(self) -> list[str]:
        return [r for m in self.messages for r in m.rcpt_tos]

    def _protocol(self) -> asyncio.Protocol:
        if self.script.greeting is not None:
            return _Refuser(self, self.script.greeting)
        return _SinkSMTP(
            self,
            _Handler(self),
            hostname=self.hostname,
            tls_context=self.tls_context,
            enable_SMTPUTF8=self.script.smtputf8,
            timeout=30,
            loop=asyncio.get_running_loop(),
        )

    def _opened(self, transport: asyncio.BaseTransport) -> None:
        self._transports.add(transport)
        self.connections += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)

    def _closed(self, transport: asyncio.BaseTransport | None) -> None:
        if transport is not None:
            self._transports.discard(transport)
        self.active -= 1

    def _next(self, replies: list[str]) -> str | None:
        return replies.pop(0) if replies else None


class _Refuser(asyncio.Protocol):
    def __init__(self, sink: SmtpSink, greeting: str) -> None:
        self.sink = sink
        self.greeting = greeting
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.sink._opened(transport)
        transport.write(self.greeting.encode() + b"\r\n")  # type: ignore[attr-defined]
        transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.sink._closed(self.transport)


class _SinkSMTP(SMTP):
    def __init__(self, sink: SmtpSink, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.sink = sink
        self._counted: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._counted is None:  # not again for the STARTTLS transport
            self._counted = transport
            self.sink._opened(transport)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted is not None:
            self.sink._closed(self._counted)
            self._counted = None
        super().connection_lost(error)

    async def smtp_XCLIENT(self, arg: str) -> None:
        """Postfix XCLIENT: attributes to the session, then a new greeting (EHLO again)."""
        script = self.sink.script
        if script.xclient is None:
            await self.push('500 Error: command "XCLIENT" not recognized')
            return
        self.sink.commands.append("XCLIENT")
        self.sink.xclient_lines.append(arg)
        scripted = script.xclient_replies.pop(0) if script.xclient_replies else None
        if scripted is not None:
            await self.push(scripted)
            return
        attributes = dict(item.split("=", 1) for item in arg.split())
        assert self.session is not None
        self.session.xclient = attributes  # type: ignore[attr-defined]
        self.session.host_name = None  # the session starts over: EHLO is needed again
        self._set_rset_state()
        await self.push(f"220 {self.hostname} ESMTP after XCLIENT")


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def _maybe_stall(self, command: str) -> None:
        self.sink.commands.append(command)
        if self.sink.script.stall == command:
            await self.sink._release.wait()

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        await self._maybe_stall("EHLO")
        scripted = self.sink._next(self.sink.script.ehlo)
        if scripted is not None:
            return [scripted]
        session.host_name = hostname
        self.sink.ehlo_names.append(hostname)
        if not self.sink.script.eightbitmime:
            responses = [r for r in responses if r[4:].upper() != "8BITMIME"]
        if self.sink.script.pipelining:
            responses = [*responses[:-1], "250-PIPELINING", responses[-1]]
        if self.sink.script.xclient is not None:
            responses = [*responses[:-1], f"250-XCLIENT {self.sink.script.xclient}", responses[-1]]
        return responses

    async def handle_HELO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str
    ) -> str:
        await self._maybe_stall("HELO")
        scripted = self.sink._next(self.sink.script.helo)
        if scripted is not None:
            return scripted
        session.host_name = hostname
        self.sink.ehlo_names.append(hostname)
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self._maybe_stall("MAIL")
        scripted = self.sink._next(self.sink.script.mail)
        if scripted is not None:
            return scripted
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self._maybe_stall("RCPT")
        script = self.sink.script
        if script.rcpt_hook is not None:
            decided = script.rcpt_hook(str(session.peer[0]), address)
            if decided is not None:
                return decided
        replies = script.rcpt.get(address.lower(), script.rcpt.get("*", []))
        scripted = self.sink._next(replies)
        if scripted is not None:
            return scripted
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.sink.commands.append("RSET")
        return "250 2.0.0 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self._maybe_stall("DATA")
        if self.sink.script.data_delay:
            await asyncio.sleep(self.sink.script.data_delay)
        scripted = self.sink._next(self.sink.script.data)
        if scripted is not None:
            return scripted
        content = envelope.original_content or b""
        self.sink.arrivals.append(time.monotonic())
        self.sink.messages.append(
            Received(
                peer_ip=str(session.peer[0]) if session.peer else "",
                ehlo=session.host_name,
                mail_from=str(envelope.mail_from),
                mail_options=list(envelope.mail_options),
                rcpt_tos=list(envelope.rcpt_tos),
                content=bytes(content),
                tls=session.ssl is not None,
                xclient=getattr(session, "xclient", None),
            )
        )
        return "250 2.0.0 queued"
