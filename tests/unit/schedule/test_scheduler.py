"""The scheduler's async layer over an in-memory Transport and spool: the core's actions are
carried out (sessions opened, mail sent with the FBL header, outcomes recorded, failures and
local dispositions applied) and every count returns to zero."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from relay.bind.build import build_selector
from relay.clock import Cancellable, ManualClock
from relay.config import loads
from relay.deliver.settings import DeliverySettings
from relay.dispose.feedback import HEADER
from relay.outcome import Outcome, RecipientResult, Remote, Reply
from relay.schedule.scheduler import Scheduler
from relay.schedule.transport import ConnectFailed, OutboundMessage
from relay.spool.errors import MessageNotFound, SpoolError
from relay.spool.model import Envelope, Recipient, RecipientState
from relay.wiring import compile_settings

IP = "192.0.2.1"
CONF = """
retry_interval = 100
domain "fbl.test" { enable_fbl_header_insertion = enabled }
domain "bh.test" { blackhole = internal }
binding_group "g" { binding "b1" { bind_address = 127.0.0.2 } }
"""


class FakeSpool:
    def __init__(self) -> None:
        self.contents: dict[str, bytes] = {}
        self.states: dict[str, RecipientState] = {}
        self.errors: list[Exception] = []  # raised by the next loads

    async def load(self, message_id: str) -> bytes:
        if self.errors:
            raise self.errors.pop(0)
        return self.contents[message_id]

    async def update_recipients(self, message_id: str, updates: Sequence[Recipient]) -> bool:
        for update in updates:
            self.states[update.address] = update.state
        return True

    def evict(self, message_id: str) -> None:
        pass


class FakeSession:
    def __init__(self, transport: FakeTransport, binding: str) -> None:
        self.transport = transport
        self.binding = binding
        self.sent = 0
        self.sends_ahead = transport.ahead
        self.following: OutboundMessage | None = None  # the `then` of the last send

    @property
    def usable(self) -> bool:
        return self.sent < self.transport.per_connection

    async def send(
        self, message: OutboundMessage, then: OutboundMessage | None = None
    ) -> list[RecipientResult]:
        if self.following is not None:  # what a real session needs: the very same object
            assert message is self.following, (message, self.following)
        self.following = then
        self.transport.thens.append((message.message_id, then.message_id if then else None))
        self.sent += 1
        self.transport.started += 1
        await self.transport.gate.wait()
        self.transport.sent.append(message)
        ok = Reply.parse(250, "2.0.0 ok")
        return [RecipientResult(r, Outcome.DELIVERED, ok) for r in message.recipients]

    async def close(self) -> None:
        self.transport.closed += 1


class FakeTransport:
    def __init__(self, per_connection: int = 1000) -> None:
        self.per_connection = per_connection
        self.failures: list[ConnectFailed] = []  # raised by the next opens
        self.opened: list[tuple[str, str]] = []
        self.sent: list[OutboundMessage] = []
        self.started = self.closed = 0
        self.ahead = False  # sessions' sends_ahead
        self.thens: list[tuple[str, str | None]] = []  # (message, then) per send
        self.gate = asyncio.Event()
        self.gate.set()

    async def open(self, binding: str, domain: str, settings: DeliverySettings) -> FakeSession:
        if self.failures:
            raise self.failures.pop(0)
        self.opened.append((binding, domain))
        return FakeSession(self, binding)


class World:
    def __init__(self, per_connection: int = 1000) -> None:
        settings = compile_settings(loads(CONF))
        self.clock = ManualClock(1_000_000.0)
        self.spool = FakeSpool()
        self.transport = FakeTransport(per_connection)
        self.events: list[tuple[str, dict[str, object]]] = []
        selector, _ = build_selector(
            settings.groups, settings.bindings.values(), plumbed=lambda address: True
        )
        self.scheduler = Scheduler(
            self.spool,
            settings.routes,
            selector,
            self.transport,
            self.clock,
            events=lambda kind, fields: self.events.append((kind, fields)),
        )
        self._n = 0

    def send(self, *addresses: str) -> str:
        self._n += 1
        message_id = f"m{self._n}"
        self.spool.contents[message_id] = b"Subject: x\r\n\r\nbody\r\n"
        recipients = [Recipient(address) for address in addresses]
        self.scheduler.submit(
            Envelope(message_id, "s@x.test", "g", None, self.clock.now(), recipients)
        )
        return message_id

    def kinds(self, kind: str) -> list[dict[str, object]]:
        return [fields for k, fields in self.events if k == kind]

    def idle(self) -> bool:
        s = self.scheduler.statistics()
        return s.scheduled == s.due == s.ready == s.in_flight == s.connections == 0


async def until(condition: Callable[[], bool], rounds: int = 500) -> None:
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("not reached")


async def advance_until(clock: ManualClock, condition: Callable[[], bool]) -> float:
    """Move the clock in small steps until the condition holds; returns the time taken."""
    start = clock.now()
    for _ in range(200):
        if condition():
            return clock.now() - start
        await clock.advance(0.25)
    raise AssertionError("not reached")


async def test_actions_are_carried_out_and_counts_return_to_zero() -> None:
    world = World(per_connection=2)  # max_deliveries_per_connection: 2
    for i in range(4):
        world.send(f"a{i}@one.test")
    for i in range(3):
        world.send(f"b{i}@fbl.test")
    world.scheduler.start()
    await until(lambda: world.scheduler.statistics().delivered == 7)
    assert sorted(world.transport.opened) == [("b1", "fbl.test")] * 2 + [("b1", "one.test")] * 2
    for message in world.transport.sent:
        marked = message.content.startswith(HEADER.encode())
        assert marked == message.recipients[0].endswith("@fbl.test")
    assert set(world.spool.states.values()) == {RecipientState.DELIVERED}
    assert world.scheduler.statistics().connections == 1  # fbl.test's second, idle
    assert 4.5 <= await advance_until(world.clock, world.idle) <= 5.5  # idle_timeout
    assert world.transport.closed == 4
    await world.scheduler.stop()


async def test_a_session_that_sends_ahead_is_given_the_next_job_and_then_sent_it() -> None:
    world = World()
    world.transport.ahead = True
    world.transport.gate.clear()
    ids = [world.send(f"a{i}@one.test") for i in range(4)]
    world.scheduler.start()
    placed = world.scheduler.statistics
    await until(lambda: world.transport.started == 1 and placed().due == placed().scheduled == 0)
    world.transport.gate.set()
    await until(lambda: world.scheduler.statistics().delivered == 4)
    assert [m.message_id for m in world.transport.sent] == ids
    # the first send may start before the second job is placed
    assert world.transport.thens[0] in ((ids[0], None), (ids[0], ids[1]))
    assert world.transport.thens[1:] == [(ids[1], ids[2]), (ids[2], ids[3]), (ids[3], None)]
    assert world.transport.opened == [("b1", "one.test")]
    assert set(world.spool.states.values()) == {RecipientState.DELIVERED}
    await world.scheduler.stop()


async def test_connect_failures_local_then_remote() -> None:
    world = World()
    world.transport.failures = [
        ConnectFailed(Reply.make(421, "4.7.0", "host limit"), local=True),
        ConnectFailed(Reply.parse(451, "4.4.1 no answer"), remote=Remote("mx.one.test", IP, 25)),
    ]
    world.send("a@one.test")
    world.scheduler.start()
    await until(lambda: world.scheduler.statistics().scheduled == 1)
    assert world.kinds("connect_failure") == []  # relay's own limit: not an attempt
    waited = await advance_until(world.clock, lambda: world.scheduler.statistics().deferred == 1)
    assert waited <= 1.25
    (failure,) = world.kinds("connect_failure")
    assert (failure["remote"], failure["jobs"]) == ("mx.one.test [192.0.2.1]:25", 1)
    (deferral,) = world.kinds("transient_failure")
    assert deferral["attempt"] == 1 and deferral["response"] == "451 4.4.1 no answer"
    await until(lambda: world.scheduler.statistics().connections == 0)
    assert world.scheduler.flush("one.test") == 1
    await until(lambda: world.scheduler.statistics().delivered == 1)
    await world.scheduler.stop()


async def test_local_dispositions_and_spool_errors() -> None:
    world = World()
    world.spool.errors = [SpoolError("worker restarting"), MessageNotFound("m2")]
    world.send("a@one.test")  # cannot be loaded now: back in 5 s
    world.send("b@one.test")  # gone from the spool: dropped
    world.send("c@bh.test")  # blackhole = internal: delivered without a connection
    world.scheduler.start()
    await until(lambda: world.scheduler.statistics().delivered == 1)
    (drop,) = world.kinds("delivery")
    assert drop["response"] == "250 2.0.0 blackholed by configuration"
    await until(lambda: world.scheduler.statistics().scheduled == 1)
    waited = await advance_until(world.clock, lambda: world.scheduler.statistics().delivered == 2)
    assert 4.5 <= waited <= 5.5
    assert [m.recipients for m in world.transport.sent] == [("a@one.test",)]
    assert world.transport.opened == [("b1", "one.test")]
    await advance_until(world.clock, world.idle)
    await world.scheduler.stop()


async def test_stop_finishes_the_current_message_and_leaves_the_rest() -> None:
    world = World()
    world.transport.gate.clear()
    world.send("a@one.test")
    world.send("b@one.test")
    world.scheduler.start()
    await until(lambda: world.transport.started == 1)
    stopping = asyncio.create_task(world.scheduler.stop(deadline=30))
    await until(lambda: world.scheduler.core.sizes().ready == 1)
    world.transport.gate.set()
    await stopping
    assert [m.recipients for m in world.transport.sent] == [("a@one.test",)]
    assert world.spool.states == {"a@one.test": RecipientState.DELIVERED}
    assert world.transport.closed == 1


async def test_one_dispatcher_timer_serves_many_waits() -> None:
    """Every delivery is a round of the dispatcher, each ending in a wait for the same far
    time: the timer is set once for all of them, and set again only for an earlier time."""
    world = World()
    armed: list[float] = []  # the times the dispatcher's timer was set for
    call_later = world.clock.call_later

    def counting(seconds: float, callback: Callable[[], object]) -> Cancellable:
        if callback == world.scheduler._ring:
            armed.append(world.clock.now() + seconds)
        return call_later(seconds, callback)

    world.clock.call_later = counting  # type: ignore[method-assign]
    world.scheduler.start()
    for i in range(1, 11):
        world.send(f"a{i}@one.test")
        await until(lambda: world.scheduler.statistics().delivered == i)  # noqa: B023
        await world.clock.advance(0.25)
    assert len(armed) == 1, armed
    # relay's own limit refuses a session for two.test: its retry is due sooner
    world.transport.failures = [
        ConnectFailed(Reply.make(421, "4.7.0", "host limit"), local=True),
    ]
    world.send("b@two.test")
    await until(lambda: len(armed) == 2)
    assert len(armed) == 2 and armed[1] < armed[0], armed
    waited = await advance_until(world.clock, lambda: world.scheduler.statistics().delivered == 11)
    assert waited <= 1.25
    await world.scheduler.stop()


async def test_stop_cancels_sessions_after_the_deadline() -> None:
    world = World()
    world.transport.gate.clear()  # the receiver never answers
    world.send("a@one.test")
    world.scheduler.start()
    await until(lambda: world.transport.started == 1)
    await world.scheduler.stop(deadline=0.01)
    assert world.transport.sent == [] and world.spool.states == {}  # still spooled
    stats = world.scheduler.statistics()
    assert (stats.in_flight, stats.connections) == (0, 0)


def test_tls_required_no_is_read_from_the_header_section_only() -> None:
    from relay.schedule.scheduler import tls_policy_waived

    assert tls_policy_waived(b"Subject: x\r\nTLS-Required: No\r\n\r\nbody\r\n")
    assert tls_policy_waived(b"tls-required:no\r\nSubject: x\r\n\r\nbody\r\n")
    assert not tls_policy_waived(b"Subject: x\r\nTLS-Required: Yes\r\n\r\nbody\r\n")
    assert not tls_policy_waived(b"Subject: x\r\nX-TLS-Required: No\r\n\r\nbody\r\n")
    assert not tls_policy_waived(b"Subject: x\r\n\r\nTLS-Required: No\r\n")  # in the body
