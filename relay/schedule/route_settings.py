"""Everything the scheduler needs to know about one binding x domain, as one frozen value.

The settings compile step (relay/wiring/routes.py) builds a `RouteSettings` per binding x domain
from the configuration, once per load, and hands the scheduler a `RouteSettingsSource` to
look them up: configuration lookups stay off the hot path and option names out of schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from relay.adaptive import AdaptiveSettings
from relay.config.values import Throttle
from relay.deliver.settings import DeliverySettings
from relay.dispose.decide import RetryPolicy
from relay.schedule.limits import Cap
from relay.schedule.warmup import WarmupPlan

ThrottleRef = tuple[tuple[str, tuple[str, ...]], Throttle]  # (bucket key, rate)
LiveValue = Callable[[str, Any], Any]  # (managed option, configured value) -> value now


@dataclass(frozen=True, slots=True)
class RouteSettings:
    binding: str
    group: str
    domain: str
    delivery: DeliverySettings  # what relay/deliver needs to connect and send
    adaptive: AdaptiveSettings  # what adaptive delivery reads for this binding x domain
    max_connections: int  # max_outbound_connections for this binding x domain (-1: no cap)
    caps: tuple[Cap, ...]  # every connection cap this binding x domain counts against
    message_throttle: ThrottleRef | None
    connection_throttle: ThrottleRef | None
    suspend_delivery: bool
    blackhole: str  # "false" | "inline" | "internal"
    retry: RetryPolicy
    never_attempt_expired: bool
    ready_capacity: int  # jobs queued per binding x domain (max_resident_active_queue)
    idle_timeout: float  # = delivery.idle_timeout
    generate_bounces: bool
    bounces_inline_original: str
    mailerdaemon: str | None
    mdn_failures_notify: str | None
    generate_delay_dsn: bool
    delay_dsn_retry_interval: float
    delay_dsn_max_retry_interval: float
    connect_timeout_to_delay: float
    drop_body_after_trans_fail: int
    fbl_header: bool  # enable_fbl_header_insertion
    connection_depth: int  # queued messages per connection before another one opens
    # Shared across relay nodes (relay/cluster; acted on only with a cluster stanza).
    cluster_message_throttle: ThrottleRef | None = None
    cluster_connection_throttle: ThrottleRef | None = None
    cluster_caps: tuple[Cap, ...] = ()  # cluster_{scope,server}_max_outbound_connections
    # The provider (providers.py) the domain is in, and its per binding x provider throttles
    # (its connection cap is in `caps`); the queue core sets them once the provider is known.
    provider: str | None = None
    provider_message_throttle: ThrottleRef | None = None
    provider_connection_throttle: ThrottleRef | None = None
    warmup: WarmupPlan | None = None  # warmup_schedule / warmup_start (schedule/warmup.py)
    provider_warmup: WarmupPlan | None = None  # the provider stanza's, per binding x provider


class RouteSettingsSource(Protocol):
    """One configuration's route settings (built at start and at each reload)."""

    def get(self, binding: str, domain: str) -> RouteSettings: ...

    def with_live_values(self, route: RouteSettings, live: LiveValue) -> RouteSettings:
        """`route` with every option adaptive delivery manages set to `live(option, the
        configured value)`."""
        ...
