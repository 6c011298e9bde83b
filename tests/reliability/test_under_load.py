"""Under load: `relay serve` (a real process) takes a steady SMTP injection at about half of
the capacity measured at the start of the test, over several sessions, and delivers it to a
real sink process; its memory stays flat, its injection latency near an idle relay's, and
its file descriptors and asyncio tasks come back to where they were once the load stops.

The steps, all against the one daemon:
  1. idle: one session, a message every 1/PROBE_RATE s -> the idle p99 of MAIL..250
  2. baseline: spool drained, outbound connections idle-closed -> fds, tasks, RSS
  3. capacity: SESSIONS sessions, closed loop for CALIBRATION_SECONDS, then drained ->
     messages/s accepted and delivered (end to end; injection alone only fills the spool)
  4. steady load: the same sessions paced to half of it for the duration (2 minutes in
     `make test`, RELAY_SOAK_SECONDS, 600 by default, under `make soak`); RSS and fds sampled
     from /proc/PID every second, the spool and the task count from /metrics
  5. drained again: the probe alone once more (the load is held to the lower of the two
     idle p99s), every message delivered, fds and tasks back at the baseline

Figures are printed at the end (README's "Reliability / Under load" quotes them). The bounds
are relative to baselines measured in the same run, since the machine is shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.integration.relay_harness import free_port
from tests.reliability.steady_load import (
    SIZE,
    Figures,
    Limits,
    cpu_seconds,
    disturbed_windows,
    judge,
    latency_judged,
    machine_busy_seconds,
    open_fds,
    percentile,
    read_json,
    rss_kb,
    undisturbed,
    windows,
)

ROOT = Path(__file__).resolve().parents[2]
SINK_HOST = "127.0.0.41"
BINDINGS = ("127.0.0.42", "127.0.0.43")
SESSIONS = 8
PROBE_RATE = 25.0  # messages/s of the probe session, alone and beside the load
IDLE_SECONDS = 20.0
CALIBRATION_SECONDS = 8.0
WARMUP_SECONDS = 20.0  # of the steady load, before RSS is taken as the reference
MAX_RATE = 2000.0  # messages/s: a cap on the steady load whatever the calibration says
SETTLE_SECONDS = 60.0  # bound on each wait for a drained, quiet daemon
PRIORITY = -10  # nice value of the test's processes, where permitted
# RSS: the admin's memory of last attempts (LAST_ATTEMPTS = 100,000 messages in
# relay/schedule/outcomes.py, about 250 B each, then flat) fills within the 2-minute run on a
# quiet machine (82,144 messages in CI), so both runs allow for it on top of 16 MB.
# Latency: the target is 2x the idle p99. The 10-minute run of `make soak` is held
# to it (1.91x on a quiet VM: idle p99 3.5 ms, 6.7 ms under load at 659 msg/s, relay at 82%
# of a core). The 2-minute run in `make test` is held to 6x, a guard against gross
# regressions: quiet runs measured 1.54x to 3.94x (relay at 87-96% of a core at "half
# capacity": a message costs it twice the CPU it does in the closed loop), 3.94x in a green
# CI run; on a VM whose hypervisor took 6% of its CPU, 10-second windows of one load read
# 7-50 ms against 3.1 ms idle for 6 minutes and 4-13 ms for the next 4 (README, Reliability).
LIMITS = Limits(rss_growth_kb=(16 + 32) * 1024, latency_factor=6.0)
SOAK_LIMITS = Limits(rss_growth_kb=(16 + 32) * 1024, latency_factor=2.0)


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    port: int
    admin: str

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Rig:
    daemon: Daemon
    sink: subprocess.Popen[bytes]
    sink_out: Path  # the sink's summary, written when it is stopped

    def sink_summary(self) -> dict[str, object]:
        stop(self.daemon.proc)
        stop(self.sink)
        summary: dict[str, object] = json.loads(self.sink_out.read_text())
        return summary


def write_config(directory: Path, port: int, admin_port: int, sink_port: int) -> Path:
    nowhere = directory / "resolv.conf"
    nowhere.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    bindings = "".join(
        f'  binding "load-{i}" {{ bind_address = {address} }}\n'
        for i, address in enumerate(BINDINGS)
    )
    path = directory / "relay.conf"
    path.write_text(
        'hostname = "relay.load.test"\n'
        f'spoolbase = "{directory / "spool"}"\n'
        f'event_log = "{directory / "events.jsonl"}"\n'
        "shutdown_timeout = 5\n"
        "idle_timeout = 1\n"  # outbound connections close 1 s after the last message
        "max_outbound_connections = 8\n"
        f'gateway = "{SINK_HOST}:{sink_port}"\n'
        f'admin_listen = "127.0.0.1:{admin_port}"\n'
        f'resolv_conf = "{nowhere}"\ndns_port = 9\n'
        "esmtp_listener {\n"
        '  relay_hosts = ( "127.0.0.0/8" )\n'
        f'  listen "127.0.0.1:{port}" {{ binding_group = "load" }}\n'
        "}\n"
        f'binding_group "load" {{\n  ehlo_hostname = "relay.load.test"\n{bindings}}}\n'
    )
    return path


def raise_priority() -> None:
    """In the child before exec: every process of the test (relay, sink, injectors) at nice
    PRIORITY, so that other work on a shared machine does not decide the latencies; left at
    the normal priority where that is not permitted (the figures say which)."""
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, PRIORITY)


def wait_for_line(path: Path, needle: bytes, proc: subprocess.Popen[bytes], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if needle in path.read_bytes():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args!r} did not print {needle!r}; see {path}")


def stop(proc: subprocess.Popen[bytes], within: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(within)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """The sink (tests/bench/sink.py) and `relay serve` delivering to it."""
    sink_port = free_port(SINK_HOST)
    sink_log = tmp_path / "sink.log"
    with open(sink_log, "wb") as log:
        sink = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.bench.sink", "--listen", SINK_HOST),
                *("--port", str(sink_port), "--seconds", "7200"),
                *("--out", str(tmp_path / "sink.json")),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            preexec_fn=raise_priority,
        )
    relay: subprocess.Popen[bytes] | None = None
    try:
        wait_for_line(sink_log, b"ready", sink, 30)
        port, admin_port = free_port(), free_port()
        conf = write_config(tmp_path, port, admin_port, sink_port)
        relay_log = tmp_path / "relay.log"
        with open(relay_log, "wb") as log:
            relay = subprocess.Popen(
                [sys.executable, "-m", "relay.cli", "serve", "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                preexec_fn=raise_priority,
            )
        wait_for_line(relay_log, b"listening on", relay, 30)
        daemon = Daemon(relay, port, f"http://127.0.0.1:{admin_port}")
        yield Rig(daemon, sink, tmp_path / "sink.json")
    finally:
        if relay is not None:
            stop(relay)
        stop(sink)


class Scraper:
    """/metrics over a connection per request (no keep-alive: it would hold an fd in relay)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def __call__(self) -> dict[str, float]:
        connector = aiohttp.TCPConnector(force_close=True)
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as client,
            client.get(f"{self.url}/metrics") as response,
        ):
            text = await response.text()
        values: dict[str, float] = {}
        for line in text.splitlines():
            match = re.match(r"^([a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
            if match:
                values[match.group(1)] = float(match.group(2))
        return values


def delivered(metrics: dict[str, float]) -> int:
    return int(metrics.get('relay_recipients_total{outcome="delivered"}', 0))


class Injected:
    """What relay answered 250 over the whole test, across phases and processes."""

    def __init__(self) -> None:
        self.accepted = 0


RUNNING: set[int] = set()  # the injectors' pids while they run (their CPU is the test's)


async def run_process(*args: str, within: float) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, cwd=ROOT, preexec_fn=raise_priority
    )
    RUNNING.add(proc.pid)
    try:
        code = await asyncio.wait_for(proc.wait(), within)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        RUNNING.discard(proc.pid)
    assert code == 0, f"{args[0]} exited with {code}"


