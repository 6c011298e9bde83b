"""Injection without an SMTP conversation (the HTTP API's POST /api/v1/messages): the
envelope and the content arrive at once and go through the same checks as an SMTP
session's — the address parser (addresses.py), the recipient rule and limit (checks.py),
the data rules and size limit (data.py) — and the same `accept` (spooling.py).

Pure up to `accept`: a `Refused` names the field at fault and carries the SMTP reply
an SMTP client would have got; the caller maps that to its own protocol.
"""

from __future__ import annotations

import asyncio
import datetime
import random
from collections.abc import Sequence

from relay.inject import addresses, checks, replies
from relay.inject.data import DataReader
from relay.inject.message import (
    CAMPAIGN_HEADER,
    PRIORITY_CLASSES,
    TENANT_HEADER,
    Reception,
    check_label,
)
from relay.inject.settings import InjectSettings
from relay.inject.spooling import MessageStore, accept
from relay.spool.model import Envelope
from relay.suppress.entries import Suppressions


class Refused(Exception):
    """The submission is refused; nothing was queued."""

    def __init__(self, field: str | None, reply: str) -> None:
        super().__init__(reply)
        self.field = field
        self.reply = reply


def _address(text: str, field: str) -> str:
    try:
        path = addresses.parse_path(f"<{text}>" if not text.startswith("<") else text)
    except addresses.AddressError as err:
        raise Refused(field, err.reply) from None
    if path.params:
        raise Refused(field, replies.bad_address("Parameters are not accepted here"))
    return path.address


def envelope(
    sender: str, recipients: Sequence[str], settings: InjectSettings
) -> tuple[str, tuple[str, ...]]:
    """The checked reverse-path ("" for the null sender) and forward-paths."""
    checked_sender = "" if sender in ("", "<>") else _address(sender, "from")
    if not recipients:
        raise Refused("to", replies.NEED_RCPT)
    checked: list[str] = []
    for index, recipient in enumerate(recipients):
        where = f"to[{index}]"
        address = _address(recipient, where)
        refusal = checks.check_recipient(
            address == "<>", may_relay=True, accepted=index, max_recipients=settings.max_recipients
        )
        if refusal is not None:
            raise Refused("to" if refusal == replies.TOO_MANY_RECIPIENTS else where, refusal)
        checked.append(address)
    return checked_sender, tuple(checked)


def normalized(raw: bytes, settings: InjectSettings) -> bytes:
    """The content as SMTP's DATA reader would store it: CRLF line ends, the same line
    length, NUL and size rules."""
    text = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not text.endswith(b"\n"):
        text += b"\n"
    lines = text.split(b"\n")[:-1]
    stuffed = b"".join((b"." + line if line[:1] == b"." else line) + b"\r\n" for line in lines)
    reader = DataReader(max_size=settings.max_message_size)
    reader.feed(stuffed + b".\r\n")
    if reader.refusal is not None:
        raise Refused("content", reader.refusal)
    return reader.content()


def submit(
    store: MessageStore,
    settings: InjectSettings,
    *,
    sender: str,
    recipients: Sequence[str],
    content: bytes,
    binding_group: str | None,
    binding: str | None,
    client_ip: str,
    tls: bool,
    received_at: float,
    tenant: str | None = None,
    campaign: str | None = None,
    priority: str | None = None,
    suppression: Suppressions | None = None,
) -> asyncio.Future[Envelope]:
    """Check and hand one message to the store: the future of its envelope (give it to
    `stored_reply`), or Refused. `sender` "" is the null sender; `content` may have any
    line ends (each bare LF or CR becomes CRLF). `tenant` / `campaign` are defaults, as a
    listener's: the content's own X-Tenant / X-Campaign win; so is `priority` (a class of
    PRIORITY_CLASSES), which X-Priority-Class overrides."""
    raw = content
    checked_sender, checked = envelope(sender, recipients, settings)
    for name, header, value in (
        ("tenant", TENANT_HEADER, tenant),
        ("campaign", CAMPAIGN_HEADER, campaign),
    ):
        refusal = None if value is None else check_label(value, header)
        if refusal is not None:
            raise Refused(name, refusal)
    if priority is not None and priority not in PRIORITY_CLASSES:
        raise Refused("priority", replies.bad_priority("priority"))
    if binding_group is not None or binding is not None:
        assigned = checks.assign(
            header_group=None,
            header_binding=None,
            listener_group=binding_group,
            listener_binding=binding,
            groups=settings.binding_groups,
        )
        if isinstance(assigned, str):
            raise Refused("binding" if binding else "binding_group", assigned)
    for index, address in enumerate(checked):  # as at RCPT; X-Tenant is seen in `accept`
        refusal = checks.suppressed_recipient(suppression, tenant, address)
        if refusal is not None:
            raise Refused(f"to[{index}]", refusal)
    data = normalized(raw, settings)
    reception = Reception(
        client_ip=client_ip,
        helo=None,
        esmtp=True,
        tls=tls,
        authenticated=True,
        recipients=checked,
        queue_id=f"{random.getrandbits(64):016x}",  # a trace id, not a secret
        received_at=datetime.datetime.fromtimestamp(received_at, datetime.UTC),
        listener_group=binding_group,
        listener_binding=binding,
        listener_tenant=tenant,
        listener_campaign=campaign,
        listener_priority=priority,
    )
    result = accept(
        store,
        data,
        reception,
        sender=checked_sender,
        settings=settings,
        received_at=received_at,
        suppression=suppression,
    )
    if isinstance(result, str):  # the content's own X-Binding(-Group), a mail loop, the spool
        raise Refused("to" if replies.is_suppressed(result) else "content", result)
    return result
