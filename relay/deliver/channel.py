"""One outbound SMTP connection's transport, from the greeting to QUIT: writes what
`pipeline` builds and hands back the server's replies in order, parsed by the one
`ReplyStream` (greeting, EHLO, STARTTLS and the transactions alike).

`SmtpChannel` is the transport's protocol, so several commands can be written before their
replies are read (RFC 2920 PIPELINING). Each `reply()` waits under its own timeout, armed
only when the reply has not arrived yet. Replies pass through response_transcode here,
before anyone classifies them. A failure code from the server is a reply, not an exception;
what leaves the connection unusable (timeout, connection lost, a reply without a valid code,
a TLS failure) raises `SessionFailed` and closes the transport. Third-party exceptions (ssl,
OSError) are translated here, at the boundary (`translate`).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, cast

from relay.deliver.errors import FailureKind
from relay.deliver.reply_stream import ReplyStream
from relay.deliver.settings import DeliverySettings
from relay.deliver.transcode import transcode
from relay.outcome import Phase, Reply

__all__ = ["ConnectionLost", "SessionFailed", "SmtpChannel", "translate"]

_SERVICE_CLOSING = 421  # the server is going away: close our side too
_ENCODING_DER = 2  # _ssl.ENCODING_DER, for the inner chain's Certificate.public_bytes
_REPLY_CACHE_SIZE = 64  # replies are immutable: the same reply text is parsed once


class ConnectionLost(ConnectionError):
    """The peer closed the connection, or it broke."""


class SessionFailed(Exception):
    """A step failed in a way that is not an ordinary reply. `broken`: the connection
    cannot be used any more."""

    def __init__(
        self, kind: FailureKind, phase: Phase, reply: Reply, detail: str = "", broken: bool = True
    ) -> None:
        super().__init__(f"{phase.value}: {reply}")
        self.kind = kind
        self.phase = phase
        self.reply = reply
        self.detail = detail
        self.broken = broken


def translate(exc: BaseException, phase: Phase, timeout: float) -> SessionFailed:
    """ssl / OSError / timeout -> SessionFailed, with a reply relay writes itself."""
    detail = f"{type(exc).__name__}: {exc}"
    what = phase.value.upper()
    if isinstance(exc, TimeoutError):
        reply = Reply.make(451, "4.4.2", f"timeout after {timeout:g}s waiting for {what} reply")
        return SessionFailed(FailureKind.TIMEOUT, phase, reply, detail)
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        reply = Reply.make(451, "4.7.5", f"TLS negotiation failed: {_reason(exc)}")
        return SessionFailed(FailureKind.TLS, phase, reply, detail)
    if isinstance(exc, OSError):
        reply = Reply.make(451, "4.4.2", f"connection lost during {what}: {_reason(exc)}")
        if phase is Phase.CONNECT:
            reply = Reply.make(451, "4.4.1", f"connection failed: {_reason(exc)}")
        return SessionFailed(FailureKind.NETWORK, phase, reply, detail)
    reply = Reply.make(451, "4.3.0", f"{what} failed: {_reason(exc)}")
    return SessionFailed(FailureKind.PROTOCOL, phase, reply, detail)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return str(exc.verify_message)
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    cause = exc.__cause__
    text = str(exc) or type(exc).__name__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({cause})"
    return text


class SmtpChannel(asyncio.Protocol):
    """Owns the transport from the greeting to QUIT; one user at a time."""

    def __init__(self, settings: DeliverySettings) -> None:
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._settings = settings
        self._stream = ReplyStream()
        self._expected = 1  # replies owed (the greeting first); anything more is dropped
        self._waiter: asyncio.Future[bool] | None = None
        self._lost: Exception | None = None
        self._replies: dict[tuple[int, str], Reply] = {}

    @classmethod
    async def open(cls, sock: socket.socket, settings: DeliverySettings) -> SmtpChannel:
        """A channel over a connected socket (which it owns from now on, even on error)."""
        loop = asyncio.get_running_loop()
        try:
            _, channel = await loop.create_connection(lambda: cls(settings), sock=sock)
        except BaseException:
            sock.close()
            raise
        return channel

    # ---- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._expected <= 0:
            return  # unsolicited: never pair it with a later command
        stream = self._stream
        stream.feed(data)
        ready = stream.ready
        while len(ready) > self._expected:
            ready.pop()
        waiter = self._waiter
        if (ready or stream.failed is not None) and waiter is not None and not waiter.done():
            waiter.set_result(True)

    def eof_received(self) -> bool:
        self._gone(ConnectionLost("Unexpected EOF received"))
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        lost = ConnectionLost("Connection lost")
        lost.__cause__ = exc
        self._gone(lost)

    def _gone(self, exc: Exception) -> None:
        if self._lost is None:
            self._lost = exc
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(True)

    # ---- used by open_connection and OutboundConnection -------------------------------

    @property
    def connected(self) -> bool:
        transport = self._transport
        return self._lost is None and transport is not None and not transport.is_closing()

    def write(self, data: bytes, replies: int, phase: Phase) -> None:
        """Send `data`, which asks for `replies` replies."""
        if not self.connected:
            raise translate(ConnectionLost("Connection lost"), phase, 0)
        assert self._transport is not None
        self._expected += replies
        self._transport.write(data)

    async def command(self, line: bytes, phase: Phase, seconds: float) -> Reply:
        """One command and its reply."""
        self.write(line, 1, phase)
        return await self.reply(phase, seconds)

    async def reply(self, phase: Phase, seconds: float) -> Reply:
        """The next reply, after response_transcode."""
        code, text = await self.read(phase, seconds)
        return self.parse(code, text)

    async def read(self, phase: Phase, seconds: float) -> tuple[int, str]:
        """The next reply as the server sent it (code 200-599, text)."""
        stream = self._stream
        waiting = not stream.ready and stream.failed is None and self._lost is None
        if waiting and not await self._wait(seconds):
            self.close()
            raise translate(TimeoutError(), phase, seconds)
        if not stream.ready:
            self.close()
            if stream.failed is not None:
                text = stream.failed.text
                reply = Reply.parse(None, text, local=True)
                raise SessionFailed(FailureKind.PROTOCOL, phase, reply, f"MalformedReply: {text}")
            assert self._lost is not None
            raise translate(self._lost, phase, seconds)
        code, text = stream.ready.popleft()
        self._expected -= 1
        if code == _SERVICE_CLOSING:
            self.close()
        elif not 200 <= code <= 599:
            self.close()
            reply = Reply.parse(code, text)
            raise SessionFailed(FailureKind.PROTOCOL, phase, reply, "reply without a valid code")
        return code, text

    def parse(self, code: int, text: str) -> Reply:
        key = (code, text)
        reply = self._replies.get(key)
        if reply is None:
            settings = self._settings
            reply = transcode(
                Reply.parse(code, text),
                settings.response_transcode_pattern,
                settings.response_transcode_replace,
            )
            if len(self._replies) < _REPLY_CACHE_SIZE:
                self._replies[key] = reply
        return reply

    async def _wait(self, seconds: float) -> bool:
        """True when something arrived (or the connection went), False on timeout."""
        waiter: asyncio.Future[bool] = self._loop.create_future()
        self._waiter = waiter
        timer = self._loop.call_later(seconds, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def starttls(
        self, context: ssl.SSLContext, server_hostname: str | None, seconds: float
    ) -> Reply:
        """STARTTLS and, after a 220, the TLS handshake, both under `seconds`. Anything the
        server sent after its 220 is dropped (RFC 3207 section 5: no plain-text commands or
        replies carry over)."""
        reply = await self.command(b"STARTTLS\r\n", Phase.STARTTLS, seconds)
        if reply.code != 220:
            return reply
        assert self._transport is not None
        self._stream = ReplyStream()
        self._expected = 0
        try:
            async with asyncio.timeout(seconds):
                transport = await self._loop.start_tls(
                    self._transport,
                    self,
                    context,
                    server_hostname=server_hostname,
                    ssl_handshake_timeout=seconds,
                )
        except (OSError, TimeoutError, ssl.CertificateError) as exc:
            self.close()
            raise translate(exc, Phase.STARTTLS, seconds) from exc
        if transport is None:
            self.close()
            raise translate(ConnectionLost("Connection lost"), Phase.STARTTLS, seconds)
        self._transport = transport
        return reply

    def peer_certificate(self) -> dict[str, object] | None:
        ssl_object = (
            None if self._transport is None else self._transport.get_extra_info("ssl_object")
        )
        if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
            return None
        cert = ssl_object.getpeercert()
        return dict(cert) if cert else None

    def peer_chain(self) -> list[bytes]:
        """The certificates the server sent (DER, leaf first), verified or not; DANE
        matches against them. Python 3.13 has SSLObject.get_unverified_chain; 3.10-3.12
        have it on the inner _ssl object only; failing both, the leaf alone."""
        ssl_object = (
            None if self._transport is None else self._transport.get_extra_info("ssl_object")
        )
        if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
            return []
        chain_of: Any = getattr(ssl_object, "get_unverified_chain", None)
        if chain_of is None:
            chain_of = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
        if chain_of is not None:
            found = chain_of() or []
            return [c if isinstance(c, bytes) else c.public_bytes(_ENCODING_DER) for c in found]
        leaf = ssl_object.getpeercert(binary_form=True)
        return [leaf] if leaf else []

    async def quit(self, seconds: float) -> None:
        """QUIT, tolerant of a dead or slow peer; always closes."""
        try:
            if self.connected:
                self.write(b"QUIT\r\n", 1, Phase.QUIT)
                await self.read(Phase.QUIT, seconds)
        except SessionFailed:
            pass
        finally:
            self.close()

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)
