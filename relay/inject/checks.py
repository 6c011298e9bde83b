"""Who may do what: pure decisions over plain data, no sockets.

Each `check_*` returns None to accept, or the SMTP reply that refuses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from relay.inject import replies
from relay.inject.settings import DEFAULT_GROUP, IPAddress, IPNetwork
from relay.suppress.entries import Suppressions

_ADDRESS_CACHE_SIZE = 4096  # client hosts remembered (parsing one is ~10 us, per connection)
_clients: dict[str, tuple[IPAddress | None, str]] = {}
_UNKNOWN: tuple[IPAddress | None, str] = (None, "unknown")


def client_address(peername: object) -> IPAddress | None:
    """The client's IP from a socket peername; IPv4-mapped IPv6 becomes IPv4."""
    return client_identity(peername)[0]


def client_identity(peername: object) -> tuple[IPAddress | None, str]:
    """`client_address` and its text ("unknown" without one), remembered by the peername's
    host (a client opening a connection per message is parsed once, not every time)."""
    if not isinstance(peername, tuple) or not peername or not isinstance(peername[0], str):
        return _UNKNOWN
    host = peername[0]
    known = _clients.get(host)
    if known is None:
        address = _parse_address(host)
        known = _UNKNOWN if address is None else (address, str(address))
        if len(_clients) >= _ADDRESS_CACHE_SIZE:
            _clients.clear()
        _clients[host] = known
    return known


def _parse_address(host: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_networks(address: IPAddress | None, networks: Iterable[IPNetwork]) -> bool:
    if address is None:
        return False
    return any(net.version == address.version and address in net for net in networks)


def may_relay(
    address: IPAddress | None, relay_hosts: Iterable[IPNetwork], authenticated: bool
) -> bool:
    """Momentum's rule: relay_hosts clients and authenticated clients may relay; no one else.

    relay has no local domains, so a client that may not relay may not name any recipient.
    """
    return authenticated or in_networks(address, relay_hosts)


def check_recipient(
    null_path: bool, *, may_relay: bool, accepted: int, max_recipients: int
) -> str | None:
    """Decide one RCPT TO (`null_path`: it was `<>`), given how many recipients this
    message already has."""
    if null_path:
        return replies.NULL_RECIPIENT
    if not may_relay:
        # Also covers the source-route / %-hack / quoted-local-part tricks from outsiders.
        return replies.RELAY_DENIED
    if accepted >= max_recipients:
        return replies.TOO_MANY_RECIPIENTS
    return None


def suppressed_recipient(
    suppressions: Suppressions | None, tenant: str | None, address: str
) -> str | None:
    """The refusal of a recipient on the suppression list (for a message of `tenant`),
    or None: accepted, also when the list drops instead of refusing (at the end of
    DATA, spooling.py)."""
    if suppressions is None or not suppressions.refuses(tenant, address):
        return None
    return replies.suppressed(address)


def declared_size(mail_options: Iterable[str]) -> int | None:
    """The SIZE= parameter of MAIL FROM (RFC 1870), if given and numeric."""
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return None


def check_declared_size(size: int | None, max_message_size: int) -> str | None:
    if size is not None and max_message_size and size > max_message_size:
        return replies.MESSAGE_TOO_BIG
    return None


@dataclass(frozen=True, slots=True)
class Assignment:
    binding_group: str
    binding: str | None


def assign(
    *,
    header_group: str | None,
    header_binding: str | None,
    listener_group: str | None,
    listener_binding: str | None,
    groups: Mapping[str, frozenset[str]],
) -> Assignment | str:
    """Where a message goes: headers first, then the listener/peer, then `default`.

    A binding names its group; a binding together with a group must belong to it.
    Returns the Assignment, or the reply refusing an unknown name.
    """
    if header_group is not None or header_binding is not None:
        group, binding = header_group, header_binding
    else:
        group, binding = listener_group, listener_binding
    if group is not None and group not in groups:
        return replies.unknown_group(group)
    if binding is not None:
        owner = next((name for name, members in groups.items() if binding in members), None)
        if owner is None:
            return replies.unknown_binding(binding)
        if group is not None and owner != group:
            return replies.binding_not_in_group(binding, group)
        return Assignment(owner, binding)
    return Assignment(group if group is not None else DEFAULT_GROUP, None)
