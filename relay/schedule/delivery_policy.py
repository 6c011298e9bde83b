"""Map the configuration onto delivery's own policy for one binding x domain."""

from __future__ import annotations

from typing import Any

from relay.config.model import Config
from relay.config.resolve import scoped
from relay.config.values import HostPort
from relay.deliver.settings import DeliverySettings

SIMPLE = (
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
    "max_deliveries_per_connection",
    "max_recipients_per_connection",
    "max_recipients_per_batch",
    "send_8bitmime",
    "transform_8bitmime_content",
    "response_transcode_pattern",
    "response_transcode_replace",
)


def delivery_policy(config: Config, binding: str, domain: str) -> DeliverySettings:
    lookup = scoped(config, binding=binding, domain=domain)

    def get(option: str) -> Any:
        return lookup(option).value

    gateway = get("gateway")
    route: tuple[str, int | None] | None = None
    if isinstance(gateway, HostPort):
        route = (gateway.host, gateway.port)
    values: dict[str, Any] = {name: get(name) for name in SIMPLE}
    return DeliverySettings(
        binding=binding,
        bind_address=get("bind_address"),
        ehlo_hostname=str(get("ehlo_hostname")),
        gateway=route,
        **values,
    )
