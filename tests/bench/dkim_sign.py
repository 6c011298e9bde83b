"""DKIM signing speed: signatures per second through relay's signer and its signing processes,
and how late the event loop's turns came meanwhile, beside what the key operation alone
makes on the same cores in the same minutes.

    python -m tests.bench.dkim_sign [--seconds 5] [--rounds 3] [--size 2048] [--busy S]
        [--only rsa]

For RSA-2048 and Ed25519: `sign_message` on one thread, then --rounds pairs of
- the key operation alone: one bare `key.sign` loop per signing process, each in a thread of
  this process (no canonicalization, no event loop; what OpenSSL makes on these cores: the
  ceiling), and
- `sign_in_pool` with 64 jobs in flight (what injection does: one job per message, one
  signing process per core), while a ticker on the event loop asks for a turn every millisecond and
  records how late each came (the loop's lag: max and p99).
This VM's speed drifts by up to 1.7x within minutes, so the pool is judged against the
ceiling measured next to it: *_pool is the median of the rounds, *_key_alone the median of
theirs, *_of_key_alone the median of each round's pool / key-alone ratio. --busy S keeps
the loop running Python S seconds at a time between turns, as a loaded relay's does (its
writes to the signing processes then wait). Prints JSON (run.py puts it in the table), rates
in signatures/s, lags in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from relay.sign.keys import load_key
from relay.sign.pool import PROCESSES, sign_in_pool
from relay.sign.settings import Profile, SigningSpec
from relay.sign.signer import sign_message
from tests.support.dkim_tools import write_key

IN_FLIGHT = 64
TICK = 0.001  # seconds between the lag ticker's turns
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


def key_alone(profiles: list[Profile], seconds: float, threads: int = PROCESSES) -> float:
    """Signatures/s of `threads` bare loops over the key operation (the data a DKIM
    signature signs is about 600 bytes of canonicalized header fields)."""
    spec = profiles[0].fallback
    assert spec is not None
    sign, data = spec.key.sign, b"x" * 600
    counts: list[int] = []
    start = time.perf_counter()

    def loop() -> None:
        count = 0
        while time.perf_counter() - start < seconds:
            sign(data)
            count += 1
        counts.append(count)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - start)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


async def pooled(
    content: bytes, profiles: list[Profile], seconds: float, busy: float = 0.0
) -> dict[str, float]:
    """Signatures/s with IN_FLIGHT jobs at a time, and the event loop's lag meanwhile: a
    ticker asks for a turn every TICK seconds and records how late each one came (max and
    p99). With `busy` > 0 the loop also runs Python for `busy` seconds at a time between
    turns (as a loaded relay's loop does), so the answers wait for it."""
    # The signing processes started (and sent the profiles) before the clock runs.
    await asyncio.gather(
        *(sign_in_pool(content, profiles, authenticated=False, now=0) for _ in range(PROCESSES))
    )
    lags: list[float] = []
    stop = False

    async def ticker() -> None:
        while not stop:
            asked = time.perf_counter()
            await asyncio.sleep(TICK)
            lags.append(max(0.0, time.perf_counter() - asked - TICK))

    async def spinner() -> None:
        while not stop:
            end = time.perf_counter() + busy
            while time.perf_counter() < end:
                pass
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(ticker())]
    if busy > 0:
        tasks.append(asyncio.create_task(spinner()))
    count, start = 0, time.perf_counter()

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() - start < seconds:
            await sign_in_pool(content, profiles, authenticated=False, now=time.time())
            count += 1

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    elapsed = time.perf_counter() - start
    stop = True
    await asyncio.gather(*tasks)
    return {
        "rate": count / elapsed,
        "lag_max": max(lags, default=0.0),
        "lag_p99": percentile(lags, 0.99),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3, help="key-alone / pool pairs")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument(
        "--busy",
        type=float,
        default=0.0,
        help="seconds of Python the event loop runs between turns (0: an idle loop)",
    )
    parser.add_argument("--only", choices=("rsa", "ed25519"), default=None)
    args = parser.parse_args(argv)
    content = message(args.size)
    results: dict[str, object] = {"processes": PROCESSES, "size": len(content)}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in (args.only,) if args.only else ("rsa", "ed25519"):
            profiles = [profile(kind, Path(tmp))]
            results[f"{kind}_one_thread"] = one_thread(content, profiles, args.seconds / 2)
            alone: list[float] = []
            pools: list[dict[str, float]] = []
            for _ in range(max(1, args.rounds)):
                alone.append(key_alone(profiles, args.seconds / 2))
                pools.append(asyncio.run(pooled(content, profiles, args.seconds, args.busy)))
            rates = [pool["rate"] for pool in pools]
            results[f"{kind}_pool"] = statistics.median(rates)
            results[f"{kind}_pool_rounds"] = rates
            results[f"{kind}_key_alone"] = statistics.median(alone)
            results[f"{kind}_key_alone_rounds"] = alone
            results[f"{kind}_of_key_alone"] = statistics.median(
                rate / ceiling for rate, ceiling in zip(rates, alone, strict=True)
            )
            results[f"{kind}_loop_gap"] = max(pool["lag_max"] for pool in pools)
            results[f"{kind}_loop_lag_p99"] = statistics.median(pool["lag_p99"] for pool in pools)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
