"""Everything the scheduler needs to know about one binding x domain, resolved from the
configuration once and cached until the next reload (config lookups stay off the hot path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relay.config.model import Config
from relay.config.resolve import Resolved, scoped
from relay.config.values import Throttle
from relay.dispose.decide import RetryPolicy, parse_max_retries
from relay.schedule.limits import Cap

ThrottleRef = tuple[tuple[str, tuple[str, ...]], Throttle]
# connection_allocation_aggressiveness = normal: another connection opens only when each open
# one has this many messages waiting ("high": one connection per waiting message).
NORMAL_DEPTH = 8


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    binding: str
    group: str
    domain: str
    transport: Any  # the delivery package's own policy object
    max_connections: int  # max_outbound_connections for this binding x domain (-1: no cap)
    caps: tuple[Cap, ...]  # every connection cap this binding x domain counts against
    message_throttle: ThrottleRef | None
    connection_throttle: ThrottleRef | None
    suspend_delivery: bool
    blackhole: str  # "false" | "inline" | "internal"
    retry: RetryPolicy
    never_attempt_expired: bool
    ready_capacity: int  # jobs queued per binding x domain (max_resident_active_queue)
    idle_timeout: float
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


TransportFactory = Callable[[Config, str, str], Any]


def _throttle(kind: str, found: Resolved) -> ThrottleRef | None:
    if found.value is None:
        return None
    return ((kind, found.scope or ()), found.value)


def build_policy(
    config: Config, binding: str, domain: str, transport_factory: TransportFactory
) -> RoutePolicy:
    group = config.bindings[binding].group

    get = scoped(config, binding=binding, domain=domain)

    caps: list[Cap] = []
    max_connections = int(get("max_outbound_connections").value)
    caps.append((("binding_domain", binding, domain), max_connections))
    scope_max = get("scope_max_outbound_connections")
    if scope_max.value is not None:
        caps.append((("scope", scope_max.scope or ()), int(scope_max.value)))
    server_max = get("server_max_outbound_connections")
    caps.append((("server", server_max.scope or ()), int(server_max.value)))
    blackhole = str(get("blackhole").value)
    retry = RetryPolicy(
        retry_interval=float(get("retry_interval").value),
        max_retry_interval=float(get("max_retry_interval").value),
        fuzz=float(get("adaptive_retry_fuzz").value) if get("adaptive_enabled").value else 0.0,
        message_expiration=float(get("message_expiration").value),
        max_retries=parse_max_retries(get("max_retries").value),
        never_retry=bool(get("never_retry").value),
    )
    return RoutePolicy(
        binding=binding,
        group=group,
        domain=domain,
        transport=transport_factory(config, binding, domain),
        max_connections=max_connections,
        caps=tuple(caps),
        message_throttle=_throttle("messages", get("outbound_throttle_messages")),
        connection_throttle=_throttle("connections", get("outbound_throttle_connections")),
        suspend_delivery=bool(get("suspend_delivery").value),
        blackhole=blackhole,
        retry=retry,
        never_attempt_expired=bool(get("never_attempt_expired_messages").value),
        ready_capacity=max(1, int(get("max_resident_active_queue").value)),
        idle_timeout=float(get("idle_timeout").value),
        generate_bounces=bool(get("generate_bounces").value),
        bounces_inline_original=str(get("bounces_inline_original").value),
        mailerdaemon=get("mailerdaemon").value,
        mdn_failures_notify=get("mdn_failures_notify").value,
        generate_delay_dsn=bool(get("generate_delay_dsn").value),
        delay_dsn_retry_interval=float(get("delay_dsn_retry_interval").value),
        delay_dsn_max_retry_interval=float(get("delay_dsn_max_retry_interval").value),
        connect_timeout_to_delay=float(get("connect_timeout_to_delay").value),
        drop_body_after_trans_fail=int(get("drop_body_after_trans_fail").value),
        fbl_header=get("enable_fbl_header_insertion").value == "enabled",
        connection_depth=(
            1 if get("connection_allocation_aggressiveness").value == "high" else NORMAL_DEPTH
        ),
    )


class PolicyCache:
    def __init__(self, config: Config, transport_factory: TransportFactory) -> None:
        self.config = config
        self._factory = transport_factory
        self._cache: dict[tuple[str, str], RoutePolicy] = {}

    def get(self, binding: str, domain: str) -> RoutePolicy:
        key = (binding, domain)
        policy = self._cache.get(key)
        if policy is None:
            policy = build_policy(self.config, binding, domain, self._factory)
            self._cache[key] = policy
        return policy

    def reload(self, config: Config) -> None:
        self.config = config
        self._cache.clear()
