"""What the scheduler needs from delivery, as plain types: open a session, send, close.

The SMTP implementation lives in relay/deliver/; the scheduler only sees these types, so
the decisions it makes are independent of sockets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from relay.deliver.settings import DeliverySettings
from relay.esmtp import Esmtp
from relay.outcome import RecipientResult, Remote, Reply


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    message_id: str
    sender: str
    recipients: tuple[str, ...]
    content: bytes
    client: tuple[str, str | None] | None = None  # (IP, HELO) of the injecting client
    esmtp: Esmtp | None = None  # the message's ESMTP parameters
    indexes: tuple[int, ...] = ()  # each recipient's index in the envelope (for `esmtp`)


class ConnectFailed(Exception):
    """No connection could be made for a binding x domain; applies to every queued job."""

    def __init__(
        self,
        reply: Reply,
        permanent: bool = False,
        remote: Remote | None = None,
        local: bool = False,
        tls: bool = False,
    ) -> None:
        super().__init__(str(reply))
        self.reply = reply
        self.permanent = permanent
        self.remote = remote
        self.local = local  # only relay's own limits stopped it: not an attempt
        self.tls = tls  # the TLS policy (tls = required, tls_verify) stopped it


class Session(Protocol):
    @property
    def usable(self) -> bool: ...

    @property
    def sends_ahead(self) -> bool:
        """Whether `send` can use the message that follows (`then`): worth taking it from
        the queue early."""
        ...

    async def send(
        self, message: OutboundMessage, then: OutboundMessage | None = None
    ) -> list[RecipientResult]:
        """Deliver `message`; `then`, when given, is the next message this session is
        given (it may start on the wire behind `message`)."""
        ...

    async def close(self) -> None: ...


class Transport(Protocol):
    async def open(self, binding: str, domain: str, settings: DeliverySettings) -> Session:
        """Open a session for binding x domain with its delivery settings; raise
        ConnectFailed when no destination can be reached."""
        ...
