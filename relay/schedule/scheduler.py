"""The scheduler: the only component that changes queue state.

Two tiers (DESIGN.md). Scheduled: a timer heap of jobs by due time, then a FIFO of due jobs
per (binding group, domain), served round robin so one huge domain cannot starve the rest.
Ready: a queue per (binding, domain) with up to max_outbound_connections workers, each one
SMTP session that sends job after job, then closes after idle_timeout.

A due job moves to a ready queue when the selector finds a binding of its group that is not
suspended for the domain and has room; otherwise its (group, domain) waits, until the
earliest resumption (all suspended) or until a ready queue frees room. Waiting on a limit or
a suspension is never an attempt and never a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from relay.bind.selector import Selector
from relay.clock import Clock
from relay.dispose.decide import decide, expired
from relay.dispose.feedback import fbl_header
from relay.outcome import Outcome, RecipientResult, Reply
from relay.schedule.adaptive_link import AdaptiveLink
from relay.schedule.jobs import Job, jobs_for
from relay.schedule.limits import ConnectionCaps
from relay.schedule.outcomes import FailureHandler, OutcomeRecorder
from relay.schedule.route_settings import RouteSettings, RouteSettingsSource
from relay.schedule.throttle import Buckets
from relay.schedule.transport import ConnectFailed, OutboundMessage, Session, Transport
from relay.spool.errors import MessageNotFound, SpoolError
from relay.spool.model import Envelope, Recipient

log = logging.getLogger("relay.schedule")

Key = tuple[str, str]  # (binding group, domain)
EventSink = Callable[[str, dict[str, object]], None]
NO_ROUTE_RETRY = 60.0
LOCAL_LIMIT_RETRY = 1.0
SPOOL_RETRY = 5.0


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class SpoolAccess(Protocol):
    async def load(self, message_id: str) -> bytes: ...

    async def update_recipients(self, message_id: str, updates: Sequence[Recipient]) -> bool: ...

    def evict(self, message_id: str) -> None: ...


@dataclass(slots=True)
class ReadyQueue:
    binding: str
    domain: str
    policy: RouteSettings
    jobs: deque[Job] = field(default_factory=deque)
    workers: int = 0
    idle: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)  # idle connections

    def wake_one(self) -> None:
        """A job arrived: one idle connection takes it (the others stay open)."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def wake_all(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def has_room(self) -> bool:
        return len(self.jobs) < self.policy.ready_capacity


@dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    scheduled: int
    due: int
    ready: int
    in_flight: int
    connections: int
    delivered: int
    deferred: int
    failed: int


