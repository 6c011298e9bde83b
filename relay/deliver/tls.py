"""Client TLS for STARTTLS: SSL contexts from the settings, Momentum's `tls_protocols`
syntax, and the `tls_verify = host` name check (against the MX host name, not the IP).

Contexts are cached per distinct TLS setting and built in a thread (they read files).
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from dataclasses import dataclass
from typing import Any

from relay.deliver.settings import DeliverySettings

__all__ = ["TlsSettings", "client_context", "parse_tls_protocols", "peer_matches"]

_VERSIONS: tuple[tuple[str, ssl.TLSVersion], ...] = (
    ("SSLV3", ssl.TLSVersion.SSLv3),
    ("TLSV1", ssl.TLSVersion.TLSv1),
    ("TLSV1.0", ssl.TLSVersion.TLSv1),
    ("TLSV1.1", ssl.TLSVersion.TLSv1_1),
    ("TLSV1.2", ssl.TLSVersion.TLSv1_2),
    ("TLSV1.3", ssl.TLSVersion.TLSv1_3),
)
_ORDER = [ssl.TLSVersion.SSLv3, ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1]
_ORDER += [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


def parse_tls_protocols(text: str | None) -> tuple[ssl.TLSVersion, ssl.TLSVersion] | None:
    """Momentum's `"+ALL:-SSLv3"` form -> (minimum, maximum) version, or None for the
    library default. SSLv2 is ignored (unsupported); a hole in the middle of the range
    cannot be expressed and widens to the whole range."""
    if text is None or not text.strip():
        return None
    enabled: set[ssl.TLSVersion] = set()
    for raw in text.split(":"):
        token = raw.strip()
        if not token:
            continue
        sign, name = ("-", token[1:]) if token[0] == "-" else ("+", token.lstrip("+"))
        name = name.upper()
        if name == "ALL":
            chosen = set(_ORDER)
        elif name == "SSLV2":
            continue
        else:
            chosen = {v for n, v in _VERSIONS if n == name}
            if not chosen:
                raise ValueError(f"tls_protocols: unknown protocol {token!r}")
        enabled = enabled - chosen if sign == "-" else enabled | chosen
    if not enabled:
        raise ValueError(f"tls_protocols {text!r} enables no protocol")
    ordered = [v for v in _ORDER if v in enabled]
    return ordered[0], ordered[-1]


@dataclass(frozen=True, slots=True)
class TlsSettings:
    verify: str
    ca: str | None
    certificate: str | None
    key: str | None
    ciphers: str | None
    protocols: str | None

    @classmethod
    def of(cls, settings: DeliverySettings) -> TlsSettings:
        cert = settings.tls_certificate
        if cert is not None and cert.lower() == "none":
            cert = None
        return cls(
            settings.tls_verify,
            settings.tls_ca,
            cert,
            settings.tls_key,
            settings.tls_ciphers,
            settings.tls_protocols,
        )

    def build(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        # The host name is checked by peer_matches (MX name or domain), not by ssl.
        context.check_hostname = False
        if self.verify == "no":
            context.verify_mode = ssl.CERT_NONE
        else:
            context.verify_mode = ssl.CERT_REQUIRED
            if self.ca:
                context.load_verify_locations(cafile=self.ca)
            else:
                context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if self.certificate:
            context.load_cert_chain(self.certificate, keyfile=self.key)
        if self.ciphers and self.ciphers.upper() != "DEFAULT":
            context.set_ciphers(self.ciphers)
        versions = parse_tls_protocols(self.protocols)
        if versions is not None:
            context.minimum_version, context.maximum_version = versions
        return context


_contexts: dict[TlsSettings, ssl.SSLContext] = {}


async def client_context(settings: DeliverySettings) -> ssl.SSLContext:
    """The (shared, cached) client context for a settings's TLS options."""
    tls = TlsSettings.of(settings)
    context = _contexts.get(tls)
    if context is None:
        context = await asyncio.to_thread(tls.build)
        _contexts[tls] = context
    return context


def peer_matches(cert: dict[str, Any], names: tuple[str, ...]) -> bool:
    """Does a verified peer certificate (ssl's getpeercert() dict) name one of `names`?
    DNS subjectAltNames (one leading `*.` wildcard label), IP SANs, and the subject CN
    only when there is no DNS SAN (RFC 6125)."""
    sans: list[tuple[str, str]] = [(str(k), str(v)) for k, v in cert.get("subjectAltName", ())]
    dns_names = [v for k, v in sans if k == "DNS"]
    ips = [v for k, v in sans if k == "IP Address"]
    if not dns_names:
        for rdn in cert.get("subject", ()):
            dns_names += [str(v) for k, v in rdn if k == "commonName"]
    for name in names:
        wanted = name.rstrip(".").lower()
        try:
            ip = ipaddress.ip_address(wanted)
        except ValueError:
            if any(_dns_match(pattern, wanted) for pattern in dns_names):
                return True
            continue
        if any(_same_ip(ip, v) for v in ips):
            return True
    return False


def _dns_match(pattern: str, name: str) -> bool:
    pattern = pattern.rstrip(".").lower()
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:] and "." in rest
    return pattern == name


def _same_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, text: str) -> bool:
    try:
        return ipaddress.ip_address(text.strip()) == ip
    except ValueError:
        return False
