"""Selection cost with warm-up caps in force: the queue core placing jobs for one domain
through a group of N bindings, with none, half or all but one of them at their cap.

    .venv/bin/python -m tests.bench.selection_caps [--bindings 1000] [--jobs 20000]

Pure core (no sockets): the per-placement cost should not grow with N, capped or not. CPU
time (process_time): the machine may be shared."""

from __future__ import annotations

import argparse
import time

from relay.bind.build import build_selector
from relay.bind.suspensions import SuspensionTable
from relay.config import loads
from relay.schedule.jobs import Job
from relay.schedule.live_routes import LiveRoutes
from relay.schedule.queues import Queues
from relay.schedule.warmup import WarmupCounts, date_start
from relay.wiring import compile_settings

START = date_start("2026-12-01")
COLD = 'warmup_schedule = ( "%d/day" ) warmup_start = "2026-12-01"'


def run(bindings: int, jobs: int, capped: int) -> float:
    members = "\n".join(
        f'  binding "b{i}" {{ bind_address = 127.0.{i // 250}.{i % 250 + 2} '
        + (COLD % 1 if i < capped else "")
        + " }"
        for i in range(bindings)
    )
    conf = f'max_resident_active_queue = 1000000\nbinding_group "g" {{\n{members}\n}}\n'
    settings = compile_settings(loads(conf))
    selector, _ = build_selector(
        settings.groups, settings.bindings.values(), SuspensionTable(), plumbed=lambda a: True
    )
    counts = WarmupCounts()
    for i in range(capped):  # every capped binding has sent its 1 today already
        counts.add((f"b{i}", "binding_group", "g", "binding", f"b{i}"), START)
    q = Queues(selector, LiveRoutes(settings.routes), warmup=counts, max_in_flight=10**9)
    now = START + 3600
    for i in range(jobs):
        q.schedule(Job(f"m{i}", "s@x", "g", None, "one.test", now, [(0, "r@one.test", 0)], now))
    for i in range(bindings):  # route settings are built on first use: not measured here
        q.policy(f"b{i}", "one.test")
    start = time.process_time()
    for _ in range(jobs + 1):  # one placement per step (one destination); sizes() is O(N)
        q.step(now)
    elapsed = time.process_time() - start
    sizes = q.sizes()
    assert sizes.ready == jobs and not sizes.due, sizes
    return elapsed / jobs


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bindings", type=int, default=1000)
    p.add_argument("--jobs", type=int, default=20000)
    a = p.parse_args()
    for n in (4, a.bindings):
        for capped in (0, n // 2, n - 1):
            us = run(n, a.jobs, capped) * 1e6
            print(f"{n:5d} bindings, {capped:4d} capped: {us:6.2f} us per placement")


if __name__ == "__main__":
    main()
