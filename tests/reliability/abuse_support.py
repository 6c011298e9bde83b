"""The abuse tests' pieces: relay as a real `relay serve` process, raw SMTP clients bound
to chosen loopback sources, and a latency probe (a well-behaved client injecting mail
while the abuse runs).

    with RelayProcess.start(tmp_dir) as relay:
        async with LatencyProbe(relay.port) as probe:
            ... abuse ...
        probe.summary()   # n, p50, p95, max in milliseconds
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.integration.relay_harness import free_port

MAX_MESSAGE_SIZE = 10 * 1024 * 1024
LISTENER_CAP = 40  # max_connections of the second listener
PER_IP_CAP = 100  # relay's default max_connections_per_ip
PROBE_SOURCE = "127.0.0.7"  # the well-behaved client's address (never flooded)
STEP = 10.0  # the longest any single network wait may take


@dataclass
class RelayProcess:
    """`relay serve` in its own process: listener `port` with the default per-address cap,
    listener `capped_port` with max_connections = LISTENER_CAP, a 10 MB message limit.
    Deliveries go to a loopback port where nothing listens (mail stays queued)."""

    proc: subprocess.Popen[bytes]
    port: int
    capped_port: int
    directory: Path

    @classmethod
    @contextlib.contextmanager
    def start(cls, directory: Path, *, top: str = "", listen: str = "") -> Iterator[RelayProcess]:
        """`top`: more top-level configuration; `listen`: more in esmtp_listener."""
        port, capped_port, nowhere = free_port(), free_port(), free_port()
        resolv = directory / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        config = directory / "relay.conf"
        config.write_text(
            f'hostname = "relay.test"\n'
            f'spoolbase = "{directory / "spool"}"\n'
            f'event_log = "{directory / "events.jsonl"}"\n'
            f'resolv_conf = "{resolv}"\n'
            "dns_port = 9\n"
            f'gateway = "127.0.0.1:{nowhere}"\n'
            "retry_interval = 3600\n"
            f"{top}\n"
            "esmtp_listener {\n"
            '  relay_hosts = ( "127.0.0.0/8" )\n'
            f"  max_message_size = {MAX_MESSAGE_SIZE}\n"
            "  inbound_idle_timeout = 60\n"
            f'  listen "127.0.0.1:{port}" {{ }}\n'
            f'  listen "127.0.0.1:{capped_port}" {{ max_connections = {LISTENER_CAP} }}\n'
            f"{listen}\n"
            "}\n"
        )
        log = open(directory / "relay.log", "wb")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            [sys.executable, "-m", "relay.cli", "serve", "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
        relay = cls(proc, port, capped_port, directory)
        try:
            relay._wait_greeting(within=60.0)
            yield relay
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()

    def _wait_greeting(self, within: float) -> None:
        import socket

        deadline = time.monotonic() + within
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"relay exited with {self.proc.returncode}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                    if sock.recv(100).startswith(b"220"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"relay did not greet within {within} s: {self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        return (self.directory / "relay.log").read_text(errors="replace")[-3000:]

    def memory(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) of the relay process in bytes: now and its peak so far."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            fields[name] = value.strip()
        return _kib(fields["VmRSS"]), _kib(fields["VmHWM"])

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def alive(self) -> bool:
        return self.proc.poll() is None


def _kib(text: str) -> int:
    number, _, unit = text.partition(" ")
    assert unit == "kB", text
    return int(number) * 1024


class Client:
    """A raw SMTP client on one connection, from a chosen loopback source address."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, source: str = "127.0.0.1") -> Client:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0), limit=2**20),
            STEP,
        )
        return cls(reader, writer)

    async def reply(self, within: float = STEP) -> str:
        """One whole reply (the lines of a multi-line one joined by newlines)."""
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), within)
            if not line:
                raise ConnectionError(f"closed after {lines!r}")
            lines.append(line.decode("utf-8", "replace").rstrip("\r\n"))
            if line[3:4] != b"-":
                return "\n".join(lines)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def command(self, line: bytes | str) -> str:
        await self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return await self.reply()

    async def at_eof(self, within: float = STEP) -> bool:
        """The server closed the connection (what remains unread is ignored)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), within):
                pass
        except ConnectionError:
            pass
        return True

    def close(self) -> None:
        self.writer.close()


MESSAGE = (
    b"From: probe@example.test\r\nTo: r@example.com\r\nSubject: probe\r\n\r\n"
    + b"A well-behaved client's message.\r\n" * 20
)


async def inject(port: int, source: str = PROBE_SOURCE) -> float:
    """One whole session (connect, EHLO, MAIL, RCPT, DATA, QUIT): seconds to the 250 that
    accepts the message."""
    started = time.monotonic()
    client = await Client.connect(port, source)
    try:
        assert (await client.reply()).startswith("220")
        assert (await client.command("EHLO probe.test")).startswith("250")
        assert (await client.command("MAIL FROM:<probe@example.test>")).startswith("250")
        assert (await client.command("RCPT TO:<r@example.com>")).startswith("250")
        assert (await client.command("DATA")).startswith("354")
        await client.send(MESSAGE + b".\r\n")
        reply = await client.reply()
        elapsed = time.monotonic() - started
        assert reply.startswith("250"), reply
        await client.send(b"QUIT\r\n")
        return elapsed
    finally:
        client.close()


@dataclass(frozen=True)
class Latency:
    count: int
    p50: float  # milliseconds
    p95: float
    worst: float

    def __str__(self) -> str:
        return f"n={self.count} p50={self.p50:.1f} ms p95={self.p95:.1f} ms max={self.worst:.1f} ms"


def latency_of(samples: list[float]) -> Latency:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return Latency(len(ordered), statistics.median(ordered) * 1e3, p95 * 1e3, ordered[-1] * 1e3)


async def idle_latency(port: int, count: int = 30) -> Latency:
    await inject(port)  # warm-up (first session pays imports and caches)
    return latency_of([await inject(port) for _ in range(count)])


class LatencyProbe:
    """A well-behaved client in its own process (so that it measures relay, not the test's
    busy event loop): it injects one message after another, a pause of `gap` between
    them, while the block runs, and at least `minimum` messages in all."""

    def __init__(self, port: int, *, gap: float = 0.02, minimum: int = 40) -> None:
        self.port = port
        self.gap = gap
        self.minimum = minimum
        self.samples: list[float] = []
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> LatencyProbe:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.reliability.abuse_support",
            str(self.port),
            str(self.gap),
            str(self.minimum),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        ready = await asyncio.wait_for(self._proc.stdout.readline(), 60)  # first sample in
        assert ready == b"ready\n", ready
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        proc.stdin.close()  # the stop signal
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, out
        self.samples = [float(line) for line in out.split()]

    def summary(self) -> Latency:
        return latency_of(self.samples)


async def _probe_main(port: int, gap: float, minimum: int) -> None:
    """The probe process: inject until stdin closes (and `minimum` are done); print the
    seconds each took, one a line."""
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    stop = asyncio.ensure_future(stdin.read())
    samples = [await inject(port)]
    print("ready", flush=True)
    while not stop.done() or len(samples) < minimum:
        samples.append(await inject(port))
        await asyncio.sleep(gap)
    print("\n".join(f"{s:.6f}" for s in samples), flush=True)


def latency_bound(idle: Latency) -> float:
    """The p95 a normal client may see while abuse runs, in milliseconds: generous, for a
    shared 2-core machine (5x the idle p95, plus 400 ms; before relay discarded refused DATA
    at C speed, 100 MB over the limit gave a p95 of 1.4 s)."""
    return 5 * idle.p95 + 400.0


@contextlib.asynccontextmanager
async def many(port: int, count: int, sources: list[str]) -> AsyncIterator[list[Client]]:
    """`count` connections opened at once, spread over `sources` in turn."""
    tasks = [Client.connect(port, sources[n % len(sources)]) for n in range(count)]
    clients = await asyncio.gather(*tasks)
    try:
        yield list(clients)
    finally:
        for client in clients:
            client.close()


if __name__ == "__main__":
    asyncio.run(_probe_main(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])))
