"""What fair scheduling costs per message: the queue operations the queue core does on each
message (schedule/queues.py: the due FIFO's append, truth test, peek and pop; the ready
queue's append, length checks and pop), on FairQueue and on a plain deque (what the core
used before fair scheduling). The difference is fair scheduling's cost.

    .venv/bin/python -m tests.bench.fair_cost [--jobs 100000] [--rounds 5]

Scenarios: one tenant, all bulk (the common case); ten tenants with weights and one message
in seven transactional. A queue with a `size` attribute is asked it (as the core does since
FairQueue has one), else len(). `--core` also runs the jobs through the whole queue core
(Queues: schedule, step, next_job, job_finished; one binding, one connection): compare two
trees' numbers for what the core spends per message. Pure (no sockets); prints ns per
message, best of the rounds, in CPU time (process_time: the machine may be shared)."""

from __future__ import annotations

import argparse
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from relay.schedule.fair import Fairness, FairQueue
from relay.schedule.jobs import Job


def jobs(count: int, tenants: int, transactional_every: int) -> list[Job]:
    out = []
    for i in range(count):
        tx = transactional_every and i % transactional_every == 0
        out.append(
            Job(
                f"m{i}",
                "s@x.test",
                "g",
                None,
                "one.test",
                0.0,
                [(0, f"r{i}@one.test", 0)],
                tenant=f"t{i % tenants}" if tenants else None,
                priority="transactional" if tx else None,
            )
        )
    return out


def through_core(make: Callable[[], Any], work: list[Job]) -> float:
    """Seconds for every job to go through a due queue and a ready queue as the core does."""
    due, ready = make(), make()
    start = time.process_time()
    for job in work:  # _make_due
        due.append(job)
    while due:  # _round: truth test, peek, place, pop, truth test
        job = due[0]
        ready.append(job)  # _place
        len(ready)  # has_room / _maybe_open
        due.popleft()
        if due:
            pass
        if ready:  # next_job
            ready.popleft()
        len(ready)
    return time.process_time() - start


def through_core_sized(make: Callable[[], Any], work: list[Job]) -> float:
    """through_core, asking the queues' `size` attribute instead of len() / truth tests."""
    due, ready = make(), make()
    start = time.process_time()
    for job in work:
        due.append(job)
    while due.size:
        job = due[0]
        ready.append(job)
        ready.size  # noqa: B018
        due.popleft()
        if due.size:
            pass
        if ready.size:
            ready.popleft()
        ready.size  # noqa: B018
    return time.process_time() - start


CORE = """
binding_group "g" { binding "b1" { bind_address = 127.0.0.2 } }
max_outbound_connections = 1
tenant "t0" { weight = 3 }
"""


def whole_core(work: list[Job]) -> float:
    """Seconds for the queue core to schedule, place and hand out every job."""
    from relay.bind.build import build_selector
    from relay.bind.suspensions import SuspensionTable
    from relay.config import loads
    from relay.schedule.actions import OpenConnection, Send
    from relay.schedule.live_routes import LiveRoutes
    from relay.schedule.queues import Queues
    from relay.wiring import compile_settings

    settings = compile_settings(loads(CORE))
    selector, _ = build_selector(
        settings.groups, settings.bindings.values(), SuspensionTable(), plumbed=lambda a: True
    )
    q = Queues(selector, LiveRoutes(settings.routes), fairness=settings.fairness)
    now = 1_000_000.0
    start = time.process_time()
    for job in work:
        job.due = now
        q.schedule(job)
    conn = None
    done = 0
    while done < len(work):
        for action in q.step(now):
            if isinstance(action, OpenConnection):
                conn = action.connection
                q.connection_opened(conn)
        assert conn is not None
        while True:
            step = q.next_job(conn, now)
            if not isinstance(step, Send):
                break
            q.job_finished(step.job)
            done += 1
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--core", action="store_true", help="also through the queue core")
    args = parser.parse_args()
    fairness = Fairness(weights={"t0": 3, "t1": 2})
    for name, work in (
        ("one tenant, bulk", jobs(args.jobs, 1, 0)),
        ("10 tenants, 1/7 transactional", jobs(args.jobs, 10, 7)),
    ):
        plain = min(through_core(deque, work) for _ in range(args.rounds))
        sized = hasattr(FairQueue(fairness), "size")
        run = through_core_sized if sized else through_core
        fair = min(run(lambda: FairQueue(fairness), work) for _ in range(args.rounds))
        per = 1e9 / len(work)
        line = (
            f"{name:32} deque {plain * per:6.0f} ns/msg  fair {fair * per:6.0f} ns/msg"
            f"  cost {(fair - plain) * per:6.0f} ns/msg"
        )
        if args.core:
            core = min(whole_core(work) for _ in range(args.rounds))
            line += f"  core {core * per:6.0f} ns/msg"
        print(line)


if __name__ == "__main__":
    main()
