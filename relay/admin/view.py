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
from relay.suppress.entries import Entry


class NotRunning(Exception):
    """The part of the daemon a request needs has not started (or has stopped)."""


class NotFromFile(Exception):
    """A reload was asked of a daemon that was not started from a configuration file."""


class SubmissionRefused(Exception):
    """An HTTP injection was refused; nothing was queued. `reply` is the SMTP reply an SMTP
    client would have got (its code decides the HTTP status), `field` the JSON field."""

    def __init__(self, field: str | None, reply: str) -> None:
        super().__init__(reply)
        self.field = field
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Submitted:
    message_id: str  # "" when every recipient was suppressed (dropped): nothing queued
    recipients: int
    suppressed: int = 0  # recipients dropped as on the suppression list


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """Which queued mail an operator action applies to: every field given must match."""

    domain: str | None = None  # the recipient's domain
    binding_group: str | None = None
    binding: str | None = None  # the message's explicit binding (X-Binding / "binding")
    sender: str | None = None
    older_than: float | None = None  # seconds since reception
    tenant: str | None = None
    campaign: str | None = None


@dataclass(frozen=True, slots=True)
class Taken:
    """What an operator action on queued mail reached."""

    messages: int
    recipients: int


@dataclass(frozen=True, slots=True)
class Health:
    spool_writable: bool
    listeners: tuple[str, ...]  # bound now
    problems: tuple[str, ...]  # empty: healthy


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
    warmup: Mapping[str, object] | None = None  # age_days, cap, period, count (today)
    # The same per binding x domain ("domain": ...) and per binding x provider ("provider").
    warmup_domains: tuple[Mapping[str, object], ...] = ()
    warmup_providers: tuple[Mapping[str, object], ...] = ()


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

    def providers(self) -> Mapping[str, object]:
        """The provider stanzas (name, match_mx, match_domain, limits) and the provider of
        every domain classified so far (None: in none). Raises NotRunning."""
        ...

    async def health(self) -> Health:
        """Is the spool writable (a file made and removed there now), are the listeners up."""
        ...

    def ready(self) -> bool:
        """Recovery finished: the spool is scanned, its mail queued, injection listening."""
        ...

    def state_directory(self) -> str:
        """Where the API keeps its own state (the spool directory)."""
        ...

    async def suppressions(
        self, tenant: str | None, address: str | None, limit: int, offset: int
    ) -> tuple[Sequence[Entry], int]:
        """A page of the suppression list and how many entries match in all. Raises
        NotRunning when the list is off (suppression_enabled = false)."""
        ...

    async def suppress(self, entries: Sequence[Entry]) -> Sequence[Entry]:
        """Add entries (durable on return); the ones that were new."""
        ...

    async def unsuppress(self, tenant: str | None, address: str) -> bool:
        """Remove an entry; False if there was none."""
        ...

    def webhooks(self) -> Mapping[str, Mapping[str, int]]:
        """Each webhook's counts: sent, posts, failures, lag_bytes, lost."""
        ...

    def tls_counts(self) -> Sequence[Mapping[str, object]]:
        """Today's (UTC) TLS session counts per policy domain and policy type (RFC 8460
        result types): domain, policy_type, successes, failures {result: count}.
        Raises NotRunning."""
        ...

    async def message(self, message_id: str) -> Mapping[str, object] | None:
        """A spooled message: envelope, recipients with their states, attempts, next
        attempt and last reply; None when the spool (no shard of it) holds it."""

    def cluster_status(self) -> ClusterStatus | None:
        """None without a cluster stanza."""
        ...

    async def cluster_nodes(self) -> Sequence[Mapping[str, object]]:
        """The live nodes (name, version, queue size, last seen). Raises NoCluster or
        ClusterUnavailable."""
        ...

    # --- changes (each raises NotRunning before the daemon has started) -----------------
    async def bounce(self, selection: MessageFilter) -> Taken:
        """Fail the queued mail `selection` matches, with DSNs."""
        ...

    async def delete(self, selection: MessageFilter) -> Taken:
        """Drop the queued mail `selection` matches: no delivery, no DSN."""
        ...

    async def rebind(self, selection: MessageFilter, group: str) -> Taken:
        """Move the queued mail `selection` matches to binding group `group`, for good
        (journalled in the spool: a restart keeps the new group)."""
        ...

    def suspend_domain(self, domain: str, duration: float, reason: str) -> Sequence[Suspend]:
        """Suspend every binding for `domain`."""
        ...

    def resume_domain(self, domain: str) -> Sequence[Event]:
        """Lift every binding's suspension for `domain`."""
        ...

    def hold(
        self,
        kind: str,
        subject: str,
        target: str,
        duration: float,
        reason: str,
        binding: str | None,
    ) -> Mapping[str, object]:
        """Hold a tenant's or campaign's mail to target (a domain or "provider:NAME"),
        on `binding` only if given; returns the hold."""
        ...

    def release_hold(self, kind: str, subject: str, target: str, binding: str | None) -> bool:
        """Lift a hold; False: there was none."""
        ...

    def holds(self) -> Sequence[Mapping[str, object]]:
        """Every hold with the number of jobs parked under it. Raises NotRunning."""
        ...

    def set_warmup_age(self, binding: str, days: int) -> Mapping[str, object] | None:
        """Make the binding `days` days into its warm-up schedules; returns its warm-up
        status now (None: it has no binding-scope schedule)."""
        ...

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
        """Inject one message as SMTP injection would (the same checks and limits);
        returns once it is durable in the spool. Raises SubmissionRefused (nothing
        queued) or NotRunning."""
        ...

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