async def capacity(
    port: int, out: Path, scrape: Scraper, injected: Injected
) -> tuple[float, float]:
    """Closed loop over SESSIONS sessions (tests/bench/inject.py in its own process) for
    CALIBRATION_SECONDS after a 1 s ramp, then until the spool has drained: relay's capacity
    end to end (messages accepted and delivered, from the first send to the last delivery,
    per second), and its rate of injection alone (answered 250 per second in the window past
    the ramp, while the spool fills because delivery does not keep up)."""
    await run_process(
        *("tests.bench.inject", "--port", str(port), "--messages", "1000000"),
        *("--sessions", str(SESSIONS), "--size", str(SIZE), "--run", "capacity"),
        *("--seconds", str(1 + CALIBRATION_SECONDS), "--reply-timeout", "30", "--out", str(out)),
        within=CALIBRATION_SECONDS + 60,
    )
    result = read_json(str(out))
    injected.accepted += len(result["accepted"])
    drained = await drained_at(scrape, injected)
    start = result["start"] + 1.0
    counted = [
        done for _, _, done in result["accepted"] if start <= done < start + CALIBRATION_SECONDS
    ]
    return len(result["accepted"]) / (drained - result["start"]), len(counted) / CALIBRATION_SECONDS


async def drained_at(scrape: Scraper, injected: Injected) -> float:
    """The time (monotonic, as the injectors') when the spool was first seen empty with
    every message injected so far delivered, polled every 50 ms."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        m = await scrape()
        if m.get("relay_spool_messages", -1) == 0 and delivered(m) == injected.accepted:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not reached in {SETTLE_SECONDS:.0f} s: the spool drained after calibration"
            )
        await asyncio.sleep(0.05)


async def until(check: Callable[[], object], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {within:.0f} s: {what}")
        await asyncio.sleep(0.25)


async def quiet(daemon: Daemon, scrape: Scraper, injected: Injected) -> dict[str, float]:
    """Wait until the spool is empty, everything injected is delivered and the fd count has
    held still for 3 s (outbound connections idle-closed); the last metrics."""
    last: dict[str, float] = {}

    async def drained() -> bool:
        nonlocal last
        last = await scrape()
        return last.get("relay_spool_messages", -1) == 0 and delivered(last) == injected.accepted

    await until(drained, SETTLE_SECONDS, "the spool drained and every message delivered")
    counts: list[int] = []

    def still() -> bool:
        counts.append(open_fds(daemon.pid))
        return len(counts) >= 12 and len(set(counts[-12:])) == 1

    await until(still, SETTLE_SECONDS, "the fd count holding still")
    return await scrape()


def ours(sink_pid: int) -> float:
    """CPU seconds of this process, its finished children (the injectors) and the sink."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return used + cpu_seconds(sink_pid)


