"""What injection stores through: the spool first (durable: only then the 250), then the
message is announced to the scheduler. Mail to the FBL address is read as an ARF complaint
report and counted, not relayed. The same handoff serves the single-process daemon and the
injection workers; only `announce` and `complain` differ."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from relay.dispose.feedback import Complaint, parse_arf
from relay.spool.model import Envelope, NewMessage

log = logging.getLogger("relay")
Announce = Callable[[Envelope, NewMessage], None]
Complain = Callable[[Complaint | None, NewMessage], None]


class Handoff:
    def __init__(
        self,
        store: Callable[[NewMessage], Awaitable[Envelope]],
        announce: Announce,
        complain: Complain,
        fbl_address: str | None = None,
    ) -> None:
        self._store = store
        self.announce = announce
        self.complain = complain
        self.fbl_address = fbl_address.lower() if fbl_address else None

    async def store(self, message: NewMessage, /) -> Envelope:
        if self.fbl_address is not None and self.fbl_address in (
            r.lower() for r in message.recipients
        ):
            self.complain(parse_arf(message.content), message)
            rest = tuple(r for r in message.recipients if r.lower() != self.fbl_address)
            if not rest:
                return Envelope(
                    "fbl-report",
                    message.sender,
                    message.binding_group,
                    None,
                    message.received_at,
                )
            message = replace(message, recipients=rest)
        envelope = await self._store(message)
        self.announce(envelope, message)
        return envelope


def reception_fields(envelope: Envelope, message: NewMessage) -> dict[str, object]:
    return {
        "message_id": envelope.message_id,
        "sender": message.sender,
        "recipients": len(message.recipients),
        "binding_group": message.binding_group,
        "binding": message.binding,
        "size": len(message.content),
    }


def reception_fields_of(envelope: Envelope) -> dict[str, object]:
    """The same fields from the stored envelope alone (what a worker announces)."""
    return {
        "message_id": envelope.message_id,
        "sender": envelope.sender,
        "recipients": len(envelope.recipients),
        "binding_group": envelope.binding_group,
        "binding": envelope.binding,
        "size": envelope.size,
    }
