"""What the spool stores: plain data shared by injection, spool and scheduler."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple

from relay.esmtp import Esmtp

# The injecting client, kept for XCLIENT at delivery: (IP address, HELO name or None).
Client = tuple[str, str | None]


class RecipientState(enum.Enum):
    PENDING = "pending"  # not yet attempted, or deferred until next_attempt
    DELIVERED = "delivered"  # final
    FAILED = "failed"  # final: bounced (DSN spooled first) or expired


class NewMessage(NamedTuple):  # immutable, and built per message: a tuple is cheapest
    """A message injection has accepted and wants made durable."""

    sender: str  # reverse-path without <>; "" is the null sender
    recipients: tuple[str, ...]
    binding_group: str
    binding: str | None  # an explicit binding (X-Binding), else None
    content: bytes  # the full message as it will be delivered (CRLF line ends)
    received_at: float  # unix time of reception
    client: Client | None = None  # None: relay's own mail (DSNs, alerts)
    esmtp: Esmtp | None = None  # DSN / SMTPUTF8 / REQUIRETLS parameters, if any were given
    tenant: str | None = None  # X-Tenant / the listener's `tenant` / the HTTP field
    campaign: str | None = None  # X-Campaign / the listener's `campaign` / the HTTP field
    priority: str | None = None  # X-Priority-Class: "transactional" | "bulk"


@dataclass(slots=True)
class Recipient:
    address: str
    state: RecipientState = RecipientState.PENDING
    attempts: int = 0
    next_attempt: float = 0.0  # unix time; 0 means "as soon as possible"
    last_response: str = ""
    delay_notices: int = 0  # delay DSNs sent for this recipient

    def copy(self, address: str | None = None) -> Recipient:
        """A copy (faster than dataclasses.replace on the spool's hot path)."""
        return Recipient(
            self.address if address is None else address,
            self.state,
            self.attempts,
            self.next_attempt,
            self.last_response,
            self.delay_notices,
        )


@dataclass(slots=True)
class Envelope:
    """A spooled message's metadata, as the scheduler sees it (content loaded separately)."""

    message_id: str
    sender: str
    binding_group: str
    binding: str | None
    received_at: float
    recipients: list[Recipient] = field(default_factory=list)
    size: int = 0
    client: Client | None = None  # who injected it; None in spools written before it was kept
    esmtp: Esmtp | None = None  # DSN / SMTPUTF8 / REQUIRETLS parameters (None: none given)
    tenant: str | None = None  # None: none given (and in spools written before it was kept)
    campaign: str | None = None
    priority: str | None = None  # X-Priority-Class; None: the tenant's class
