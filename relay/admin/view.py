"""What the admin API may see of and do to a running daemon: one narrow, typed interface.

The API and the metrics collector are written against `DaemonView` only; the daemon hands
them an implementation (relay/control.py). Nothing here reaches into the scheduler, the
adaptive engine or the spool: every read returns plain data, every change goes through the
one method that owns it (a suspension through adaptive delivery, a flush through the
scheduler), so the admin API cannot write state past its owner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from relay.adaptive import Event, PairSnapshot, Suspend
from relay.schedule.statistics import SchedulerStatistics
from relay.spool.statistics import SpoolStatistics


class NotRunning(Exception):
    """The part of the daemon a request needs has not started (or has stopped)."""


class NotFromFile(Exception):
    """A reload was asked of a daemon that was not started from a configuration file."""


@dataclass(frozen=True, slots=True)
class SuspendedDomain:
    domain: str
    until: float
    reason: str


@dataclass(frozen=True, slots=True)
class BindingView:
    name: str
    weight: int
    plumbed: bool
    bind_address: str | None
    suspended: tuple[SuspendedDomain, ...]


class NoCluster(Exception):
    """This daemon has no cluster stanza: a single node."""


class ClusterUnavailable(Exception):
    """Redis cannot be asked now (the node runs on its local shares)."""


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    node: str
    redis_up: bool
    fallbacks: int  # times Redis became unavailable since start
    live_nodes: int  # at the last heartbeat (the fallback shares divide by it)


class DaemonView(Protocol):
    def now(self) -> float:
        """The daemon's clock (a test's manual clock, else the system's)."""
        ...

    def has_binding(self, name: str) -> bool: ...

    # --- reads --------------------------------------------------------------------------
    async def spool_statistics(self) -> Mapping[str, SpoolStatistics]:
        """Each spool part now ("local", and every injection worker's shard, asked)."""
        ...

    def spool_statistics_cached(self) -> Mapping[str, SpoolStatistics]:
        """The daemon's own spool now and the shards as last asked (cannot wait)."""
        ...

    def queue_counts(self) -> SchedulerStatistics | None: ...

    def event_counts(self) -> Mapping[str, int]: ...

    def listening(self) -> Sequence[str]: ...

    def binding_groups(self) -> Mapping[str, Sequence[BindingView]]: ...

    def suspended_counts(self) -> Mapping[str, int]:
        """Binding -> number of domains it is suspended for now."""
        ...

    def queues(self) -> Mapping[str, Sequence[Mapping[str, object]]]:
        """Ready queues per binding x domain, scheduled mail per group x domain.
        Raises NotRunning."""
        ...

    def adaptive_pairs(self) -> Sequence[PairSnapshot]:
        """Raises NotRunning."""
        ...

    def cluster_status(self) -> ClusterStatus | None:
        """None without a cluster stanza."""
        ...

    async def cluster_nodes(self) -> Sequence[Mapping[str, object]]:
        """The live nodes (name, version, queue size, last seen). Raises NoCluster or
        ClusterUnavailable."""
        ...

    # --- changes (each raises NotRunning before the daemon has started) -----------------
    def suspend(self, binding: str, domain: str, duration: float, reason: str) -> Suspend: ...

    def resume(self, binding: str, domain: str) -> Sequence[Event]: ...

    def override(self, binding: str, domain: str, option: str, value: Any) -> Event:
        """Raises KeyError for an option adaptive delivery does not manage."""
        ...

    def reset(self, binding: str, domain: str) -> Sequence[Event]: ...

    def flush(self, domain: str | None) -> int: ...

    async def reload(self) -> str:
        """Re-read the configuration file and apply it; returns its path. Raises
        ConfigError (the running configuration stays) or NotFromFile."""
        ...
