"""The running daemon as the admin API sees it: `DaemonView` (relay/admin/view.py) over a
`Daemon`. The only place that knows both sides; every change goes to the component that
owns the state (holds and live values: adaptive delivery; queues: the scheduler)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, Protocol

from relay.adaptive import Event, PairSnapshot, Suspend
from relay.admin.view import (
    BindingView,
    ClusterStatus,
    ClusterUnavailable,
    NoCluster,
    NotFromFile,
    NotRunning,
    SuspendedDomain,
)
from relay.bind.suspensions import SuspensionTable
from relay.clock import Clock
from relay.cluster.node import ClusterNode
from relay.cluster.store import RedisUnavailable
from relay.config import load
from relay.config.model import Config
from relay.dispose.events import EventLog
from relay.inject.server import Listeners
from relay.schedule.adaptive_link import AdaptiveLink
from relay.schedule.scheduler import Scheduler
from relay.schedule.statistics import SchedulerStatistics
from relay.spool.statistics import SpoolStatistics
from relay.spool.store import Spool


class RunningDaemon(Protocol):
    """What of relay.daemon.Daemon this module reads (the daemon imports this module)."""

    clock: Clock
    config: Config
    path: str | None
    spool: Spool | None
    scheduler: Scheduler | None
    adaptive: AdaptiveLink | None
    listeners: Listeners | None
    events: EventLog
    suspensions: SuspensionTable
    last_spool_statistics: dict[str, SpoolStatistics]
    cluster: ClusterNode | None

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
        selector = daemon.scheduler.selector if daemon.scheduler is not None else None
        return {
            group: [
                BindingView(
                    m.name,
                    m.weight,
                    m.plumbed,
                    daemon.binding_address(m.name),
                    tuple(suspended.get(m.name, ())),
                )
                for m in (selector.members(group) if selector is not None else ())
            ]
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

    def adaptive_pairs(self) -> Sequence[PairSnapshot]:
        return self._adaptive().engine.snapshot(self.now())

    # --- changes ------------------------------------------------------------------------
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
