"""What injection needs from the spool, and how spool failures become SMTP replies."""

from __future__ import annotations

import asyncio
from typing import Protocol

from relay.inject import replies
from relay.spool.errors import SpoolError, SpoolFullError
from relay.spool.model import Envelope, NewMessage


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
