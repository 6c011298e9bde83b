"""Delivery alone: N spooled messages, relay's scheduler and SMTP client, a fast sink.

    python -m tests.bench.deliver_cpu [--messages N] [--profile FILE] [--tls] [--chunking]

Fills a spool directly (no SMTP injection), starts the daemon in-process under uvloop with a
gateway to tests/bench/sink.py in a subprocess, and reports messages/s and relay CPU ms per
message (time.process_time of this process, the sink's CPU excluded). Bounded: --seconds.
`--tls`: the sink offers STARTTLS (trustme certificate) and relay delivers with
`tls = "ifavailable"`. `--chunking`: the sink offers CHUNKING too (with PIPELINING, relay
sends BDAT LAST and the content with MAIL and RCPT: one round trip per message).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from relay import heap
from relay.config import loads
from relay.daemon import Daemon
from relay.spool.model import NewMessage
from relay.spool.store import Spool
from tests.bench.systems import BenchCerts, free_port


def message(i: int, size: int) -> bytes:
    head = (
        f"From: a@bench.test\r\nTo: r{i}@dest.test\r\nSubject: m{i}\r\nX-Bench-Token: t{i}\r\n\r\n"
    )
    line = b"x" * 76 + b"\r\n"
    return head.encode() + line * max(1, (size - len(head)) // 78)


def binding_lines(count: int) -> str:
    from tests.bench.systems import binding_addresses

    return "".join(
        f'  binding "b{i}" {{ bind_address = {address} }}\n'
        for i, address in enumerate(binding_addresses(count))
    )


async def run(
    messages: int,
    size: int,
    seconds: float,
    profile: str | None,
    bindings: int = 4,
    per_connection: int = 0,
    tls: bool = False,
    chunking: bool = False,
) -> None:
    work = Path(tempfile.mkdtemp(prefix="relay-deliver-"))
    tls_args: list[str] = []
    if tls:
        cert, key = BenchCerts(work / "certs").make().sink
        tls_args = ["--tls-cert", str(cert), "--tls-key", str(key)]
    spool = await Spool.open(work / "spool", fsync=True)
    for i in range(messages):
        await spool.store(
            NewMessage(
                "a@bench.test", (f"r{i}@dest.test",), "bench", None, message(i, size), time.time()
            )
        )
    await spool.close()
    sink_port = free_port("127.0.0.20")
    sink = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
        [
            sys.executable,
            "-m",
            "tests.bench.sink",
            "--listen",
            "127.0.0.20",
            "--port",
            str(sink_port),
            "--expect",
            str(messages),
            "--out",
            str(work / "sink.json"),
            "--seconds",
            str(seconds),
            *tls_args,
            *(["--chunking"] if chunking else []),
        ],
        stdout=subprocess.PIPE,
    )
    assert sink.stdout is not None
    sink.stdout.readline()
    conf = (
        f"""
spoolbase = "{work / "spool"}"
event_log = "{work / "events.jsonl"}"
gateway = "127.0.0.20:{sink_port}"
max_outbound_connections = 5
max_deliveries_per_connection = {per_connection}
tls = "{"ifavailable" if tls else "no"}"
esmtp_listener {{ listen "127.0.0.1:{free_port()}" {{ }} }}
binding_group "bench" {{
"""
        + binding_lines(bindings)
        + "}\n"
    )
    daemon = Daemon(loads(conf))
    profiler = cProfile.Profile() if profile else None
    cpu0, t0 = time.process_time(), time.monotonic()
    if profiler:
        profiler.enable()
    await daemon.start()
    heap.settle()  # as relay serve does after start-up
    assert daemon.spool is not None
    while len(daemon.spool) and time.monotonic() - t0 < seconds:  # noqa: ASYNC110 - a poll
        await asyncio.sleep(0.05)
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    done = messages - len(daemon.spool)
    stats = daemon.spool.statistics()
    await daemon.stop(deadline=5)
    sink.terminate()
    sink.wait(10)
    print(
        f"delivered {done}/{messages} in {wall:.2f} s: {done / wall:,.0f} msgs/s, "
        f"relay CPU {1000 * cpu / max(done, 1):.3f} ms/msg; spool: {stats.commit_batches} "
        f"commit batches, {stats.fsyncs} fsyncs"
    )
    if profiler and profile:
        profiler.dump_stats(profile)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--profile")
    parser.add_argument("--bindings", type=int, default=4)
    parser.add_argument(
        "--per-connection", type=int, default=0, help="max_deliveries_per_connection (0: no cap)"
    )
    parser.add_argument("--tls", action="store_true", help="STARTTLS to the sink")
    parser.add_argument("--chunking", action="store_true", help="the sink offers CHUNKING")
    args = parser.parse_args()
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(
            run(
                args.messages,
                args.size,
                args.seconds,
                args.profile,
                args.bindings,
                args.per_connection,
                args.tls,
                args.chunking,
            )
        )


if __name__ == "__main__":
    main()
