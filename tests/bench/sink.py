"""A minimal, fast SMTP sink for the benchmark: accepts everything, timestamps each message.

    python -m tests.bench.sink --listen 127.0.0.20 --port P --expect N --out FILE [--seconds S]
        [--tls-cert PEM --tls-key PEM] [--chunking]

With `--tls-cert`/`--tls-key` it offers STARTTLS (one server context for every connection);
with `--chunking`, CHUNKING (RFC 3030: each BDAT is taken as the whole message).

Prints `ready` once listening. Exits when it has seen `--expect` distinct `X-Bench-Token:`
values (or after `--seconds`, or on SIGTERM) and writes a JSON summary to `--out`:
first-arrival time (time.monotonic, comparable across processes on Linux) per token,
transactions, recipients, duplicates, connections, TLS sessions and peer addresses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import ssl
import time
from collections import Counter
from typing import cast

TOKEN = b"X-Bench-Token: "


class Stats:
    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.arrivals: dict[str, float] = {}
        self.transactions = 0
        self.recipients = 0
        self.duplicates = 0
        self.connections = 0
        self.tls_sessions = 0
        self.tls_resumed = 0
        self.peers: Counter[str] = Counter()
        self.done = asyncio.Event()

    def message(self, content: bytes | bytearray, recipients: int) -> None:
        now = time.monotonic()
        self.transactions += 1
        self.recipients += recipients
        at = content.find(TOKEN)
        if at >= 0:
            end = content.find(b"\r\n", at)
            token = bytes(content[at + len(TOKEN) : end]).decode("ascii", "replace")
            if token in self.arrivals:
                self.duplicates += 1
            else:
                self.arrivals[token] = now
        if self.expect and len(self.arrivals) >= self.expect:
            self.done.set()

    def summary(self) -> dict[str, object]:
        return {
            "arrivals": self.arrivals,
            "transactions": self.transactions,
            "recipients": self.recipients,
            "duplicates": self.duplicates,
            "connections": self.connections,
            "tls_sessions": self.tls_sessions,
            "tls_resumed": self.tls_resumed,
            "peers": dict(self.peers),
        }


class SinkProtocol(asyncio.Protocol):
    def __init__(
        self, stats: Stats, tls: ssl.SSLContext | None = None, chunking: bool = False
    ) -> None:
        self.stats = stats
        self.tls = tls
        self.chunking = chunking
        self.ehlo = self._ehlo(starttls=tls is not None)
        self.chunk = 0  # BDAT octets still to come (each BDAT is taken as LAST)
        self.buf = bytearray()
        self.in_data = False
        self.scanned = 0
        self.rcpts = 0
        self.transport: asyncio.Transport | None = None

    def _ehlo(self, *, starttls: bool) -> bytes:
        ehlo = b"250-sink.bench.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
        if self.chunking:
            ehlo += b"250-CHUNKING\r\n"
        if starttls:
            ehlo += b"250-STARTTLS\r\n"
        return ehlo + b"250 SIZE\r\n"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.stats.connections += 1
        peer = transport.get_extra_info("peername")
        self.stats.peers[peer[0] if peer else "?"] += 1
        self.transport.write(b"220 sink.bench.test ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out: list[bytes] = []
        buf = self.buf
        while True:
            if self.chunk:
                if len(buf) < self.chunk:
                    break
                self.stats.message(buf[: self.chunk], self.rcpts)
                del buf[: self.chunk]
                self.chunk = self.rcpts = 0
                out.append(b"250 2.0.0 Ok: queued\r\n")
                continue
            if self.in_data:
                if buf.startswith(b".\r\n"):
                    end, skip = 0, 3
                else:
                    end = buf.find(b"\r\n.\r\n", max(0, self.scanned - 4))
                    skip = 5
                if end < 0:
                    self.scanned = len(buf)
                    break
                self.stats.message(buf[: end + 2] if end else b"", self.rcpts)
                del buf[: end + skip]
                self.in_data = False
                self.scanned = 0
                self.rcpts = 0
                out.append(b"250 2.0.0 Ok: queued\r\n")
                continue
            eol = buf.find(b"\r\n")
            if eol < 0:
                break
            verb = bytes(buf[:4]).upper()
            if verb == b"BDAT":
                self.chunk = int(buf[5:eol].split()[0])
            del buf[: eol + 2]
            if verb == b"RCPT":
                self.rcpts += 1
                out.append(b"250 2.1.5 Ok\r\n")
            elif verb == b"MAIL":
                self.rcpts = 0
                out.append(b"250 2.1.0 Ok\r\n")
            elif verb == b"DATA":
                self.in_data = True
                self.scanned = 0
                out.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"BDAT":  # its octets are taken at the top of the loop
                if not self.chunk:  # BDAT 0 LAST
                    self.stats.message(b"", self.rcpts)
                    self.rcpts = 0
                    out.append(b"250 2.0.0 Ok: queued\r\n")
            elif verb == b"EHLO":
                out.append(self.ehlo)
            elif verb == b"STAR" and self.tls is not None and self.transport is not None:
                out.append(b"220 2.0.0 Ready to start TLS\r\n")
                self.transport.write(b"".join(out))
                del buf[:]
                self.transport.pause_reading()
                asyncio.get_running_loop().create_task(self.start_tls(self.transport, self.tls))
                return
            elif verb == b"QUIT":
                out.append(b"221 2.0.0 Bye\r\n")
                if self.transport is not None:
                    self.transport.write(b"".join(out))
                    self.transport.close()
                return
            else:  # HELO, RSET, NOOP and anything else
                out.append(b"250 2.0.0 Ok\r\n")
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    async def start_tls(self, transport: asyncio.Transport, tls: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        try:
            upgraded = await loop.start_tls(transport, self, tls, server_side=True)
        except (OSError, ssl.SSLError):
            transport.close()
            return
        if upgraded is None:
            transport.close()
            return
        self.transport = upgraded
        self.stats.tls_sessions += 1
        ssl_object = upgraded.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.session_reused:
            self.stats.tls_resumed += 1
        self.ehlo = self._ehlo(starttls=False)


class StallProtocol(asyncio.Protocol):
    """A destination that accepts connections and never says a word (a slow receiver)."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.stats.connections += 1


async def serve(
    listen: str,
    port: int,
    expect: int,
    seconds: float,
    stall: bool = False,
    tls: ssl.SSLContext | None = None,
    chunking: bool = False,
) -> dict[str, object]:
    stats = Stats(expect)
    loop = asyncio.get_running_loop()

    def protocol() -> asyncio.Protocol:
        return StallProtocol(stats) if stall else SinkProtocol(stats, tls, chunking)

    server = await loop.create_server(protocol, listen, port, backlog=4096, reuse_address=True)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stats.done.set)
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stats.done.wait(), seconds)
    server.close()
    return stats.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="127.0.0.20")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--stall", action="store_true", help="accept and never answer")
    parser.add_argument("--tls-cert", default=None, help="offer STARTTLS with this PEM")
    parser.add_argument("--tls-key", default=None)
    parser.add_argument("--chunking", action="store_true", help="offer CHUNKING (BDAT)")
    args = parser.parse_args()
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover
        runner = asyncio.Runner()
    with runner:
        summary = runner.run(
            serve(
                args.listen,
                args.port,
                args.expect,
                args.seconds,
                stall=args.stall,
                tls=tls,
                chunking=args.chunking,
            )
        )
    with open(args.out, "w") as f:
        json.dump(summary, f)


if __name__ == "__main__":
    main()
