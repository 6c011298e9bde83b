"""Parse the reverse-path of MAIL FROM and the forward-path of RCPT TO (RFC 5321 §4.1.2).

Strict on purpose: an outbound relay must never be tricked into relaying to a destination
other than the one it checked. Refused whoever the client is:
- a path without angle brackets, or with anything but SP before the parameters;
- source routes `<@a,@b:user@c>` (RFC 5321 says "SHOULD accept and ignore"; ignoring
  them here would change the destination under the relay check's feet);
- more than one `@` outside a quoted local part (`<u@d@relay>`), empty atoms, bad domains;
- a local part over 64 octets, a domain over 255, a path over 256 (§4.5.3.1).
`user%host@domain` and quoted local parts are valid syntax; `Mailbox.is_suspicious` says
so the relay policy can refuse them from clients that may not relay.
With `utf8` (the transaction said SMTPUTF8, RFC 6531) local parts may hold UTF-8 and
domains U-labels; a domain is kept in its A-label form (IDNA 2008 with UTS 46 mapping, the
`idna` package), the form every later comparison, route and DNS lookup uses.
"""

from __future__ import annotations

import ipaddress
import re
import string
from dataclasses import dataclass

import idna

from relay.inject import replies

MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_PATH = 256  # octets between and including the angle brackets

_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
_LDH = frozenset(string.ascii_letters + string.digits + "-")
# The common `<dot-atom@host.name>` shape in one match; anything else takes the long road.
_ATOM = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
_LABEL = r"[A-Za-z0-9\-]+"
_SIMPLE = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*)@({_LABEL}(?:\.{_LABEL})*)>")


