"""The scheduler: carries out what the queue core (queues.py) decides.

The core owns all queue state and answers "what now" with actions (actions.py); this thin
async layer opens sessions through the Transport, sends (content from the spool, the FBL
header), applies outcomes (dispose.decide, OutcomeRecorder), feeds adaptive delivery and
reports every result back to the core. All of its tasks live in one TaskGroup: the dispatch
loop, and one task per connection or local disposition. On stop, each connection finishes
the message it is sending (the rest stay spooled) until the deadline; then they are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol, assert_never

from relay.adaptive.subjects import SubjectHold
from relay.bind.selector import Selector
from relay.clock import Cancellable, Clock
from relay.dispose.decide import decide
from relay.dispose.feedback import fbl_header
from relay.durable import write_atomically
from relay.outcome import Outcome, RecipientResult
from relay.schedule.actions import (
    Action,
    LocalDisposition,
    OpenConnection,
    ResolveProvider,
    Resume,
    Send,
    Wait,
    WakeAt,
)
from relay.schedule.adaptive_link import AdaptiveLink
from relay.schedule.fair import Fairness
from relay.schedule.holds import Hold, HoldTable, Kind
from relay.schedule.holds import to_json as holds_to_json
from relay.schedule.jobs import Job, jobs_for
from relay.schedule.live_routes import LiveRoutes
from relay.schedule.local_replies import Local, local_reply, local_results
from relay.schedule.outcomes import Notifier, OutcomeRecorder
from relay.schedule.providers import ProviderDirectory, rollup_name
from relay.schedule.queues import SPOOL_RETRY, Queues
from relay.schedule.ready import Connection
from relay.schedule.route_settings import RouteSettings, RouteSettingsSource
from relay.schedule.shared import SharedLimits
from relay.schedule.statistics import SchedulerStatistics
from relay.schedule.transport import ConnectFailed, OutboundMessage, Session, Transport
from relay.schedule.warmup import WarmupCounts
from relay.spool.errors import MessageNotFound, SpoolError
from relay.spool.model import Envelope, Recipient

log = logging.getLogger("relay.schedule")

EventSink = Callable[[str, dict[str, object]], None]
# A domain's MX host names (None: the lookup failed): what a provider's match_mx sees.
MxLookup = Callable[[str], Awaitable[tuple[str, ...] | None]]
FollowUp = tuple[Job | None, Job | None]  # (retry later, requeue now)
# RFC 8689 5: the sender asks that recipient-side TLS policy not stop the message.
_TLS_REQUIRED_NO = re.compile(rb"(?:^|\r\n)tls-required[ \t]*:[ \t]*no[ \t]*\r\n", re.IGNORECASE)


def tls_policy_waived(content: bytes) -> bool:
    """Does the message's header section say `TLS-Required: No`?"""
    end = content.find(b"\r\n\r\n")
    return _TLS_REQUIRED_NO.search(content, 0, len(content) if end < 0 else end + 2) is not None


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class SpoolAccess(Protocol):
    async def load(self, message_id: str) -> bytes: ...

    async def update_recipients(self, message_id: str, updates: Sequence[Recipient]) -> bool: ...

    def evict(self, message_id: str) -> None: ...


