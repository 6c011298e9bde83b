"""Handing an accepted message to the spool, and the reply that says how it went.

`accept` is the acceptance step after the SMTP conversation: the message is prepared
(message.py: loop check, group assignment, trace fields) and submitted to the store; the
reply comes from `stored_reply` once the store's future is done (a 250 only after the
store says the message is durable). With DKIM profiles configured the message is signed
first, in a signing process (relay.sign.pool), and the signed bytes are what is spooled, so
every attempt sends the same message. No I/O here besides the store's own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Protocol

from relay.esmtp import Esmtp
from relay.inject import replies
from relay.inject.message import Prepared, Reception, prepare
from relay.inject.settings import InjectSettings
from relay.sign.pool import SigningProcessError, sign_in_pool
from relay.sign.settings import DkimSettings
from relay.sign.signer import Signed
from relay.spool.errors import SpoolError, SpoolFullError
from relay.spool.model import Envelope, NewMessage
from relay.suppress.entries import Suppressions

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
    suppression: Suppressions | None = None,
) -> str | asyncio.Future[Envelope]:
    """Prepare and submit one message: the reply refusing it, or the future of its
    envelope (give it to `stored_reply` once done). Recipients on the suppression list
    for the message's tenant are dropped (each reported to `suppression.on_drop`); a
    message left with none is refused (action reject) or answered without being queued
    (action drop: an envelope without id)."""
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
    recipients = reception.recipients
    if suppression is not None:
        dropped = suppression.split(prepared.tenant, recipients)
        if dropped:
            kept = [i for i in range(len(recipients)) if i not in dropped]
            if not kept and suppression.action == "reject":
                log.info("%s: every recipient suppressed", reception.client_ip)
                return replies.suppressed(recipients[dropped[0]])
            _report_drops(suppression, sender, prepared, reception, dropped)
            if not kept:
                done: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
                done.set_result(
                    Envelope("", sender, prepared.binding_group, None, received_at, [], 0)
                )
                return done
            recipients = tuple(recipients[i] for i in kept)
            esmtp = None if esmtp is None else esmtp.keeping(kept)
    message = NewMessage(
        sender=sender,
        recipients=recipients,
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
    dkim = settings.dkim
    if dkim is not None and _wants_signing(dkim, message):
        return _sign_then_submit(store, message, dkim, reception)
    try:
        return submit(store, message)
    except Exception as error:
        log.warning("%s: spool refused message: %r", reception.client_ip, error)
        return failure_reply(error)


Note = Callable[[str, dict[str, object]], None]  # an event for the event log


def _wants_signing(dkim: DkimSettings, message: NewMessage) -> bool:
    """opendkim_sign / dkim for the message's scopes: signed if any recipient domain says so
    (a message is signed once, for all its recipients)."""
    wants = dkim.wants
    domains = {recipient.rpartition("@")[2].lower() for recipient in message.recipients}
    return any(wants(message.binding_group, message.binding, domain) for domain in domains)


def _sign_then_submit(
    store: MessageStore, message: NewMessage, dkim: DkimSettings, reception: Reception
) -> asyncio.Future[Envelope]:
    """Sign in a signing process, then submit the signed message: the future of its envelope."""
    done: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
    signing = sign_in_pool(
        message.content,
        dkim.profiles,
        authenticated=reception.authenticated,
        now=message.received_at,
    )
    signing.add_done_callback(functools.partial(_signed, store, message, done, reception.client_ip))
    return done


def _signed(
    store: MessageStore,
    message: NewMessage,
    done: asyncio.Future[Envelope],
    client: str,
    signing: asyncio.Future[Signed],
) -> None:
    if done.cancelled():
        return
    if signing.cancelled():
        done.cancel()
        return
    error = signing.exception()
    if error is not None:  # a signing process failed or died: 451, the client tries again
        log.error("%s: DKIM signing failed, message not accepted: %r", client, error)
        done.set_exception(error)
        return
    signed = signing.result()
    try:
        stored = submit(store, message._replace(content=signed.content))
    except Exception as failure:
        done.set_exception(failure)
        return
    stored.add_done_callback(functools.partial(_stored, store, signed, done))


def _stored(
    store: MessageStore,
    signed: Signed,
    done: asyncio.Future[Envelope],
    stored: asyncio.Future[Envelope],
) -> None:
    if done.cancelled():
        return
    if stored.cancelled():
        done.cancel()
        return
    error = stored.exception()
    if error is not None:
        done.set_exception(error)
        return
    envelope = stored.result()
    if signed.unsigned is not None:
        log.info("%s: sent unsigned: %s", envelope.message_id, signed.unsigned)
        note: Note | None = getattr(store, "note", None)
        if note is not None:
            note(
                "dkim_unsigned",
                {
                    "message_id": envelope.message_id,
                    "domain": signed.domain,
                    "reason": signed.unsigned,
                },
            )
    done.set_result(envelope)


def _report_drops(
    suppression: Suppressions,
    sender: str,
    prepared: Prepared,
    reception: Reception,
    dropped: list[int],
) -> None:
    report = suppression.on_drop
    for index in dropped:
        address = reception.recipients[index]
        log.info("%s: suppressed recipient %s dropped", reception.client_ip, address)
        if report is not None:
            report(
                {
                    "sender": sender,
                    "recipient": address,
                    "tenant": prepared.tenant,
                    "campaign": prepared.campaign,
                    "client": reception.client_ip,
                    "action": "dropped",
                }
            )


def stored_reply(future: asyncio.Future[Envelope], client: str) -> str:
    """The reply for a finished hand-off: 250 with the id, or why not (never a 2xx)."""
    if future.cancelled():
        log.warning("%s: spooling was cancelled", client)
        return replies.SPOOL_FAILED
    error = future.exception()
    if error is not None:
        if not isinstance(error, SigningProcessError):  # that one is logged where it failed
            log.warning("%s: spool refused message: %r", client, error)
        return failure_reply(error)
    stored = future.result()
    if not stored.message_id:
        return replies.ALL_SUPPRESSED
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