class AddressError(ValueError):
    """A path was refused; `reply` is the SMTP reply to send."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Mailbox:
    local_part: str  # as on the wire: a dot-string or a quoted string with its quotes
    domain: str

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain}"

    @property
    def quoted(self) -> bool:
        return self.local_part.startswith('"')

    @property
    def is_suspicious(self) -> bool:
        """Quoted local parts and the `%` / `!` routing hacks: fine only from trusted clients."""
        return self.quoted or "%" in self.local_part or "!" in self.local_part


@dataclass(frozen=True, slots=True)
class ParsedPath:
    mailbox: Mailbox | None  # None is the null path <>
    params: str  # ESMTP parameters after the path, stripped

    @property
    def address(self) -> str:
        """The path as aiosmtpd keeps it: `<>` for the null path, else `local@domain`."""
        return "<>" if self.mailbox is None else self.mailbox.address


def parse_path(text: str, utf8: bool = False) -> ParsedPath:
    """Parse `<local@domain> [params]` (the argument after `FROM:` / `TO:`); `utf8`:
    UTF-8 is allowed in the address (RFC 6531)."""
    text = text.strip()
    simple = _SIMPLE.match(text)
    if simple is not None:
        path = _simple_path(text, simple)
        if path is not None:
            return path
    if not text.startswith("<"):
        raise AddressError(replies.bad_address("Address must be enclosed in <>"))
    if text.startswith("<@"):
        raise AddressError(replies.bad_address("Source routes are not accepted"))
    if text.startswith("<>"):
        return ParsedPath(None, _params(text[2:]))
    pos = 1
    local, pos = _local_part(text, pos, utf8)
    if pos >= len(text) or text[pos] != "@":
        raise AddressError(replies.bad_address("Address must be local-part@domain"))
    domain, pos = _domain(text, pos + 1, utf8)
    if pos >= len(text) or text[pos] != ">":
        raise AddressError(replies.bad_address("Malformed address"))
    if len(local.encode()) > MAX_LOCAL_PART:
        raise AddressError(replies.bad_address(f"Local part longer than {MAX_LOCAL_PART} octets"))
    if len(domain.encode()) > MAX_DOMAIN:
        raise AddressError(replies.bad_address(f"Domain longer than {MAX_DOMAIN} octets"))
    if pos + 1 > MAX_PATH:
        raise AddressError(replies.bad_address(f"Path longer than {MAX_PATH} octets"))
    return ParsedPath(Mailbox(local, domain), _params(text[pos + 1 :]))


def plain_address(text: str) -> str | None:
    """`parse_path(text).address` when the path is the common `<dot-atom@host.name>`
    without parameters; None (no verdict) otherwise. Never raises."""
    text = text.strip()
    simple = _SIMPLE.fullmatch(text)
    if simple is None:
        return None
    local, domain = simple.group(1, 2)
    if len(local) > MAX_LOCAL_PART or len(domain) > MAX_DOMAIN or len(text) > MAX_PATH:
        return None
    if "-" in domain or len(domain) > 63:
        for label in domain.split("."):
            if len(label) > 63 or label[0] == "-" or label[-1] == "-":
                return None
    return text[1:-1]


def _simple_path(text: str, match: re.Match[str]) -> ParsedPath | None:
    """The path for a `_SIMPLE` match within every limit, or None to parse it the long way
    (which then refuses it with the precise reply)."""
    local, domain = match.group(1), match.group(2)
    end = match.end()
    if len(local) > MAX_LOCAL_PART or len(domain) > MAX_DOMAIN or end > MAX_PATH:
        return None
    if "-" in domain or len(domain) > 63:
        for label in domain.split("."):
            if len(label) > 63 or label[0] == "-" or label[-1] == "-":
                return None
    if end < len(text) and text[end] != " ":
        return None
    return ParsedPath(Mailbox(local, domain), text[end:].strip())


def _params(rest: str) -> str:
    if rest and rest[0] != " ":
        raise AddressError(replies.bad_address("Malformed address"))
    return rest.strip()


def _local_part(text: str, pos: int, utf8: bool = False) -> tuple[str, int]:
    start = pos
    if pos < len(text) and text[pos] == '"':
        pos += 1
        while pos < len(text):
            char = text[pos]
            if char == "\\":
                if pos + 1 >= len(text) or not 32 <= ord(text[pos + 1]) <= 126:
                    raise AddressError(replies.bad_address("Malformed quoted local part"))
                pos += 2
                continue
            if char == '"':
                return text[start : pos + 1], pos + 1
            if not (32 <= ord(char) <= 126 or (utf8 and ord(char) > 127)):
                raise AddressError(replies.bad_address("Malformed quoted local part"))
            pos += 1
        raise AddressError(replies.bad_address("Unterminated quoted local part"))
    while pos < len(text) and (
        text[pos] in _ATEXT or text[pos] == "." or (utf8 and ord(text[pos]) > 127)
    ):
        pos += 1
    local = text[start:pos]
    if not local or any(not atom for atom in local.split(".")):
        raise AddressError(replies.bad_address("Malformed local part"))
    return local, pos


def _domain(text: str, pos: int, utf8: bool = False) -> tuple[str, int]:
    start = pos
    if pos < len(text) and text[pos] == "[":
        end = text.find("]", pos)
        if end < 0:
            raise AddressError(replies.bad_address("Malformed address literal"))
        literal = text[pos + 1 : end]
        try:
            if literal[:5].lower() == "ipv6:":
                ipaddress.IPv6Address(literal[5:])
            else:
                ipaddress.IPv4Address(literal)
        except ValueError as exc:
            raise AddressError(replies.bad_address("Malformed address literal")) from exc
        return text[start : end + 1], end + 1
    while pos < len(text) and (
        text[pos] in _LDH or text[pos] == "." or (utf8 and ord(text[pos]) > 127)
    ):
        pos += 1
    domain = text[start:pos]
    if not domain.isascii():
        domain = a_label_domain(domain)
    labels = domain.split(".")
    for label in labels:
        if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-":
            raise AddressError(replies.bad_address("Malformed domain"))
    return domain, pos


def a_label_domain(domain: str) -> str:
    """A domain with U-labels in its A-label form; raises AddressError if it is none."""
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise AddressError(replies.BAD_IDN) from exc
