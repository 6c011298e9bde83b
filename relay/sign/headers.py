"""The header section as DKIM sees it, and which fields a signature covers (pure).

fields, body = split(content)        # [(b"From", b" a@example.com\r\n"), ...], body bytes
found = index(fields)                # {"from": [(b"From", ...)], ...}
names = signed_names(found, headerlist, oversign)    # the h= list, lower case
selected = select(found, names)      # the instances the h= list means (RFC 6376 5.4.2)
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterable, Sequence

Field = tuple[bytes, bytes]  # (name as written, raw value after the colon, CRLF included)
Index = dict[str, list[Field]]  # lower-case name -> its instances, top to bottom

# The usual From: values, read without the email package: `<local@domain>` or a bare
# `local@domain`. Anything else (comments, groups, quoted strings) goes the general way.
_ANGLE_ADDRESS = re.compile(r'^[^<>"(),;:@]*<[^<>"()\s@]+@([^<>"()\s@]+)>\s*$')
_BARE_ADDRESS = re.compile(r'^\s*[^<>"()\s@,;:]+@([^<>"()\s@,;:]+)\s*$')

# A field: a first line (not white space) and its continuation lines.
_FIELD = re.compile(rb"[^ \t\r\n][^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*")

# What relay signs when a profile names no headerlist: RFC 6376 section 5.4.1's list.
DEFAULT_HEADERS = (
    "from",
    "sender",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "to",
    "cc",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-id",
    "content-description",
    "resent-date",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "resent-message-id",
    "in-reply-to",
    "references",
    "list-id",
    "list-help",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
)

# Never signed: relay removes the first two at injection and may add the third at delivery
# (enable_fbl_header_insertion); a DKIM-Signature field is never signed by another.
NEVER_SIGNED = frozenset({"x-binding-group", "x-binding", "x-relay-fbl", "dkim-signature"})


def split(content: bytes) -> tuple[list[Field], bytes]:
    """The header fields in order and the body (after the empty line; empty if none)."""
    if content.startswith(b"\r\n"):
        return [], content[2:]
    end = content.find(b"\r\n\r\n")
    if end < 0:
        head, body = content if content.endswith(b"\r\n") else content + b"\r\n", b""
    else:
        head, body = content[: end + 2], content[end + 4 :]
    fields: list[Field] = []
    for raw in _FIELD.findall(head):
        name, colon, value = raw.partition(b":")
        if colon:  # else not a field (relay's injection refuses these; be lenient here)
            fields.append((name, value))
    return fields, body


def index(fields: Iterable[Field]) -> Index:
    """Each field name (lower case) and its instances, top to bottom."""
    found: Index = {}
    for item in fields:
        found.setdefault(item[0].decode("ascii", "replace").strip().lower(), []).append(item)
    return found


def signed_names(
    found: Index, headerlist: Sequence[str], oversign: Sequence[str] = ()
) -> list[str]:
    """The h= list: each listed name once per instance present (absent ones left out),
    each oversigned name once more (so an instance added later breaks the signature).
    `headerlist` and `oversign` are lower case, without NEVER_SIGNED names."""
    extra = set(oversign)
    names: list[str] = []
    for name in dict.fromkeys((*headerlist, *oversign)):
        instances = found.get(name)
        count = (len(instances) if instances else 0) + (1 if name in extra else 0)
        if count == 1:
            names.append(name)
        elif count:
            names.extend([name] * count)
    return names


def select(found: Index, names: Sequence[str]) -> list[Field]:
    """The field each h= name stands for: per name the instances from the bottom up;
    a name with no instance left stands for nothing (RFC 6376 section 5.4.2)."""
    taken: dict[str, int] = {}
    chosen: list[Field] = []
    for name in names:
        instances = found.get(name)
        if instances:
            used = taken.get(name, 0)
            if used < len(instances):
                chosen.append(instances[-1 - used])
                taken[name] = used + 1
    return chosen


def from_domain(fields: Sequence[Field]) -> str | None:
    """The domain of the (first) From: address, lower case; None when there is none."""
    for name, value in fields:
        if name.strip().lower() != b"from":
            continue
        text = value.decode("utf-8", "replace").replace("\r\n", "")
        quick = _ANGLE_ADDRESS.match(text) or _BARE_ADDRESS.match(text)
        if quick is not None:
            return _ascii_domain(quick.group(1))
        for _, address in email.utils.getaddresses([text]):
            _, at, domain = address.rpartition("@")
            if at:
                return _ascii_domain(domain.strip().strip("<>"))
        return None
    return None


def _ascii_domain(domain: str) -> str | None:
    """The domain in lower case, an internationalized one as its A-labels (d= is ASCII);
    None when it is not a domain name."""
    name = domain.rstrip(".").lower()
    if not name:
        return None
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return None
