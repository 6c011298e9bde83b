"""Fair scheduling: deficit round robin across tenants by weight, transactional before bulk
with bulk's minimum share; in the FairQueue itself and through the queue core (10,000
queued bulk messages of one tenant do not delay another tenant's one message)."""

from __future__ import annotations

import time

from relay.bind.build import build_selector
from relay.bind.suspensions import SuspensionTable
from relay.config import loads
from relay.schedule.actions import OpenConnection, Send, WakeAt
from relay.schedule.fair import Fairness, FairQueue
from relay.schedule.jobs import Job
from relay.schedule.live_routes import LiveRoutes
from relay.schedule.queues import Queues
from relay.wiring import compile_settings

T0 = 1_000_000.0
_n = iter(range(10_000_000))


def job(tenant: str | None = None, priority: str | None = None, domain: str = "one.test") -> Job:
    n = next(_n)
    return Job(
        f"m{n}",
        "s@x.test",
        "g",
        None,
        domain,
        T0,
        [(0, f"r{n}@{domain}", 0)],
        due=T0,
        tenant=tenant,
        priority=priority,
    )


def drain(queue: FairQueue, count: int) -> list[Job]:
    out = []
    for _ in range(count):
        assert queue[0] is queue[0]  # peeking uses no turn
        head = queue[0]
        got = queue.popleft()
        assert got is head
        out.append(got)
    return out


def test_without_tenants_it_is_a_fifo() -> None:
    jobs = [job() for _ in range(5)]
    queue = FairQueue(jobs=jobs)
    first = queue.popleft()
    queue.appendleft(first)  # a requeued job is next again
    assert drain(queue, 5) == jobs and not queue


def test_tenants_take_turns_by_weight() -> None:
    queue = FairQueue(Fairness(weights={"a": 3}))
    for _ in range(9):
        queue.append(job("a"))
    for _ in range(3):
        queue.append(job("b"))
    order = "".join(str(j.tenant) for j in drain(queue, 12))
    assert order == "aaabaaabaaab"


def test_one_message_of_another_tenant_behind_10000_waits_one_turn() -> None:
    queue = FairQueue()
    for _ in range(10_000):
        queue.append(job("a"))
    drain(queue, 10)
    queue.append(job("b"))
    order = [j.tenant for j in drain(queue, 3)]
    assert order.index("b") <= 1  # at most one of a's before it


def test_transactional_first_without_starving_bulk() -> None:
    queue = FairQueue(Fairness(bulk_share=0.25))
    for _ in range(20):
        queue.append(job("a", "bulk"))
    for _ in range(9):
        queue.append(job("b", "transactional"))
    order = "".join("T" if j.priority == "transactional" else "B" for j in drain(queue, 16))
    assert order == "TTTBTTTBTTTBBBBB"  # 1 in 4 bulk while transactional waits


def test_a_tenants_class_applies_when_the_message_names_none() -> None:
    queue = FairQueue(Fairness(classes={"alerts": "transactional"}))
    for _ in range(5):
        queue.append(job("news"))
    queue.append(job("alerts"))
    assert queue.popleft().tenant == "alerts"


def test_iteration_clear_and_extend_keep_every_job() -> None:
    queue = FairQueue()
    jobs = [job(t) for t in "abcabc"]
    queue.extend(jobs)
    assert sorted(j.message_id for j in queue) == sorted(j.message_id for j in jobs)
    rest = [j for j in queue if j.tenant != "b"]
    queue.clear()
    queue.extend(rest)
    assert len(queue) == 4 and {j.tenant for j in queue} == {"a", "c"}


CONF = """
binding_group "g" { binding "b1" { bind_address = 127.0.0.2 } }
max_outbound_connections = 1
tenant "vip" { weight = 2 }
"""


def test_core_a_single_message_overtakes_10000_queued_bulk_of_another_tenant() -> None:
    settings = compile_settings(loads(CONF))
    assert settings.fairness.weight("vip") == 2
    selector, _ = build_selector(
        settings.groups, settings.bindings.values(), SuspensionTable(), plumbed=lambda a: True
    )
    q = Queues(selector, LiveRoutes(settings.routes), fairness=settings.fairness)
    for _ in range(10_000):
        q.schedule(job("a"))
    conns = []
    for _ in range(300):  # fill the ready queue (250) and open the one connection
        actions = q.step(T0)
        conns += [a.connection for a in actions if isinstance(a, OpenConnection)]
        assert isinstance(actions[-1], WakeAt)
    (conn,) = conns
    q.connection_opened(conn)
    sent = []
    for _ in range(5):
        step = q.next_job(conn, T0)
        assert isinstance(step, Send)
        sent.append(step.job)
        q.job_finished(step.job)
        q.step(T0)
    q.schedule(job("b"))
    for _ in range(4):
        q.step(T0)
        step = q.next_job(conn, T0)
        assert isinstance(step, Send)
        sent.append(step.job)
        q.job_finished(step.job)
    # One turn of a in the due FIFO, one in the ready queue: within a few messages.
    assert [j.tenant for j in sent[5:]].index("b") <= 3


def test_fair_queue_cost_per_message_is_a_few_microseconds() -> None:
    fairness = Fairness(weights={"t0": 3})
    jobs = [job(f"t{i % 10}", "transactional" if i % 7 == 0 else None) for i in range(50_000)]
    plain = FairQueue()
    start = time.perf_counter()
    queue = FairQueue(fairness)
    for j in jobs:
        queue.append(j)
    while queue:
        queue[0]
        queue.popleft()
    per_message = (time.perf_counter() - start) / len(jobs)
    print(f"fair queue: {per_message * 1e6:.2f} us per message (append, peek, pop)")
    assert per_message < 20e-6  # generous for a loaded machine; ~1-2 us (tests/bench/fair_cost.py)
    assert not plain
