"""The pieces of the under-load test: a paced SMTP injector, samples of a process's memory
and descriptors from /proc, and the verdict on the figures (pure, tested directly).

    counts = await paced(port, sessions, rate, seconds, run, latencies)   # in this loop
    python -m tests.reliability.steady_load --port P --rate R --sessions S --seconds T \
        --run NAME --out FILE                                            # in its own process
    rss_kb(pid), open_fds(pid), cpu_seconds(pid)     # /proc/PID/status, /proc/PID/fd, stat
    problems = judge(figures, limits)                # [] when relay held up

`paced` keeps `sessions` SMTP sessions open and sends `rate` messages/s between them on a
fixed schedule (no pipelining, one recipient, 2 KB, a unique `X-Bench-Token:` for the sink);
a latency is the seconds from MAIL to the 250 after the final dot.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.bench.inject import make_message

__all__ = [
    "Figures",
    "Limits",
    "Session",
    "SmtpRefused",
    "cpu_seconds",
    "judge",
    "latency_judged",
    "machine_busy_seconds",
    "make_message",
    "open_fds",
    "paced",
    "percentile",
    "read_json",
    "rss_kb",
    "windows",
]


class SmtpRefused(Exception):
    """relay answered a command of the injector with something other than the success code."""


class Session:
    """One SMTP session, no pipelining (a bulk mailer's dialogue), one message after another."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = 30.0

    @classmethod
    async def open(cls, host: str, port: int) -> Session:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        session = cls(reader, writer)
        await session._expect(220, "greeting")
        writer.write(b"EHLO load.relay.test\r\n")
        await session._expect(250, "EHLO")
        return session

    async def _expect(self, code: int, what: str) -> None:
        while True:
            line = await asyncio.wait_for(self.reader.readuntil(b"\n"), self.timeout)
            if line[3:4] != b"-":
                break
        if not line.startswith(b"%d" % code):
            raise SmtpRefused(f"{what}: expected {code}, got {line!r}")

    async def send(self, message: bytes, seq: int) -> float:
        """Send one message (one recipient); the seconds from MAIL to the 250 after the dot."""
        start = time.monotonic()
        self.writer.write(b"MAIL FROM:<load@inject.relay.test>\r\n")
        await self._expect(250, "MAIL")
        self.writer.write(b"RCPT TO:<r0-%d@load.example>\r\n" % seq)
        await self._expect(250, "RCPT")
        self.writer.write(b"DATA\r\n")
        await self._expect(354, "DATA")
        self.writer.write(message)
        await self._expect(250, "end of data")
        return time.monotonic() - start

    async def close(self) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
            self.writer.write(b"QUIT\r\n")
            await asyncio.wait_for(self.reader.readuntil(b"\n"), 5)
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


SIZE = 2048
FAILURES = (SmtpRefused, OSError, TimeoutError, asyncio.IncompleteReadError)


@dataclass
class Counts:
    accepted: int = 0
    refused: int = 0  # answered other than 250, or the session failed (then a new one)


async def paced(
    port: int,
    sessions: int,
    rate: float,
    seconds: float,
    run: str,
    latencies: list[tuple[float, float]],
) -> Counts:
    """`sessions` sessions sending `rate` messages/s between them on a fixed schedule (a late
    message goes at once; none starts after `seconds`, late or not); (time.monotonic(),
    latency) of each accepted message goes to `latencies`."""
    interval = sessions / rate
    start = time.monotonic()
    counts = Counts()
    seqs = iter(range(1, 1 + int(rate * seconds) + sessions))

    async def one(index: int) -> None:
        session = await Session.open("127.0.0.1", port)
        try:
            due = start + interval * index / sessions
            end = start + seconds
            # behind schedule, a session catches up, but never past the end
            while due < end and time.monotonic() < end and (seq := next(seqs, None)) is not None:
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    latency = await session.send(make_message(seq, run, SIZE, 1), seq)
                except FAILURES:
                    counts.refused += 1
                    await session.close()
                    session = await Session.open("127.0.0.1", port)
                else:
                    counts.accepted += 1
                    latencies.append((time.monotonic(), latency))
                due += interval
        finally:
            await session.close()

    await asyncio.gather(*(one(i) for i in range(sessions)))
    return counts


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise LookupError(f"/proc/{pid}/status has no VmRSS line")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy so far, all cores (/proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def windows(samples: list[tuple[float, float]], start: float, width: float) -> list[float]:
    """The p99 of the values in each `width`-second window from `start` (empty ones left out)."""
    buckets: dict[int, list[float]] = {}
    for t, value in samples:
        buckets.setdefault(int((t - start) // width), []).append(value)
    return [percentile(buckets[k], 99) for k in sorted(buckets)]


def disturbed_windows(
    readings: list[tuple[float, float, float]], start: float, width: float, bound: float
) -> dict[int, float]:
    """The `width`-second windows from `start` in which work other than the test's own took
    more than `bound` cores: window number -> those cores. `readings`: (time, CPU seconds
    the machine has been busy, CPU seconds of the test's own processes), in time order;
    each interval between two readings counts in the window of its middle."""
    other: dict[int, float] = {}
    spans: dict[int, float] = {}
    for (t0, busy0, ours0), (t1, busy1, ours1) in itertools.pairwise(readings):
        if t1 <= t0:
            continue
        k = int(((t0 + t1) / 2 - start) // width)
        other[k] = other.get(k, 0.0) + max(0.0, (busy1 - busy0) - (ours1 - ours0))
        spans[k] = spans.get(k, 0.0) + (t1 - t0)
    cores = {k: other[k] / spans[k] for k in other}
    return {k: c for k, c in sorted(cores.items()) if c > bound}


def undisturbed(
    samples: list[tuple[float, float]], start: float, width: float, disturbed: Iterable[int]
) -> list[float]:
    """The values of `samples` (time, value) outside the `disturbed` windows."""
    left_out = set(disturbed)
    return [value for t, value in samples if int((t - start) // width) not in left_out]


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-th percentile (q in 0..100) of a non-empty list."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Limits:
    rss_growth_kb: int = 16 * 1024  # after the warm-up, for the whole run
    latency_factor: float = 2.0  # p99 under load vs the idle relay's p99
    # The latency is judged only when work other than the test's own processes took at most
    # this many cores during the load: on a machine shared with other busy processes the
    # scheduler, not relay, decides the tail (the figures still show it).
    other_cores: float = 0.25
    load_share: float = 0.5  # the injected rate vs the measured capacity


@dataclass
class Figures:
    seconds: float = 0.0  # the steady load's duration
    sessions: int = 0
    capacity: float = 0.0  # messages/s accepted and delivered, closed loop over `sessions`
    injection_only: float = 0.0  # messages/s answered 250 in that loop (the spool filling)
    rate: float = 0.0  # messages/s, the steady load's target
    achieved: float = 0.0  # messages/s, what the steady load injected
    injected: int = 0  # answered 250 over the whole test
    delivered: int = 0  # recipients relay counted delivered
    arrived: int = 0  # distinct messages at the sink
    duplicates: int = 0
    refused: int = 0  # injections under load answered other than 250 (or cut off)
    idle_p50: float = 0.0  # the probe session alone, before the load
    idle_p99: float = 0.0
    idle_after_p50: float = 0.0  # the same once the load has drained (0: not measured)
    idle_after_p99: float = 0.0
    load_p50: float = 0.0  # the same probe session while the load runs
    load_p99: float = 0.0
    sessions_p50: float = 0.0  # the load's own sessions (measured in the load's process)
    sessions_p99: float = 0.0
    spool_peak: int = 0  # the most messages in the spool at a sample under load
    rss_start_kb: int = 0  # the daemon before any load
    rss_warm_kb: int = 0  # at the end of the warm-up
    rss_peak_kb: int = 0  # the most after the warm-up
    rss_end_kb: int = 0  # after the load, drained
    fds_baseline: int = 0
    fds_peak: int = 0
    fds_after: int = 0
    tasks_baseline: int = 0
    tasks_peak: int = 0
    tasks_after: int = 0
    window_p99: list[float] = field(default_factory=list)  # p99 of each 10 s of the load
    cpu_share: float = 0.0  # the daemon's CPU seconds per second under the load
    loadavg: tuple[float, float] = (0.0, 0.0)  # the machine's 1-minute load, before and after
    other_cores: float = 0.0  # cores busy with other work than the test's during the load
    # The 10 s windows of the load in which other work took more than Limits.other_cores
    # (window number -> cores), and the p99 of the probe outside them (0: none left out).
    disturbed: dict[int, float] = field(default_factory=dict)
    judged_p99: float = 0.0

    @property
    def p99_judged(self) -> float:
        """The latency the bound applies to: the p99 outside the disturbed windows."""
        return self.judged_p99 if self.disturbed and self.judged_p99 > 0 else self.load_p99

    @property
    def idle_reference(self) -> float:
        """The idle p99 the load is held to: the lower of before and after the load (one
        20 s idle phase can be slow on its own, as on a VM whose hypervisor takes CPU)."""
        measured = [x for x in (self.idle_p99, self.idle_after_p99) if x > 0]
        return min(measured) if measured else 0.0

    notes: list[str] = field(default_factory=list)

    @property
    def rss_growth_kb(self) -> int:
        return self.rss_peak_kb - self.rss_warm_kb

    def lines(self) -> list[str]:
        ms = 1000.0
        return [
            f"under load: {self.seconds:.0f} s at {self.achieved:.0f} msg/s "
            f"(target {self.rate:.0f} = half of a measured capacity of {self.capacity:.0f} msg/s "
            f"accepted and delivered; injection alone {self.injection_only:.0f} msg/s; "
            f"{self.sessions} sessions, 2 KB, 1 recipient, fsync on)",
            f"  messages: {self.injected} injected (250), {self.delivered} delivered, "
            f"{self.arrived} at the sink, {self.duplicates} duplicates, "
            f"{self.refused} refused under load; spool peak {self.spool_peak}",
            f"  injection latency MAIL..250 of a probe session: idle p50 {self.idle_p50 * ms:.1f}"
            f" ms p99 {self.idle_p99 * ms:.1f} ms before the load, p50 "
            f"{self.idle_after_p50 * ms:.1f} ms p99 {self.idle_after_p99 * ms:.1f} ms after it; "
            f"under load p50 {self.load_p50 * ms:.1f} ms p99 {self.load_p99 * ms:.1f} ms "
            f"({self.load_p99 / max(self.idle_reference, 1e-9):.2f}x the lower idle p99); the "
            f"load's sessions p50 {self.sessions_p50 * ms:.1f} ms "
            f"p99 {self.sessions_p99 * ms:.1f} ms",
            f"  RSS: {self.rss_start_kb / 1024:.1f} MB before, {self.rss_warm_kb / 1024:.1f} MB "
            f"after the warm-up, peak {self.rss_peak_kb / 1024:.1f} MB (growth "
            f"{self.rss_growth_kb / 1024:+.1f} MB), {self.rss_end_kb / 1024:.1f} MB drained",
            f"  fds: {self.fds_baseline} before, peak {self.fds_peak}, {self.fds_after} after; "
            f"asyncio tasks: {self.tasks_baseline} before, peak {self.tasks_peak}, "
            f"{self.tasks_after} after",
            "  probe p99 per 10 s of load (ms): "
            + " ".join(f"{x * ms:.0f}" for x in self.window_p99),
            *(
                [
                    "  left out of the judged p99, other work took (cores): "
                    + ", ".join(f"window {k + 1} {c:.2f}" for k, c in self.disturbed.items())
                    + f"; judged p99 {self.p99_judged * ms:.1f} ms "
                    f"({self.p99_judged / max(self.idle_reference, 1e-9):.2f}x)"
                ]
                if self.disturbed
                else []
            ),
            f"  daemon CPU {self.cpu_share * 100:.0f}% of a core under load; machine load "
            f"average {self.loadavg[0]:.1f} before, {self.loadavg[1]:.1f} after; other work "
            f"took {self.other_cores:.2f} cores",
            *(f"  note: {n}" for n in self.notes),
        ]


def read_json(path: str) -> dict[str, Any]:
    with open(path) as f:
        data: dict[str, Any] = json.load(f)
    return data


def latency_judged(f: Figures, limits: Limits) -> bool:
    """Judged when other work took at most `limits.other_cores` over the load and left at
    least half its windows undisturbed."""
    judged_windows = len(f.window_p99) - len(f.disturbed)
    return f.other_cores <= limits.other_cores and judged_windows >= len(f.window_p99) / 2


def judge(f: Figures, limits: Limits) -> list[str]:
    """What went wrong, one line each (empty: relay held up under the load)."""
    problems: list[str] = []
    if f.rss_growth_kb > limits.rss_growth_kb:
        problems.append(
            f"RSS grew {f.rss_growth_kb} kB after the warm-up (bound {limits.rss_growth_kb} kB)"
        )
    if latency_judged(f, limits) and f.p99_judged > limits.latency_factor * f.idle_reference:
        problems.append(
            f"p99 latency under load {f.p99_judged * 1000:.1f} ms is over "
            f"{limits.latency_factor}x the idle p99 {f.idle_reference * 1000:.1f} ms"
        )
    if f.fds_after > f.fds_baseline:
        problems.append(f"{f.fds_after} fds open after the load, {f.fds_baseline} before")
    if f.tasks_after > f.tasks_baseline:
        problems.append(f"{f.tasks_after} asyncio tasks after the load, {f.tasks_baseline} before")
    if f.achieved < 0.9 * f.rate:
        problems.append(f"the load reached {f.achieved:.0f} msg/s of {f.rate:.0f} targeted")
    if f.refused:
        problems.append(f"{f.refused} injections under load were not answered 250")
    if f.delivered != f.injected or f.arrived != f.injected:
        problems.append(
            f"{f.injected} injected but {f.delivered} delivered, {f.arrived} at the sink"
        )
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--run", default="load")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    latencies: list[tuple[float, float]] = []
    import uvloop  # the load's own CPU is taken from relay's two cores: as light as it goes

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        counts = runner.run(
            paced(args.port, args.sessions, args.rate, args.seconds, args.run, latencies)
        )
    with open(args.out, "w") as out:
        json.dump(
            {"accepted": counts.accepted, "refused": counts.refused, "latencies": latencies}, out
        )


if __name__ == "__main__":
    main()
