"""Spool store throughput: 20 concurrent writers storing 2 KB messages, fsync on.

    .venv/bin/python tests/bench/spool_bench.py [--messages 20000] [--seconds 10] [--no-fsync]

Stops at whichever bound comes first and prints stored messages per second and the average
number of messages per fsync batch. The target is >= 3,000 messages/s on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time

from relay.spool import NewMessage, Spool


async def run(messages: int, seconds: float, writers: int, size: int, fsync: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="spool-bench-", dir=os.environ.get("BENCH_DIR")) as d:
        spool = await Spool.open(d, fsync=fsync)
        content = (b"Subject: bench\r\n\r\n" + b"x" * size)[:size]
        remaining = messages
        deadline = time.monotonic() + seconds

        async def writer() -> None:
            nonlocal remaining
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                await spool.store(
                    NewMessage("a@example.com", ("b@example.net",), "g", None, content, 0.0)
                )

        started = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(writers)))
        elapsed = time.perf_counter() - started
        stats = spool.statistics()
        await spool.close()
    rate = stats.stored / elapsed
    per_batch = stats.committed_records / max(1, stats.commit_batches)
    print(
        f"stored {stats.stored} x {size} B messages in {elapsed:.2f} s with {writers} writers, "
        f"fsync={'on' if fsync else 'off'}: {rate:,.0f} messages/s, "
        f"{stats.commit_batches} batches ({per_batch:.1f} messages per batch), "
        f"{stats.fsyncs} synchronous writes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--no-fsync", action="store_true")
    args = parser.parse_args()
    asyncio.run(run(args.messages, args.seconds, args.writers, args.size, not args.no_fsync))


if __name__ == "__main__":
    main()
