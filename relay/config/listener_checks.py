"""Listener settings that are each valid but cannot work together, found at load time
rather than when the daemon starts: a listener certificate without its key, or a key
without its certificate (STARTTLS needs both)."""

from __future__ import annotations

from relay.config.errors import Location, Problem
from relay.config.model import Config
from relay.config.resolve import resolve_listener

__all__ = ["listener_problems"]

_PAIR = ("tls_certificate", "tls_key")


def listener_problems(config: Config) -> list[Problem]:
    certificate, key = (resolve_listener(config, option) for option in _PAIR)
    if (certificate.value is None) == (key.value is None):
        return []
    given, missing = (certificate, key) if key.value is None else (key, certificate)
    return [
        Problem(
            given.location or Location("<built-in>", 0, 0),
            f"the listener's {given.name} needs {missing.name} as well (STARTTLS "
            "uses the two together)",
            given.name,
        )
    ]
