"""Read and rewrite a message's header section (RFC 5322 §2.2), bytes in, bytes out.

Only what injection needs: find fields by name, count them, drop some, add trace fields.
The header section ends at the first empty line, or at the first line that is neither a
field nor a continuation (such a line and everything after it is left as body).
"""

from __future__ import annotations

import datetime
import email.utils
import re
from dataclasses import dataclass
from typing import NamedTuple

_FIELD_NAME = re.compile(rb"[!-9;-~]*")  # ftext (RFC 5322 §3.6.8), possibly empty here
_COMMENT_SAFE = re.compile(r"[!-'*-:<-\[\]-~]{1,255}")  # printable ASCII but ()\;


class HeaderField(NamedTuple):  # a tuple: built several times per message, cheaply
    name: str  # as written (compare with .lower())
    raw: bytes  # the whole field, folded lines included, ending with CRLF

    @property
    def value(self) -> str:
        """Unfolded, stripped value (octets outside ASCII shown as U+FFFD)."""
        _, _, value = self.raw.partition(b":")
        unfolded = value.replace(b"\r\n", b"")
        return unfolded.decode("ascii", errors="replace").strip()


@dataclass(slots=True)
class Header:
    fields: tuple[HeaderField, ...]
    rest: bytes  # the empty line and body, or the first non-field line onward

    def named(self, name: str) -> list[HeaderField]:
        wanted = name.lower()
        return [f for f in self.fields if f.name.lower() == wanted]

    def without(self, *names: str) -> Header:
        drop = {n.lower() for n in names}
        return Header(tuple(f for f in self.fields if f.name.lower() not in drop), self.rest)

    def render(self, *, prepend: tuple[bytes, ...] = (), append: tuple[bytes, ...] = ()) -> bytes:
        return b"".join((*prepend, *(f.raw for f in self.fields), *append, self.rest))


# A field: name, colon, value, and continuation lines with something besides white space.
_PLAIN_FIELD = re.compile(
    rb"([!-9;-~]+)[ \t]*:[^\r\n]*\r\n(?:[ \t][ \t\x0b\x0c]*[^\s][^\r\n]*\r\n)*"
)


def parse(content: bytes) -> Header:
    """Split content (CRLF line ends) into its header fields and the rest."""
    # The usual shape: fields back to back up to an empty line, matched field by field.
    end = content.find(b"\r\n\r\n") + 2
    if end > 1:
        fields = []
        pos = 0
        for m in _PLAIN_FIELD.finditer(content, 0, end):
            if m.start() != pos:
                break
            fields.append(HeaderField(m[1].decode("ascii"), m[0]))
            pos = m.end()
        if pos == end:
            return Header(tuple(fields), content[end:])
    return parse_any(content)


def parse_any(content: bytes) -> Header:
    """`parse` for any content: line by line, to the first line that is not a field."""
    fields: list[HeaderField] = []
    name: str | None = None
    lines: list[bytes] = []
    pos = 0
    while pos < len(content):
        end = content.find(b"\r\n", pos)
        line_end = len(content) if end < 0 else end + 2
        line = content[pos:line_end]
        if line[:1] in (b" ", b"\t") and name is not None and line.strip():
            lines.append(line)
            pos = line_end
            continue
        colon = line.find(b":")
        if colon <= 0:
            break
        raw_name = line[:colon].rstrip(b" \t")
        if _FIELD_NAME.fullmatch(raw_name) is None:
            break
        if name is not None:
            fields.append(HeaderField(name, b"".join(lines)))
        name = raw_name.decode("ascii")
        lines = [line if line.endswith(b"\r\n") else line + b"\r\n"]
        pos = line_end
    if name is not None:
        fields.append(HeaderField(name, b"".join(lines)))
    return Header(tuple(fields), content[pos:])


def received(
    *,
    helo: str | None,
    client_ip: str,
    hostname: str,
    protocol: str,
    queue_id: str,
    recipients: tuple[str, ...],
    when: datetime.datetime,
) -> bytes:
    """An RFC 5321 §4.4 trace field, e.g.

    Received: from client.example ([192.0.2.1])
            by relay.example (relay) with ESMTPS id 0123abcd
            for <rcpt@example.com>; Tue, 1 Jul 2025 12:00:00 +0000
    """
    literal = f"IPv6:{client_ip}" if ":" in client_ip else client_ip
    head = (
        f"Received: from {_comment_safe(helo or 'unknown')} ([{literal}])\r\n"
        f"\tby {hostname} (relay) with {protocol} id {queue_id}"
    )
    if len(recipients) == 1:
        tail = f"\r\n\tfor <{_comment_safe(recipients[0])}>; {_date(when)}\r\n"
    else:
        tail = f";\r\n\t{_date(when)}\r\n"
    return (head + tail).encode("ascii")


def message_id(queue_id: str, hostname: str) -> bytes:
    return f"Message-ID: <{queue_id}@{hostname}>\r\n".encode("ascii")


_last_date: tuple[datetime.datetime, str] | None = None


def _date(when: datetime.datetime) -> str:
    """RFC 5322 date in UTC; the text for the last second asked is kept."""
    global _last_date
    second = when.replace(microsecond=0)
    cached = _last_date
    if cached is not None and cached[0] == second:
        return cached[1]
    stamp = email.utils.format_datetime(second.astimezone(datetime.UTC))
    _last_date = (second, stamp)
    return stamp


def _comment_safe(text: str) -> str:
    """Client-supplied text made safe inside a header: printable ASCII, no parentheses."""
    if _COMMENT_SAFE.fullmatch(text):
        return text
    cleaned = "".join(c if 33 <= ord(c) < 127 and c not in "()\\;" else "?" for c in text)
    return cleaned[:255] or "?"
