"""The transport of an open session, once aiosmtplib has connected, EHLO'd and done
STARTTLS: writes what `pipeline` builds and hands back the server's replies in order.

`SmtpChannel` becomes the transport's protocol (`transport.set_protocol`), so several
commands can be written before their replies are read (RFC 2920 PIPELINING), which
aiosmtplib's one-reply-per-command protocol cannot do. Each `reply()` waits under its own
timeout, armed only when the reply has not arrived yet. Replies pass through
response_transcode here; what leaves the connection unusable (timeout, connection lost, a
reply without a valid code) raises `SessionFailed` and closes the transport.
"""

from __future__ import annotations

import asyncio

import aiosmtplib

from relay.deliver.errors import FailureKind
from relay.deliver.reply_stream import ReplyStream
from relay.deliver.settings import DeliverySettings
from relay.deliver.smtp_session import SessionFailed, translate
from relay.deliver.transcode import transcode
from relay.outcome import Phase, Reply

__all__ = ["SmtpChannel"]

_SERVICE_CLOSING = 421  # the server is going away: close our side too, as aiosmtplib does
_REPLY_CACHE_SIZE = 64  # replies are immutable: the same reply text is parsed once


class SmtpChannel(asyncio.Protocol):
    """Owns the transport from the first MAIL to QUIT; one user at a time."""

    def __init__(self, transport: asyncio.Transport, settings: DeliverySettings) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._settings = settings
        self._stream = ReplyStream()
        self._expected = 0  # replies owed for what was written; anything more is dropped
        self._waiter: asyncio.Future[bool] | None = None
        self._lost: Exception | None = None
        self._replies: dict[tuple[int, str], Reply] = {}
        transport.set_protocol(self)

    # ---- asyncio.Protocol -------------------------------------------------------------

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
        self._gone(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        lost = aiosmtplib.SMTPServerDisconnected("Connection lost")
        lost.__cause__ = exc
        self._gone(lost)

    def _gone(self, exc: Exception) -> None:
        if self._lost is None:
            self._lost = exc
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(True)

    # ---- used by OutboundConnection ---------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._lost is None and not self._transport.is_closing()

    def write(self, data: bytes, replies: int, phase: Phase) -> None:
        """Send `data`, which asks for `replies` replies."""
        if not self.connected:
            raise translate(aiosmtplib.SMTPServerDisconnected("Connection lost"), phase, 0)
        self._expected += replies
        self._transport.write(data)

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
        if not self._transport.is_closing():
            self._transport.close()


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)
