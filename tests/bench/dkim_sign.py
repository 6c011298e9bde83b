"""DKIM signing speed: signatures per second through relay's signer and its thread pool,
and how long the event loop went without a turn meanwhile.

    python -m tests.bench.dkim_sign [--seconds 5] [--size 2048]

For RSA-2048 and Ed25519: `sign_message` on one thread, then `sign_in_pool` with 64 jobs in
flight (what injection does: one job per message, one thread per core), while a ticker on
the event loop records its longest gap. Prints JSON (run.py puts it in the table).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

from relay.sign.keys import load_key
from relay.sign.pool import executor, sign_in_pool
from relay.sign.settings import Profile, SigningSpec
from relay.sign.signer import sign_message
from tests.support.dkim_tools import write_key

IN_FLIGHT = 64
HEADERLIST = ("from", "to", "subject", "date", "message-id", "mime-version", "content-type")


def message(size: int) -> bytes:
    head = (
        b"Received: from client (127.0.0.1) by relay.bench.test with ESMTP; Tue, 1 Dec 2026\r\n"
        b"From: <bench@inject.bench.test>\r\nTo: <rcpt@sink.bench.test>\r\n"
        b"Subject: bench message\r\nDate: Tue, 01 Dec 2026 12:00:00 +0000\r\n"
        b"Message-ID: <1@inject.bench.test>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain\r\n\r\n"
    )
    line = b"x" * 76 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def profile(kind: str, directory: Path) -> Profile:
    key = load_key(write_key(directory / f"{kind}.pem", kind))
    spec = SigningSpec("bench", None, "s1", key, "relaxed", "relaxed", HEADERLIST)
    return Profile("bench", fallback=spec)


def one_thread(content: bytes, profiles: list[Profile], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sign_message(content, profiles, authenticated=False, now=time.time())
        count += 1
    return count / (time.perf_counter() - start)


async def pooled(content: bytes, profiles: list[Profile], seconds: float) -> tuple[float, float]:
    """(signatures/s, longest event-loop gap in seconds) with IN_FLIGHT jobs at a time."""
    executor()  # threads started before the clock runs
    gap = 0.0
    stop = False

    async def ticker() -> None:
        nonlocal gap
        last = time.perf_counter()
        while not stop:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gap = max(gap, now - last - 0.001)
            last = now

    tick = asyncio.create_task(ticker())
    count, start = 0, time.perf_counter()

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() - start < seconds:
            await sign_in_pool(content, profiles, authenticated=False, now=time.time())
            count += 1

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    elapsed = time.perf_counter() - start
    stop = True
    await tick
    return count / elapsed, gap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=2048)
    args = parser.parse_args(argv)
    content = message(args.size)
    results: dict[str, object] = {"threads": max(2, os.cpu_count() or 2), "size": len(content)}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("rsa", "ed25519"):
            profiles = [profile(kind, Path(tmp))]
            results[f"{kind}_one_thread"] = one_thread(content, profiles, args.seconds / 2)
            rate, gap = asyncio.run(pooled(content, profiles, args.seconds))
            results[f"{kind}_pool"] = rate
            results[f"{kind}_loop_gap"] = gap
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
