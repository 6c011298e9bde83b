"""The queue core: all queue state, and what to do next. Pure: no asyncio, no sockets, no
spool; the caller passes `now`, carries the returned actions out (actions.py) and reports
back through the event methods.

Two tiers (DESIGN.md "Queues"). Scheduled: a timer heap of jobs by due time, then a FIFO of
due jobs per (binding group, domain), served round robin so one huge domain cannot starve the
rest. Ready: a queue per (binding, domain) served by up to max_outbound_connections
connections, each sending job after job, then closing after idle_timeout.

A due job moves to a ready queue when the selector finds a binding of its group that is not
suspended for the domain, not delayed as unreachable and has room; otherwise its (group,
domain) is blocked, until the earliest resumption (all suspended), or until a ready queue
frees room. Waiting on a limit or a suspension is never an attempt and never a failure.

Counts cannot drift, because each is the size of the one collection that holds the thing:
- in flight: `_flight`, the jobs placed (in a ready queue, sending, being disposed of) and
  not yet back through `job_finished`; a job enters in `_place` and leaves in `job_finished`.
- connections: `_connections` overall, `ReadyQueue.connections` per queue; idle ones are
  `ReadyQueue.parked`. A connection is added in `_open` and removed in `connection_closed`,
  the only two places that also move the shared caps (ConnectionCaps).

The owner runs `step(now)` when `on_work` is called and at the returned `WakeAt`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from relay.bind.selector import Selector
from relay.dispose.decide import expired
from relay.schedule.actions import (
    CLOSE,
    Action,
    LocalDisposition,
    Next,
    OpenConnection,
    ResolveProvider,
    Resume,
    Send,
    Wait,
    WakeAt,
)
from relay.schedule.fair import Fairness, FairQueue
from relay.schedule.holds import Hold, HoldKey, HoldTable
from relay.schedule.jobs import Job
from relay.schedule.limits import ConnectionCaps
from relay.schedule.local_replies import Local
from relay.schedule.providers import NEEDED, ROLLUP_PREFIX, ProviderDirectory
from relay.schedule.ready import ACTIVE, PARKED, WOKEN, Connection, ReadyQueue, State
from relay.schedule.route_settings import RouteSettings
from relay.schedule.shared import SHARED_RETRY, SharedLimits
from relay.schedule.throttle import Buckets
from relay.schedule.warmup import WarmupCounts, WarmupPlan, cap_now

log = logging.getLogger("relay.schedule")

Key = tuple[str, str]  # (binding group, domain)
Route = tuple[str, str]  # (binding, domain)
NO_ROUTE_RETRY = 60.0  # a group without a usable binding looks again after this
LOCAL_LIMIT_RETRY = 1.0  # relay's own per-host limit refused a connection
SPOOL_RETRY = 5.0  # the spool could not load the content now
HORIZON = 3600.0  # step at least this often


class Policies(Protocol):
    """The route policies the core decides with (live_routes.LiveRoutes)."""

    def get(self, binding: str, domain: str) -> RouteSettings: ...

    def held(self, binding: str, domain: str, now: float) -> str | None:
        """Why adaptive delivery blackholes binding x domain now, or None."""
        ...


@dataclass(frozen=True, slots=True)
class QueueSizes:
    scheduled: int
    due: int
    ready: int
    in_flight: int
    connections: int
    held: int = 0  # parked by a tenant or campaign hold (holds.py)


@dataclass(frozen=True, slots=True)
class HeldRow:
    kind: str
    subject: str
    target: str
    binding: str | None
    until: float
    reason: str
    queued: int  # jobs parked under it


@dataclass(frozen=True, slots=True)
class ReadyRow:
    binding: str
    domain: str
    queued: int
    connections: int
    idle_connections: int


@dataclass(frozen=True, slots=True)
class ScheduledRow:
    binding_group: str
    domain: str
    due: int
    delayed: int
    blocked_until: float | None


class Queues:
    def __init__(
        self,
        selector: Selector,
        policies: Policies,
        *,
        max_in_flight: int = 20000,
        on_work: Callable[[], None] = lambda: None,
        shared: SharedLimits | None = None,
        providers: ProviderDirectory | None = None,
        warmup: WarmupCounts | None = None,
        fairness: Fairness | None = None,
        holds: HoldTable | None = None,
    ) -> None:
        self.selector = selector
        self.shared = shared  # limits shared across relay nodes (a cluster stanza), or None
        self.policies = policies
        # Provider limits (providers.py): a domain's mail waits until its provider is known.
        self.providers = providers or ProviderDirectory()
        self._resolving: set[str] = set()  # ResolveProvider asked, not yet answered
        # (binding, domain) -> (policies' settings, provider, with the provider's limits)
        self._provided: dict[Route, tuple[RouteSettings, str, RouteSettings]] = {}
        # Warm-up (warmup.py): messages placed per plan in its period, and bindings' ages.
        self.warmup = warmup or WarmupCounts()
        # Tenant and campaign holds (holds.py): their jobs wait aside, never attempted.
        self.holds = holds or HoldTable()
        # Tenants' weights and priority classes (fair.py): every due FIFO and ready queue.
        self.fairness = fairness or Fairness()
        self._parked_jobs: dict[HoldKey, list[Job]] = {}
        self.max_in_flight = max_in_flight
        self.on_work = on_work  # step() has something to do before the last WakeAt
        self.caps = ConnectionCaps()
        self.buckets = Buckets()
        self._timers: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self._due: dict[Key, FairQueue] = {}  # per (group, domain): fair across tenants
        self._ring: deque[Key] = deque()
        self._in_ring: set[Key] = set()
        self._blocked: dict[Key, float | None] = {}  # None: until a ready queue frees room
        self._ready: dict[Route, ReadyQueue] = {}
        self._flight: set[Job] = set()
        self._connections: set[Connection] = set()
        self._starved: set[ReadyQueue] = set()  # with mail, waiting for a shared cap
        self._idle_queues: set[ReadyQueue] = set()  # with a parked connection
        self._reopen: dict[ReadyQueue, float] = {}  # outbound_throttle_connections waits
        self._unreachable: dict[Route, float] = {}  # first connect failure
        self._down: dict[Route, float] = {}  # delayed until (connect_timeout_to_delay)
        self._wake_at = math.inf  # the last WakeAt (none yet: any work wakes the owner)
        self._stopping = False

    # --- feeding ------------------------------------------------------------------------
    def schedule(self, job: Job) -> None:
        heapq.heappush(self._timers, (job.due, next(self._seq), job))
        if job.due < self._wake_at:
            self.on_work()

    # --- the dispatch step --------------------------------------------------------------
    def step(self, now: float) -> list[Action]:
        """Release due jobs and ended waits, then one round robin round over the due
        (group, domain) FIFOs: at most one job each. The last action is WakeAt."""
        if self._stopping:
            return [WakeAt(now + HORIZON)]
        out: list[Action] = []
        timers = self._timers
        while timers and timers[0][0] <= now:
            self._make_due(heapq.heappop(timers)[2])
        if self._blocked:
            for key, until in list(self._blocked.items()):
                if until is not None and until <= now:
                    self._unblock(key)
        if self._reopen:
            for rq, at in list(self._reopen.items()):
                if at <= now:
                    del self._reopen[rq]
                    self._maybe_open(rq, now, out)
        if self._parked_jobs or self.holds:
            self._end_holds(now)
        placed = self._round(now, out)
        self._wake_at = now if placed else self._next_event(now)
        out.append(WakeAt(self._wake_at))
        return out

    def _next_event(self, now: float) -> float:
        at = now + HORIZON
        if self._timers:
            at = min(at, self._timers[0][0])
        for until in self._blocked.values():
            if until is not None and until < at:
                at = until
        end = self.selector.suspensions.earliest_end(now)
        if end is not None:
            at = min(at, end)
        if self._reopen:
            at = min(at, *self._reopen.values())
        if self.holds:
            end = self.holds.earliest_end(now)
            if end is not None:
                at = min(at, end)
        return at

    def _make_due(self, job: Job) -> None:
        due = self._due.get(job.key)
        if due is None:
            due = self._due[job.key] = FairQueue(self.fairness)
        due.append(job)
        self._activate(job.key)

    def _activate(self, key: Key) -> None:
        if key not in self._in_ring and key not in self._blocked:
            self._in_ring.add(key)
            self._ring.append(key)
            self.on_work()

    def _unblock(self, key: Key) -> None:
        self._blocked.pop(key, None)
        if self._due.get(key):
            self._activate(key)

    def _unblock_domain(self, domain: str) -> None:
        """Room freed for domain: retry the keys that waited for room."""
        for key, until in list(self._blocked.items()):
            if key[1] == domain and until is None:
                self._unblock(key)

    def _round(self, now: float, out: list[Action]) -> bool:
        placed = False
        ring = self._ring
        for _ in range(len(ring)):
            if len(self._flight) >= self.max_in_flight:
                break
            key = ring.popleft()
            self._in_ring.discard(key)
            queue = self._due.get(key)
            if queue is None or not queue.size:
                continue
            if self._place(queue[0], now, out):
                queue.popleft()
                placed = True
            if queue.size:
                if key not in self._blocked:
                    self._in_ring.add(key)
                    ring.append(key)
            else:
                del self._due[key]
        return placed

    def _place(self, job: Job, now: float, out: list[Action]) -> bool:
        """Move a due job to a binding's ready queue or a local disposition, or block its
        (group, domain)."""
        domain = job.domain
        ready, down, policies = self._ready, self._down, self.policies
        if self.providers and not self._provider_known(domain, now, out):
            self._blocked[job.key] = None  # until provider_learned
            return False
        holds = self.holds
        tenant = job.tenant
        if holds and (tenant is not None or job.campaign is not None):
            hold = holds.for_job(tenant, job.campaign, domain, self.provider_key(domain), now)
            if hold is not None:
                self._park_job(job, hold)
                return True  # out of the FIFO: the rest of the domain's mail flows
        excluded: list[Hold] = []

        def has_room(binding: str) -> bool:
            rq = ready.get((binding, domain))
            policy = rq.policy if rq is not None else policies.get(binding, domain)
            if policy.suspend_delivery:
                return False
            if down.get((binding, domain), 0.0) > now:
                return False
            if policy.warmup is not None and self._warm_capped(binding, domain, policy.warmup, now):
                return False  # at its warm-up cap: the selector leaves it out from now on
            warm = policy.provider_warmup
            if warm is not None and self._warm_capped(binding, domain, warm, now):
                return False  # at its binding x provider cap (this domain leaves: lazily)
            if tenant is not None and holds:
                on_binding = holds.on_binding(tenant, binding, domain, now)
                if on_binding is not None:
                    excluded.append(on_binding)
                    return False
            return rq is None or rq.has_room()

        also = None
        if self.providers:
            key = self.providers.adaptive_key(domain)
            also = key if key != domain else None  # the provider's rollup suspensions
        selector = self.selector
        capped = selector.caps.version(domain)
        pick = selector.pick(job.group, domain, now, has_room, binding=job.binding, also=also)
        if pick.all_full and job.binding is None and selector.caps.version(domain) != capped:
            # Bindings found at their warm-up cap (after a restart, many at once): every
            # member is looked at now, so the rotation is rebuilt once, not once per
            # max_probe capped bindings (O(N) once per period instead of O(N^2)).
            self._sweep_caps(job.group, domain, now)
        while pick.all_full and selector.caps.version(domain) != capped:
            # Bindings found at their warm-up cap left the rotation: overflow to the warm
            # members, or (every one capped) wait for the earliest next period.
            capped = selector.caps.version(domain)
            pick = selector.pick(job.group, domain, now, has_room, binding=job.binding, also=also)
        binding = pick.binding
        if binding is None and excluded:
            self._park_job(job, excluded[0])  # the tenant's other bindings are no better now
            return True
        if binding is None:
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
                    return self._place(job, now, out)  # through the group, at once
                self._blocked[job.key] = now + NO_ROUTE_RETRY
                log.warning("binding_group %s has no usable binding for %s", job.group, domain)
            else:
                # Until a ready queue frees room, or an unreachable binding's delay ends.
                downs = [t for (_, d), t in down.items() if d == domain and t > now]
                self._blocked[job.key] = min(downs) if downs else None
            return False
        policy = self._policy(binding, domain)
        held = policies.held(binding, domain, now)
        local = None
        if held is not None or policy.blackhole != "false" or policy.never_attempt_expired:
            local = self._local_reason(job, policy, held, now)
        self._flight.add(job)
        if local is not None:
            out.append(LocalDisposition(job, policy, local, held))
            return True
        if policy.warmup is not None:
            self._warm_count(binding, domain, policy.warmup, now)
        if policy.provider_warmup is not None:
            self._warm_count(binding, domain, policy.provider_warmup, now)
        rq = ready.get((binding, domain))
        if rq is None:
            rq = ReadyQueue(binding, domain, policy, FairQueue(self.fairness))
            ready[(binding, domain)] = rq
        rq.jobs.append(job)
        if rq.parked:
            self._resume_first(rq, out)  # an idle connection takes it, the others stay
        else:
            self._maybe_open(rq, now, out)
        return True

    @staticmethod
    def _local_reason(
        job: Job, policy: RouteSettings, held: str | None, now: float
    ) -> Local | None:
        if held is not None:
            return Local.ADAPTIVE_BLACKHOLE
        if policy.blackhole == "internal":
            return Local.BLACKHOLE_INTERNAL
        if policy.blackhole != "false":
            return Local.BLACKHOLE_INLINE
        if policy.never_attempt_expired and expired(job.received_at, now, policy.retry):
            return Local.EXPIRED
        return None

    # --- connections --------------------------------------------------------------------
    def _maybe_open(self, rq: ReadyQueue, now: float, out: list[Action]) -> None:
        if self._stopping or rq.parked:
            return  # an open connection is waiting for mail: it takes the next job
        policy = rq.policy
        # Enough connections that each has at most connection_depth messages waiting.
        needed = -(-rq.jobs.size // policy.connection_depth) - len(rq.connections)
        while needed > 0:
            if 0 <= policy.max_connections <= len(rq.connections):
                return
            if not self.caps.can_open(policy.caps):
                self._starved.add(rq)
                self._release_idle(out)
                return
            wait = self._connection_wait(policy, now)
            if wait > 0:
                self._reopen_at(rq, now + wait)
                return
            self._open(rq, policy, out)
            needed -= 1

    def _connection_wait(self, policy: RouteSettings, now: float) -> float:
        """0 when the connection throttles (provider, local, then shared) and the shared
        leases allow one more connection now (all taken); else the seconds to wait (nothing
        taken)."""
        provider = None
        if policy.provider_connection_throttle is not None:
            provider = self.buckets.get(*policy.provider_connection_throttle)
            wait = provider.delay(now)
            if wait > 0:
                return wait
        local = None
        if policy.connection_throttle is not None:
            key, throttle = policy.connection_throttle
            local = self.buckets.get(key, throttle)
            wait = local.delay(now)
            if wait > 0:
                return wait
        shared = self.shared
        if shared is not None:
            if policy.cluster_connection_throttle is not None:
                wait = shared.take(policy.cluster_connection_throttle, now)
                if wait > 0:
                    return wait
            if policy.cluster_caps and not shared.acquire(policy.cluster_caps, now):
                return SHARED_RETRY
        if local is not None:
            local.take(now)
        if provider is not None:
            provider.take(now)
        return 0.0

    def _reopen_at(self, rq: ReadyQueue, at: float) -> None:
        if at < self._reopen.get(rq, math.inf):
            self._reopen[rq] = at
            if at < self._wake_at:
                self.on_work()

    def _open(self, rq: ReadyQueue, policy: RouteSettings, out: list[Action]) -> None:
        conn = Connection(rq, policy)
        self.caps.opened(policy.caps)
        rq.connections.add(conn)
        self._connections.add(conn)
        out.append(OpenConnection(conn))

    def _release_idle(self, out: list[Action]) -> None:
        """A queue with mail waits for a shared connection cap: connections idling on empty
        queues close now instead of after idle_timeout, and hand their slots over."""
        for rq in list(self._idle_queues):
            if not rq.jobs:
                while rq.parked:
                    self._resume_first(rq, out)

    def _park(self, conn: Connection) -> None:
        conn.state = PARKED
        conn.queue.parked.append(conn)
        self._idle_queues.add(conn.queue)

    def _unpark(self, conn: Connection, state: State) -> None:
        rq = conn.queue
        rq.parked.remove(conn)
        if not rq.parked:
            self._idle_queues.discard(rq)
        conn.state = state

    def _resume_first(self, rq: ReadyQueue, out: list[Action]) -> None:
        """The longest parked connection of rq asks again (for a job, or to close)."""
        conn = rq.parked.popleft()
        if not rq.parked:
            self._idle_queues.discard(rq)
        conn.state = WOKEN
        out.append(Resume(conn))

    def connection_opened(self, conn: Connection) -> None:
        route = (conn.binding, conn.domain)
        self._unreachable.pop(route, None)
        self._down.pop(route, None)
        conn.state = ACTIVE

    def next_job(self, conn: Connection, now: float) -> Next:
        """An open connection asks what to do: Send, Wait (parked until Resume or its idle
        deadline; or the message throttle), or CLOSE."""
        rq = conn.queue
        job = conn.held
        if job is None:
            state = conn.state
            if state is not ACTIVE:
                if state is PARKED:
                    self._unpark(conn, ACTIVE)  # its idle_timeout passed
                conn.state = ACTIVE
            if self._stopping:
                return CLOSE  # finish the current message, leave the rest spooled
            if not rq.jobs.size:
                if state is PARKED or state is WOKEN or self._starved:
                    return CLOSE  # idle long enough, or another queue needs the slot
                self._park(conn)
                return Wait(now + rq.policy.idle_timeout)
            job = rq.jobs.popleft()
            if self._blocked:
                self._unblock_domain(rq.domain)
        else:
            conn.held = None
        policy = rq.policy
        provider_throttle = policy.provider_message_throttle
        if provider_throttle is not None:
            wait = self.buckets.get(*provider_throttle).delay(now)
            if wait > 0:
                conn.held = job
                return Wait(now + wait)
        throttle = policy.message_throttle
        shared = self.shared
        if throttle is not None:
            bucket = self.buckets.get(throttle[0], throttle[1])
            if shared is None or policy.cluster_message_throttle is None:
                wait = bucket.take(now)
            else:  # both: the local one is only taken when the shared one allows
                wait = bucket.delay(now) or shared.take(policy.cluster_message_throttle, now)
                if wait <= 0:
                    bucket.take(now)
            if wait > 0:
                conn.held = job
                return Wait(now + wait)
        elif shared is not None and policy.cluster_message_throttle is not None:
            wait = shared.take(policy.cluster_message_throttle, now)
            if wait > 0:
                conn.held = job
                return Wait(now + wait)
        if provider_throttle is not None:
            self.buckets.get(*provider_throttle).take(now)
        return Send(job, policy)

    def connect_failed(
        self, conn: Connection, now: float, *, permanent: bool = False, local: bool = False
    ) -> list[Job]:
        """No session for binding x domain: every job queued there shares the failure.
        Returns those jobs (still in flight: report each through job_finished); none when
        only relay's own limits refused (they wait a moment, no attempt is counted)."""
        rq = conn.queue
        jobs = list(rq.jobs)
        rq.jobs.clear()
        if local:
            for job in jobs:
                job.due = now + LOCAL_LIMIT_RETRY
                self.job_finished(job, retry=job)
            return []
        route = (rq.binding, rq.domain)
        first = self._unreachable.setdefault(route, now)
        if not permanent and now - first >= rq.policy.connect_timeout_to_delay:
            # Unreachable for connect_timeout_to_delay: stop trying this binding x domain
            # until the retry interval passes; its mail waits (or uses other bindings).
            self._down[route] = now + rq.policy.retry.retry_interval
        self._unblock_domain(rq.domain)
        return jobs

    def connection_closed(self, conn: Connection, now: float) -> list[Action]:
        rq = conn.queue
        if conn.state is PARKED:
            self._unpark(conn, ACTIVE)
        if conn.held is not None:  # stopped while it waited (throttle) or was ahead: next
            rq.jobs.appendleft(conn.held)
            conn.held = None
        rq.connections.remove(conn)
        self._connections.remove(conn)
        self.caps.closed(conn.policy.caps)
        if self.shared is not None and conn.policy.cluster_caps:
            self.shared.release(conn.policy.cluster_caps)
        out: list[Action] = []
        starved, self._starved = self._starved, set()
        for other in starved:
            if other.jobs.size:
                self._maybe_open(other, now, out)
        if rq.jobs.size:
            self._maybe_open(rq, now, out)
        return out

    # --- tenant and campaign holds (holds.py) ---------------------------------------------
    def provider_key(self, domain: str) -> str | None:
        """The domain's provider as a hold target ("provider:NAME"); None: in none."""
        provider = self.provider_of(domain)
        return None if provider is None else ROLLUP_PREFIX + provider.lower()

    def _park_job(self, job: Job, hold: Hold) -> None:
        self._parked_jobs.setdefault(hold.key, []).append(job)

    def _end_holds(self, now: float) -> None:
        """Lift holds whose time is up; jobs of lifted holds go back to their FIFOs."""
        for hold in self.holds.ended(now):
            self.holds.release(hold.kind, hold.subject, hold.target, hold.binding)
        for key in list(self._parked_jobs):
            found = self.holds.get(key)
            if found is None or found.until <= now:
                for job in self._parked_jobs.pop(key):
                    self._make_due(job)

    def hold(self, hold: Hold) -> None:
        """A hold was added (to self.holds): nothing to do until a job meets it."""
        self.on_work()

    def release(self) -> None:
        """A hold was lifted (from self.holds): its jobs go back at the next step."""
        self.on_work()

    def held_rows(self) -> list[HeldRow]:
        return [
            HeldRow(
                h.kind,
                h.subject,
                h.target,
                h.binding,
                h.until,
                h.reason,
                len(self._parked_jobs.get(h.key, ())),
            )
            for h in self.holds.all()
        ]

    # --- warm-up (warmup.py) ----------------------------------------------------------------
    def _warm_capped(self, binding: str, domain: str, plan: WarmupPlan, now: float) -> bool:
        cap = cap_now(plan, now, self.warmup.start_of(binding))
        if cap is None or self.warmup.count(plan.key, cap.period_start) < cap.limit:
            return False
        self.selector.caps.cap(binding, None if plan.binding_wide else domain, cap.period_end)
        return True

    def _sweep_caps(self, group: str, domain: str, now: float) -> None:
        """Cap every member of the group at its warm-up cap for domain (the selector leaves
        them out of the rotation it rebuilds next)."""
        ready, caps = self._ready, self.selector.caps
        for member in self.selector.members(group):
            binding = member.name
            if not member.plumbed or caps.until(binding, domain, now) is not None:
                continue
            rq = ready.get((binding, domain))
            policy = rq.policy if rq is not None else self.policies.get(binding, domain)
            if policy.warmup is not None and self._warm_capped(binding, domain, policy.warmup, now):
                continue
            warm = policy.provider_warmup
            if warm is not None:
                self._warm_capped(binding, domain, warm, now)

    def _warm_count(self, binding: str, domain: str, plan: WarmupPlan, now: float) -> None:
        cap = cap_now(plan, now, self.warmup.start_of(binding))
        if cap is None:
            return
        if self.warmup.add(plan.key, cap.period_start) >= cap.limit:
            self.selector.caps.cap(binding, None if plan.binding_wide else domain, cap.period_end)

    def warmup_changed(self) -> None:
        """An age changed: caps are worked out again (bindings found capped leave again)."""
        self.selector.caps.clear()
        for key in list(self._blocked):
            self._unblock(key)
        self.on_work()

    def warmup_status(self, binding: str, domain: str, now: float) -> dict[str, object] | None:
        """The binding's warm-up as binding x domain sees it: its age in days, the cap in
        force and the count so far (None: no warm-up schedule)."""
        plan = self._policy(binding, domain).warmup
        return None if plan is None else self._plan_status(binding, plan, now)

    def warmup_details(
        self, binding: str, domains: Iterable[str], now: float
    ) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        """The binding's warm-up per binding x domain (the plans of domain stanzas, for
        `domains` and the domains it has a ready queue for) and per binding x provider (every
        provider stanza with a warmup_schedule): rows of warmup_status plus their domain /
        provider."""
        names = set(domains) | {d for (b, d) in self._ready if b == binding}
        by_domain: list[dict[str, object]] = []
        for domain in sorted(names):
            plan = self._policy(binding, domain).warmup
            if plan is not None and not plan.binding_wide:
                by_domain.append({"domain": domain, **self._plan_status(binding, plan, now)})
        by_provider: list[dict[str, object]] = []
        for rule in self.providers.rules:
            limits = self.providers.limits(binding, rule.name) if rule.warmup_steps else None
            if limits is not None and limits.warmup is not None:
                status = self._plan_status(binding, limits.warmup, now)
                by_provider.append({"provider": rule.name, **status})
        return by_domain, by_provider

    def _plan_status(self, binding: str, plan: WarmupPlan, now: float) -> dict[str, object]:
        start = self.warmup.start_of(binding)
        begin = plan.start if start is None else start
        cap = cap_now(plan, now, start)
        return {
            "age_days": None if begin <= 0 else max(0, math.floor((now - begin) / 86400)),
            "cap": None if cap is None else cap.limit,
            "period": None
            if cap is None
            else ("hour" if cap.period_end - cap.period_start < 86400 else "day"),
            "count": 0 if cap is None else self.warmup.count(plan.key, cap.period_start),
        }

    # --- providers (MX rollup, providers.py) ---------------------------------------------
    def _provider_known(self, domain: str, now: float, out: list[Action]) -> bool:
        """Is the domain's provider known? If not (or known but due for a refresh), ask the
        owner to look its MX hosts up, once."""
        providers = self.providers
        found = providers.lookup(domain, now)
        if found is NEEDED or providers.stale(domain, now):
            if domain not in self._resolving:
                self._resolving.add(domain)
                out.append(ResolveProvider(domain))
            return found is not NEEDED
        return True

    def provider_learned(self, domain: str, mx_hosts: Sequence[str] | None, now: float) -> None:
        """The owner looked the domain's MX hosts up (None: the lookup failed)."""
        self._resolving.discard(domain)
        self.providers.learn(domain, mx_hosts, now)
        for (binding, name), rq in self._ready.items():
            if name == domain:
                rq.policy = self._policy(binding, domain)
        self._unblock_domain(domain)
        self.on_work()

    def provider_policy_changed(self, binding: str, provider: str, now: float) -> list[Action]:
        """Adaptive delivery changed a live value or a hold for binding x a provider it
        rolls up: every domain known to be in it."""
        out: list[Action] = []
        for domain in self.providers.domains_of(provider):
            out += self.policy_changed(binding, domain, now)
        return out

    def _policy(self, binding: str, domain: str) -> RouteSettings:
        """The policies' settings for binding x domain, with its provider's limits."""
        base = self.policies.get(binding, domain)
        if not self.providers:
            return base
        provider = self.providers.lookup(domain, 0.0)
        if provider is None or provider is NEEDED:
            return base
        assert isinstance(provider, str)
        key = (binding, domain)
        cached = self._provided.get(key)
        if cached is not None and cached[0] is base and cached[1] == provider:
            return cached[2]
        limits = self.providers.limits(binding, provider)
        if limits is None:
            return base
        merged = replace(
            base,
            caps=(*base.caps, *limits.caps),
            provider=provider,
            provider_message_throttle=limits.message_throttle,
            provider_connection_throttle=limits.connection_throttle,
            provider_warmup=limits.warmup,
        )
        self._provided[key] = (base, provider, merged)
        return merged

    def provider_of(self, domain: str) -> str | None:
        """The domain's provider as far as known now (None: none, or not looked up yet)."""
        found = self.providers.lookup(domain.lower(), 0.0) if self.providers else None
        return found if isinstance(found, str) else None

    # --- outcomes -----------------------------------------------------------------------
    def take_next(self, conn: Connection) -> Job | None:
        """The job this connection would be sent next, taken now (it is held: next_job
        returns it), so its commands can follow the current message's content on the wire.
        Only when one is queued and nothing could make it wait or go elsewhere: no message
        throttle on the route, not stopping, none held already."""
        rq = conn.queue
        policy = rq.policy
        if conn.held is not None or self._stopping or not rq.jobs.size:
            return None
        if policy.message_throttle is not None or policy.provider_message_throttle is not None:
            return None
        if self.shared is not None and policy.cluster_message_throttle is not None:
            return None
        conn.held = job = rq.jobs.popleft()
        if self._blocked:
            self._unblock_domain(rq.domain)
        return job

    def job_finished(self, job: Job, retry: Job | None = None, requeue: Job | None = None) -> None:
        """A placed job is done with: `retry` goes back to the timers (at retry.due),
        `requeue` (stopped by a per-connection cap) is next in line, with no penalty."""
        self._flight.remove(job)
        if retry is not None:
            self.schedule(retry)
        if requeue is not None:
            due = self._due.get(requeue.key)
            if due is None:
                due = self._due[requeue.key] = FairQueue(self.fairness)
            due.appendleft(requeue)
            self._activate(requeue.key)
        if self._ring:
            self.on_work()

    # --- changes from outside -----------------------------------------------------------
    def policy_changed(self, binding: str, domain: str, now: float) -> list[Action]:
        """Adaptive delivery changed a live value or a hold for binding x domain."""
        out: list[Action] = []
        rq = self._ready.get((binding, domain))
        if rq is not None:
            rq.policy = self._policy(binding, domain)
            self._maybe_open(rq, now, out)
        for key in list(self._blocked):
            if key[1] == domain:
                self._unblock(key)
        self.on_work()
        return out

    def reload(
        self,
        selector: Selector,
        providers: ProviderDirectory | None = None,
        fairness: Fairness | None = None,
    ) -> None:
        """A new configuration (the policies already reloaded): new policies for every ready
        queue, blocked queues retried; `providers`: the new configuration's providers (every
        domain classified again)."""
        self.selector = selector
        self._provided.clear()
        if providers is not None:
            self.providers = providers
        if fairness is not None:  # new jobs sort by the new shares; queued ones stay put
            self.fairness = fairness
            for fifo in self._due.values():
                fifo.fairness = fairness
            for rq in self._ready.values():
                rq.jobs.fairness = fairness
        for rq in self._ready.values():
            rq.policy = self._policy(rq.binding, rq.domain)
        for key in list(self._blocked):
            self._unblock(key)
        self.on_work()

    def flush(self, now: float, domain: str | None = None) -> int:
        """Make delayed mail (for one domain, or all) due now; returns how many jobs."""
        domain = domain.lower() if domain is not None else None
        moved = 0
        kept: list[tuple[float, int, Job]] = []
        for entry in self._timers:
            job = entry[2]
            if domain is None or job.domain == domain:
                job.due = now
                kept.append((now, entry[1], job))
                moved += 1
            else:
                kept.append(entry)
        heapq.heapify(kept)
        self._timers = kept
        for key in list(self._blocked):
            if domain is None or key[1] == domain:
                self._unblock(key)
        self.on_work()
        return moved

    def take(self, matches: Callable[[Job], bool]) -> list[Job]:
        """Take the queued jobs `matches` selects out of the queues (delayed, due, and
        waiting in a ready queue; not the ones being sent now). They count as in flight,
        like placed jobs, until the owner hands each back through `job_finished`."""
        taken: list[Job] = []
        kept = [entry for entry in self._timers if not matches(entry[2])]
        if len(kept) != len(self._timers):
            taken += [entry[2] for entry in self._timers if matches(entry[2])]
            heapq.heapify(kept)
            self._timers = kept
        for fifo in self._due.values():
            if any(matches(job) for job in fifo):
                taken += [job for job in fifo if matches(job)]
                rest = [job for job in fifo if not matches(job)]
                fifo.clear()
                fifo.extend(rest)
        for parked in self._parked_jobs.values():
            if any(matches(job) for job in parked):
                taken += [job for job in parked if matches(job)]
                parked[:] = [job for job in parked if not matches(job)]
        self._flight.update(taken)
        for rq in self._ready.values():  # placed already: in flight
            if any(matches(job) for job in rq.jobs):
                taken += [job for job in rq.jobs if matches(job)]
                rest = [job for job in rq.jobs if not matches(job)]
                rq.jobs.clear()
                rq.jobs.extend(rest)
        if taken:
            self.on_work()
        return taken

    def stop(self) -> list[Action]:
        """Dispatch nothing more; idle connections are told to close."""
        self._stopping = True
        self._reopen.clear()
        out: list[Action] = []
        for rq in list(self._idle_queues):
            while rq.parked:
                self._resume_first(rq, out)
        return out

    # --- views --------------------------------------------------------------------------
    def sizes(self) -> QueueSizes:
        return QueueSizes(
            scheduled=len(self._timers),
            due=sum(len(q) for q in self._due.values()),
            ready=sum(len(rq.jobs) for rq in self._ready.values()),
            in_flight=len(self._flight),
            connections=len(self._connections),
            held=sum(len(jobs) for jobs in self._parked_jobs.values()),
        )

    def ready_rows(self) -> list[ReadyRow]:
        return [
            ReadyRow(rq.binding, rq.domain, len(rq.jobs), len(rq.connections), len(rq.parked))
            for rq in self._ready.values()
            if rq.jobs or rq.connections
        ]

    def scheduled_rows(self) -> list[ScheduledRow]:
        delayed = Counter(job.key for _, _, job in self._timers)
        keys = sorted(set(delayed) | {k for k, q in self._due.items() if q})
        return [
            ScheduledRow(
                key[0],
                key[1],
                len(self._due.get(key, ())),
                delayed.get(key, 0),
                self._blocked.get(key),
            )
            for key in keys
        ]

    def policy(self, binding: str, domain: str) -> RouteSettings:
        """The policy dispatch uses for binding x domain now (live values and the provider's
        limits applied)."""
        return self._policy(binding, domain)

    def unreachable_until(self, binding: str, domain: str) -> float | None:
        """Until when binding x domain gets no new connection (connect_timeout_to_delay)."""
        return self._down.get((binding, domain))
