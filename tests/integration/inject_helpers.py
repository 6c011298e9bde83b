"""Shared pieces for the injection tests: settings, spools, a raw SMTP client, TLS files."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import trustme

from relay.inject import InjectSettings, Listeners, ListenerSettings, start_listeners
from relay.inject.auth import make_credentials_line
from relay.inject.settings import parse_network
from relay.inject.spooling import MessageStore
from relay.spool.errors import SpoolError
from relay.spool.model import Envelope, NewMessage, Recipient

OUTSIDE = "127.0.0.9"  # a loopback source outside relay_hosts (Linux routes 127/8 to lo)
INSIDE = "127.0.0.1"
USER, PASSWORD = "alice", "correct horse"
STEP = 2.0  # the longest any single network wait may take in a test


class DirSpool:
    """A test double for the spool: one fsynced file per message in a directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.messages: list[NewMessage] = []
        self.fail: SpoolError | None = None
        self.delay = 0.0

    async def store(self, message: NewMessage, /) -> Envelope:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        message_id = f"m{len(self.messages):06d}"
        await asyncio.to_thread(self._write, message_id, message.content)
        self.messages.append(message)
        return Envelope(
            message_id=message_id,
            sender=message.sender,
            binding_group=message.binding_group,
            binding=message.binding,
            received_at=message.received_at,
            recipients=[Recipient(r) for r in message.recipients],
            size=len(message.content),
        )

    def _write(self, message_id: str, content: bytes) -> None:
        path = self.directory / message_id
        with open(path, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())


def make_settings(**overrides: Any) -> InjectSettings:
    base = InjectSettings(
        listeners=(ListenerSettings("127.0.0.1:0"),),
        hostname="relay.test",
        relay_hosts=(parse_network("127.0.0.1/32"),),
        idle_timeout=2.0,
        data_timeout=2.0,
        binding_groups={"marketing": frozenset({"m1", "m2"}), "bulk": frozenset({"b1"})},
    )
    return dataclasses.replace(base, **overrides)


@asynccontextmanager
async def serving(
    settings: InjectSettings, spool: MessageStore
) -> AsyncIterator[tuple[Listeners, int]]:
    listeners = await start_listeners(settings, spool)
    try:
        yield listeners, listeners.bound[0].sockets[0][1]
    finally:
        await listeners.close(grace=0.5)


@dataclasses.dataclass
class TLSFiles:
    cert: Path
    key: Path
    client_context: ssl.SSLContext


def tls_files(directory: Path) -> TLSFiles:
    ca = trustme.CA()
    server_cert = ca.issue_cert("relay.test", "127.0.0.1")
    cert = directory / "cert.pem"
    key = directory / "key.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    for blob in server_cert.cert_chain_pems[1:]:
        blob.write_to_path(str(cert), append=True)
    server_cert.private_key_pem.write_to_path(str(key))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return TLSFiles(cert, key, context)


def credentials_file(directory: Path) -> Path:
    path = directory / "credentials"
    path.write_text(f"# test accounts\n{make_credentials_line(USER, PASSWORD, n=2**10)}\n")
    return path


def plain_token(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class RawClient:
    """SMTP over a bare asyncio stream: sends exact bytes, reads whole replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, source: str = INSIDE) -> RawClient:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), STEP
        )
        return cls(reader, writer)

    async def reply(self, wait: float = STEP) -> tuple[int, str]:
        """One (possibly multi-line) reply: (code, text of all lines joined by newlines)."""
        lines: list[str] = []
        for _ in range(100):
            raw = await asyncio.wait_for(self.reader.readline(), wait)
            if not raw:
                raise ConnectionError(f"connection closed after {lines!r}")
            line = raw.decode("ascii").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), "\n".join(lines)
        raise AssertionError("reply longer than 100 lines")

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def command(self, line: str) -> tuple[int, str]:
        await self.send(line.encode("ascii") + b"\r\n")
        return await self.reply()

    async def greet(self, helo: str = "client.test") -> None:
        code, text = await self.reply()
        assert code == 220, text
        code, text = await self.command(f"EHLO {helo}")
        assert code == 250, text

    async def starttls(self, context: ssl.SSLContext) -> None:
        code, text = await self.command("STARTTLS")
        assert code == 220, text
        await asyncio.wait_for(self.writer.start_tls(context, server_hostname="relay.test"), STEP)

    async def closed(self, wait: float = STEP) -> bool:
        """True once the server has closed the connection (reads and drops anything left)."""
        for _ in range(1000):
            data = await asyncio.wait_for(self.reader.read(65536), wait)
            if not data:
                return True
        return False

    async def close(self) -> None:
        self.writer.close()
        with suppress(ConnectionError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), STEP)


async def send_message(
    client: RawClient,
    data: bytes,
    *,
    sender: str = "<sender@example.test>",
    recipients: tuple[str, ...] = ("<rcpt@example.com>",),
) -> tuple[int, str]:
    """MAIL, RCPT..., DATA, then `data` exactly as given (it must include the final dot)."""
    code, text = await client.command(f"MAIL FROM:{sender}")
    assert code == 250, text
    for rcpt in recipients:
        code, text = await client.command(f"RCPT TO:{rcpt}")
        assert code == 250, text
    code, text = await client.command("DATA")
    assert code == 354, text
    await client.send(data)
    return await client.reply()
