"""What injection stores through: the spool first (durable: only then the 250), then the
message is announced to the scheduler. Mail to the FBL address is read as an ARF complaint
report and counted, not relayed. The same handoff serves the single-process daemon and the
injection workers; only `announce` and `complain` differ."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable

from relay.dispose.feedback import Complaint, parse_arf
from relay.esmtp import Esmtp
from relay.spool.model import Envelope, NewMessage

log = logging.getLogger("relay")
Announce = Callable[[Envelope, NewMessage], None]
Complain = Callable[[Complaint | None, NewMessage], None]
Note = Callable[[str, dict[str, object]], None]  # an event-log record: kind and fields


def _no_note(kind: str, fields: dict[str, object]) -> None:
    return None


class Handoff:
    def __init__(
        self,
        submit: Callable[[NewMessage], asyncio.Future[Envelope]],
        announce: Announce,
        complain: Complain,
        fbl_address: str | None = None,
        note: Note = _no_note,
    ) -> None:
        self._submit = submit
        self.note = note  # what injection says about a message (e.g. dkim_unsigned)
        self.announce = announce
        self.complain = complain
        self.fbl_address = fbl_address.lower() if fbl_address else None

    async def store(self, message: NewMessage, /) -> Envelope:
        return await self.submit(message)

    def submit(self, message: NewMessage, /) -> asyncio.Future[Envelope]:
        """The future of the stored envelope; the message is announced before anything
        waiting on that future learns it is stored."""
        if self.fbl_address is not None and self.fbl_address in (
            r.lower() for r in message.recipients
        ):
            self.complain(parse_arf(message.content), message)
            rest = tuple(r for r in message.recipients if r.lower() != self.fbl_address)
            if not rest:
                done: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
                done.set_result(
                    Envelope(
                        "fbl-report",
                        message.sender,
                        message.binding_group,
                        None,
                        message.received_at,
                    )
                )
                return done
            message = message._replace(recipients=rest, esmtp=_without(message, self.fbl_address))
        future = self._submit(message)
        future.add_done_callback(functools.partial(self._stored, message))
        return future

    def _stored(self, message: NewMessage, future: asyncio.Future[Envelope]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        envelope = future.result()
        try:
            self.announce(envelope, message)
        except Exception:  # the client still gets its 250: the message is durable
            log.exception("message %s is spooled but not queued until restart", envelope.message_id)


def _without(message: NewMessage, address: str) -> Esmtp | None:
    """The message's ESMTP parameters for its recipients other than `address` (the
    per-recipient ones follow the recipients' indexes)."""
    esmtp = message.esmtp
    if esmtp is None or not (esmtp.notify or esmtp.orcpt):
        return esmtp
    keep = [i for i, r in enumerate(message.recipients) if r.lower() != address]
    return dataclasses.replace(
        esmtp,
        notify=tuple(esmtp.notify_of(i) for i in keep) if esmtp.notify else (),
        orcpt=tuple(esmtp.orcpt_of(i) for i in keep) if esmtp.orcpt else (),
    )
