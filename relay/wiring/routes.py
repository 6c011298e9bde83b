"""Route settings: everything about one binding x domain the scheduler, delivery and adaptive
delivery read, compiled from one configuration.

`RouteTable` is the scheduler's `RouteSettingsSource` for one configuration: it builds a
binding x domain's `RouteSettings` on first use (the domain set is open-ended) and keeps it
until the daemon compiles the next configuration. `LIVE_KNOBS` is the typed table of the
options adaptive delivery moves at run time: where each one's configured value sits in
`RouteSettings` and how a live value goes back in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from relay.adaptive import AdaptiveSettings
from relay.config.model import Config
from relay.config.options import DOMAIN
from relay.config.resolve import Resolved, SharedLookups, chain, scoped
from relay.config.values import WARMUP_PERIODS, HostPort, parse_warmup_step
from relay.deliver.settings import DeliverySettings
from relay.dispose.decide import RetryPolicy, parse_max_retries
from relay.schedule.limits import Cap
from relay.schedule.route_settings import LiveValue, RouteSettings, ThrottleRef
from relay.schedule.warmup import WarmupPlan, date_start
from relay.wiring.adaptive import build_settings, collect_reply_rules, collect_sweep_rules

__all__ = ["LIVE_KNOBS", "LiveKnob", "RouteTable", "route_settings"]

Get = Callable[[str], Any]
# connection_allocation_aggressiveness = normal: another connection opens only when each open
# one has this many messages waiting ("high": one connection per waiting message).
NORMAL_DEPTH = 8

# DeliverySettings fields set straight from the option of the same name.
_DELIVERY_OPTIONS = (
    "remote_smtp_port",
    "fully_resolve_before_smtp",
    "delivery_method",
    "connect_timeout",
    "ehlo_timeout",
    "mailfrom_timeout",
    "rcptto_timeout",
    "body_timeout",
    "rset_timeout",
    "idle_timeout",
    "tls",
    "tls_verify",
    "tls_ca",
    "tls_certificate",
    "tls_key",
    "tls_ciphers",
    "tls_protocols",
    "tls_ifavailable_fallback",
    "use_mta_sts",
    "enable_mta_sts",
    "use_dane",
    "enable_dane",
    "max_deliveries_per_connection",
    "max_recipients_per_connection",
    "max_recipients_per_batch",
    "send_8bitmime",
    "transform_8bitmime_content",
    "response_transcode_pattern",
    "response_transcode_replace",
    "xclient",
    "lmtp_port",
    "http_host",
    "http_uri",
    "http_method",
    "http_version",
    "http_basic_auth",
)


class RouteTable:
    """The route settings of one configuration, per binding x domain, built once each."""

    def __init__(self, config: Config, hostname: str) -> None:
        self._config = config
        self._hostname = hostname
        self._built: dict[tuple[str, str], RouteSettings] = {}
        # what every binding of a group finds in the group and global scopes, looked up once
        self._shared: SharedLookups = {}

    def get(self, binding: str, domain: str) -> RouteSettings:
        key = (binding, domain)
        found = self._built.get(key)
        if found is None:
            found = route_settings(
                self._config, binding, domain, self._hostname, shared=self._shared
            )
            self._built[key] = found
        return found

    def with_live_values(self, route: RouteSettings, live: LiveValue) -> RouteSettings:
        for knob in LIVE_KNOBS:
            route = knob.write(route, live(knob.option, knob.read(route)))
        return route


def route_settings(
    config: Config,
    binding: str,
    domain: str,
    hostname: str,
    *,
    shared: SharedLookups | None = None,
) -> RouteSettings:
    lookup = scoped(config, binding=binding, domain=domain, shared=shared)

    def get(option: str) -> Any:
        return lookup(option).value

    caps: list[Cap] = []
    max_connections = int(get("max_outbound_connections"))
    caps.append((("binding_domain", binding, domain), max_connections))
    scope_max = lookup("scope_max_outbound_connections")
    if scope_max.value is not None:
        caps.append((("scope", scope_max.scope or ()), int(scope_max.value)))
    server_max = lookup("server_max_outbound_connections")
    caps.append((("server", server_max.scope or ()), int(server_max.value)))
    cluster_caps: list[Cap] = []
    for option, kind in (
        ("cluster_scope_max_outbound_connections", "cluster_scope"),
        ("cluster_server_max_outbound_connections", "cluster_server"),
    ):
        found = lookup(option)
        if found.value is not None:
            cluster_caps.append(((kind, found.scope or ()), int(found.value)))
    retry = RetryPolicy(
        retry_interval=float(get("retry_interval")),
        max_retry_interval=float(get("max_retry_interval")),
        fuzz=float(get("adaptive_retry_fuzz")) if get("adaptive_enabled") else 0.0,
        message_expiration=float(get("message_expiration")),
        max_retries=parse_max_retries(get("max_retries")),
        never_retry=bool(get("never_retry")),
    )
    delivery = delivery_settings(get, binding)
    return RouteSettings(
        binding=binding,
        group=config.bindings[binding].group,
        domain=domain,
        delivery=delivery,
        adaptive=adaptive_settings(config, get, binding, domain, hostname),
        max_connections=max_connections,
        caps=tuple(caps),
        message_throttle=_throttle("messages", lookup("outbound_throttle_messages")),
        connection_throttle=_throttle("connections", lookup("outbound_throttle_connections")),
        suspend_delivery=bool(get("suspend_delivery")),
        blackhole=str(get("blackhole")),
        retry=retry,
        never_attempt_expired=bool(get("never_attempt_expired_messages")),
        ready_capacity=max(1, int(get("max_resident_active_queue"))),
        idle_timeout=float(delivery.idle_timeout),
        generate_bounces=bool(get("generate_bounces")),
        bounces_inline_original=str(get("bounces_inline_original")),
        mailerdaemon=get("mailerdaemon"),
        mdn_failures_notify=get("mdn_failures_notify"),
        generate_delay_dsn=bool(get("generate_delay_dsn")),
        delay_dsn_retry_interval=float(get("delay_dsn_retry_interval")),
        delay_dsn_max_retry_interval=float(get("delay_dsn_max_retry_interval")),
        connect_timeout_to_delay=float(get("connect_timeout_to_delay")),
        drop_body_after_trans_fail=int(get("drop_body_after_trans_fail")),
        fbl_header=get("enable_fbl_header_insertion") == "enabled",
        connection_depth=(
            1 if get("connection_allocation_aggressiveness") == "high" else NORMAL_DEPTH
        ),
        cluster_message_throttle=_throttle(
            "cluster_messages", lookup("cluster_outbound_throttle_messages")
        ),
        cluster_connection_throttle=_throttle(
            "cluster_connections", lookup("cluster_outbound_throttle_connections")
        ),
        cluster_caps=tuple(cluster_caps),
        warmup=_warmup(binding, lookup("warmup_schedule"), get("warmup_start")),
    )


def _warmup(binding: str, schedule: Resolved, start: str | None) -> WarmupPlan | None:
    if schedule.value is None:
        return None
    scope = tuple(schedule.scope or ())
    steps = []
    for text in schedule.value:
        count, period = parse_warmup_step(text)
        steps.append((count, WARMUP_PERIODS[period]))
    return WarmupPlan(
        key=(binding, *scope),
        binding_wide=DOMAIN not in scope,
        start=date_start(start) if start is not None else 0.0,
        steps=tuple(steps),
    )


def delivery_settings(get: Get, binding: str) -> DeliverySettings:
    gateway = get("gateway")
    route: tuple[str, int | None] | None = None
    if isinstance(gateway, HostPort):
        route = (gateway.host, gateway.port)
    values: dict[str, Any] = {name: get(name) for name in _DELIVERY_OPTIONS}
    return DeliverySettings(
        binding=binding,
        bind_address=get("bind_address"),
        ehlo_hostname=str(get("ehlo_hostname")),
        gateway=route,
        **values,
    )


def adaptive_settings(
    config: Config, get: Get, binding: str, domain: str, hostname: str
) -> AdaptiveSettings:
    blocks = chain(config, binding=binding, domain=domain)
    return build_settings(
        get,
        collect_sweep_rules(blocks),
        collect_reply_rules(blocks),
        default_sender=f"MAILER-DAEMON@{hostname}",
    )


def _throttle(kind: str, found: Resolved) -> ThrottleRef | None:
    if found.value is None:
        return None
    return ((kind, found.scope or ()), found.value)


# ---- the options adaptive delivery moves ------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveKnob:
    """A managed option: `read` gives its configured value in a route's settings, `write`
    puts a live value back (converted as the compile step converts the option)."""

    option: str
    read: Callable[[RouteSettings], Any]
    write: Callable[[RouteSettings, Any], RouteSettings]


_DELIVERY_FIELDS = {f.name for f in fields(DeliverySettings)}


def _delivery_knob(option: str, convert: Callable[[Any], Any]) -> LiveKnob:
    """An option that lives in DeliverySettings under its own name."""
    assert option in _DELIVERY_FIELDS, option

    def write(route: RouteSettings, value: Any) -> RouteSettings:
        delivery = replace(route.delivery, **{option: convert(value)})
        return replace(route, delivery=delivery, idle_timeout=float(delivery.idle_timeout))

    return LiveKnob(option, lambda route: getattr(route.delivery, option), write)


def _keep(value: Any) -> Any:
    return value


def _max_connections(route: RouteSettings, value: Any) -> RouteSettings:
    limit = int(value)
    caps = ((route.caps[0][0], limit), *route.caps[1:])  # caps[0]: the binding x domain's own
    return replace(route, max_connections=limit, caps=caps)


def _configured_throttle(route: RouteSettings) -> Any:
    return route.message_throttle[1] if route.message_throttle is not None else None


def _message_throttle(route: RouteSettings, value: Any) -> RouteSettings:
    if value is None or value == _configured_throttle(route):
        return route
    # An adjusted throttle is this binding x domain's own bucket.
    return replace(route, message_throttle=(("adaptive", (route.binding, route.domain)), value))


def _max_retries(route: RouteSettings, value: Any) -> RouteSettings:
    if not isinstance(value, int):
        return route
    return replace(route, retry=replace(route.retry, max_retries=value))


LIVE_KNOBS: tuple[LiveKnob, ...] = (
    *(
        _delivery_knob(option, _keep)
        for option in (
            "max_deliveries_per_connection",
            "max_recipients_per_batch",
            "max_recipients_per_connection",
            "body_timeout",
            "ehlo_timeout",
            "idle_timeout",
            "mailfrom_timeout",
            "rcptto_timeout",
            "rset_timeout",
        )
    ),
    LiveKnob("max_outbound_connections", lambda route: route.max_connections, _max_connections),
    LiveKnob("outbound_throttle_messages", _configured_throttle, _message_throttle),
    LiveKnob(
        "retry_interval",
        lambda route: route.retry.retry_interval,
        lambda route, value: replace(
            route, retry=replace(route.retry, retry_interval=float(value))
        ),
    ),
    LiveKnob(
        "max_retry_interval",
        lambda route: route.retry.max_retry_interval,
        lambda route, value: replace(
            route, retry=replace(route.retry, max_retry_interval=float(value))
        ),
    ),
    LiveKnob("max_retries", lambda route: route.retry.max_retries, _max_retries),
    LiveKnob(
        "max_resident_active_queue",
        lambda route: route.ready_capacity,
        lambda route, value: replace(route, ready_capacity=max(1, int(value))),
    ),
)