class Scheduler:
    def __init__(
        self,
        spool: SpoolAccess,
        policies: RouteSettingsSource,
        selector: Selector,
        transport: Transport,
        clock: Clock,
        *,
        on_failed: FailureHandler | None = None,
        on_delayed: FailureHandler | None = None,
        events: EventSink | None = None,
        max_in_flight: int = 20000,
        adaptive: AdaptiveLink | None = None,
    ) -> None:
        self.spool = spool
        self.policies = policies
        self.selector = selector
        self.transport = transport
        self.clock = clock
        self.events = events or (lambda kind, fields: None)
        self.outcomes = OutcomeRecorder(spool, clock, self.events, on_failed, on_delayed)
        self.max_in_flight = max_in_flight
        self.adaptive = adaptive
        self._effective: dict[tuple[str, str], tuple[RouteSettings, int, RouteSettings]] = {}
        if adaptive is not None:
            adaptive.on_change = self._adaptive_changed
        self.caps = ConnectionCaps()
        self.buckets = Buckets()
        self._timers: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self._due: dict[Key, deque[Job]] = {}
        self._ring: deque[Key] = deque()
        self._in_ring: set[Key] = set()
        self._blocked: dict[Key, float | None] = {}
        self._ready: dict[tuple[str, str], ReadyQueue] = {}
        self._starved: set[tuple[str, str]] = set()
        self._idle_queues: set[tuple[str, str]] = set()  # with a connection waiting for mail
        self._unreachable: dict[tuple[str, str], float] = {}  # first connect failure
        self._down: dict[tuple[str, str], float] = {}  # delayed until (connect_timeout_to_delay)
        self._in_flight = 0
        self._connections = 0
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    # --- feeding ------------------------------------------------------------------------
    def submit(self, envelope: Envelope) -> None:
        """Queue a spooled message's pending recipients (new, or recovered at start)."""
        for job in jobs_for(envelope):
            self.schedule(job)

    def schedule(self, job: Job) -> None:
        heapq.heappush(self._timers, (job.due, next(self._seq), job))
        self._wake.set()

    def _make_due(self, job: Job) -> None:
        self._due.setdefault(job.key, deque()).append(job)
        self._activate(job.key)

    def _activate(self, key: Key) -> None:
        if key not in self._in_ring and key not in self._blocked:
            self._in_ring.add(key)
            self._ring.append(key)
            self._wake.set()

    # --- life ---------------------------------------------------------------------------
    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="scheduler")

    async def stop(self, deadline: float = 10.0) -> None:
        """Stop dispatching; let sessions finish their current message up to `deadline`."""
        self._stopping = True
        self._wake.set()
        for rq in self._ready.values():
            rq.wake_all()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=deadline)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)

    def reload(self, policies: RouteSettingsSource, selector: Selector) -> None:
        """A new configuration's route settings: forget resolved policies and retry blocked
        queues."""
        self.selector = selector
        self.policies = policies
        if self.adaptive is not None:
            self.adaptive.reload(policies)
        self._effective.clear()
        for rq in self._ready.values():
            rq.policy = self._policy(rq.binding, rq.domain)
        for key in list(self._blocked):
            self._unblock(key)

    def wake(self) -> None:
        """Something outside changed (an FBL complaint, an operator command): look again."""
        self._wake.set()

    def _policy(self, binding: str, domain: str) -> RouteSettings:
        """The resolved policy for binding x domain, with adaptive's live values applied."""
        base = self.policies.get(binding, domain)
        if self.adaptive is None:
            return base
        key = (binding, domain)
        version = self.adaptive.version(binding, domain)
        cached = self._effective.get(key)
        if cached is not None and cached[0] is base and cached[1] == version:
            return cached[2]
        policy = self.adaptive.effective(base)
        self._effective[key] = (base, version, policy)
        return policy

    def _adaptive_changed(self, binding: str, domain: str) -> None:
        rq = self._ready.get((binding, domain))
        if rq is not None:
            rq.policy = self._policy(binding, domain)
            self._maybe_spawn(rq)
        for key in list(self._blocked):
            if key[1] == domain:
                self._unblock(key)
        self._wake.set()

    def statistics(self) -> SchedulerStatistics:
        return SchedulerStatistics(
            scheduled=len(self._timers),
            due=sum(len(q) for q in self._due.values()),
            ready=sum(len(rq.jobs) for rq in self._ready.values()),
            in_flight=self._in_flight,
            connections=self._connections,
            delivered=self.outcomes.counts["delivered"],
            deferred=self.outcomes.counts["deferred"],
            failed=self.outcomes.counts["failed"],
        )

    def queues(self) -> dict[str, list[dict[str, object]]]:
        """What waits where: ready queues per binding x domain, due and delayed mail per
        binding group x domain (for the admin API)."""
        ready = [
            {
                "binding": rq.binding,
                "domain": rq.domain,
                "queued": len(rq.jobs),
                "connections": rq.workers,
                "idle_connections": rq.idle,
            }
            for rq in self._ready.values()
            if rq.jobs or rq.workers
        ]
        delayed = Counter(job.key for _, _, job in self._timers)
        keys = sorted(set(delayed) | {k for k, q in self._due.items() if q})
        scheduled: list[dict[str, object]] = [
            {
                "binding_group": key[0],
                "domain": key[1],
                "due": len(self._due.get(key, ())),
                "delayed": delayed.get(key, 0),
                "blocked_until": self._blocked.get(key),
            }
            for key in keys
        ]
        return {"ready": ready, "scheduled": scheduled}

    def flush(self, domain: str | None = None) -> int:
        """Make delayed mail (for one domain, or all) due now; returns how many jobs."""
        now = self.clock.now()
        moved = 0
        kept: list[tuple[float, int, Job]] = []
        for entry in self._timers:
            job = entry[2]
            if domain is None or job.domain == domain.lower():
                job.due = now
                kept.append((now, entry[1], job))
                moved += 1
            else:
                kept.append(entry)
        heapq.heapify(kept)
        self._timers = kept
        for key in list(self._blocked):
            if domain is None or key[1] == domain.lower():
                self._unblock(key)
        self._wake.set()
        return moved

    # --- the dispatch loop --------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            now = self.clock.now()
            if self.adaptive is not None:
                await self.adaptive.poll(now)
            self._release_due(now)
            self._release_blocked(now)
            placed = self._dispatch_round(now)
            if placed:
                await asyncio.sleep(0)
                continue
            await self._wait(self._next_event(now) - now)

    def _next_event(self, now: float) -> float:
        times = [now + 3600.0]
        if self._timers:
            times.append(self._timers[0][0])
        times.extend(t for t in self._blocked.values() if t is not None)
        end = self.selector.suspensions.earliest_end()
        if end is not None:
            times.append(end)
        if self.adaptive is not None:
            due = self.adaptive.next_due()
            if due is not None:
                times.append(due)
        return min(times)

    async def _wait(self, delay: float) -> None:
        self._wake.clear()
        if delay <= 0:
            await asyncio.sleep(0)
            return
        # A timer that sets the wake event: one handle per wait, not two tasks.
        timer = self.clock.call_later(delay, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            timer.cancel()

    def _release_due(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, job = heapq.heappop(self._timers)
            self._make_due(job)
        if self.selector.suspensions.expire(now):
            for key in list(self._blocked):
                self._unblock(key)

    def _release_blocked(self, now: float) -> None:
        for key, until in list(self._blocked.items()):
            if until is not None and until <= now:
                self._unblock(key)

    def _unblock(self, key: Key) -> None:
        self._blocked.pop(key, None)
        if self._due.get(key):
            self._activate(key)

    def _unblock_domain(self, domain: str) -> None:
        for key, until in list(self._blocked.items()):
            if key[1] == domain and until is None:
                self._unblock(key)

    def _dispatch_round(self, now: float) -> bool:
        placed = False
        for _ in range(len(self._ring)):
            if self._in_flight >= self.max_in_flight:
                break
            key = self._ring.popleft()
            self._in_ring.discard(key)
            queue = self._due.get(key)
            if not queue:
                continue
            if self._place(queue[0], now):
                queue.popleft()
                placed = True
            if queue:
                if key not in self._blocked:
                    self._in_ring.add(key)
                    self._ring.append(key)
            else:
                del self._due[key]
        return placed

    def _place(self, job: Job, now: float) -> bool:
        """Move a due job to a binding's ready queue, or block its (group, domain)."""
        domain = job.domain

        def has_room(binding: str) -> bool:
            rq = self._ready.get((binding, domain))
            policy = rq.policy if rq is not None else self._policy(binding, domain)
            if policy.suspend_delivery:
                return False
            if self._down.get((binding, domain), 0.0) > now:
                return False
            return rq is None or rq.has_room()

        pick = self.selector.pick(job.group, domain, now, has_room, binding=job.binding)
        if pick.binding is None:
            if pick.wait_until is not None:
                self._blocked[job.key] = pick.wait_until
            elif pick.no_candidates:
                if job.binding is not None:
                    log.warning(
                        "binding %s unusable for %s; using group %s",
                        job.binding,
                        job.message_id,
                        job.group,
                    )
                    job.binding = None
                    return False
                self._blocked[job.key] = now + NO_ROUTE_RETRY
                log.warning("binding_group %s has no usable binding for %s", job.group, domain)
            else:
                # Until a ready queue frees room, or an unreachable binding's delay ends.
                downs = [t for (_, d), t in self._down.items() if d == domain and t > now]
                self._blocked[job.key] = min(downs) if downs else None
            return False
        policy = self._policy(pick.binding, domain)
        held = self.adaptive.blackholed(pick.binding, domain, now) if self.adaptive else None
        if (
            policy.blackhole != "false"
            or held is not None
            or (policy.never_attempt_expired and expired(job.received_at, now, policy.retry))
        ):
            self._in_flight += 1
            self._spawn(self._local_disposition(job, policy, held))
            return True
        rq = self._ready.get((pick.binding, domain))
        if rq is None:
            rq = ReadyQueue(pick.binding, domain, policy)
            self._ready[(pick.binding, domain)] = rq
        rq.jobs.append(job)
        self._in_flight += 1
        rq.wake_one()
        self._maybe_spawn(rq)
        return True

    # --- workers ------------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("scheduler task failed", exc_info=task.exception())

    def _maybe_spawn(self, rq: ReadyQueue) -> None:
        if self._stopping:
            return
        policy = rq.policy
        if rq.idle:
            return  # an open connection is waiting for mail: it takes the next job
        # Enough connections that each has at most connection_depth messages waiting.
        wanted = -(-len(rq.jobs) // policy.connection_depth)
        needed = wanted - rq.workers
        while needed > 0:
            if 0 <= policy.max_connections <= rq.workers:
                return
            if not self.caps.can_open(policy.caps):
                self._starved.add((rq.binding, rq.domain))
                self._release_idle()
                return
            if policy.connection_throttle is not None:
                key, throttle = policy.connection_throttle
                bucket = self.buckets.get(key, throttle)
                wait = bucket.take(self.clock.now())
                if wait > 0:
                    self._spawn(self._spawn_later(rq, wait))
                    return
            self.caps.opened(policy.caps)
            rq.workers += 1
            self._connections += 1
            needed -= 1
            self._spawn(self._worker(rq, policy))

    def _release_idle(self) -> None:
        """A queue with mail waits for a shared connection cap: connections idling on empty
        queues close now instead of after idle_timeout, and hand their slots over."""
        for key in list(self._idle_queues):
            idle = self._ready.get(key)
            if idle is not None and not idle.jobs:
                idle.wake_all()

    async def _spawn_later(self, rq: ReadyQueue, wait: float) -> None:
        await self.clock.sleep(wait)
        self._maybe_spawn(rq)

    def _connection_closed(self, rq: ReadyQueue, policy: RouteSettings) -> None:
        rq.workers -= 1
        self._connections -= 1
        self.caps.closed(policy.caps)
        starved, self._starved = self._starved, set()
        for key in starved:
            other = self._ready.get(key)
            if other is not None and other.jobs:
                self._maybe_spawn(other)
        if rq.jobs:
            self._maybe_spawn(rq)

    async def _worker(self, rq: ReadyQueue, policy: RouteSettings) -> None:
        try:
            try:
                session = await self.transport.open(rq.binding, rq.domain, policy.delivery)
                self._unreachable.pop((rq.binding, rq.domain), None)
                self._down.pop((rq.binding, rq.domain), None)
            except ConnectFailed as err:
                await self._fail_queue(rq, err)
                return
            except Exception as err:  # translate anything unexpected into a deferral
                log.exception("opening a session for %s x %s failed", rq.binding, rq.domain)
                await self._fail_queue(
                    rq, ConnectFailed(Reply.make(451, "4.4.0", f"local error: {err}"))
                )
                return
            try:
                while not self._stopping:  # on stop: finish this message, leave the rest spooled
                    job = await self._next_job(rq)
                    if job is None:
                        break
                    await self._throttle_messages(rq.policy)
                    await self._send(session, rq, job)
                    if not session.usable:
                        break
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5.0):
                        await session.close()
        finally:
            self._connection_closed(rq, policy)

    async def _next_job(self, rq: ReadyQueue) -> Job | None:
        if not rq.jobs:
            if self._stopping:
                return None
            rq.idle += 1
            key = (rq.binding, rq.domain)
            self._idle_queues.add(key)
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if self._starved:
                waiter.set_result(None)  # someone waits for a connection slot: let go of it
            else:
                rq.waiters.append(waiter)
            timer = self.clock.call_later(
                rq.policy.idle_timeout, functools.partial(_settle, waiter)
            )
            try:
                await waiter
            finally:
                timer.cancel()
                rq.idle -= 1
                if rq.idle == 0:
                    self._idle_queues.discard(key)
            if not rq.jobs:
                return None
        job = rq.jobs.popleft()
        self._unblock_domain(rq.domain)
        return job

    async def _throttle_messages(self, policy: RouteSettings) -> None:
        if policy.message_throttle is None:
            return
        key, throttle = policy.message_throttle
        bucket = self.buckets.get(key, throttle)
        while True:
            wait = bucket.take(self.clock.now())
            if wait <= 0:
                return
            await self.clock.sleep(wait)

    async def _send(self, session: Session, rq: ReadyQueue, job: Job) -> None:
        try:
            content = await self.spool.load(job.message_id)
        except MessageNotFound:
            log.error("message %s is no longer in the spool; dropped", job.message_id)
            self._in_flight -= 1
            return
        except SpoolError as err:  # e.g. its injection worker is restarting: try again soon
            log.warning("message %s cannot be loaded now: %s", job.message_id, err)
            self._in_flight -= 1
            job.due = self.clock.now() + SPOOL_RETRY
            self.schedule(job)
            return
        if rq.policy.fbl_header:
            content = fbl_header(rq.binding, rq.domain, job.message_id) + content
        message = OutboundMessage(
            job.message_id, job.sender, tuple(a for _, a, _ in job.recipients), content
        )
        try:
            results = await session.send(message)
        except Exception as err:
            log.exception("sending %s through %s failed", job.message_id, rq.binding)
            results = [
                RecipientResult(
                    a, Outcome.TEMPORARY, Reply.make(451, "4.3.0", f"local error: {err}")
                )
                for _, a, _ in job.recipients
            ]
        await self._dispose(job, results, rq.policy)

    async def _fail_queue(self, rq: ReadyQueue, err: ConnectFailed) -> None:
        """No connection: every job queued for this binding x domain shares the failure."""
        now = self.clock.now()
        if err.local:
            # relay's own per-host limits said no: wait a moment, no attempt is counted.
            for job in list(rq.jobs):
                job.due = now + LOCAL_LIMIT_RETRY
                self.schedule(job)
                self._in_flight -= 1
            rq.jobs.clear()
            return
        outcome = Outcome.PERMANENT if err.permanent else Outcome.TEMPORARY
        key = (rq.binding, rq.domain)
        first = self._unreachable.setdefault(key, now)
        if not err.permanent and now - first >= rq.policy.connect_timeout_to_delay:
            # Unreachable for connect_timeout_to_delay: stop trying this binding x domain
            # until the retry interval passes; its mail waits (or uses other bindings).
            self._down[key] = now + rq.policy.retry.retry_interval
        jobs = list(rq.jobs)
        rq.jobs.clear()
        self._unblock_domain(rq.domain)
        if self.adaptive is not None:
            self.adaptive.record_connect_failure(rq.policy, err.reply, now)
        self.events(
            "connect_failure",
            {
                "binding": rq.binding,
                "domain": rq.domain,
                "response": str(err.reply),
                "remote": str(err.remote or ""),
                "jobs": len(jobs),
            },
        )
        for job in jobs:
            results = [
                RecipientResult(a, outcome, err.reply, err.remote) for _, a, _ in job.recipients
            ]
            await self._dispose(job, results, rq.policy, record=False)

    async def _local_disposition(
        self, job: Job, policy: RouteSettings, adaptive_hold: str | None
    ) -> None:
        if adaptive_hold is not None:
            reply = Reply.make(550, "5.7.1", f"blackholed by adaptive delivery: {adaptive_hold}")
            outcome = Outcome.PERMANENT
        elif policy.blackhole == "internal":
            reply = Reply.make(250, "2.0.0", "blackholed by configuration")
            outcome = Outcome.DELIVERED
        elif policy.blackhole == "inline":
            reply = Reply.make(550, "5.7.1", "blackholed by configuration")
            outcome = Outcome.PERMANENT
        else:
            reply = Reply.make(554, "5.4.7", "message expired before any attempt")
            outcome = Outcome.PERMANENT
        results = [RecipientResult(a, outcome, reply) for _, a, _ in job.recipients]
        await self._dispose(job, results, policy, record=False)

    # --- outcomes -----------------------------------------------------------------------
    async def _dispose(
        self,
        job: Job,
        results: list[RecipientResult],
        policy: RouteSettings,
        record: bool = True,
    ) -> None:
        """Apply one attempt's results; `record`: feed them to adaptive delivery (remote
        outcomes only, never relay's own decisions)."""
        now = self.clock.now()
        if record and self.adaptive is not None:
            self.adaptive.record_results(policy, results, now)
        try:
            decision = decide(job.recipients, results, job.received_at, now, policy.retry)
            retry, again = await self.outcomes.record(job, decision, results, policy)
            if retry is not None:
                self.schedule(retry)
            if again is not None:  # stopped by a per-connection cap: next in line, no penalty
                self._due.setdefault(again.key, deque()).appendleft(again)
                self._activate(again.key)
        except Exception:
            log.exception("recording the outcome of %s failed; will retry", job.message_id)
            job.due = now + policy.retry.retry_interval
            self.schedule(job)
        finally:
            self._in_flight -= 1
            self._wake.set()
