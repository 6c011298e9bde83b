"""The running daemon as the admin API sees it: `DaemonView` (relay/admin/view.py) over a
`Daemon`. The only place that knows both sides; every change goes to the component that
owns the state (holds and live values: adaptive delivery; queues: the scheduler)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any, Protocol

from relay.adaptive import Event, PairSnapshot, Suspend
from relay.admin.view import (
    BindingView,
    ClusterStatus,
    ClusterUnavailable,
    Health,
    MessageFilter,
    NoCluster,
    NotFromFile,
    NotRunning,
    SubmissionRefused,
    Submitted,
    SuspendedDomain,
    Taken,
)
from relay.bind.selector import Member
from relay.bind.suspensions import SuspensionTable
from relay.clock import Clock
from relay.cluster.node import ClusterNode
from relay.cluster.store import RedisUnavailable
from relay.config import load
from relay.config.model import Config
from relay.deliver.tls_report_send import TlsReports
from relay.dispose.events import EventLog
from relay.handoff import Handoff
from relay.inject import submission
from relay.inject.server import Listeners
from relay.inject.spooling import stored_reply
from relay.notify.webhook import Webhook
from relay.schedule.adaptive_link import AdaptiveLink
from relay.schedule.holds import Kind
from relay.schedule.jobs import Job
from relay.schedule.scheduler import Scheduler
from relay.schedule.statistics import SchedulerStatistics
from relay.spool.errors import MessageNotFound
from relay.spool.statistics import SpoolStatistics
from relay.spool.store import Spool
from relay.suppress.entries import Entry
from relay.suppress.service import SuppressionList
from relay.wiring import Settings
from relay.workers.shards import ShardedSpool


class RunningDaemon(Protocol):
    """What of relay.daemon.Daemon this module reads (the daemon imports this module)."""

    clock: Clock
    config: Config
    settings: Settings
    handoff: Handoff | None  # where mail injected in this process is stored through
    ready: bool  # recovery finished and injection listening
    workers: list[asyncio.subprocess.Process]
    webhooks: list[Webhook]
    path: str | None
    spool: Spool | None
    scheduler: Scheduler | None
    adaptive: AdaptiveLink | None
    listeners: Listeners | None
    events: EventLog
    suspensions: SuspensionTable
    suppression: SuppressionList | None  # None: suppression_enabled = false
    shards: ShardedSpool | None  # with injection workers: every shard's spool
    last_spool_statistics: dict[str, SpoolStatistics]
    cluster: ClusterNode | None
    tls_reports: TlsReports | None

    async def spool_statistics(self) -> dict[str, SpoolStatistics]: ...

    def binding_address(self, binding: str) -> str | None: ...

    async def reload(self, config: Config) -> None: ...


class DaemonControl:
    def __init__(self, daemon: RunningDaemon) -> None:
        self._daemon = daemon

    def now(self) -> float:
        return self._daemon.clock.now()

    def has_binding(self, name: str) -> bool:
        return name in self._daemon.config.bindings

    def _scheduler(self) -> Scheduler:
        if self._daemon.scheduler is None:
            raise NotRunning("the scheduler has not started")
        return self._daemon.scheduler

    def _adaptive(self) -> AdaptiveLink:
        if self._daemon.adaptive is None:
            raise NotRunning("adaptive delivery has not started")
        return self._daemon.adaptive

    def _changed(self) -> None:
        """The scheduler applies what changed (the engine's events) on its next round."""
        if self._daemon.scheduler is not None:
            self._daemon.scheduler.wake()

    # --- reads --------------------------------------------------------------------------
    async def spool_statistics(self) -> Mapping[str, SpoolStatistics]:
        return await self._daemon.spool_statistics()

    def spool_statistics_cached(self) -> Mapping[str, SpoolStatistics]:
        daemon = self._daemon
        if daemon.spool is None:
            return {}
        return {**daemon.last_spool_statistics, "local": daemon.spool.statistics()}

    def queue_counts(self) -> SchedulerStatistics | None:
        if self._daemon.scheduler is None:
            return None
        return self._daemon.scheduler.statistics()

    def event_counts(self) -> Mapping[str, int]:
        return dict(self._daemon.events.counts)

    def listening(self) -> Sequence[str]:
        listeners = self._daemon.listeners
        return [b.listen for b in listeners.bound] if listeners is not None else []

    def _priority_of(self, tenant: str | None, priority: str | None) -> dict[str, str]:
        """The message's class and where it comes from: "message" (X-Priority-Class, the
        listener's, peer's or HTTP `priority`), "tenant" (its priority_class), "default"."""
        if priority is not None:
            return {"priority": priority, "priority_from": "message"}
        scheduler = self._daemon.scheduler
        classes = scheduler.core.fairness.classes if scheduler is not None else {}
        if tenant is not None and tenant in classes:
            return {"priority": classes[tenant], "priority_from": "tenant"}
        return {"priority": "bulk", "priority_from": "default"}

    def _suspended_now(self) -> dict[str, list[SuspendedDomain]]:
        now = self.now()
        found: dict[str, list[SuspendedDomain]] = {}
        for s in self._daemon.suspensions.all():
            if s.until > now:
                found.setdefault(s.binding, []).append(SuspendedDomain(s.domain, s.until, s.reason))
        return found

    def binding_groups(self) -> Mapping[str, Sequence[BindingView]]:
        daemon = self._daemon
        suspended = self._suspended_now()
        scheduler = daemon.scheduler
        selector = scheduler.selector if scheduler is not None else None
        domains = [
            name
            for block in daemon.config.all_blocks()
            if block.domains is not None
            for name in block.domains.exact
        ]

        def view(m: Member) -> BindingView:
            by_domain, by_provider = (
                scheduler.warmup_details(m.name, domains) if scheduler is not None else ([], [])
            )
            return BindingView(
                m.name,
                m.weight,
                m.plumbed,
                daemon.binding_address(m.name),
                tuple(suspended.get(m.name, ())),
                scheduler.warmup_status(m.name) if scheduler is not None else None,
                tuple(by_domain),
                tuple(by_provider),
            )

        return {
            group: [view(m) for m in (selector.members(group) if selector is not None else ())]
            for group in daemon.config.groups
        }

    def cluster_status(self) -> ClusterStatus | None:
        node = self._daemon.cluster
        if node is None:
            return None
        return ClusterStatus(node.name, node.store.up, node.store.fallbacks, node.live)

    async def cluster_nodes(self) -> Sequence[Mapping[str, object]]:
        node = self._daemon.cluster
        if node is None:
            raise NoCluster("this node has no cluster stanza")
        try:
            rows = await node.nodes()
        except RedisUnavailable as err:
            raise ClusterUnavailable(f"Redis cannot be asked now: {err}") from None
        return [asdict(row) for row in rows]

    def suspended_counts(self) -> Mapping[str, int]:
        return {binding: len(domains) for binding, domains in self._suspended_now().items()}

    def queues(self) -> Mapping[str, Sequence[Mapping[str, object]]]:
        return self._scheduler().queues()

    def hold(
        self,
        kind: str,
        subject: str,
        target: str,
        duration: float,
        reason: str,
        binding: str | None,
    ) -> Mapping[str, object]:
        which: Kind = "tenant" if kind == "tenant" else "campaign"
        entry = self._scheduler().hold(which, subject, target, duration, reason, binding)
        self._changed()
        return asdict(entry)

    def release_hold(self, kind: str, subject: str, target: str, binding: str | None) -> bool:
        which: Kind = "tenant" if kind == "tenant" else "campaign"
        released = self._scheduler().release_hold(which, subject, target, binding)
        self._changed()
        return released

    def holds(self) -> Sequence[Mapping[str, object]]:
        return self._scheduler().holds()

    def set_warmup_age(self, binding: str, days: int) -> Mapping[str, object] | None:
        scheduler = self._scheduler()
        scheduler.set_warmup_age(binding, days)
        self._changed()
        return scheduler.warmup_status(binding)

    def providers(self) -> Mapping[str, object]:
        directory = self._scheduler().core.providers
        return {
            "providers": [
                {
                    "name": rule.name,
                    "match_mx": list(rule.match_mx),
                    "match_domain": list(rule.match_domain),
                    "max_outbound_connections": rule.max_connections,
                    "outbound_throttle_messages": _text(rule.message_throttle),
                    "outbound_throttle_connections": _text(rule.connection_throttle),
                }
                for rule in directory.rules
            ],
            "domains": directory.known(),
        }

    def adaptive_pairs(self) -> Sequence[PairSnapshot]:
        return self._adaptive().engine.snapshot(self.now())

    async def health(self) -> Health:
        daemon = self._daemon
        problems: list[str] = []
        writable = await asyncio.to_thread(_writable, str(daemon.settings.daemon.spoolbase))
        if writable is not None:
            problems.append(f"spool not writable: {writable}")
        bound = tuple(self.listening())
        configured = len(daemon.settings.inject.listeners)
        workers = daemon.settings.daemon.injection_workers
        if workers:
            if len(daemon.workers) < workers:
                problems.append(f"{len(daemon.workers)} of {workers} injection workers running")
        elif len(bound) < configured:
            problems.append(f"{len(bound)} of {configured} listeners up")
        return Health(writable is None, bound, tuple(problems))

    def ready(self) -> bool:
        return self._daemon.ready

    def state_directory(self) -> str:
        return str(self._daemon.settings.daemon.spoolbase)

    def webhooks(self) -> Mapping[str, Mapping[str, int]]:
        return {w.settings.name: asdict(w.statistics) for w in self._daemon.webhooks}

    def tls_counts(self) -> Sequence[Mapping[str, object]]:
        reports = self._daemon.tls_reports
        if reports is None:
            raise NotRunning("delivery has not started")
        return [
            {
                "day": b.day,
                "domain": b.domain,
                "policy_type": b.policy_type,
                "successes": b.successes,
                "failures": b.by_result(),
            }
            for b in sorted(reports.counts.day(self.now()), key=lambda b: (b.domain, b.policy_type))
        ]

    async def message(self, message_id: str) -> Mapping[str, object] | None:
        daemon = self._daemon
        if daemon.spool is None:
            raise NotRunning("the spool has not started")
        try:
            if daemon.shards is not None:
                found = await daemon.shards.get(message_id)  # the owning worker's shard
                if found is None:
                    return None
                envelope = found
            else:
                envelope = daemon.spool.get(message_id)
        except MessageNotFound:
            return None
        scheduler = self._daemon.scheduler
        last = None if scheduler is None else scheduler.outcomes.last_attempts.get(message_id)
        return {
            "id": envelope.message_id,
            "sender": envelope.sender,
            "last_attempt": None
            if last is None
            else {"binding_group": last[0], "binding": last[1], "at": last[2]},
            "binding_group": envelope.binding_group,
            "binding": envelope.binding,
            "tenant": envelope.tenant,
            "campaign": envelope.campaign,
            **self._priority_of(envelope.tenant, envelope.priority),
            "received_at": envelope.received_at,
            "size": envelope.size,
            "recipients": [
                {
                    "recipient": r.address,
                    "state": r.state.name.lower(),
                    "attempts": r.attempts,
                    "next_attempt": r.next_attempt or None,
                    "last_reply": r.last_response or None,
                }
                for r in envelope.recipients
            ],
        }

    # --- changes ------------------------------------------------------------------------
    def _matcher(self, selection: MessageFilter) -> Callable[[Job], bool]:
        domain = selection.domain.lower().rstrip(".") if selection.domain else None
        sender = selection.sender.lower() if selection.sender is not None else None
        before = None if selection.older_than is None else self.now() - selection.older_than
        group, binding = selection.binding_group, selection.binding
        tenant, campaign = selection.tenant, selection.campaign

        def matches(job: Job) -> bool:
            return (
                (domain is None or job.domain == domain)
                and (group is None or job.group == group)
                and (binding is None or job.binding == binding)
                and (tenant is None or job.tenant == tenant)
                and (campaign is None or job.campaign == campaign)
                and (sender is None or job.sender.lower() == sender)
                and (before is None or job.received_at < before)
            )

        return matches

    @staticmethod
    def _taken(jobs: Sequence[Job]) -> Taken:
        return Taken(len({j.message_id for j in jobs}), sum(len(j.recipients) for j in jobs))

    async def bounce(self, selection: MessageFilter) -> Taken:
        return self._taken(await self._scheduler().bounce(self._matcher(selection)))

    async def delete(self, selection: MessageFilter) -> Taken:
        return self._taken(await self._scheduler().delete(self._matcher(selection)))

    async def rebind(self, selection: MessageFilter, group: str) -> Taken:
        jobs = self._scheduler().rebind(self._matcher(selection), group)
        daemon = self._daemon
        spool = daemon.shards if daemon.shards is not None else daemon.spool
        if spool is not None:
            for message_id in dict.fromkeys(j.message_id for j in jobs):
                await spool.regroup(message_id, group)  # for good: a restart keeps it
        return self._taken(jobs)

    def suspend_domain(self, domain: str, duration: float, reason: str) -> Sequence[Suspend]:
        adaptive, now = self._adaptive(), self.now()
        events = [
            adaptive.suspend(binding, domain, now, duration, reason)
            for binding in self._daemon.config.bindings
        ]
        self._changed()
        return events

    def resume_domain(self, domain: str) -> Sequence[Event]:
        adaptive, now = self._adaptive(), self.now()
        events = [
            event
            for binding in self._daemon.config.bindings
            for event in adaptive.resume(binding, domain, now)
        ]
        self._changed()
        return events

    async def submit(
        self,
        *,
        sender: str,
        recipients: Sequence[str],
        content: bytes,
        binding_group: str | None,
        binding: str | None,
        client_ip: str,
        tls: bool,
        tenant: str | None = None,
        campaign: str | None = None,
        priority: str | None = None,
    ) -> Submitted:
        daemon = self._daemon
        if daemon.handoff is None or not daemon.ready:
            raise NotRunning("the spool has not started")
        try:
            future = submission.submit(
                daemon.handoff,
                daemon.settings.inject,
                sender=sender,
                recipients=recipients,
                content=content,
                binding_group=binding_group,
                binding=binding,
                client_ip=client_ip,
                tls=tls,
                received_at=self.now(),
                tenant=tenant,
                campaign=campaign,
                priority=priority,
                suppression=None if daemon.suppression is None else daemon.suppression.memory,
            )
        except submission.Refused as err:
            raise SubmissionRefused(err.field, err.reply) from None
        await asyncio.wait([future])
        reply = stored_reply(future, f"http:{client_ip}")
        if future.cancelled() or future.exception() is not None:
            raise SubmissionRefused(None, reply)
        envelope = future.result()
        kept = len(envelope.recipients)
        return Submitted(envelope.message_id, kept, len(recipients) - kept)

    def _suppression(self) -> SuppressionList:
        found = self._daemon.suppression
        if found is None:
            raise NotRunning("the suppression list is off (suppression_enabled = false)")
        return found

    async def suppressions(
        self, tenant: str | None, address: str | None, limit: int, offset: int
    ) -> tuple[Sequence[Entry], int]:
        store = self._suppression().store
        return await store.entries(tenant, address, limit, offset)

    async def suppress(self, entries: Sequence[Entry]) -> Sequence[Entry]:
        added = await self._suppression().add(entries)
        for e in added:
            self._daemon.events(
                "suppression_added",
                {
                    "tenant": e.tenant or None,
                    "recipient": e.address,
                    "source": e.source,
                    "reason": e.reason,
                },
            )
        return added

    async def unsuppress(self, tenant: str | None, address: str) -> bool:
        removed = await self._suppression().remove(tenant, address)
        if removed:
            self._daemon.events(
                "suppression_removed", {"tenant": tenant, "recipient": address.lower()}
            )
        return removed

    def suspend(self, binding: str, domain: str, duration: float, reason: str) -> Suspend:
        event = self._adaptive().suspend(binding, domain, self.now(), duration, reason)
        self._changed()
        return event

    def resume(self, binding: str, domain: str) -> Sequence[Event]:
        events = self._adaptive().resume(binding, domain, self.now())
        self._changed()
        return events

    def override(self, binding: str, domain: str, option: str, value: Any) -> Event:
        event = self._adaptive().override(binding, domain, option, value, self.now())
        self._changed()
        return event

    def reset(self, binding: str, domain: str) -> Sequence[Event]:
        events = self._adaptive().reset(binding, domain, self.now())
        self._changed()
        return events

    def flush(self, domain: str | None) -> int:
        return self._scheduler().flush(domain)

    async def reload(self) -> str:
        daemon = self._daemon
        if daemon.path is None:
            raise NotFromFile("this daemon was not started from a file")
        config = load(daemon.path)  # ConfigError: the running configuration stays
        await daemon.reload(config)
        return daemon.path


def _text(value: object | None) -> str | None:
    return None if value is None else str(value)


def _writable(directory: str) -> str | None:
    """None when a file can be made, written and removed in `directory`, else why not."""
    try:
        fd, path = tempfile.mkstemp(prefix=".healthz-", dir=directory)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            os.unlink(path)
    except OSError as err:
        return str(err)
    return None
