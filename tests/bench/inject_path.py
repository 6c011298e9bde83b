"""Python cost of the injection path alone (driver, state machine, spool hand-over): no
sockets, no other process.

    .venv/bin/python -m tests.bench.inject_path [MESSAGES] [PROFILE.pstats|-] [on|off]
        [connection]

Ten sessions (`InjectConnection` on a fake transport) each take MESSAGES/10 plain
transactions (MAIL, RCPT, DATA, a 2 KB message) into a real `Spool` in a temporary
directory (fsync off unless `on`); prints the event-loop thread's CPU per message. With
`connection`, every message has a connection of its own (greeting, EHLO, the transaction,
QUIT, the connection's end), as application mailers and smtp-source without -d do. What is
left out is what the kernel and uvloop cost (inject_cpu.py measures everything). Two trees
can be compared by running both at once, one per core, which cancels this VM's drift; on a
busy machine, count instructions instead (valgrind --tool=callgrind, two message counts,
the difference divided by the difference of counts).
"""

from __future__ import annotations

import asyncio
import cProfile
import shutil
import sys
import tempfile
import time
from typing import Any

import uvloop

from relay.inject import InjectSettings, ListenerSettings
from relay.inject.connection import InjectConnection, ListenerContext
from relay.inject.limits import ConnectionLimits
from relay.inject.settings import parse_network
from relay.spool.store import Spool

FILLER = b"x" * 74 + b"\r\n"
SESSIONS = 10


class FakeTransport(asyncio.Transport):
    """Counts what is written; hands the reply to a message's content to a waiter."""

    def __init__(self) -> None:
        super().__init__()
        self.replies = 0
        self.closing = False
        self.waiter: asyncio.Future[bytes] | None = None

    def write(self, data: Any) -> None:
        self.replies += 1
        if self.waiter is not None:  # set once the content is fed: this is its reply
            self.waiter.set_result(bytes(data))
            self.waiter = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 25)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def message(seq: int) -> bytes:
    head = (
        f"From: <bench@inject.bench.test>\r\nTo: <r0-{seq}@bench.example>\r\n"
        f"Subject: bench {seq}\r\nMessage-ID: <{seq}.r@inject.bench.test>\r\n\r\n"
    ).encode()
    return head + FILLER * 24 + b".\r\n"


async def run(
    messages: int, fsync: bool, profile: cProfile.Profile | None, per_connection: bool = False
) -> None:
    directory = tempfile.mkdtemp(prefix="inject-path-")
    spool = await Spool.open(directory, fsync=fsync)
    settings = InjectSettings(
        listeners=(ListenerSettings("127.0.0.1:0"),),
        hostname="relay.bench.test",
        relay_hosts=(parse_network("127.0.0.0/8"),),
    )
    ctx = ListenerContext(
        settings, settings.listeners[0], spool, None, None, ConnectionLimits(per_ip=1000), time.time
    )
    sessions = []
    for _ in range(SESSIONS):
        protocol, transport = InjectConnection(ctx), FakeTransport()
        protocol.connection_made(transport)
        sessions.append((protocol, transport))
    for _ in range(5):
        await asyncio.sleep(0)
    for protocol, _ in sessions:
        protocol.data_received(b"EHLO client.bench.test\r\n")
    for _ in range(5):
        await asyncio.sleep(0)
    body = message(1)

    async def connections(count: int) -> None:
        """A connection per message, from the greeting to connection_lost."""
        loop = asyncio.get_running_loop()
        for _ in range(count):
            protocol, transport = InjectConnection(ctx), FakeTransport()
            protocol.connection_made(transport)
            protocol.data_received(b"EHLO client.bench.test\r\n")
            protocol.data_received(b"MAIL FROM:<bench@inject.bench.test>\r\n")
            protocol.data_received(b"RCPT TO:<rcpt@bench.example>\r\n")
            protocol.data_received(b"DATA\r\n")
            transport.waiter = waiter = loop.create_future()
            protocol.data_received(body)
            reply = await waiter
            if not reply.startswith(b"250 2.0.0"):
                raise RuntimeError(f"refused: {reply!r}")
            protocol.data_received(b"QUIT\r\n")
            protocol.connection_lost(None)

    async def session(protocol: InjectConnection, transport: FakeTransport, count: int) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(count):
            protocol.data_received(b"MAIL FROM:<bench@inject.bench.test>\r\n")
            protocol.data_received(b"RCPT TO:<rcpt@bench.example>\r\n")
            protocol.data_received(b"DATA\r\n")
            transport.waiter = waiter = loop.create_future()
            protocol.data_received(body)
            reply = await waiter
            if not reply.startswith(b"250 2.0.0"):
                raise RuntimeError(f"refused: {reply!r}")

    cpu, wall = time.thread_time(), time.perf_counter()
    if profile is not None:
        profile.enable()
    if per_connection:
        await asyncio.gather(*(connections(messages // SESSIONS) for _ in sessions))
    else:
        await asyncio.gather(*(session(p, t, messages // SESSIONS) for p, t in sessions))
    if profile is not None:
        profile.disable()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    done = SESSIONS * (messages // SESSIONS)
    print(
        f"inject_path: {1e6 * cpu / done:.1f} us of loop CPU per message "
        f"({done / wall:.0f} msgs/s, fsync {'on' if fsync else 'off'}"
        + (", a connection per message)" if per_connection else ")")
    )
    await spool.close()
    shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    messages = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    profile_path = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != "-" else None
    fsync = len(sys.argv) > 3 and sys.argv[3] == "on"
    per_connection = len(sys.argv) > 4 and sys.argv[4] == "connection"
    profile = cProfile.Profile() if profile_path else None
    uvloop.run(run(messages, fsync, profile, per_connection))
    if profile is not None and profile_path:
        profile.dump_stats(profile_path)
        print(f"profile written to {profile_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
