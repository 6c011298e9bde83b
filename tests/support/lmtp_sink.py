"""An LMTP server for tests: aiosmtpd's LMTP class (RFC 2033) on 127.0.0.N.

    sink = await LmtpSink("127.0.0.7").start()
    sink.replies["full@x.test"] = "452 4.2.2 mailbox full"    # that recipient's DATA reply
    sink.rcpt["nobody@x.test"] = "550 5.1.1 no such user"      # refused at RCPT
    ... deliver with delivery_method = LMTP to sink.port ...
    sink.messages   # [LmtpMessage(peer_ip, lhlo, mail_from, rcpt_tos, delivered, content)]

After the final dot the server answers once per accepted recipient, in RCPT order
(`replies` or "250 2.1.5 delivered to <addr>"); `delivered` lists those it took.
`stall_after = n`: answer the first n recipients after the dot, then nothing (until stop).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope, Session

__all__ = ["LmtpMessage", "LmtpSink"]


@dataclass
class LmtpMessage:
    peer_ip: str
    lhlo: str | None
    mail_from: str
    rcpt_tos: list[str]
    delivered: list[str]
    content: bytes


@dataclass
class LmtpSink:
    host: str = "127.0.0.1"
    port: int = 0
    replies: dict[str, str] = field(default_factory=dict)
    rcpt: dict[str, str] = field(default_factory=dict)
    messages: list[LmtpMessage] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    stall_after: int | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None

    async def start(self) -> LmtpSink:
        loop = asyncio.get_running_loop()
        handler = _Handler(self)
        self._server = await loop.create_server(
            lambda: LMTP(handler, hostname="lmtp.test", timeout=30, loop=loop),
            self.host,
            self.port,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), 2)

    @property
    def delivered(self) -> list[str]:
        return [r for m in self.messages for r in m.delivered]


class _Handler:
    def __init__(self, sink: LmtpSink) -> None:
        self.sink = sink

    async def handle_EHLO(
        self, server: Any, session: Session, envelope: Envelope, hostname: str, responses: Any
    ) -> Any:
        self.sink.commands.append("LHLO")  # aiosmtpd's LHLO goes through the EHLO hook
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        refused = self.sink.rcpt.get(address)
        if refused is not None:
            return refused
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        lines, delivered = [], []
        for address in envelope.rcpt_tos:
            reply = self.sink.replies.get(address, f"250 2.1.5 delivered to <{address}>")
            lines.append(reply)
            if reply.startswith("2"):
                delivered.append(address)
        self.sink.messages.append(
            LmtpMessage(
                str(session.peer[0]) if session.peer else "",
                session.host_name,
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                delivered,
                bytes(envelope.original_content or b""),
            )
        )
        if self.sink.stall_after is not None:
            for line in lines[: self.sink.stall_after]:
                await server.push(line)
            await self.sink.release.wait()
        return "\r\n".join(lines)  # one reply per recipient, in RCPT order
