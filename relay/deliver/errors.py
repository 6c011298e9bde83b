"""What goes wrong in delivery, typed: the failed step and the exceptions that carry it.

Third-party exceptions (ssl, OSError, dnspython) never leave relay/deliver/:
they are translated at the boundary into a `DeliveryFailure` that says which binding, which host
and IP, which SMTP phase, and which reply (the peer's, or one relay wrote itself).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from relay.esmtp import Esmtp
from relay.outcome import Outcome, Phase, Remote, Reply

__all__ = [
    "ConnectError",
    "DeliveryError",
    "DeliveryFailure",
    "FailureKind",
    "MessageLike",
    "RouteError",
]


class FailureKind(enum.Enum):
    REPLY = "reply"  # the peer answered with a failure code
    TIMEOUT = "timeout"
    NETWORK = "network"  # refused, reset, closed
    PROTOCOL = "protocol"  # a reply without a valid code, or out of sequence
    TLS = "tls"  # handshake or certificate verification failed
    DNS = "dns"
    LOCAL = "local"  # relay's own limit or policy; never counts against the receiver


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """One failed step: enough for an operator to act on."""

    kind: FailureKind
    phase: Phase
    reply: Reply
    binding: str
    domain: str
    remote: Remote | None = None
    detail: str = ""  # the translated exception's text, for logs

    @property
    def outcome(self) -> Outcome:
        return self.reply.outcome

    def __str__(self) -> str:
        where = f" from {self.remote}" if self.remote else ""
        extra = f" ({self.detail})" if self.detail else ""
        return (
            f"binding {self.binding} domain {self.domain}: {self.phase.value}{where}: "
            f"{self.reply}{extra}"
        )


class MessageLike(Protocol):
    """What `OutboundConnection.send` needs of a message (the scheduler's type fits)."""

    @property
    def message_id(self) -> str: ...

    @property
    def sender(self) -> str: ...

    @property
    def recipients(self) -> Sequence[str]: ...

    @property
    def content(self) -> bytes: ...

    @property
    def client(self) -> tuple[str, str | None] | None:
        """The injecting client's (IP, HELO name), for XCLIENT; None when unknown."""
        ...

    @property
    def esmtp(self) -> Esmtp | None:
        """DSN / SMTPUTF8 / REQUIRETLS parameters given at injection (None: none)."""
        ...

    @property
    def indexes(self) -> Sequence[int]:
        """Each recipient's index in its envelope (what `esmtp`'s per-recipient values
        are keyed by); may be empty when `esmtp` is None."""
        ...


class DeliveryError(Exception):
    """Base of relay/deliver's exceptions; `failure` is the decisive step."""

    def __init__(self, failure: DeliveryFailure, attempts: Sequence[DeliveryFailure] = ()) -> None:
        super().__init__(str(failure))
        self.failure = failure
        self.attempts: tuple[DeliveryFailure, ...] = tuple(attempts) or (failure,)

    @property
    def outcome(self) -> Outcome:
        return self.failure.outcome

    @property
    def permanent(self) -> bool:
        return self.outcome is Outcome.PERMANENT

    @property
    def reply(self) -> Reply:
        return self.failure.reply


class RouteError(DeliveryError):
    """No destination for the domain: null MX / NXDOMAIN (permanent), DNS trouble
    (temporary)."""


class ConnectError(DeliveryError):
    """Every destination was tried and none gave a usable session. `attempts` holds one
    failure per destination tried; `failure` is the last one. Always temporary, even after
    5xx greetings: only the route (RouteError) or a reply to the mail itself bounces."""

    @property
    def outcome(self) -> Outcome:
        return Outcome.TEMPORARY

    @property
    def local_only(self) -> bool:
        """True when only relay's own limits (host_gate) stopped every attempt: the
        scheduler should wait, not count a failure against the receiver."""
        return all(f.kind is FailureKind.LOCAL for f in self.attempts)
