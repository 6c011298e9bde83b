"""The queue core driven with plain data and float times: assertions are on its actions."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from relay.bind.build import build_selector
from relay.bind.selector import Selector
from relay.bind.suspensions import SuspensionTable
from relay.config import loads
from relay.schedule.actions import (
    CLOSE,
    Action,
    LocalDisposition,
    OpenConnection,
    Resume,
    Send,
    Wait,
    WakeAt,
)
from relay.schedule.jobs import Job
from relay.schedule.live_routes import LiveRoutes
from relay.schedule.local_replies import Local
from relay.schedule.queues import (
    HORIZON,
    LOCAL_LIMIT_RETRY,
    NO_ROUTE_RETRY,
    Queues,
    QueueSizes,
)
from relay.schedule.ready import Connection
from relay.schedule.route_settings import RouteSettingsSource
from relay.wiring import compile_settings

T0 = 1_000_000.0
ONE = 'binding_group "g" { binding "b1" { bind_address = 127.0.0.2 } }\n'


class Held(LiveRoutes):
    """Adaptive delivery holding (blackholing) some binding x domain pairs."""

    def __init__(self, routes: RouteSettingsSource) -> None:
        super().__init__(routes)
        self.holds: dict[tuple[str, str], str] = {}

    def held(self, binding: str, domain: str, now: float) -> str | None:
        return self.holds.get((binding, domain))


class Core:
    def __init__(self, conf: str = ONE, *, max_in_flight: int = 20000) -> None:
        self.suspensions = SuspensionTable()
        self.policies = Held(compile_settings(loads(conf)).routes)
        self.work = 0
        self.q = Queues(
            self._selector(conf), self.policies, max_in_flight=max_in_flight, on_work=self._on_work
        )

    def _selector(self, conf: str) -> Selector:
        settings = compile_settings(loads(conf))
        selector, _ = build_selector(
            settings.groups, settings.bindings.values(), self.suspensions, plumbed=lambda a: True
        )
        return selector

    def _on_work(self) -> None:
        self.work += 1

    def reload(self, conf: str) -> None:
        self.policies.reload(compile_settings(loads(conf)).routes)
        self.q.reload(self._selector(conf))

    def step(self, now: float = T0) -> tuple[list[Action], float]:
        actions = self.q.step(now)
        last = actions[-1]
        assert isinstance(last, WakeAt)
        return actions[:-1], last.at

    def open(self, now: float = T0) -> list[Connection]:
        """Step and report every connection it asks for as opened."""
        actions, _ = self.step(now)
        conns = opened(actions)
        for conn in conns:
            self.q.connection_opened(conn)
        return conns

    def sizes(self) -> QueueSizes:
        return self.q.sizes()


_ids = iter(range(1_000_000))


def job(
    domain: str = "one.test",
    *,
    due: float = T0,
    group: str = "g",
    binding: str | None = None,
    received_at: float = T0,
) -> Job:
    n = next(_ids)
    return Job(
        f"m{n}", "s@x.test", group, binding, domain, received_at, [(0, f"r{n}@x", 0)], due=due
    )


def opened(actions: list[Action]) -> list[Connection]:
    return [a.connection for a in actions if isinstance(a, OpenConnection)]


def resumed(actions: list[Action]) -> list[Connection]:
    return [a.connection for a in actions if isinstance(a, Resume)]


def send(core: Core, conn: Connection, now: float = T0) -> Job:
    step = core.q.next_job(conn, now)
    assert isinstance(step, Send), step
    return step.job


def test_due_domains_are_served_round_robin_one_job_each_per_step() -> None:
    core = Core()
    for _ in range(5):
        core.q.schedule(job("big.test"))
    core.q.schedule(job("small.test"))  # due last, served first round all the same
    actions, wake = core.step()
    assert wake == T0  # placed something: step again at once
    assert {c.domain for c in opened(actions)} == {"big.test", "small.test"}
    assert {(r.domain, r.queued) for r in core.q.ready_rows()} == {
        ("big.test", 1),
        ("small.test", 1),
    }
    for _ in range(4):
        core.step()
    assert core.sizes() == QueueSizes(scheduled=0, due=0, ready=6, in_flight=6, connections=2)
    assert core.step() == ([], T0 + HORIZON)  # nothing left: sleep until the horizon


def test_in_flight_is_bounded_and_a_finished_job_makes_room() -> None:
    core = Core(max_in_flight=2)
    for domain in ("a.test", "b.test", "c.test"):
        core.q.schedule(job(domain))
    first = core.open()
    assert core.sizes().in_flight == 2 and core.sizes().due == 1
    assert core.step() == ([], T0 + HORIZON)
    sent = send(core, first[0])
    core.work = 0
    core.q.job_finished(sent)
    assert core.work == 1  # a due queue waits: the owner is asked to step
    actions, _ = core.step()
    assert [c.domain for c in opened(actions)] == ["c.test"]
    assert core.sizes().in_flight == 2


def test_a_shared_cap_releases_an_idle_connection_to_a_starved_queue() -> None:
    core = Core(
        'binding_group "g" { scope_max_outbound_connections = 1\n'
        '  binding "b1" { bind_address = 127.0.0.2 } }\n'
    )
    core.q.schedule(job("one.test"))
    (one,) = core.open()
    core.q.job_finished(send(core, one))
    assert core.q.next_job(one, T0) == Wait(T0 + 5.0)  # parked for idle_timeout
    assert core.q.ready_rows()[0].idle_connections == 1

    core.q.schedule(job("two.test"))
    actions, _ = core.step(T0 + 1)
    assert opened(actions) == []  # the group's one slot is taken...
    assert resumed(actions) == [one]  # ...by an idle connection, told to let go
    assert core.q.next_job(one, T0 + 1) is CLOSE
    (two,) = opened(core.q.connection_closed(one, T0 + 1))
    assert two.domain == "two.test"
    assert core.sizes().connections == 1


def test_message_throttle_makes_the_connection_wait() -> None:
    core = Core('outbound_throttle_messages = "2/10"\n' + ONE)
    for _ in range(3):
        core.q.schedule(job())
    (conn,) = core.open()
    core.step()
    core.step()
    assert core.sizes().ready == 3
    first, second = send(core, conn), send(core, conn)
    assert core.q.next_job(conn, T0) == Wait(T0 + 5.0)  # 2 per 10 s: the third at +5
    assert core.sizes().ready == 0 and core.sizes().in_flight == 3  # held by conn
    third = send(core, conn, T0 + 5.0)
    assert len({first.message_id, second.message_id, third.message_id}) == 3


def test_the_next_job_is_taken_ahead_and_sent_next_or_given_back_first_in_line() -> None:
    core = Core()
    for _ in range(3):
        core.q.schedule(job())
    (conn,) = core.open()
    core.step()
    core.step()
    first = send(core, conn)
    ahead = core.q.take_next(conn)
    assert ahead is not None and core.q.take_next(conn) is None  # one at a time
    assert core.sizes().ready == 1 and core.sizes().in_flight == 3
    core.q.job_finished(first)
    assert send(core, conn) is ahead  # the held job is the connection's next Send
    ahead2 = core.q.take_next(conn)
    assert ahead2 is not None
    # closed with it held: first in line again, for the connection opened in its place
    (again,) = opened(core.q.connection_closed(conn, T0))
    assert core.q.ready_rows()[0].queued == 1
    core.q.connection_opened(again)
    assert send(core, again) is ahead2


def test_nothing_is_taken_ahead_under_a_message_throttle_or_when_stopping() -> None:
    core = Core('outbound_throttle_messages = "100/1"\n' + ONE)
    for _ in range(2):
        core.q.schedule(job())
    (conn,) = core.open()
    core.step()
    send(core, conn)
    assert core.q.take_next(conn) is None  # each message waits for the bucket
    plain = Core()
    for _ in range(2):
        plain.q.schedule(job())
    (other,) = plain.open()
    plain.step()
    send(plain, other)
    plain.q.stop()
    assert plain.q.take_next(other) is None


def test_connection_throttle_opens_the_next_connection_when_allowed() -> None:
    core = Core(
        'outbound_throttle_connections = "1/10"\n'
        "connection_allocation_aggressiveness = high\n" + ONE
    )
    core.q.schedule(job())
    core.q.schedule(job())
    assert len(core.open()) == 1
    actions, _ = core.step()
    assert opened(actions) == []
    assert core.step() == ([], T0 + 10.0)  # wake up when the bucket allows one more
    assert len(opened(core.step(T0 + 10.0)[0])) == 1


def test_all_bindings_suspended_waits_for_the_earliest_resumption() -> None:
    core = Core(
        'binding_group "g" { binding "b1" { bind_address = 127.0.0.2 }\n'
        '  binding "b2" { bind_address = 127.0.0.3 } }\n'
    )
    core.suspensions.suspend("b1", "one.test", T0 + 50, "test")
    core.suspensions.suspend("b2", "one.test", T0 + 80, "test")
    core.q.schedule(job())
    assert core.step() == ([], T0 + 50)
    assert core.q.scheduled_rows()[0].blocked_until == T0 + 50
    actions, _ = core.step(T0 + 50)
    assert [c.binding for c in opened(actions)] == ["b1"]


def test_a_full_ready_queue_blocks_its_key_until_a_job_leaves_it() -> None:
    core = Core("max_resident_active_queue = 1\n" + ONE)
    core.q.schedule(job())
    core.q.schedule(job())
    (conn,) = core.open()
    assert core.step() == ([], T0 + HORIZON)  # blocked until room, no timer
    row = core.q.scheduled_rows()[0]
    assert (row.due, row.blocked_until) == (1, None)
    core.work = 0
    send(core, conn)
    assert core.work == 1  # room again: the key is back in the ring
    actions, _ = core.step()
    assert actions == [] and core.sizes().ready == 1  # placed; the idle-free conn takes it


def test_local_connect_failure_retries_soon_without_an_attempt() -> None:
    core = Core()
    jobs = [job(), job()]
    for j in jobs:
        core.q.schedule(j)
    actions, _ = core.step()
    core.step()
    (conn,) = opened(actions)
    assert core.q.connect_failed(conn, T0, local=True) == []
    assert core.q.connection_closed(conn, T0) == []
    assert core.sizes() == QueueSizes(scheduled=2, due=0, ready=0, in_flight=0, connections=0)
    assert [j.due for j in jobs] == [T0 + LOCAL_LIMIT_RETRY] * 2
    assert [j.recipients[0][2] for j in jobs] == [0, 0]  # attempts unchanged
    assert len(core.open(T0 + LOCAL_LIMIT_RETRY)) == 1


def test_remote_connect_failures_delay_the_route_after_connect_timeout_to_delay() -> None:
    core = Core("connect_timeout_to_delay = 150\nretry_interval = 100\n" + ONE)
    pending = job()
    core.q.schedule(pending)
    for now in (T0, T0 + 100, T0 + 200):
        actions, _ = core.step(now)
        (conn,) = opened(actions)
        failed = core.q.connect_failed(conn, now)
        assert failed == [pending]  # the queued job shares the failure
        assert core.q.connection_closed(conn, now) == []
        pending = replace(pending, due=now + 100)
        core.q.job_finished(failed[0], retry=pending)
        if now < T0 + 200:
            assert core.q.unreachable_until("b1", "one.test") is None
    assert core.q.unreachable_until("b1", "one.test") == T0 + 300  # failing for 200 s >= 150
    core.q.schedule(job(due=T0 + 200))
    assert core.step(T0 + 200) == ([], T0 + 300)  # new mail waits, no connection
    assert core.sizes().connections == 0


def test_a_permanent_connect_failure_does_not_delay_the_route() -> None:
    core = Core("connect_timeout_to_delay = 0\n" + ONE)
    core.q.schedule(job())
    (conn,) = opened(core.step()[0])
    (failed,) = core.q.connect_failed(conn, T0, permanent=True)
    assert core.q.unreachable_until("b1", "one.test") is None
    core.q.job_finished(failed)
    core.q.connection_closed(conn, T0)
    assert core.sizes().in_flight == 0


def test_reload_applies_new_policies_and_retries_blocked_keys() -> None:
    core = Core('domain "one.test" { suspend_delivery = true }\n' + ONE)
    core.q.schedule(job())
    assert core.step() == ([], T0 + HORIZON)
    assert core.q.scheduled_rows()[0].blocked_until is None
    core.work = 0
    core.reload("retry_interval = 50\n" + ONE)
    assert core.work >= 1
    assert core.q.policy("b1", "one.test").retry.retry_interval == 50
    assert len(opened(core.step()[0])) == 1


def test_flush_makes_delayed_mail_due_now() -> None:
    core = Core()
    core.q.schedule(job("one.test", due=T0 + 500))
    core.q.schedule(job("two.test", due=T0 + 500))
    assert core.step() == ([], T0 + 500)
    assert core.q.flush(T0, "ONE.test") == 1
    assert [c.domain for c in opened(core.step()[0])] == ["one.test"]
    assert core.q.flush(T0) == 1
    assert [c.domain for c in opened(core.step()[0])] == ["two.test"]


def test_a_not_attempted_job_is_requeued_at_the_front() -> None:
    core = Core("max_resident_active_queue = 1\n" + ONE)
    first, second = job(), job()
    core.q.schedule(first)
    core.q.schedule(second)
    (conn,) = core.open()
    core.step()  # second: blocked, the ready queue is full
    assert send(core, conn) is first
    again = replace(first, recipients=[(1, "other@one.test", 0)])
    core.q.job_finished(first, requeue=again)  # a per-connection cap stopped one recipient
    core.step()
    assert send(core, conn) is again  # before `second`, which was due earlier
    core.step()
    assert send(core, conn) is second


def test_idle_timeout_closes_and_every_count_returns_to_zero() -> None:
    core = Core()
    core.q.schedule(job())
    (conn,) = core.open()
    core.q.job_finished(send(core, conn))
    assert core.q.next_job(conn, T0) == Wait(T0 + 5.0)
    assert core.q.next_job(conn, T0 + 5.0) is CLOSE  # the idle deadline passed
    assert core.q.connection_closed(conn, T0 + 5.0) == []
    assert core.sizes() == QueueSizes(0, 0, 0, 0, 0)
    assert core.q.caps.count(("binding_domain", "b1", "one.test")) == 0
    assert core.q.ready_rows() == []


def test_an_idle_connection_takes_new_mail_instead_of_a_new_connection() -> None:
    core = Core()
    core.q.schedule(job())
    (conn,) = core.open()
    core.q.job_finished(send(core, conn))
    assert isinstance(core.q.next_job(conn, T0), Wait)
    core.q.schedule(job(due=T0 + 1))
    actions, _ = core.step(T0 + 1)
    assert actions == [Resume(conn)]
    send(core, conn, T0 + 1)


def test_a_connection_closing_with_mail_left_is_replaced() -> None:
    core = Core()
    core.q.schedule(job())
    core.q.schedule(job())
    (conn,) = core.open()
    core.step()
    core.q.job_finished(send(core, conn))  # then the session is unusable (max deliveries)
    (again,) = opened(core.q.connection_closed(conn, T0))
    assert again.queue is conn.queue


def test_stop_closes_idle_connections_and_leaves_queued_mail() -> None:
    core = Core()
    core.q.schedule(job("one.test"))
    core.q.schedule(job("two.test"))
    core.q.schedule(job("two.test"))
    idle, busy = sorted(core.open(), key=lambda c: c.domain)
    core.step()
    core.q.job_finished(send(core, idle))
    assert isinstance(core.q.next_job(idle, T0), Wait)
    sending = send(core, busy)
    assert core.q.stop() == [Resume(idle)]
    assert core.q.next_job(idle, T0) is CLOSE
    core.q.job_finished(sending)  # the current message finishes
    assert core.q.next_job(busy, T0) is CLOSE  # the next stays spooled
    assert core.q.connection_closed(idle, T0) == []
    assert core.q.connection_closed(busy, T0) == []  # no replacement while stopping
    assert core.sizes().connections == 0 and core.sizes().ready == 1
    core.q.schedule(job("three.test"))
    assert core.step() == ([], T0 + HORIZON)  # nothing is dispatched any more


@pytest.mark.parametrize(
    ("conf", "hold", "received", "reason"),
    [
        ('domain "one.test" { blackhole = internal }\n', None, T0, Local.BLACKHOLE_INTERNAL),
        ('domain "one.test" { blackhole = true }\n', None, T0, Local.BLACKHOLE_INLINE),
        ("never_attempt_expired_messages = true\n", None, T0 - 90000, Local.EXPIRED),
        ("", "too many complaints", T0, Local.ADAPTIVE_BLACKHOLE),
    ],
)
def test_local_dispositions(conf: str, hold: str | None, received: float, reason: Local) -> None:
    core = Core(conf + ONE)
    if hold is not None:
        core.policies.holds[("b1", "one.test")] = hold
    queued = job(received_at=received)
    core.q.schedule(queued)
    (action,) = core.step()[0]
    assert isinstance(action, LocalDisposition)
    assert (action.job, action.reason, action.detail) == (queued, reason, hold)
    assert core.sizes().in_flight == 1 and core.sizes().connections == 0
    core.q.job_finished(queued)
    assert core.sizes().in_flight == 0


def test_an_expired_job_is_attempted_unless_never_attempt_expired() -> None:
    core = Core()
    core.q.schedule(job(received_at=T0 - 90000))
    assert len(opened(core.step()[0])) == 1


@pytest.mark.parametrize(("aggressiveness", "connections"), [("normal", 3), ("high", 5)])
def test_connection_allocation_aggressiveness(aggressiveness: str, connections: int) -> None:
    core = Core(
        f"connection_allocation_aggressiveness = {aggressiveness}\n"
        "max_outbound_connections = 5\n" + ONE
    )
    for _ in range(20):
        core.q.schedule(job())
    opens = [conn for _ in range(20) for conn in opened(core.step()[0])]
    assert len(opens) == connections  # normal: ceil(20 / 8); high: one per message, to the cap


def test_an_unusable_explicit_binding_falls_back_to_the_group() -> None:
    core = Core()
    queued = job(binding="gone")  # e.g. removed by a reload
    core.q.schedule(queued)
    assert [c.binding for c in opened(core.step()[0])] == ["b1"]
    assert queued.binding is None


def test_a_group_without_usable_bindings_looks_again_later() -> None:
    core = Core()
    core.q.schedule(job(group="empty"))
    assert core.step() == ([], T0 + NO_ROUTE_RETRY)


def test_counts_never_drift_under_random_events() -> None:
    """A random world: connections fail (locally or not), send, park, time out, close,
    stop early; whatever happens, once everything settles every count is zero."""
    conf = (
        "max_resident_active_queue = 3\nconnection_allocation_aggressiveness = high\n"
        'outbound_throttle_messages = "20/1"\n'
        'binding_group "g" { scope_max_outbound_connections = 3\n'
        '  binding "b1" { bind_address = 127.0.0.2 }\n'
        '  binding "b2" { bind_address = 127.0.0.3 } }\n'
    )
    for seed in range(30):
        rng = random.Random(seed)
        core = Core(conf, max_in_flight=8)
        now = T0
        for _ in range(40):
            core.q.schedule(job(rng.choice(["a.test", "b.test", "c.test"]), due=now))
        waiting: list[Connection] = []  # opened, waiting to ask
        opening: list[Connection] = []
        local: list[Job] = []
        for _ in range(3000):
            choice = rng.random()
            if choice < 0.3:
                actions = core.q.step(now)
                for action in actions:
                    if isinstance(action, OpenConnection):
                        opening.append(action.connection)
                    elif isinstance(action, LocalDisposition):
                        local.append(action.job)
                    elif isinstance(action, Resume) and action.connection not in waiting:
                        waiting.append(action.connection)
            elif choice < 0.45 and opening:
                conn = opening.pop(rng.randrange(len(opening)))
                if rng.random() < 0.2:
                    for failed in core.q.connect_failed(conn, now, local=rng.random() < 0.5):
                        core.q.job_finished(failed, retry=replace(failed, due=now + 2))
                    opening.extend(opened(core.q.connection_closed(conn, now)))
                else:
                    core.q.connection_opened(conn)
                    waiting.append(conn)
            elif choice < 0.9 and waiting:
                conn = waiting.pop(rng.randrange(len(waiting)))
                step = core.q.next_job(conn, now)
                if isinstance(step, Send):
                    retry = replace(step.job, due=now + 3) if rng.random() < 0.2 else None
                    core.q.job_finished(step.job, retry=retry)
                    waiting.append(conn)
                elif isinstance(step, Wait):
                    waiting.append(conn)  # asks again, later (timed out) or when resumed
                else:
                    opening.extend(opened(core.q.connection_closed(conn, now)))
            else:
                now += rng.choice([0.01, 0.5, 3.0])
            if rng.random() < 0.0005:
                core.q.stop()
        core.q.stop()
        while opening or waiting:  # the owner winds down
            for conn in opening:
                core.q.connect_failed(conn, now, local=True)
                assert opened(core.q.connection_closed(conn, now)) == []
            opening = []
            for conn in waiting:
                step = core.q.next_job(conn, now)
                if isinstance(step, Send):
                    core.q.job_finished(step.job)
                if not isinstance(step, Send | Wait) or rng.random() < 0.5:
                    assert opened(core.q.connection_closed(conn, now)) == []
                    waiting.remove(conn)
                    break
            now += 5.0
        for finished in local:
            core.q.job_finished(finished)
        counts = core.sizes()
        assert (counts.in_flight - counts.ready, counts.connections) == (0, 0), seed
        assert core.q.caps.count(("scope", ("binding_group", "g"))) == 0


def test_take_removes_queued_jobs_wherever_they_wait() -> None:
    core = Core()
    later, now, other = job("one.test", due=T0 + 500), job("one.test"), job("two.test")
    for j in (later, now, other):
        core.q.schedule(j)
    assert set(core.q.take(lambda j: j.domain == "one.test")) == {later, now}
    assert (core.q.sizes().scheduled, core.q.sizes().in_flight) == (1, 2)
    core.q.job_finished(later)
    core.q.job_finished(now)
    assert [c.domain for c in opened(core.step()[0])] == ["two.test"]
    assert core.q.take(lambda j: j.domain == "one.test") == []


def test_take_reaches_a_ready_queue() -> None:
    core = Core()
    placed = job("one.test")
    core.q.schedule(placed)
    core.step()  # placed in the ready queue: in flight, a connection opening
    assert (core.q.sizes().ready, core.q.sizes().in_flight) == (1, 1)
    assert core.q.take(lambda j: True) == [placed]
    assert (core.q.sizes().ready, core.q.sizes().in_flight) == (0, 1)  # until handed back
    core.q.job_finished(placed)
    assert core.q.sizes().in_flight == 0
