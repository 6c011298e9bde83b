"""A raw asyncio SMTP sink that offers exactly the ESMTP extensions a test names, and
takes their parameters as sent (aiosmtpd refuses DSN/REQUIRETLS parameters and upper-cases
the rest). It speaks DATA and BDAT, STARTTLS when given a server context, and pipelining.

    sink = EsmtpSink("127.0.0.10", port, extensions=["DSN", "SMTPUTF8", "SIZE 1000"])
    async with sink:
        ...
    sink.messages   # [Got(mail, rcpts, content, tls, via)]: MAIL/RCPT arguments as sent
    sink.lines      # every command line, in order
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["EsmtpSink", "Got"]


@dataclass
class Got:
    mail: str  # the MAIL argument as sent: "FROM:<a@b> SIZE=10 RET=HDRS"
    rcpts: list[str]  # each RCPT argument as sent
    content: bytes  # after dot-unstuffing (DATA) or as sent (BDAT)
    tls: bool
    via: str  # "DATA" | "BDAT"

    @property
    def sender(self) -> str:
        return self.mail.split(">", 1)[0].split("<", 1)[1]

    @property
    def recipients(self) -> list[str]:
        return [r.split(">", 1)[0].split("<", 1)[1] for r in self.rcpts]


@dataclass
class _Transaction:
    mail: str | None = None
    rcpts: list[str] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)


class EsmtpSink:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        extensions: Sequence[str] = ("PIPELINING", "8BITMIME"),
        tls_context: ssl.SSLContext | None = None,
        hostname: str = "esmtp-sink.test",
        refuse: Sequence[str] = (),
        replies_after_content: bool = False,
        final_delay: float = 0.0,
        refuse_ahead: bool = False,
        close_after: int = 0,
    ) -> None:
        self.host = host
        # MAIL or RCPT arguments answered 550 (a refused BDAT's octets are read and dropped)
        self.refuse = set(refuse)
        # Every reply of a transaction is held until its BDAT LAST chunk has arrived: a
        # client that waits for the RCPT replies before sending the content never gets them.
        self.replies_after_content = replies_after_content
        # The reply that ends a transaction waits this long (replies after it wait too):
        # a MAIL that arrives meanwhile was sent ahead, not after the client had the reply.
        self.final_delay = final_delay
        self.refuse_ahead = refuse_ahead  # such a MAIL is answered 503 (bad sequence)
        self.ahead = 0  # MAILs that arrived before the previous transaction's last reply
        self.close_after = close_after  # messages; then the connection closes after the 250
        self.port = port
        self.extensions = list(extensions)
        self.tls_context = tls_context
        self.hostname = hostname
        self.messages: list[Got] = []
        self.lines: list[str] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()

    async def __aenter__(self) -> EsmtpSink:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Session(self), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
        for transport in list(self._transports):
            transport.close()
        if self._server is not None:
            await asyncio.wait_for(self._server.wait_closed(), 2)


class _Session(asyncio.Protocol):
    def __init__(self, sink: EsmtpSink) -> None:
        self.sink = sink
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.tls = False
        self.tx = _Transaction()
        self.mode = "command"  # command | data | bdat
        self.left = 0  # BDAT octets still to come
        self.last = False
        self.held: list[str] = []  # replies_after_content: said at the end of the chunk
        self.delaying = False  # final_delay: the last reply is on its way, later ones wait
        self.closing = False  # close_after reached: nothing after the held 250

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self.transport is None:
            self.sink.connections += 1
            transport.write(f"220 {self.sink.hostname} ESMTP sink\r\n".encode())
        self.transport = transport
        self.sink._transports.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.sink._transports.discard(self.transport)

    def say(self, line: str, *, final: bool = False) -> None:
        """Send a reply; `final`: the one that ends a transaction (held replies go first)."""
        assert self.transport is not None
        if self.delaying or (
            self.sink.replies_after_content and self.tx.mail is not None and not final
        ):
            self.held.append(line)
            return
        if final and self.sink.final_delay:
            self.delaying = True
            self.held.append(line)
            asyncio.get_running_loop().call_later(self.sink.final_delay, self.release)
            return
        for held in self.held:
            self.transport.write(held.encode() + b"\r\n")
        self.held = []
        self.transport.write(line.encode() + b"\r\n")

    def release(self) -> None:
        """final_delay: the held last reply and what came after it go out now."""
        self.delaying = False
        if self.transport is not None and not self.transport.is_closing():
            for held in self.held[:1] if self.closing else self.held:
                self.transport.write(held.encode() + b"\r\n")
            if self.closing:
                self.transport.close()
        self.held = []

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer:
            if self.mode == "bdat":
                take = self.buffer[: self.left]
                self.buffer = self.buffer[len(take) :]
                self.tx.chunks.append(take)
                self.left -= len(take)
                if self.left:
                    return
                self.mode = "command"
                if self.last:
                    self.finish(b"".join(self.tx.chunks), "BDAT")
                else:
                    self.say("250 2.0.0 chunk ok")
                continue
            if self.mode == "drop":  # a refused BDAT's octets
                take = self.buffer[: self.left]
                self.buffer = self.buffer[len(take) :]
                self.left -= len(take)
                if self.left:
                    return
                self.say("554 5.5.1 no valid recipients", final=True)
                self.tx, self.mode = _Transaction(), "command"
                continue
            if self.mode == "data":
                end = self.buffer.find(b"\r\n.\r\n")
                start = 0
                if self.buffer.startswith(b".\r\n"):
                    end, start = -2, 0
                if end == -1:
                    return
                raw = self.buffer[: end + 2] if end >= 0 else b""
                self.buffer = self.buffer[end + 5 :]
                content = raw[start:]
                content = (content[1:] if content.startswith(b".") else content).replace(
                    b"\r\n..", b"\r\n."
                )
                self.mode = "command"
                self.finish(content, "DATA")
                continue
            newline = self.buffer.find(b"\r\n")
            if newline < 0:
                return
            line = self.buffer[:newline].decode("utf-8", "replace")
            self.buffer = self.buffer[newline + 2 :]
            if self.command(line):
                return

    def finish(self, content: bytes, via: str) -> None:
        assert self.tx.mail is not None
        self.sink.messages.append(Got(self.tx.mail, self.tx.rcpts, content, self.tls, via))
        self.closing = len(self.sink.messages) == self.sink.close_after
        self.say("250 2.0.0 queued", final=True)
        self.tx = _Transaction()
        if self.closing and not self.delaying and self.transport is not None:
            self.transport.close()

    def command(self, line: str) -> bool:
        """Run one command; True when reading must stop (STARTTLS)."""
        self.sink.lines.append(line)
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        if verb in ("EHLO", "HELO"):
            self.tx = _Transaction()
            offered = list(self.sink.extensions)
            if self.sink.tls_context is not None and not self.tls:
                offered.append("STARTTLS")
            lines = [self.sink.hostname, *offered] if verb == "EHLO" else [self.sink.hostname]
            for n, text in enumerate(lines):
                self.say(f"250{'-' if n < len(lines) - 1 else ' '}{text}")
        elif verb == "STARTTLS" and self.sink.tls_context is not None and not self.tls:
            self.say("220 2.0.0 go ahead")
            asyncio.get_running_loop().create_task(self.starttls())
            return True
        elif verb == "MAIL" and self.delaying and self.sink.refuse_ahead:
            self.sink.ahead += 1
            self.say("503 5.5.1 wait for my reply")
        elif verb == "MAIL" and arg in self.sink.refuse:
            self.sink.ahead += self.delaying
            self.say("550 5.7.1 sender refused")
        elif verb == "MAIL":
            self.sink.ahead += self.delaying
            self.tx = _Transaction(mail=arg)
            self.say("250 2.1.0 OK")
        elif verb in ("RCPT", "DATA") and self.tx.mail is None:
            self.say("503 5.5.1 MAIL first")
        elif verb == "RCPT" and arg in self.sink.refuse:
            self.say("550 5.1.1 no such user")
        elif verb == "RCPT":
            self.tx.rcpts.append(arg)
            self.say("250 2.1.5 OK")
        elif verb == "BDAT" and not self.tx.rcpts:
            self.left, self.mode = int(arg.split()[0]), "drop"
        elif verb == "DATA":
            self.mode = "data"
            self.say("354 go ahead")
        elif verb == "BDAT":
            words = arg.split()
            self.left, self.last = int(words[0]), len(words) > 1
            self.mode = "bdat"
            if not self.left:
                self.mode = "command"
                if self.last:
                    self.finish(b"".join(self.tx.chunks), "BDAT")
                else:
                    self.say("250 2.0.0 chunk ok")
        elif verb == "RSET":
            self.tx = _Transaction()
            self.say("250 2.0.0 OK")
        elif verb == "QUIT":
            self.say("221 2.0.0 bye")
            assert self.transport is not None
            self.transport.close()
            return True
        else:
            self.say("250 2.0.0 OK")
        return False

    async def starttls(self) -> None:
        assert self.transport is not None and self.sink.tls_context is not None
        loop = asyncio.get_running_loop()
        self.buffer = b""
        try:
            transport = await loop.start_tls(
                self.transport, self, self.sink.tls_context, server_side=True
            )
        except (OSError, ssl.SSLError):
            self.transport.close()
            return
        assert transport is not None
        self.sink._transports.add(transport)
        self.transport = transport
        self.tls = True