def ours_now(daemon_pid: int, sink_pid: int) -> float:
    """`ours` with the daemon and the injectors still running (a reaped one has moved into
    this process's children's time, a zombie's /proc entry still has its time)."""
    running = 0.0
    for pid in list(RUNNING):
        with contextlib.suppress(OSError, IndexError, ValueError):
            running += cpu_seconds(pid)
    return ours(sink_pid) + cpu_seconds(daemon_pid) + running


async def run_steady_load(daemon: Daemon, sink_pid: int, seconds: float, work: Path) -> Figures:
    f = Figures(seconds=seconds, sessions=SESSIONS)
    scrape = Scraper(daemon.admin)
    injected = Injected()

    async def probe(run: str, seconds: float, latencies: list[tuple[float, float]]) -> None:
        """The probe session, in its own process (as the load)."""
        out = work / f"{run}.json"
        await run_process(
            *("tests.reliability.steady_load", "--port", str(daemon.port)),
            *("--rate", str(PROBE_RATE), "--sessions", "1"),
            *("--seconds", str(seconds), "--run", run, "--out", str(out)),
            within=seconds + 120,
        )
        result = read_json(str(out))
        injected.accepted += result["accepted"]
        f.refused += result["refused"]
        latencies.extend((t, x) for t, x in result["latencies"])

    nice = os.getpriority(os.PRIO_PROCESS, daemon.pid)
    f.notes.append(f"relay, sink and injectors at nice {nice} (a shared machine)")

    async def alone(run: str) -> tuple[float, float]:
        """The probe session alone for IDLE_SECONDS: its p50 and p99."""
        idle: list[tuple[float, float]] = []
        await probe(run, IDLE_SECONDS, idle)
        values = [x for _, x in idle]
        return percentile(values, 50), percentile(values, 99)

    # 1. idle: warm up, then the probe session alone
    await probe("warm", 2.0, [])
    f.idle_p50, f.idle_p99 = await alone("idle")

    # 2. baseline
    metrics = await quiet(daemon, scrape, injected)
    f.fds_baseline = open_fds(daemon.pid)
    f.tasks_baseline = int(metrics["relay_asyncio_tasks"])
    f.rss_start_kb = rss_kb(daemon.pid)

    # 3. capacity
    f.capacity, f.injection_only = await capacity(
        daemon.port, work / "capacity.json", scrape, injected
    )
    f.rate = min(LIMITS.load_share * f.capacity, MAX_RATE)
    await quiet(daemon, scrape, injected)

    # 4. steady load (its own process) with the probe session beside it, sampled
    latencies: list[tuple[float, float]] = []
    rss: list[tuple[float, int]] = []
    done = asyncio.Event()

    readings: list[tuple[float, float, float]] = []  # (time, machine busy, the test's CPU)

    async def sample() -> None:
        tick = 0
        while not done.is_set():
            now = time.monotonic()
            readings.append((now, machine_busy_seconds(), ours_now(daemon.pid, sink_pid)))
            rss.append((now, rss_kb(daemon.pid)))
            f.fds_peak = max(f.fds_peak, open_fds(daemon.pid))
            if tick % 5 == 0:
                m = await scrape()
                f.spool_peak = max(f.spool_peak, int(m.get("relay_spool_messages", 0)))
                f.tasks_peak = max(f.tasks_peak, int(m.get("relay_asyncio_tasks", 0)))
            tick += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 1.0)

    f.loadavg = (os.getloadavg()[0], 0.0)
    cpu_before = cpu_seconds(daemon.pid)
    ours_before = ours(sink_pid)
    busy_before = machine_busy_seconds()
    start = time.monotonic()
    sampler = asyncio.create_task(sample())
    load_out = work / "load.json"
    try:
        await asyncio.gather(
            run_process(
                *("tests.reliability.steady_load", "--port", str(daemon.port)),
                *("--rate", str(f.rate - PROBE_RATE), "--sessions", str(SESSIONS - 1)),
                *("--seconds", str(seconds), "--run", "load", "--out", str(load_out)),
                within=seconds + 120,
            ),
            probe("probe", seconds, latencies),
        )
    finally:
        done.set()
        await sampler
    elapsed = time.monotonic() - start
    load = read_json(str(load_out))
    injected.accepted += load["accepted"]
    f.refused += load["refused"]
    f.achieved = (load["accepted"] + len(latencies)) / seconds
    f.cpu_share = (cpu_seconds(daemon.pid) - cpu_before) / elapsed
    others = machine_busy_seconds() - busy_before - (ours(sink_pid) - ours_before)
    f.other_cores = max(0.0, others - (cpu_seconds(daemon.pid) - cpu_before)) / elapsed
    f.loadavg = (f.loadavg[0], os.getloadavg()[0])
    warm = start + min(WARMUP_SECONDS, seconds / 4)
    after_warmup = [kb for t, kb in rss if t >= warm]
    f.rss_warm_kb = after_warmup[0]
    f.rss_peak_kb = max(after_warmup)
    f.load_p50 = percentile([x for _, x in latencies], 50)
    f.load_p99 = percentile([x for _, x in latencies], 99)
    f.window_p99 = windows(latencies, start, 10.0)
    f.disturbed = disturbed_windows(readings, start, 10.0, LIMITS.other_cores)
    left = undisturbed(latencies, start, 10.0, f.disturbed)
    if f.disturbed and left:  # none left: latency_judged says not judged
        f.judged_p99 = percentile(left, 99)
    own = [x for t, x in load["latencies"] if t >= start + 2.0]  # past each first message
    f.sessions_p50 = percentile(own, 50)
    f.sessions_p99 = percentile(own, 99)

    # 5. drained, the probe alone again (the idle p99 after the load), back at the baseline
    await quiet(daemon, scrape, injected)
    f.idle_after_p50, f.idle_after_p99 = await alone("idle-after")
    metrics = await quiet(daemon, scrape, injected)
    f.delivered = delivered(metrics)
    f.injected = injected.accepted

    async def back() -> bool:
        m = await scrape()
        f.fds_after = open_fds(daemon.pid)
        f.tasks_after = int(m["relay_asyncio_tasks"])
        return f.fds_after <= f.fds_baseline and f.tasks_after <= f.tasks_baseline

    with contextlib.suppress(AssertionError):  # judged (with the figures) below
        await until(back, 20.0, "fds and tasks back at the baseline")
    f.rss_end_kb = rss_kb(daemon.pid)
    return f


