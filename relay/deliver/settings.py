"""The delivery options for one binding x destination domain, as one frozen value.

The settings compile step (relay/wiring/) resolves every option through the configuration
fallback chain (relay/config/resolve.py) once per configuration load and hands delivery a
`DeliverySettings`. Defaults are Momentum's built-in defaults (reference/binding_group.md), so a
test can build settings from the few fields it cares about.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Literal

TlsMode = Literal["no", "ifavailable", "required"]
TlsVerify = Literal["no", "ca", "host"]
Send8BitMime = Literal["no", "ifavailable"]
Transform8BitMime = Literal["no", "ifneeded", "strict", "strip"]


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """Option values for one binding x domain; all durations in seconds.

    `gateway` is (host, port or None); a host may be a name or an IPv4/IPv6 literal without
    brackets. `max_*` limits of 0 mean unlimited, as in Momentum.
    """

    binding: str = "default"
    bind_address: str | None = None
    ehlo_hostname: str = field(default_factory=socket.gethostname)
    gateway: tuple[str, int | None] | None = None
    remote_smtp_port: int = 25
    fully_resolve_before_smtp: bool = True
    delivery_method: tuple[str, ...] = ("ESMTP", "SMTP")
    connect_timeout: float = 300.0
    ehlo_timeout: float = 300.0
    mailfrom_timeout: float = 300.0
    rcptto_timeout: float = 300.0
    body_timeout: float = 600.0
    rset_timeout: float = 30.0
    idle_timeout: float = 5.0
    tls: TlsMode = "no"
    tls_verify: TlsVerify = "no"
    tls_ca: str | None = None
    tls_certificate: str | None = None
    tls_key: str | None = None
    tls_ciphers: str | None = None
    tls_protocols: str | None = None
    tls_ifavailable_fallback: bool = True
    max_deliveries_per_connection: int = 0
    max_recipients_per_connection: int = 0
    max_recipients_per_batch: int = 100
    send_8bitmime: Send8BitMime = "no"
    transform_8bitmime_content: Transform8BitMime = "ifneeded"
    response_transcode_pattern: str | None = None
    response_transcode_replace: str | None = None

    @property
    def allows_esmtp(self) -> bool:
        return "ESMTP" in (m.upper() for m in self.delivery_method)

    @property
    def allows_helo(self) -> bool:
        """HELO after a refused EHLO only when delivery_method includes SMTP."""
        return "SMTP" in (m.upper() for m in self.delivery_method)
