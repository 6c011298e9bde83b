"""Run the whole relay daemon in-process against loopback sinks and a loopback DNS server.

relay = await relay_factory(config_body, dns=dns)   # spool, log, listener set up for you
await relay.send("a@x.test", ["b@y.test"], headers={"X-Binding-Group": "g1"})
await relay.wait(lambda: len(sink.messages) == 1)
"""

from __future__ import annotations

import asyncio
import random
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest_asyncio

from relay.admin.auth import SCOPES
from relay.clock import Clock
from relay.config import loads
from relay.daemon import Daemon
from relay.spool import FileOps
from tests.support.dns_server import DnsServer

# Ports handed to processes that bind them later come from below the kernel's ephemeral
# range (32768-60999 on Linux): an outgoing connection made meanwhile (a delivery, an HTTP
# client) takes its local port from that range and could take a port handed out from it.
_HANDED_OUT: set[int] = set()
_PORTS = range(20000, 32768)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free on `host` now and was not handed out before in this run."""
    for _ in range(200):
        port = random.choice(_PORTS)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port found on {host} in {_PORTS.start}-{_PORTS.stop - 1}")


class RelayUnderTest:
    def __init__(self, daemon: Daemon, port: int, directory: Path) -> None:
        self.daemon = daemon
        self.port = port
        self.directory = directory
        self.admin_url = ""
        self.tokens: dict[str, str] = {}  # scope -> token, when admin_tokens was asked
        self.token_file: Path | None = None

    async def send(
        self,
        sender: str,
        recipients: list[str],
        *,
        headers: dict[str, str] | None = None,
        body: str = "Hello from the relay tests.\n",
        subject: str = "test",
    ) -> None:
        msg = EmailMessage()
        msg["From"] = sender or "mailer-daemon@relay.test"
        msg["To"] = ", ".join(recipients)
        msg["Subject"] = subject
        for name, value in (headers or {}).items():
            msg[name] = value
        msg.set_content(body)
        await aiosmtplib.send(
            msg,
            sender=sender,
            recipients=recipients,
            hostname="127.0.0.1",
            port=self.port,
            timeout=10,
        )

    async def wait(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.02)

    def events(self, kind: str | None = None) -> list[dict[str, object]]:
        import json

        self.daemon.events.flush()
        path = self.directory / "events.jsonl"
        if not path.exists():
            return []
        records = [json.loads(line) for line in path.read_text().splitlines() if line]
        return [r for r in records if kind is None or r["event"] == kind]


class RelayFactory:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.running: list[RelayUnderTest] = []

    async def __call__(
        self,
        body: str,
        *,
        dns: DnsServer | None = None,
        clock: Clock | None = None,
        listener: str = "",
        admin: bool = False,
        admin_tokens: bool = True,
        admin_extra: str = "",
        file_ops: FileOps | None = None,
        fsync: bool = False,
    ) -> RelayUnderTest:
        """admin: an admin API on loopback, with (admin_tokens) a token file holding one
        token per scope (relay.tokens[scope]); admin_extra: more global options;
        file_ops: the spool's file calls (tests/support/spool_faults.py injects faults);
        fsync: force_fsync (off by default: the tests are faster without)."""
        port = free_port()
        admin_port = free_port() if admin else None
        tokens = (
            {scope: f"{scope}-token-{secrets.token_hex(16)}" for scope in SCOPES}
            if admin and admin_tokens
            else {}
        )
        token_file = self.directory / "admin-tokens"
        if tokens:
            token_file.write_text(
                "".join(f"{scope}-client:{scope}:{token}\n" for scope, token in tokens.items())
            )
        if dns is not None:
            resolver = f'resolv_conf = "{dns.resolv_conf}"\ndns_port = {dns.port}\n'
        else:  # never the host's resolvers: a loopback port where nothing answers
            nowhere = self.directory / "resolv.conf"
            nowhere.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
            resolver = f'resolv_conf = "{nowhere}"\ndns_port = 9\n'
        text = (
            f'hostname = "relay.test"\n'
            f'spoolbase = "{self.directory / "spool"}"\n'
            f'event_log = "{self.directory / "events.jsonl"}"\n'
            f"force_fsync = {'true' if fsync else 'false'}\n"
            f"shutdown_timeout = 2\n"
            + (f'admin_listen = "127.0.0.1:{admin_port}"\n' if admin_port else "")
            + (f'admin_token_file = "{token_file}"\n' if tokens else "")
            + admin_extra
            + f"{resolver}"
            f"esmtp_listener {{\n"
            f'  relay_hosts = ( "127.0.0.0/8" )\n'
            f'  listen "127.0.0.1:{port}" {{ {listener} }}\n'
            f"}}\n" + body
        )
        (self.directory / "relay.conf").write_text(text)
        path = self.directory / "relay.conf"
        daemon = Daemon(loads(text, str(path)), str(path), clock=clock, file_ops=file_ops)
        await daemon.start()
        relay = RelayUnderTest(daemon, port, self.directory)
        scheme = "https" if "admin_tls_certificate" in admin_extra else "http"
        relay.admin_url = f"{scheme}://127.0.0.1:{admin_port}" if admin_port else ""
        relay.tokens = tokens
        relay.token_file = token_file if tokens else None
        self.running.append(relay)
        return relay

    async def restart(self, relay: RelayUnderTest, clock: Clock | None = None) -> RelayUnderTest:
        """Stop a relay and start a new daemon on the same configuration and spool."""
        await relay.daemon.stop(deadline=2.0)
        self.running.remove(relay)
        path = self.directory / "relay.conf"
        daemon = Daemon(loads(path.read_text(), str(path)), str(path), clock=clock)
        await daemon.start()
        again = RelayUnderTest(daemon, relay.port, self.directory)
        again.admin_url = relay.admin_url
        again.tokens, again.token_file = relay.tokens, relay.token_file
        self.running.append(again)
        return again

    async def stop_all(self) -> None:
        for relay in self.running:
            await relay.daemon.stop(deadline=2.0)
        self.running.clear()


@pytest_asyncio.fixture
async def relay_factory(tmp_path: Path) -> AsyncIterator[RelayFactory]:
    factory = RelayFactory(tmp_path)
    yield factory
    await factory.stop_all()
