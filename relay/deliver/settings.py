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
XclientMode = Literal["no", "ifavailable", "required"]
Method = Literal["ESMTP", "SMTP", "LMTP", "HTTP"]


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
    # MTA-STS (RFC 8461) and DANE (RFC 7672): use_* looks the policy up, enable_* applies it
    use_mta_sts: bool = False
    enable_mta_sts: bool = True
    use_dane: bool = False
    enable_dane: bool = True
    max_deliveries_per_connection: int = 0
    max_recipients_per_connection: int = 0
    max_recipients_per_batch: int = 100
    send_8bitmime: Send8BitMime = "no"
    transform_8bitmime_content: Transform8BitMime = "ifneeded"
    response_transcode_pattern: str | None = None
    response_transcode_replace: str | None = None
    xclient: XclientMode = "no"
    lmtp_port: int = 2003
    # delivery_method = HTTP: http_host is the base URL ("http://host:port"), as the
    # configuration's value type normalised it; http_basic_auth is "user:password".
    http_host: str | None = None
    http_uri: str = "/"
    http_method: str = "POST"
    http_version: str = "1.1"
    http_basic_auth: str | None = None

    @property
    def method(self) -> Method:
        """The protocol: LMTP and HTTP stand alone (the configuration allows them only so);
        ESMTP when EHLO is allowed (with a HELO fallback when SMTP is listed too); else
        SMTP, HELO only."""
        methods = {m.upper() for m in self.delivery_method}
        if "LMTP" in methods:
            return "LMTP"
        if "HTTP" in methods:
            return "HTTP"
        return "ESMTP" if "ESMTP" in methods else "SMTP"

    @property
    def port(self) -> int:
        """The destination port when the gateway names none: lmtp_port for LMTP."""
        return self.lmtp_port if self.method == "LMTP" else self.remote_smtp_port

    @property
    def allows_esmtp(self) -> bool:
        return "ESMTP" in (m.upper() for m in self.delivery_method)

    @property
    def allows_helo(self) -> bool:
        """HELO after a refused EHLO only when delivery_method includes SMTP."""
        return "SMTP" in (m.upper() for m in self.delivery_method)
