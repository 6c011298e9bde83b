"""Record one attempt's per-recipient decisions: the spool journal (in the same commit as
the attempt's DSNs: failure, delay and success notices), the event log and the counters.
Says which jobs follow (a retry later, a requeue now); the scheduler, the only owner of
queue state, queues them."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Protocol

from relay.adaptive.classify import BounceClass, classify
from relay.clock import Clock
from relay.dispose.decide import Decision, Failed, Notice, delay_notice_due
from relay.outcome import RecipientResult, Remote, Reply
from relay.schedule.jobs import Job
from relay.schedule.route_settings import RouteSettings
from relay.schedule.tenant_counts import TenantCounts
from relay.spool.model import Recipient, RecipientState


class Notifier(Protocol):
    """Makes the attempt's DSNs and journals `journal` (the message's recipient outcomes)
    in their commit; False when it sent none (the caller journals)."""

    def __call__(
        self,
        job: Job,
        notices: Sequence[Notice],
        policy: RouteSettings | None,
        *,
        journal: Sequence[Recipient],
    ) -> Awaitable[bool]: ...


EventSink = Callable[[str, dict[str, object]], None]
InvalidRecipient = Callable[[Job, str, Reply], None]
LAST_ATTEMPTS = 100_000  # messages whose last attempt's binding is remembered


def no_such_user(reply: Reply) -> bool:
    """A permanent failure the bounce classifier calls an invalid recipient (5.1.1,
    5.1.10, "no such user", ...), from the receiver (not one relay made up)."""
    if reply.local or reply.code is None or reply.code // 100 != 5:
        return False
    enhanced = None if reply.enhanced is None else str(reply.enhanced)
    return classify(reply.code, enhanced, reply.text).bounce_class is BounceClass.INVALID_RECIPIENT


class SpoolJournal(Protocol):
    async def update_recipients(self, message_id: str, updates: Sequence[Recipient]) -> bool: ...

    def evict(self, message_id: str) -> None: ...


class OutcomeRecorder:
    def __init__(
        self,
        spool: SpoolJournal,
        clock: Clock,
        events: EventSink,
        notifier: Notifier | None = None,
    ) -> None:
        self.spool = spool
        self.clock = clock
        self.events = events
        self.notifier = notifier  # makes the DSNs (failure, delay, success)
        # told of each recipient that failed for good as "no such user" (the suppression list)
        self.on_invalid_recipient: InvalidRecipient | None = None
        self.counts = {"delivered": 0, "deferred": 0, "failed": 0}
        self.by_tenant = TenantCounts()  # the same, per tenant (bounded: tenant_counts.py)
        self.by_campaign = TenantCounts()  # and per campaign
        # message id -> (binding group, binding, time) of its last attempt, for the admin's
        # message lookup: in memory only (lost at a restart), the newest LAST_ATTEMPTS kept.
        # An OrderedDict: a plain dict's oldest entry, next(iter(d)), is found by skipping
        # every entry deleted before it, which took 0.7 ms per delivery once it was full.
        self.last_attempts: OrderedDict[str, tuple[str, str, float]] = OrderedDict()

    async def record(
        self,
        job: Job,
        decision: Decision,
        results: list[RecipientResult],
        policy: RouteSettings,
    ) -> tuple[Job | None, Job | None]:
        """Returns (the retry job for deferred recipients, the job to requeue now)."""
        remote = {r.recipient: r.remote for r in results}
        self._attempted(job, policy)
        updates: list[Recipient] = []
        notices: list[Notice] = []
        if decision.delivered and job.esmtp is not None and self.notifier is not None:
            relayed = self._relayed(job, decision, results)
            if relayed:
                notices.append(("relayed", relayed))
        for d in decision.delivered:
            updates.append(Recipient(d.address, RecipientState.DELIVERED, 0, 0.0, str(d.reply)))
            self.counts["delivered"] += 1
            self.by_tenant.add(job.tenant, "delivered")
            self.by_campaign.add(job.campaign, "delivered")
            self.events("delivery", self._fields(job, policy, d.address, d.reply, remote))
        if decision.failed:
            for f in decision.failed:
                updates.append(
                    Recipient(f.address, RecipientState.FAILED, f.attempts, 0.0, str(f.reply))
                )
                self.counts["failed"] += 1
                self.by_tenant.add(job.tenant, "failed")
                self.by_campaign.add(job.campaign, "failed")
                kind = "expiration" if f.expired else "bounce"
                self.events(kind, self._fields(job, policy, f.address, f.reply, remote))
                if (
                    not f.expired
                    and self.on_invalid_recipient is not None
                    and no_such_user(f.reply)
                ):
                    self.on_invalid_recipient(job, f.address, f.reply)
        sent = dict(job.notices) if job.notices else {}  # delay notices per recipient
        if decision.deferred and policy.generate_delay_dsn and self.notifier is not None:
            now = self.clock.now()
            late = [
                Failed(r.index, r.address, r.reply, r.attempts)
                for r in decision.deferred
                if delay_notice_due(
                    job.received_at,
                    now,
                    sent.get(r.address, 0),
                    policy.delay_dsn_retry_interval,
                    policy.delay_dsn_max_retry_interval,
                )
            ]
            if late:
                notices.append(("delayed", late))
                for f in late:
                    sent[f.address] = sent.get(f.address, 0) + 1
        for r in decision.deferred:
            updates.append(
                Recipient(
                    r.address,
                    RecipientState.PENDING,
                    r.attempts,
                    r.next_attempt,
                    str(r.reply),
                    sent.get(r.address, 0),
                )
            )
            self.counts["deferred"] += 1
            self.by_tenant.add(job.tenant, "deferred")
            self.by_campaign.add(job.campaign, "deferred")
            fields = self._fields(job, policy, r.address, r.reply, remote)
            fields["next_attempt"] = r.next_attempt
            fields["attempt"] = r.attempts
            self.events("transient_failure", fields)
        if decision.failed:
            notices.append(("failed", decision.failed))
        journalled = False
        if notices and self.notifier is not None:
            # The DSNs and these outcomes in one commit: a crash keeps all or none.
            journalled = await self.notifier(job, notices, policy, journal=updates)
        if updates and not journalled:
            await self.spool.update_recipients(job.message_id, updates)
        retry = again = None
        if decision.deferred:
            retry = replace(
                job,
                recipients=[(r.index, r.address, r.attempts) for r in decision.deferred],
                due=min(r.next_attempt for r in decision.deferred),
                notices={a: n for a, n in sent.items() if n},
            )
            if max(r.attempts for r in decision.deferred) >= policy.drop_body_after_trans_fail:
                self.spool.evict(job.message_id)  # stays on disk; read back when due
        if decision.requeue:
            again = replace(job, recipients=list(decision.requeue), due=self.clock.now())
        return retry, again

    def _attempted(self, job: Job, policy: RouteSettings) -> None:
        attempts = self.last_attempts
        attempts[job.message_id] = (job.group, policy.binding, self.clock.now())
        attempts.move_to_end(job.message_id)  # the oldest go first
        if len(attempts) > LAST_ATTEMPTS:
            attempts.popitem(last=False)

    async def discard(self, job: Job, reply: Reply, policy: RouteSettings) -> None:
        """The job's recipients end here without a delivery and without a DSN (an
        operator's delete): journalled final, one `deleted` event each."""
        updates = [
            Recipient(address, RecipientState.FAILED, attempts, 0.0, str(reply))
            for _, address, attempts in job.recipients
        ]
        for update in updates:
            self.counts["failed"] += 1
            self.events("deleted", self._fields(job, policy, update.address, reply, {}))
        if updates:
            await self.spool.update_recipients(job.message_id, updates)

    @staticmethod
    def _relayed(job: Job, decision: Decision, results: list[RecipientResult]) -> list[Failed]:
        """NOTIFY=SUCCESS: the delivered recipients a "relayed" DSN reports, those whose next
        hop was not given the NOTIFY (it offers no DSN); one that was reports success
        itself (RFC 3461 4.1)."""
        esmtp = job.esmtp
        assert esmtp is not None
        passed = {r.recipient for r in results if r.dsn_passed}
        return [
            Failed(d.index, d.address, d.reply, 0)
            for d in decision.delivered
            if esmtp.wants(d.index, "SUCCESS", False) and d.address not in passed
        ]

    @staticmethod
    def _fields(
        job: Job,
        policy: RouteSettings,
        address: str,
        reply: Reply,
        remote: dict[str, Remote | None],
    ) -> dict[str, object]:
        where = remote.get(address)
        fields: dict[str, object] = {
            "message_id": job.message_id,
            "recipient": address,
            "binding_group": job.group,
            "binding": policy.binding,
            "domain": job.domain,
            "response": str(reply),
            "remote": "" if where is None else str(where),
        }
        if job.tenant is not None:
            fields["tenant"] = job.tenant
        if job.campaign is not None:
            fields["campaign"] = job.campaign
        return fields
