"""`relay sink`: an SMTP server that accepts every message and records it, to try a
configuration against (the Docker tests deliver to it too).

    relay sink --listen 127.0.0.30:2525 --dir ./var/sink

Each message becomes `DIR/<id>.eml` (the content as received, CRLF line ends) and one JSON
line in `DIR/messages.jsonl`: id, received_at, peer (the client's address, i.e. the
binding's source address), listener, helo (the EHLO/HELO name), esmtp, sender,
recipients, message_id, size, file; and one line on stdout. The 250 is said once both are written
(fsynced with --fsync). It speaks SMTP through relay's own server state machine
(relay.inject.protocol) with every client allowed to relay and no TLS or AUTH; it never
refuses a well-formed message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import re
import secrets
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from relay.inject import checks
from relay.inject.protocol import Close, MessageComplete, MessageRefused, Session
from relay.inject.settings import InjectSettings, IPNetwork, parse_listen_address

ANYONE: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("0.0.0.0/0"),
    ipaddress.ip_network("::/0"),
)

JOURNAL = "messages.jsonl"
_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


def message_id(content: bytes) -> str | None:
    """The Message-ID field of the header section, if any."""
    end = content.find(b"\r\n\r\n")
    found = _MESSAGE_ID.search(content, 0, len(content) if end < 0 else end)
    return found.group(1).strip().decode("utf-8", "replace") if found else None


@dataclass(frozen=True, slots=True)
class SinkRules:
    """What the state machine reads: relay's injection defaults, every client a relay host."""

    settings: InjectSettings

    @property
    def relay_hosts(self) -> tuple[IPNetwork, ...]:
        return ANYONE

    def suppressed(self, client: object, address: str) -> str | None:
        return None  # a sink takes every recipient


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the sink got it."""

    peer: str
    listener: str
    helo: str | None
    esmtp: bool
    sender: str
    recipients: tuple[str, ...]
    content: bytes


class Recorder:
    """Writes each message's file and its journal line (blocking: a sink's writes are small)."""

    def __init__(self, directory: Path, *, fsync: bool = False) -> None:
        self.directory = directory
        self.fsync = fsync
        directory.mkdir(parents=True, exist_ok=True)
        self._journal: IO[str] = open(directory / JOURNAL, "a", encoding="utf-8")  # noqa: SIM115
        self.count = 0

    def record(self, message: Received) -> dict[str, object]:
        key = secrets.token_hex(8)
        name = f"{key}.eml"
        with open(self.directory / name, "wb") as file:
            file.write(message.content)
            if self.fsync:
                file.flush()
                os.fsync(file.fileno())
        entry: dict[str, object] = {
            "id": key,
            "received_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            "peer": message.peer,
            "listener": message.listener,
            "helo": message.helo,
            "esmtp": message.esmtp,
            "sender": message.sender,
            "recipients": list(message.recipients),
            "message_id": message_id(message.content),
            "size": len(message.content),
            "file": name,
        }
        self._journal.write(json.dumps(entry) + "\n")
        self._journal.flush()
        if self.fsync:
            os.fsync(self._journal.fileno())
        self.count += 1
        return entry

    def close(self) -> None:
        self._journal.close()


class SinkConnection(asyncio.Protocol):
    """One client: bytes to the machine, its replies back, each message to the recorder."""

    def __init__(self, rules: SinkRules, recorder: Recorder, *, quiet: bool) -> None:
        self._rules = rules
        self._recorder = recorder
        self._quiet = quiet
        self._transport: asyncio.Transport | None = None
        self._machine: Session | None = None
        self._peer = "unknown"
        self._listener = "unknown"
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport = cast(asyncio.Transport, transport)
        client = checks.client_address(transport.get_extra_info("peername"))
        self._peer = str(client) if client is not None else "unknown"
        sockname = transport.get_extra_info("sockname")
        if isinstance(sockname, tuple) and len(sockname) >= 2:
            self._listener = f"{sockname[0]}:{sockname[1]}"
        settings = self._rules.settings
        self._machine = Session(
            self._rules, hostname=settings.hostname, client=client, tls_available=False,
            mechanisms=(),
        )  # fmt: skip
        transport.write(self._machine.take_output())
        self._idle()

    def connection_lost(self, error: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        machine, transport = self._machine, self._transport
        if machine is None or transport is None:
            return
        self._idle()
        event = machine.receive(data)
        while True:
            out = machine.take_output()
            if out:
                transport.write(out)
            if event is None:
                return
            if isinstance(event, MessageComplete):
                machine.message_done(self._record(event))
            elif isinstance(event, MessageRefused):
                machine.message_done(event.reply)
            else:  # Close (STARTTLS and AUTH are never offered)
                if not isinstance(event, Close):
                    transport.write(b"421 4.3.0 not supported by the sink\r\n")
                transport.close()
                return
            event = machine.receive()

    def _record(self, event: MessageComplete) -> str:
        received = Received(
            self._peer,
            self._listener,
            event.session.helo,
            event.session.esmtp,
            event.sender,
            event.recipients,
            event.content,
        )
        try:
            entry = self._recorder.record(received)
        except OSError as error:
            print(f"sink: cannot record a message: {error}", file=sys.stderr, flush=True)
            return "451 4.3.0 The sink could not record the message"
        if not self._quiet:
            print(
                f"sink: {entry['id']} from {self._peer} (EHLO {received.helo}) "
                f"<{received.sender}> -> {', '.join(received.recipients)}, "
                f"{entry['size']} bytes",
                flush=True,
            )
        return f"250 2.0.0 OK recorded as {entry['id']}"

    def _idle(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        timeout = self._rules.settings.idle_timeout
        self._timer = asyncio.get_running_loop().call_later(timeout, self._timed_out)

    def _timed_out(self) -> None:
        if self._transport is not None:
            self._transport.write(b"421 4.4.2 timeout exceeded\r\n")
            self._transport.close()


async def start_sink(
    listens: Sequence[str],
    recorder: Recorder,
    *,
    hostname: str = "sink.relay.test",
    max_message_size: int = 50 * 1024 * 1024,
    quiet: bool = False,
) -> list[asyncio.Server]:
    """Listen on each `host:port` (port 0: any free port; see the servers' sockets)."""
    rules = SinkRules(
        InjectSettings(
            listeners=(),
            hostname=hostname,
            relay_hosts=ANYONE,
            max_message_size=max_message_size,
            max_recipients=10_000,
            idle_timeout=120.0,
        )
    )
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []
    try:
        for listen in listens:
            host, port = parse_listen_address(listen)
            servers.append(
                await loop.create_server(
                    lambda: SinkConnection(rules, recorder, quiet=quiet),
                    host,
                    port,
                    reuse_address=True,
                )
            )
    except OSError:
        for server in servers:
            server.close()
        raise
    return servers


def bound_addresses(servers: Sequence[asyncio.Server]) -> list[str]:
    names = []
    for server in servers:
        for sock in server.sockets:
            host, port = sock.getsockname()[:2]
            names.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return names


def run(args: argparse.Namespace) -> int:
    listens: list[str] = args.listen
    try:
        for listen in listens:
            parse_listen_address(listen)
    except ValueError as error:
        print(f"error: --listen: {error}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(
            _serve(listens, Path(args.dir), args.hostname, fsync=args.fsync, quiet=args.quiet)
        )
    except OSError as error:
        print(f"error: sink: {error}", file=sys.stderr)
        return 1


async def _serve(
    listens: list[str], directory: Path, hostname: str, *, fsync: bool, quiet: bool
) -> int:
    recorder = Recorder(directory, fsync=fsync)
    servers = await start_sink(listens, recorder, hostname=hostname, quiet=quiet)
    for name in bound_addresses(servers):
        print(f"sink: listening on {name}, recording to {directory}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(s.wait_closed() for s in servers)), 5)
    recorder.close()
    print(f"sink: stopped after {recorder.count} messages", flush=True)
    return 0
