"""Turn received data into the message relay spools (Postfix's cleanup, in small).

Pure: content and facts about the session in, a ready message or a refusal out.
Steps: mail-loop check on `Received:`; group/binding assignment from `X-Binding-Group:` /
`X-Binding:` (then listener/peer, then `default`); the tenant and campaign from `X-Tenant:` /
`X-Campaign:` (then listener/peer); those headers removed (before any signing, so the
stored bytes are the delivered bytes); a `Received:` field prepended and a `Message-ID:`
appended when missing.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import NamedTuple

from relay.inject import checks, headers, replies

GROUP_HEADER = "X-Binding-Group"
BINDING_HEADER = "X-Binding"
TENANT_HEADER = "X-Tenant"
CAMPAIGN_HEADER = "X-Campaign"
PRIORITY_HEADER = "X-Priority-Class"  # transactional | bulk (schedule/fair.py)
PRIORITY_CLASSES = ("transactional", "bulk")
_GROUP = GROUP_HEADER.lower()
_BINDING = BINDING_HEADER.lower()
_TENANT = TENANT_HEADER.lower()
_CAMPAIGN = CAMPAIGN_HEADER.lower()
_PRIORITY = PRIORITY_HEADER.lower()
_REMOVED = (GROUP_HEADER, BINDING_HEADER, TENANT_HEADER, CAMPAIGN_HEADER, PRIORITY_HEADER)
MAX_LABEL = 128  # characters of a tenant or campaign name


class Reception(NamedTuple):  # immutable, and built per message: a tuple is cheapest
    """What the session knows about how a message arrived."""

    client_ip: str
    helo: str | None
    esmtp: bool
    tls: bool
    authenticated: bool
    recipients: tuple[str, ...]
    queue_id: str
    received_at: datetime.datetime
    listener_group: str | None
    listener_binding: str | None
    listener_tenant: str | None = None  # listener / peer defaults (`tenant`, `campaign`)
    listener_campaign: str | None = None
    listener_priority: str | None = None  # listener / peer `priority_class`

    @property
    def protocol(self) -> str:
        """RFC 3848 protocol name for the `with` clause."""
        if not self.esmtp:
            return "SMTP"
        return "ESMTP" + ("S" if self.tls else "") + ("A" if self.authenticated else "")


class Prepared(NamedTuple):
    content: bytes
    binding_group: str
    binding: str | None
    tenant: str | None = None
    campaign: str | None = None
    priority: str | None = None  # X-Priority-Class (None: the tenant's class)


def check_label(value: str, name: str) -> str | None:
    """The refusal of a bad tenant or campaign name, or None: 1 to MAX_LABEL printable
    characters (spaces inside allowed)."""
    if not value or len(value) > MAX_LABEL or not value.isprintable() or "\ufffd" in value:
        return replies.bad_label(name)
    return None


def prepare(
    content: bytes,
    reception: Reception,
    *,
    hostname: str,
    groups: Mapping[str, frozenset[str]],
    max_received: int,
) -> Prepared | str:
    """The message to spool, or the reply refusing it."""
    plain = _prepare_plain(
        content, reception, hostname=hostname, groups=groups, max_received=max_received
    )
    if plain is not None:
        return plain
    return _prepare_parsed(
        content, reception, hostname=hostname, groups=groups, max_received=max_received
    )


# The usual header section, validated in one C-level match: fields back to back (a name,
# a colon, a value, continuation lines with something besides white space) to the empty line.
_PLAIN_SECTION = re.compile(
    rb"(?:[!-9;-~]+[ \t]*:[^\r\n]*\r\n(?:[ \t][ \t\x0b\x0c]*[^\s][^\r\n]*\r\n)*)+"
)
_RECEIVED = re.compile(rb"^received[ \t]*:", re.MULTILINE)  # on the lowered section
_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:", re.MULTILINE)


def _prepare_plain(
    content: bytes,
    reception: Reception,
    *,
    hostname: str,
    groups: Mapping[str, frozenset[str]],
    max_received: int,
) -> Prepared | str | None:
    """`prepare` for the bulk case, without splitting the fields: a plain header section
    and no assignment header. None (decide nothing) for anything else."""
    end = content.find(b"\r\n\r\n") + 2
    if end < 2 or _PLAIN_SECTION.fullmatch(content, 0, end) is None:
        return None
    lowered = content[:end].lower()
    if (
        b"x-binding" in lowered
        or b"x-tenant" in lowered
        or b"x-campaign" in lowered
        or b"x-priority-class" in lowered
    ):
        return None  # X-Binding(-Group), X-Tenant, X-Campaign to read and remove: parsed
    if b"received" in lowered and len(_RECEIVED.findall(lowered)) > max_received:
        return replies.MAIL_LOOP
    assignment = checks.assign(
        header_group=None,
        header_binding=None,
        listener_group=reception.listener_group,
        listener_binding=reception.listener_binding,
        groups=groups,
    )
    if isinstance(assignment, str):
        return assignment
    trace = _trace(reception, hostname)
    if _MESSAGE_ID.search(lowered) is not None:
        rendered = trace + content
    else:
        message_id = headers.message_id(reception.queue_id, hostname)
        rendered = b"".join((trace, content[:end], message_id, content[end:]))
    return Prepared(
        rendered,
        assignment.binding_group,
        assignment.binding,
        reception.listener_tenant,
        reception.listener_campaign,
        reception.listener_priority,
    )


def _trace(reception: Reception, hostname: str) -> bytes:
    return headers.received(
        helo=reception.helo,
        client_ip=reception.client_ip,
        hostname=hostname,
        protocol=reception.protocol,
        queue_id=reception.queue_id,
        recipients=reception.recipients,
        when=reception.received_at,
    )


def _prepare_parsed(
    content: bytes,
    reception: Reception,
    *,
    hostname: str,
    groups: Mapping[str, frozenset[str]],
    max_received: int,
) -> Prepared | str:
    """`prepare` for any content: the header section split into fields."""
    header = headers.parse(content)
    names = [field.name.lower() for field in header.fields]  # lowered once, not per lookup
    if names.count("received") > max_received:
        return replies.MAIL_LOOP
    group_field = _first(header, names, _GROUP)
    binding_field = _first(header, names, _BINDING)
    assignment = checks.assign(
        header_group=group_field.value if group_field is not None else None,
        header_binding=binding_field.value if binding_field is not None else None,
        listener_group=reception.listener_group,
        listener_binding=reception.listener_binding,
        groups=groups,
    )
    if isinstance(assignment, str):
        return assignment
    tenant_field = _first(header, names, _TENANT)
    campaign_field = _first(header, names, _CAMPAIGN)
    tenant, campaign = reception.listener_tenant, reception.listener_campaign
    if tenant_field is not None:
        tenant = tenant_field.value
        refusal = check_label(tenant, TENANT_HEADER)
        if refusal is not None:
            return refusal
    if campaign_field is not None:
        campaign = campaign_field.value
        refusal = check_label(campaign, CAMPAIGN_HEADER)
        if refusal is not None:
            return refusal
    priority_field = _first(header, names, _PRIORITY)
    priority = reception.listener_priority
    if priority_field is not None:
        priority = priority_field.value.strip().lower()
        if priority not in PRIORITY_CLASSES:
            return replies.bad_priority(PRIORITY_HEADER)
    fields = (group_field, binding_field, tenant_field, campaign_field, priority_field)
    if any(f is not None for f in fields):
        header = header.without(*_REMOVED)
    trace = _trace(reception, hostname)
    extra = () if "message-id" in names else (headers.message_id(reception.queue_id, hostname),)
    return Prepared(
        header.render(prepend=(trace,), append=extra),
        assignment.binding_group,
        assignment.binding,
        tenant,
        campaign,
        priority,
    )


def _first(header: headers.Header, names: list[str], name: str) -> headers.HeaderField | None:
    """The first field called `name` (lower case), given the lowered names of all fields."""
    try:
        return header.fields[names.index(name)]
    except ValueError:
        return None
