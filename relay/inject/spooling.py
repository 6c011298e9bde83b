"""Handing an accepted message to the spool, and the reply that says how it went.

`accept` is the acceptance step after the SMTP conversation: the message is prepared
(message.py: loop check, group assignment, trace fields) and submitted to the store; the
reply comes from `stored_reply` once the store's future is done (a 250 only after the
store says the message is durable). No I/O here besides the store's own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from relay.esmtp import Esmtp
from relay.inject import replies
from relay.inject.message import Prepared, Reception, prepare
from relay.inject.settings import InjectSettings
from relay.spool.errors import SpoolError, SpoolFullError
from relay.spool.model import Envelope, NewMessage

log = logging.getLogger("relay.inject")


class MessageStore(Protocol):
    async def store(self, message: NewMessage, /) -> Envelope:
        """Return only once the message is durable; raise SpoolError otherwise."""
        ...


def submit(store: MessageStore, message: NewMessage) -> asyncio.Future[Envelope]:
    """The future of `store.store(message)`: the store's own (its `submit`, no task per
    message) when it has one, else a task."""
    own = getattr(store, "submit", None)
    if own is not None:
        future: asyncio.Future[Envelope] = own(message)
        return future
    return asyncio.ensure_future(store.store(message))


def failure_reply(error: BaseException) -> str:
    """The reply for a message the spool did not take: never a 2xx."""
    if isinstance(error, SpoolFullError):
        return replies.SPOOL_FULL
    if isinstance(error, SpoolError):
        return replies.SPOOL_FAILED
    return replies.SPOOL_FAILED


def accept(
    store: MessageStore,
    content: bytes,
    reception: Reception,
    *,
    sender: str,
    settings: InjectSettings,
    received_at: float,
    esmtp: Esmtp | None = None,
) -> str | asyncio.Future[Envelope]:
    """Prepare and submit one message: the reply refusing it, or the future of its
    envelope (give it to `stored_reply` once done)."""
    prepared = prepare(
        content,
        reception,
        hostname=settings.hostname,
        groups=settings.binding_groups,
        max_received=settings.max_received_headers,
    )
    if not isinstance(prepared, Prepared):
        log.info("%s: message refused: %s", reception.client_ip, prepared)
        return prepared
    message = NewMessage(
        sender=sender,
        recipients=reception.recipients,
        binding_group=prepared.binding_group,
        binding=prepared.binding,
        content=prepared.content,
        received_at=received_at,
        client=(reception.client_ip, reception.helo),
        esmtp=esmtp,
        tenant=prepared.tenant,
        campaign=prepared.campaign,
        priority=prepared.priority,
    )
    try:
        return submit(store, message)
    except Exception as error:
        log.warning("%s: spool refused message: %r", reception.client_ip, error)
        return failure_reply(error)


def stored_reply(future: asyncio.Future[Envelope], client: str) -> str:
    """The reply for a finished hand-off: 250 with the id, or why not (never a 2xx)."""
    if future.cancelled():
        log.warning("%s: spooling was cancelled", client)
        return replies.SPOOL_FAILED
    error = future.exception()
    if error is not None:
        log.warning("%s: spool refused message: %r", client, error)
        return failure_reply(error)
    stored = future.result()
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "received %s from %s group=%s binding=%s rcpts=%d size=%d",
            stored.message_id,
            client,
            stored.binding_group,
            stored.binding,
            len(stored.recipients),
            stored.size,
        )
    return replies.QUEUED.format(id=stored.message_id)
