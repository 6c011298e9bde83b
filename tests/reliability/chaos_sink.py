"""A receiving MTA that misbehaves at random, for the reliability suite.

    sink = ChaosSink("127.0.0.41", rng, faults=0.5, tls=server_context)
    await sink.start()
    ...                                  # relay delivers to sink.host:sink.port
    sink.deliveries                      # [Delivery(token, content, at, connection, ...)]
    sink.injected                        # Counter: fault kind -> times injected

It is a raw asyncio SMTP server (not aiosmtpd) so that it can do what a real bad receiver
does: answer the greeting with 421, give 4xx or 5xx to any command, drop the connection in
the middle of DATA, never answer the final dot, stall for seconds, answer garbage, and
fail the TLS handshake (garbage where the ServerHello should be, or a certificate from a
CA relay does not trust). A message counts as delivered only once its 250 to the final
dot was written and flushed: a receiver that never answered the dot has not taken it.
Each connection draws at most one connection-level fault and each transaction at most one
transaction-level fault, with probability `faults`; `rng` (seeded by the test) decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

CONNECTION_FAULTS = ("greeting_421", "greeting_stall", "tls_garbage", "tls_untrusted")
TRANSACTION_FAULTS = (
    "temp_reply",  # 4xx to MAIL, RCPT, DATA or the final dot
    "perm_reply",  # 5xx to the same (the message bounces)
    "drop_mid_data",  # the connection closed half-way through the content
    "no_dot_reply",  # the content read, the final dot never answered
    "stall",  # 1.5-4 s before answering a command (0.5-1.5 s at the final dot), then normal
    "garbage",  # a reply that is no SMTP reply
)
TOKEN = re.compile(rb"X-Token: (\S+)")
COMMANDS = ("MAIL", "RCPT", "DATA", "DOT")
Reply = Callable[[str], Awaitable[None]]


@dataclass
class Delivery:
    token: str
    content: bytes
    at: float  # time.monotonic() when the 250 was flushed
    connection: int
    opened: float  # when its connection was opened
    dot: float = 0.0  # when the final dot was read (at - dot: how long relay waited, at least)


@dataclass
class ConnectionLog:
    opened: float
    closed: float = 0.0
    quit: bool = False  # the client said QUIT (else relay died or gave up)


@dataclass
class ChaosSink:
    host: str
    rng: random.Random
    faults: float = 0.5  # probability of a fault per connection and per transaction
    tls: ssl.SSLContext | None = None  # offer STARTTLS with this (trusted) context
    untrusted: ssl.SSLContext | None = None  # the tls_untrusted fault's context
    perm_share: float = 0.15  # of transaction faults, how many are 5xx (bounces)
    port: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)
    connections: list[ConnectionLog] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> ChaosSink:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _draw(self, kinds: tuple[str, ...]) -> str | None:
        if self.rng.random() >= self.faults:
            return None
        if kinds == TRANSACTION_FAULTS and self.rng.random() < self.perm_share:
            return "perm_reply"
        choices = [k for k in kinds if k != "perm_reply"]
        if self.tls is None:
            choices = [k for k in choices if not k.startswith("tls_")]
        return self.rng.choice(choices)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        log = ConnectionLog(opened=time.monotonic())
        self.connections.append(log)
        number = len(self.connections) - 1
        try:
            await self._session(reader, writer, log, number)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
            pass  # relay went away (killed, or gave up on a stall): as a real server sees it
        except asyncio.CancelledError:
            writer.transport.abort()  # the sink stops
            self._tasks.discard(task)
            return
        finally:
            log.closed = log.closed or time.monotonic()
            if not writer.transport.is_closing():
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            self._tasks.discard(task)

    async def _session(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        log: ConnectionLog,
        number: int,
    ) -> None:
        async def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        fault = self._draw(CONNECTION_FAULTS)
        if fault is not None:
            self.injected[fault] += 1
        if fault == "greeting_421":
            await reply("421 4.3.2 chaos: not now")
            return
        if fault == "greeting_stall":
            await asyncio.sleep(self.rng.uniform(1.5, 4.0))
        await reply("220 chaos.test ESMTP")
        transaction: str | None = None
        where = ""
        while True:
            line = await asyncio.wait_for(reader.readline(), 60)
            if not line:
                return
            verb = line[:4].upper().decode("ascii", "replace")
            if verb in ("EHLO", "HELO"):
                extensions = ["8BITMIME", "ENHANCEDSTATUSCODES"]
                if self.tls is not None and writer.get_extra_info("sslcontext") is None:
                    extensions.append("STARTTLS")
                await reply("\r\n".join(f"250-{e}" for e in ["chaos.test", *extensions[:-1]]))
                await reply(f"250 {extensions[-1]}")
            elif verb == "STAR":
                await reply("220 2.0.0 go ahead")
                if fault == "tls_garbage":
                    writer.write(b"this is no TLS server hello\r\n")
                    await writer.drain()
                    return
                context = self.untrusted if fault == "tls_untrusted" else self.tls
                assert context is not None
                await writer.start_tls(context)
            elif verb == "MAIL":
                transaction = self._draw(TRANSACTION_FAULTS)
                where = self.rng.choice(COMMANDS)
                if transaction is not None:
                    self.injected[transaction] += 1
                if await self._misbehave(transaction, where, "MAIL", reply):
                    await reply("250 2.1.0 ok")
            elif verb == "RCPT":
                if await self._misbehave(transaction, where, "RCPT", reply):
                    await reply("250 2.1.5 ok")
            elif verb == "DATA":
                if not await self._misbehave(transaction, where, "DATA", reply):
                    continue
                await reply("354 go on")
                content = await self._content(reader, transaction)
                dot = time.monotonic()
                if content is None:
                    return  # drop_mid_data
                if transaction == "no_dot_reply":
                    await reader.read()  # until relay gives up (body_timeout) or dies
                    return
                if not await self._misbehave(transaction, where, "DOT", reply):
                    transaction = None
                    continue
                await reply("250 2.0.0 queued")
                found = TOKEN.search(content)
                token = found.group(1).decode() if found else ""
                self.deliveries.append(
                    Delivery(token, content, time.monotonic(), number, log.opened, dot)
                )
                transaction = None
            elif verb == "RSET":
                transaction = None
                await reply("250 2.0.0 ok")
            elif verb == "QUIT":
                log.quit = True
                await reply("221 2.0.0 bye")
                return
            elif verb == "NOOP":
                await reply("250 2.0.0 ok")
            else:
                await reply("502 5.5.1 unknown command")

    async def _misbehave(self, transaction: str | None, where: str, now: str, reply: Reply) -> bool:
        """Apply the transaction's fault if it is due at this command. True: answer as
        usual next; False: the fault answered instead (4xx, 5xx, garbage)."""
        if transaction is None or now != where:
            return True
        if transaction == "stall":
            # At the final dot, well short of relay's body_timeout (3 s in the tests): a
            # longer one makes relay give up while this side goes on to take the message,
            # the duplicate RFC 1047 describes, which no sender can avoid (the judge still
            # tells one apart when a busy test loop makes a short stall long: Delivery.dot).
            await asyncio.sleep(
                self.rng.uniform(0.5, 1.5) if now == "DOT" else self.rng.uniform(1.5, 4.0)
            )
            return True
        if transaction == "garbage":
            await reply("hello there, this is no reply")
            return False
        if transaction == "temp_reply":
            await reply(f"45{self.rng.randint(0, 2)} 4.3.0 chaos: try later")
            return False
        if transaction == "perm_reply":
            await reply(f"55{self.rng.randint(0, 4)} 5.7.1 chaos: refused for good")
            return False
        return True

    async def _content(self, reader: asyncio.StreamReader, transaction: str | None) -> bytes | None:
        """The message up to the final dot, dot-unstuffed; None when the fault drops it."""
        lines: list[bytes] = []
        cut = self.rng.randint(1, 20) if transaction == "drop_mid_data" else -1
        while True:
            line = await asyncio.wait_for(reader.readline(), 60)
            if not line:
                raise asyncio.IncompleteReadError(b"", None)
            if line == b".\r\n":
                return b"".join(lines)
            if len(lines) == cut:
                return None
            lines.append(line[1:] if line.startswith(b".") else line)
