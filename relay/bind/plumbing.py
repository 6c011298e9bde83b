"""Is a binding's bind_address configured on this host? ("plumbed", in Momentum's words)."""

from __future__ import annotations

import errno
import ipaddress
import socket


def is_plumbed(address: str | None) -> bool:
    """True if a socket can bind to `address` (None: the system picks, always plumbed)."""
    if address is None:
        return True
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as err:
            if err.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                return False
            raise
    return True