async def check_under_load(
    rig: Rig, seconds: float, capsys: pytest.CaptureFixture[str], limits: Limits = LIMITS
) -> None:
    f = await run_steady_load(rig.daemon, rig.sink.pid, seconds, rig.sink_out.parent)
    summary = rig.sink_summary()
    arrivals = summary["arrivals"]
    assert isinstance(arrivals, dict)
    f.arrived = len(arrivals)
    f.duplicates = int(str(summary["duplicates"]))
    if not latency_judged(f, limits):
        f.notes.append(
            f"latency not judged: other work took {f.other_cores:.2f} cores "
            f"(bound {limits.other_cores})"
        )
    f.notes.append(f"RSS growth bound {limits.rss_growth_kb / 1024:.0f} MB")
    with capsys.disabled():
        print("\n" + "\n".join(f.lines()), flush=True)
    assert judge(f, limits) == []


async def test_steady_load_for_two_minutes(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    await check_under_load(rig, 120.0, capsys)


@pytest.mark.soak
async def test_steady_load_soak(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    """`make soak`: RELAY_SOAK_SECONDS of steady load (600 unless set)."""
    seconds = float(os.environ.get("RELAY_SOAK_SECONDS", "600"))
    await check_under_load(rig, seconds, capsys, SOAK_LIMITS)