class Scheduler:
    def __init__(
        self,
        spool: SpoolAccess,
        routes: RouteSettingsSource,
        selector: Selector,
        transport: Transport,
        clock: Clock,
        *,
        notifier: Notifier | None = None,
        events: EventSink | None = None,
        max_in_flight: int = 20000,
        adaptive: AdaptiveLink | None = None,
        shared: SharedLimits | None = None,
        providers: ProviderDirectory | None = None,
        mx_lookup: MxLookup | None = None,
        warmup: WarmupCounts | None = None,
        warmup_path: Path | None = None,
        fairness: Fairness | None = None,
        holds: HoldTable | None = None,
        holds_path: Path | None = None,
    ) -> None:
        self.spool = spool
        self.holds_path = holds_path  # where tenant/campaign holds are saved (holds.json)
        self._holds_saving = asyncio.Lock()
        self._holds_version = 0  # bumped at each hold/release; saves write the latest only
        self._holds_saved = 0
        self._holds_tasks: set[asyncio.Task[None]] = set()
        self.mx_lookup = mx_lookup
        self.warmup_path = warmup_path  # where the warm-up counts are saved
        self.transport = transport
        self.clock = clock
        self.events = events or (lambda kind, fields: None)
        self.outcomes = OutcomeRecorder(spool, clock, self.events, notifier)
        if fairness is not None:
            self.outcomes.by_tenant.configure(fairness.tenants)
        self.adaptive = adaptive
        self.live = LiveRoutes(routes, adaptive)
        self._wake = asyncio.Event()
        self._alarm: Cancellable | None = None  # the dispatcher's timer (_wait)
        self._alarm_at = 0.0  # the time it is set for (while there is one)
        self.core = Queues(
            selector,
            self.live,
            max_in_flight=max_in_flight,
            on_work=self._wake.set,
            shared=shared,
            providers=providers,
            warmup=warmup,
            fairness=fairness,
            holds=holds,
        )
        if adaptive is not None:
            adaptive.on_change = self._adaptive_changed
            adaptive.key_of = self._adaptive_key
            adaptive.provider_key_of = self.core.provider_key
            adaptive.hold_subject = self._adaptive_hold
        self._parked: dict[Connection, asyncio.Future[None]] = {}
        self._group: asyncio.TaskGroup | None = None
        self._main: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None

    @property
    def selector(self) -> Selector:
        return self.core.selector

    @property
    def max_in_flight(self) -> int:
        return self.core.max_in_flight

    # --- feeding ------------------------------------------------------------------------
    def submit(self, envelope: Envelope) -> None:
        """Queue a spooled message's pending recipients (new, or recovered at start)."""
        for job in jobs_for(envelope):
            self.core.schedule(job)

    def schedule(self, job: Job) -> None:
        self.core.schedule(job)

    # --- life ---------------------------------------------------------------------------
    def start(self) -> None:
        self._main = asyncio.create_task(self._run(), name="scheduler")

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            self._dispatcher = group.create_task(self._dispatch(), name="scheduler-dispatch")

    async def stop(self, deadline: float = 10.0) -> None:
        """Stop dispatching; let sessions finish their current message up to `deadline`."""
        self._carry_out(self.core.stop())
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        main = self._main
        if main is None:
            return
        if self._dispatcher is None:
            main.cancel()  # stopped before it ran
        _, pending = await asyncio.wait({main}, timeout=deadline)
        if pending:
            main.cancel()
            await asyncio.wait(pending, timeout=1.0)
        if main.done() and not main.cancelled() and main.exception() is not None:
            log.error("the scheduler failed", exc_info=main.exception())

    def reload(
        self,
        routes: RouteSettingsSource,
        selector: Selector,
        providers: ProviderDirectory | None = None,
        fairness: Fairness | None = None,
    ) -> None:
        """A new configuration's route settings: forget resolved ones, retry blocked queues."""
        self.live.reload(routes)
        self.core.reload(selector, providers, fairness)
        if fairness is not None:
            self.outcomes.by_tenant.configure(fairness.tenants)

    def wake(self) -> None:
        """Something outside changed (an FBL complaint, an operator command): look again."""
        self._wake.set()

    def _adaptive_hold(self, found: SubjectHold) -> None:
        kind: Kind = "tenant" if found.kind == "tenant" else "campaign"
        self.hold(
            kind,
            found.subject,
            found.target,
            found.duration,
            found.reason,
            found.binding,
            by="adaptive",
        )

    # --- tenant and campaign holds (holds.py) ---------------------------------------------
    def hold(
        self,
        kind: Kind,
        subject: str,
        target: str,
        duration: float,
        reason: str,
        binding: str | None = None,
        by: str = "operator",
    ) -> Hold:
        """Hold subject's mail to target (a domain or "provider:NAME"), on `binding` only
        if given, for `duration` seconds: parked without attempts until then."""
        now = self.clock.now()
        entry = self.core.holds.hold(kind, subject, target, now + duration, reason, binding)
        self.core.hold(entry)
        self._holds_changed()
        self.events(
            f"{kind}_hold",
            {
                kind: subject,
                "target": entry.target,
                "binding": binding,
                "until": entry.until,
                "reason": reason,
                "by": by,
            },
        )
        return entry

    def release_hold(
        self, kind: Kind, subject: str, target: str, binding: str | None = None
    ) -> bool:
        released = self.core.holds.release(kind, subject, target, binding)
        if released:
            self.core.release()
            self._holds_changed()
            self.events(
                f"{kind}_release", {kind: subject, "target": target.lower(), "binding": binding}
            )
        return released

    def _holds_changed(self) -> None:
        self._holds_version += 1
        if self.holds_path is not None:
            task = asyncio.get_running_loop().create_task(self.save_holds())
            self._holds_tasks.add(task)
            task.add_done_callback(self._holds_tasks.discard)

    async def save_holds(self) -> None:
        """Write the holds to holds_path (in a thread) when they changed since the last
        save; one save at a time, each writing the table as it is when its turn comes."""
        path = self.holds_path
        if path is None:
            return
        async with self._holds_saving:
            version = self._holds_version
            if version == self._holds_saved:
                return
            text = holds_to_json(self.core.holds)
            try:
                await asyncio.to_thread(write_atomically, text, path)
            except OSError as err:
                log.error("cannot save the tenant/campaign holds to %s: %s", path, err)
                return
            self._holds_saved = version

    def holds(self) -> list[dict[str, object]]:
        return [asdict(row) for row in self.core.held_rows()]

    def _adaptive_key(self, domain: str) -> str:
        return self.core.providers.adaptive_key(domain)

    def _adaptive_changed(self, binding: str, domain: str) -> None:
        provider = rollup_name(domain)
        if provider is not None:
            changed = self.core.provider_policy_changed(binding, provider, self.clock.now())
        else:
            changed = self.core.policy_changed(binding, domain, self.clock.now())
        self._carry_out(changed)

    # --- views --------------------------------------------------------------------------
    def policy(self, binding: str, domain: str) -> RouteSettings:
        """The policy dispatch uses for binding x domain now (adaptive's live values applied)."""
        return self.core.policy(binding, domain)

    def unreachable_until(self, binding: str, domain: str) -> float | None:
        """Until when binding x domain opens no connection (connect_timeout_to_delay)."""
        return self.core.unreachable_until(binding, domain)

    def statistics(self) -> SchedulerStatistics:
        sizes = self.core.sizes()
        return SchedulerStatistics(
            scheduled=sizes.scheduled,
            due=sizes.due,
            ready=sizes.ready,
            in_flight=sizes.in_flight,
            connections=sizes.connections,
            delivered=self.outcomes.counts["delivered"],
            deferred=self.outcomes.counts["deferred"],
            failed=self.outcomes.counts["failed"],
            tenants=self.outcomes.by_tenant.snapshot(),
            campaigns=self.outcomes.by_campaign.snapshot(),
        )

    def queues(self) -> dict[str, list[dict[str, object]]]:
        """What waits where: ready queues per binding x domain, due and delayed mail per
        binding group x domain (for the admin API)."""
        return {
            "ready": [asdict(row) for row in self.core.ready_rows()],
            "scheduled": [asdict(row) for row in self.core.scheduled_rows()],
            "held": self.holds(),  # tenant / campaign holds and the mail parked under each
        }

    def flush(self, domain: str | None = None) -> int:
        """Make delayed mail (for one domain, or all) due now; returns how many jobs."""
        return self.core.flush(self.clock.now(), domain)

    # --- operator actions on queued mail (the admin API) --------------------------------
    def _policy_of(self, job: Job) -> RouteSettings:
        binding = job.binding
        if binding is None:
            members = self.core.selector.members(job.group)
            binding = members[0].name if members else "default"
        return self.live.get(binding, job.domain)

    async def bounce(self, matches: Callable[[Job], bool]) -> list[Job]:
        """Fail the queued jobs `matches` selects, with DSNs as for any failure."""
        jobs = self.core.take(matches)
        for job in jobs:
            policy = self._policy_of(job)
            await self._finish(job, local_results(Local.OPERATOR_BOUNCE, job), policy)
        return jobs

    async def delete(self, matches: Callable[[Job], bool]) -> list[Job]:
        """Drop the queued jobs `matches` selects: no delivery, no DSN."""
        jobs = self.core.take(matches)
        reply = local_reply(Local.OPERATOR_DELETE)
        for job in jobs:
            try:
                await self.outcomes.discard(job, reply, self._policy_of(job))
            finally:
                self.core.job_finished(job)
        return jobs

    def rebind(self, matches: Callable[[Job], bool], group: str) -> list[Job]:
        """Move the queued jobs `matches` selects to binding group `group` (any binding
        of it), due as they were. In memory: the caller journals the new group in the spool
        (Spool.regroup) so that a restart keeps it."""
        jobs = self.core.take(matches)
        for job in jobs:
            moved = replace(job, group=sys.intern(group), binding=None)
            self.core.job_finished(job, retry=moved)
        return jobs

    # --- carrying actions out -----------------------------------------------------------
    async def _dispatch(self) -> None:
        core, clock, adaptive = self.core, self.clock, self.adaptive
        try:
            while True:
                now = clock.now()
                if adaptive is not None:
                    await adaptive.poll(now)
                wake_at = self._carry_out(core.step(now))
                if wake_at <= now:  # placed something: another round at once
                    await asyncio.sleep(0)
                    continue
                if adaptive is not None:
                    due = adaptive.next_due()
                    if due is not None and due < wake_at:
                        wake_at = due
                await self._wait(wake_at, now)
        finally:
            if self._alarm is not None:
                self._alarm.cancel()
                self._alarm = None

    async def _wait(self, wake_at: float, now: float) -> None:
        """Until `wake_at` or until something sets the wake event. One timer serves many
        waits: it is set again only when the time asked for is earlier than the one it is
        set for (or it has rung). A timer that rings early costs one round of `step`, which
        finds nothing due and asks for the later time; setting and cancelling a timer on
        every round cost 3.3% of the event loop at a paced 1,250 messages/s."""
        self._wake.clear()
        if self._alarm is None or wake_at < self._alarm_at:
            if self._alarm is not None:
                self._alarm.cancel()
            self._alarm = self.clock.call_later(wake_at - now, self._ring)
            self._alarm_at = wake_at
        await self._wake.wait()

    def _ring(self) -> None:
        self._alarm = None
        self._wake.set()

    def _carry_out(self, actions: list[Action]) -> float:
        """Returns the WakeAt time (step's last action), else +inf."""
        wake_at = float("inf")
        for action in actions:
            if isinstance(action, WakeAt):
                wake_at = action.at
            elif isinstance(action, Resume):
                waiter = self._parked.pop(action.connection, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif isinstance(action, OpenConnection):
                self._spawn(self._connection(action.connection))
            elif isinstance(action, LocalDisposition):
                self._spawn(self._local(action))
            elif isinstance(action, ResolveProvider):
                self._spawn(self._resolve_provider(action.domain))
            else:
                assert_never(action)
        return wake_at

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._group is not None, "the scheduler has not started"
        self._group.create_task(coro)

    # --- connections --------------------------------------------------------------------
    async def _connection(self, conn: Connection) -> None:
        try:
            try:
                delivery = conn.policy.delivery
                session = await self.transport.open(conn.binding, conn.domain, delivery)
            except ConnectFailed as err:
                await self._connect_failed(conn, err)
                return
            except Exception as err:  # translate anything unexpected into a deferral
                log.exception("opening a session for %s x %s failed", conn.binding, conn.domain)
                failure = ConnectFailed(local_reply(Local.OPEN_ERROR, str(err)))
                await self._connect_failed(conn, failure)
                return
            self.core.connection_opened(conn)
            try:
                await self._serve(conn, session)
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5.0):
                        await session.close()
        except Exception:
            log.exception("the connection for %s x %s failed", conn.binding, conn.domain)
        finally:
            self._carry_out(self.core.connection_closed(conn, self.clock.now()))

    async def _serve(self, conn: Connection, session: Session) -> None:
        next_job, clock, parked = self.core.next_job, self.clock, self._parked
        loop = asyncio.get_running_loop()
        ahead: _Following | None = None
        while True:
            now = clock.now()
            step = next_job(conn, now)
            if isinstance(step, Send):
                ahead = await self._send(conn, session, step, ahead)
                if not session.usable:
                    return
            elif isinstance(step, Wait):  # until then, or until the core resumes it
                waiter: asyncio.Future[None] = loop.create_future()
                parked[conn] = waiter
                timer = clock.call_later(step.until - now, functools.partial(_settle, waiter))
                try:
                    await waiter
                finally:
                    timer.cancel()
                    parked.pop(conn, None)
            else:
                return

    async def _send(
        self, conn: Connection, session: Session, send: Send, ready: _Following | None
    ) -> _Following | None:
        """One job over the session; `ready`: the job as made ready when it was given to
        the session to follow the previous one. Returns the job given to follow this one
        (held by the core: the connection's next Send)."""
        job, policy = send.job, send.policy
        retry = requeue = following = None
        try:
            if ready is not None and ready.job is job:
                message = ready.message
            else:
                try:
                    content = await self.spool.load(job.message_id)
                except MessageNotFound:
                    log.error("message %s is no longer in the spool; dropped", job.message_id)
                    return None
                except SpoolError as err:  # e.g. its injection worker is restarting: soon
                    log.warning("message %s cannot be loaded now: %s", job.message_id, err)
                    job.due = self.clock.now() + SPOOL_RETRY
                    retry = job
                    return None
                message = _outbound(conn, job, policy, content)
            if session.sends_ahead:
                following = await self._following(conn)
            results = await self._send_over(
                session, conn, job, message, following.message if following else None
            )
            retry, requeue = await self._dispose(job, results, policy)
        finally:
            self.core.job_finished(job, retry, requeue)
        return following

    async def _following(self, conn: Connection) -> _Following | None:
        """The job queued next on this connection, taken early (RFC 2920: its commands may
        go behind the current content) when the core allows it and its content is at hand;
        a job whose content cannot be loaded stays held and is sent (and fails) as usual."""
        job = self.core.take_next(conn)
        if job is None:
            return None
        try:
            content = await self.spool.load(job.message_id)
        except SpoolError:
            return None
        return _Following(job, _outbound(conn, job, conn.route_policy, content))

    async def _send_over(
        self,
        session: Session,
        conn: Connection,
        job: Job,
        message: OutboundMessage,
        then: OutboundMessage | None = None,
    ) -> list[RecipientResult]:
        try:
            return await session.send(message, then)
        except Exception as err:
            log.exception("sending %s through %s failed", job.message_id, conn.binding)
            return local_results(Local.SEND_ERROR, job, str(err))

    async def _waives_tls_policy(self, job: Job) -> bool:
        """`TLS-Required: No` (RFC 8689 5) on a message without REQUIRETLS (which wins)."""
        if job.esmtp is not None and job.esmtp.requiretls:
            return False
        try:
            return tls_policy_waived(await self.spool.load(job.message_id))
        except SpoolError:
            return False

    async def _send_without_tls_policy(self, conn: Connection, job: Job) -> None:
        """A message whose sender waived TLS policy (`TLS-Required: No`), after the policy
        stopped the connection: once more on a connection of its own with opportunistic
        TLS (tried, not required, not verified, plain text after a TLS failure), and
        neither MTA-STS nor DANE (RFC 8689 5)."""
        policy = conn.route_policy
        relaxed = dataclasses.replace(
            conn.policy.delivery,
            tls="ifavailable",
            tls_verify="no",
            tls_ifavailable_fallback=True,
            use_mta_sts=False,
            use_dane=False,
        )
        retry = requeue = None
        try:
            try:
                session = await self.transport.open(conn.binding, conn.domain, relaxed)
            except ConnectFailed as err:
                outcome = Outcome.PERMANENT if err.permanent else Outcome.TEMPORARY
                results = [
                    RecipientResult(a, outcome, err.reply, err.remote) for _, a, _ in job.recipients
                ]
                retry, requeue = await self._dispose(job, results, policy, record=False)
                return
            try:
                content = await self.spool.load(job.message_id)
                message = _outbound(conn, job, policy, content)
                results = await self._send_over(session, conn, job, message)
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5.0):
                        await session.close()
            self.events("tls_policy_waived", {"message_id": job.message_id, "domain": conn.domain})
            retry, requeue = await self._dispose(job, results, policy)
        except Exception:
            log.exception("delivering %s without TLS policy failed", job.message_id)
            job.due = self.clock.now() + policy.retry.retry_interval
            retry = job
        finally:
            self.core.job_finished(job, retry, requeue)

    async def _connect_failed(self, conn: Connection, err: ConnectFailed) -> None:
        """No connection: every job queued for this binding x domain shares the failure."""
        now = self.clock.now()
        jobs = self.core.connect_failed(conn, now, permanent=err.permanent, local=err.local)
        if err.local:
            return  # relay's own per-host limits said no: not an attempt
        policy = conn.route_policy
        if self.adaptive is not None:
            self.adaptive.record_connect_failure(policy, err.reply, now)
            self._wake.set()  # adaptive may act on it
        self.events(
            "connect_failure",
            {
                "binding": conn.binding,
                "domain": conn.domain,
                "response": str(err.reply),
                "remote": str(err.remote or ""),
                "jobs": len(jobs),
            },
        )
        outcome = Outcome.PERMANENT if err.permanent else Outcome.TEMPORARY
        for job in jobs:
            if err.tls and await self._waives_tls_policy(job):
                await self._send_without_tls_policy(conn, job)
                continue
            results = [
                RecipientResult(a, outcome, err.reply, err.remote) for _, a, _ in job.recipients
            ]
            await self._finish(job, results, policy)

    async def _resolve_provider(self, domain: str) -> None:
        hosts: tuple[str, ...] | None = None
        try:
            if self.mx_lookup is not None:
                hosts = await self.mx_lookup(domain)
        except Exception:
            log.exception("looking up the MX hosts of %s for its provider failed", domain)
        finally:
            self.core.provider_learned(domain, hosts, self.clock.now())

    # --- warm-up ------------------------------------------------------------------------
    def warmup_status(self, binding: str, domain: str = "") -> dict[str, object] | None:
        """Age, today's cap and count of binding's warm-up (binding scope: domain "")."""
        return self.core.warmup_status(binding, domain, self.clock.now())

    def warmup_details(
        self, binding: str, domains: Iterable[str] = ()
    ) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        """binding's warm-up per binding x domain and per binding x provider (Queues)."""
        return self.core.warmup_details(binding, domains, self.clock.now())

    def set_warmup_age(self, binding: str, days: int) -> float:
        """Make the binding `days` days old (day `days` of its schedules); returns the new
        start. Caps of the old age are lifted at once."""
        start = self.core.warmup.set_age(binding, days, self.clock.now())
        self.core.warmup_changed()
        return start

    async def save_warmup(self) -> None:
        """Snapshot on the loop, write in a thread (when anything changed)."""
        counts, path = self.core.warmup, self.warmup_path
        if path is None or not counts.dirty:
            return
        text = counts.to_json()
        counts.dirty = False
        try:
            await asyncio.to_thread(write_atomically, text, path)
        except OSError as err:
            counts.dirty = True
            log.error("cannot save the warm-up counts to %s: %s", path, err)

    async def keep_saving_warmup(
        self, every: float, sleep: Callable[[float], Awaitable[None]]
    ) -> None:
        while True:
            await sleep(every)
            await self.save_warmup()

    def provider_of(self, domain: str) -> str | None:
        """The provider the domain is in, as far as dispatch knows it now."""
        return self.core.provider_of(domain)

    async def _local(self, action: LocalDisposition) -> None:
        results = local_results(action.reason, action.job, action.detail)
        await self._finish(action.job, results, action.policy)

    # --- outcomes -----------------------------------------------------------------------
    async def _finish(
        self, job: Job, results: list[RecipientResult], policy: RouteSettings
    ) -> None:
        """Apply relay's own decision (never recorded for adaptive delivery)."""
        retry = requeue = None
        try:
            retry, requeue = await self._dispose(job, results, policy, record=False)
        finally:
            self.core.job_finished(job, retry, requeue)

    async def _dispose(
        self, job: Job, results: list[RecipientResult], policy: RouteSettings, record: bool = True
    ) -> FollowUp:
        """Apply one attempt's results; `record`: feed them to adaptive delivery (remote
        outcomes only, never relay's own decisions). Returns what follows for the core."""
        now = self.clock.now()
        if record and self.adaptive is not None:
            try:
                self.adaptive.record_results(policy, results, now, job.tenant, job.campaign)
            except Exception:
                log.exception("adaptive delivery could not record %s", job.message_id)
            self._wake.set()  # adaptive may act on it
        try:
            decision = decide(job.recipients, results, job.received_at, now, policy.retry)
            return await self.outcomes.record(job, decision, results, policy)
        except Exception:
            log.exception("recording the outcome of %s failed; will retry", job.message_id)
            job.due = now + policy.retry.retry_interval
            return job, None


@dataclass(frozen=True, slots=True)
class _Following:
    """A job given to a session to follow the one being sent, and its message."""

    job: Job
    message: OutboundMessage


def _outbound(conn: Connection, job: Job, policy: RouteSettings, content: bytes) -> OutboundMessage:
    """The job as the session sends it (with the FBL header when the route asks)."""
    if policy.fbl_header:
        only = job.recipients[0][1] if len(job.recipients) == 1 else None
        content = fbl_header(conn.binding, conn.domain, job.message_id, only, job.tenant) + content
    return OutboundMessage(
        job.message_id,
        job.sender,
        tuple(a for _, a, _ in job.recipients),
        content,
        job.client,
        job.esmtp,
        tuple(i for i, _, _ in job.recipients) if job.esmtp is not None else (),
    )
