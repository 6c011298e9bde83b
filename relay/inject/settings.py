"""What the injection server needs to know, as plain frozen data.

The config package maps the parsed Momentum configuration (esmtp_listener / listen / peer
scopes, `relay_hosts`, `hostname`, TLS options, ...) onto these classes; tests build them
directly. Nothing here reads a file or opens a socket.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from relay.sign.settings import DkimSettings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_GROUP = "default"
DEFAULT_BINDING = "default"


def parse_network(text: str) -> IPNetwork:
    """A `relay_hosts` entry: CIDR (`10.0.0.0/8`) or a single address (`::1`)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as exc:
        raise ValueError(f"not an IP network in CIDR form: {text!r}") from exc


def parse_listen_address(text: str) -> tuple[str, int]:
    """A Momentum `listen` address as (host, port) for `loop.create_server`.

    `1.2.3.4:25`, `[2001:db8::1]:25`, `mail.example:25`; `:25` and `*:25` mean every IPv4
    address (`0.0.0.0`), `[*]:25` and `[::]:25` every IPv6 address (`::`).
    """
    value = text.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or value[end + 1 : end + 2] != ":":
            raise ValueError(f"listen address {text!r}: expected [IPv6]:port")
        host = value[1:end]
        port_text = value[end + 2 :]
        if host == "*":
            host = "::"
        else:
            try:
                ipaddress.IPv6Address(host)
            except ValueError as exc:
                raise ValueError(f"listen address {text!r}: {host!r} is not IPv6") from exc
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep:
            raise ValueError(f"listen address {text!r}: expected host:port")
        if ":" in host:
            raise ValueError(f"listen address {text!r}: write IPv6 addresses as [addr]:port")
        if host in ("", "*"):
            host = "0.0.0.0"
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"listen address {text!r}: port must be 0-65535")
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class PeerSettings:
    """A `peer "CIDR" { ... }` stanza inside a listener: options for clients in `network`."""

    network: IPNetwork
    binding_group: str | None = None
    binding: str | None = None
    tenant: str | None = None  # defaults for mail without X-Tenant / X-Campaign
    campaign: str | None = None
    priority: str | None = None  # `priority_class` for mail without X-Priority-Class


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    """One `listen "addr:port"` socket.

    `relay_hosts` and `max_connections` left as None fall back to InjectSettings.
    """

    listen: str
    binding_group: str | None = None
    binding: str | None = None
    tenant: str | None = None  # defaults for mail without X-Tenant / X-Campaign
    campaign: str | None = None
    priority: str | None = None  # `priority_class` for mail without X-Priority-Class
    peers: tuple[PeerSettings, ...] = ()
    relay_hosts: tuple[IPNetwork, ...] | None = None
    max_connections: int | None = None
    reuse_port: bool = False  # SO_REUSEPORT: several relay nodes on one host share it
    backlog: int = 500  # `listen_backlog`: connections the kernel queues before accept

    def __post_init__(self) -> None:
        parse_listen_address(self.listen)

    @property
    def address(self) -> tuple[str, int]:
        return parse_listen_address(self.listen)

    def peer_for(self, client: IPAddress) -> PeerSettings | None:
        """The most specific peer stanza containing `client` (longest prefix), if any."""
        best: PeerSettings | None = None
        for peer in self.peers:
            if (
                peer.network.version == client.version
                and client in peer.network
                and (best is None or peer.network.prefixlen > best.network.prefixlen)
            ):
                best = peer
        return best


@dataclass(frozen=True, slots=True)
class InjectSettings:
    """Everything the SMTP injection server is configured with.

    binding_groups: every known binding group and the bindings declared in it. Binding
        names are unique across groups. The `default` group and its `default` binding are
        known even when absent; bindings declared outside any group belong to `default`.
    max_message_size: octets of message data after dot-unstuffing (0 means no limit);
        advertised as SIZE; over it: 552 5.3.4 at MAIL (SIZE=) or at end of DATA.
    max_recipients: per message; the first `max_recipients` RCPTs are accepted, each
        further one gets 452 4.5.3.
    idle_timeout: seconds a client may take to send each command (a client trickling a
        command slowly is cut at this deadline with 421 4.4.2).
    data_timeout: seconds from the 354 reply to the final `.` (421 4.4.2 when exceeded).
    max_connections_per_listener / max_connections_per_ip: concurrent connections (None: no
        limit); over either, the client gets 421 4.7.0 instead of the greeting.
    normalize_bare_line_endings: False (the default) refuses message data containing a bare
        CR or bare LF with 550 5.5.2, the only safe answer to SMTP smuggling. True instead
        turns each bare CR or LF into CRLF in the stored content; the message still ends
        only at <CRLF>.<CRLF>. A NUL octet is refused either way.
    max_received_headers: more `Received:` headers than this is a mail loop: 554 5.4.0.
    dkim: the DKIM signing profiles; each accepted message is signed (in a signing process) after
        relay's header changes and before it is spooled.
    """

    listeners: tuple[ListenerSettings, ...]
    hostname: str
    relay_hosts: tuple[IPNetwork, ...] = ()
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    auth_credentials_file: Path | None = None
    max_message_size: int = 20 * 1024 * 1024
    max_recipients: int = 100
    idle_timeout: float = 300.0
    data_timeout: float = 600.0
    max_connections_per_listener: int | None = None
    max_connections_per_ip: int | None = None
    binding_groups: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    normalize_bare_line_endings: bool = False
    max_received_headers: int = 50
    dkim: DkimSettings | None = None  # signing before spooling (None: no opendkim stanza)

    def __post_init__(self) -> None:
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise ValueError("tls_certificate and tls_key must be set together")
        if not self.hostname or any(c.isspace() for c in self.hostname):
            raise ValueError(f"hostname {self.hostname!r} must be a non-empty name")
        for name, value in (
            ("max_message_size", self.max_message_size),
            ("max_recipients", self.max_recipients),
        ):
            if value < 0:
                raise ValueError(f"{name} must not be negative")
        if self.max_recipients < 1:
            raise ValueError("max_recipients must be at least 1")
        if self.idle_timeout <= 0 or self.data_timeout <= 0:
            raise ValueError("idle_timeout and data_timeout must be positive")
        groups: dict[str, frozenset[str]] = {
            name: frozenset(bindings) for name, bindings in self.binding_groups.items()
        }
        groups[DEFAULT_GROUP] = groups.get(DEFAULT_GROUP, frozenset()) | {DEFAULT_BINDING}
        seen: dict[str, str] = {}
        for group, bindings in groups.items():
            for binding in bindings:
                if binding in seen and seen[binding] != group:
                    raise ValueError(
                        f"binding {binding!r} is declared in groups {seen[binding]!r} and {group!r}"
                    )
                seen[binding] = group
        object.__setattr__(self, "binding_groups", MappingProxyType(groups))

    def group_of_binding(self, binding: str) -> str | None:
        """The group a binding was declared in, or None for an unknown binding."""
        for group, bindings in self.binding_groups.items():
            if binding in bindings:
                return group
        return None

    @property
    def tls_enabled(self) -> bool:
        return self.tls_certificate is not None
