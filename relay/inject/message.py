"""Turn received data into the message relay spools (Postfix's cleanup, in small).

Pure: content and facts about the session in, a ready message or a refusal out.
Steps: mail-loop check on `Received:`; group/binding assignment from `X-Binding-Group:` /
`X-Binding:` (then listener/peer, then `default`); those headers removed; a `Received:`
field prepended and a `Message-ID:` appended when missing.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import NamedTuple

from relay.inject import checks, headers, replies

GROUP_HEADER = "X-Binding-Group"
BINDING_HEADER = "X-Binding"
_GROUP = GROUP_HEADER.lower()
_BINDING = BINDING_HEADER.lower()


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
    if b"x-binding" in lowered:
        return None  # X-Binding(-Group) fields to read and remove: the parsed way
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
    return Prepared(rendered, assignment.binding_group, assignment.binding)


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
    if group_field is not None or binding_field is not None:
        header = header.without(GROUP_HEADER, BINDING_HEADER)
    trace = _trace(reception, hostname)
    extra = () if "message-id" in names else (headers.message_id(reception.queue_id, hostname),)
    return Prepared(
        header.render(prepend=(trace,), append=extra),
        assignment.binding_group,
        assignment.binding,
    )


def _first(header: headers.Header, names: list[str], name: str) -> headers.HeaderField | None:
    """The first field called `name` (lower case), given the lowered names of all fields."""
    try:
        return header.fields[names.index(name)]
    except ValueError:
        return None
