"""The queue core asks SharedLimits (relay/cluster implements it over Redis): a scripted
stand-in, since the decision under test is the core's, not Redis'."""

from __future__ import annotations

from collections.abc import Sequence

from relay.schedule.actions import Wait
from relay.schedule.limits import Cap
from relay.schedule.queues import Queues
from relay.schedule.route_settings import ThrottleRef
from relay.schedule.shared import SHARED_RETRY
from tests.unit.schedule.test_queues import ONE, T0, Core, job, opened, send


class Scripted:
    """Answers as told: `waits` for take (then 0), `leases` grants for acquire."""

    def __init__(self, waits: list[float] | None = None, leases: int = 99) -> None:
        self.waits = waits or []
        self.leases = leases
        self.taken: list[ThrottleRef] = []
        self.held = 0
        self.released = 0

    def take(self, throttle: ThrottleRef, now: float) -> float:
        if self.waits:
            return self.waits.pop(0)
        self.taken.append(throttle)
        return 0.0

    def acquire(self, caps: Sequence[Cap], now: float) -> bool:
        if self.held >= self.leases:
            return False
        self.held += 1
        return True

    def release(self, caps: Sequence[Cap]) -> None:
        self.held -= 1
        self.released += 1


def shared_core(conf: str, shared: Scripted) -> Core:
    core = Core(conf)
    core.q = Queues(core.q.selector, core.policies, on_work=core._on_work, shared=shared)
    return core


def test_a_shared_message_throttle_holds_the_job_and_spares_the_local_bucket() -> None:
    shared = Scripted(waits=[0.25])
    conf = 'outbound_throttle_messages = "1/10"\ncluster_outbound_throttle_messages = "5/1"\n'
    core = shared_core(conf + ONE, shared)
    core.q.schedule(job())
    (conn,) = core.open()
    assert core.q.next_job(conn, T0) == Wait(T0 + 0.25)  # the shared bucket says wait
    # The local bucket (1 per 10 s) was not spent by the refused attempt: it allows it now.
    send(core, conn, T0 + 0.25)
    assert [ref[0][0] for ref in shared.taken] == ["cluster_messages"]


def test_without_a_cluster_stanza_the_cluster_options_are_not_asked() -> None:
    core = Core('cluster_outbound_throttle_messages = "1/10"\n' + ONE)
    for _ in range(3):
        core.q.schedule(job())
    (conn,) = core.open()
    for _ in range(3):
        core.step()
    for _ in range(3):
        send(core, conn)  # no SharedLimits: nothing throttles


def test_shared_leases_cap_connections_and_are_released_on_close() -> None:
    shared = Scripted(leases=2)
    conf = (
        "cluster_scope_max_outbound_connections = 2\nconnection_allocation_aggressiveness = high\n"
    )
    core = shared_core(conf + ONE, shared)
    for _ in range(4):
        core.q.schedule(job())
    conns = []
    for _ in range(4):
        actions, wake = core.step()
        conns += opened(actions)
    assert len(conns) == 2 and shared.held == 2
    actions, wake = core.step(T0)
    assert wake <= T0 + SHARED_RETRY  # a refused lease is asked for again soon
    for conn in conns:
        core.q.connection_opened(conn)
    core.q.connection_closed(conns[0], T0)
    assert shared.released == 1 and shared.held == 2  # the freed lease went to a new one
