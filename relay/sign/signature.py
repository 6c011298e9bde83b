"""One DKIM-Signature field (RFC 6376 section 3.5) around a key operation.

The field is built with an empty b= tag, the signed data is the selected header fields
canonicalized followed by that field canonicalized (without its CRLF, section 3.7), and
the signature is appended, folded. Pure except for the key operation `spec.key.sign`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from relay.sign import canon
from relay.sign.headers import Index, select, signed_names
from relay.sign.settings import SigningSpec

NAME = b"DKIM-Signature"
WIDTH = 78  # fold lines at this many characters (RFC 5322 recommends 78)


def body_hash(body: bytes, body_canon: str) -> str:
    """The bh= value: base64 of SHA-256 over the canonicalized body."""
    digest = hashlib.sha256(canon.BODY[body_canon](body)).digest()
    return base64.b64encode(digest).decode("ascii")


def _fold(tokens: Sequence[tuple[str, bool]], lines: list[str], line: str) -> str:
    """Add tokens (text, glued to the one before) to the field's `lines` and the `line`
    being filled, folding before a token that would pass WIDTH; the new line being filled."""
    for text, glued in tokens:
        if len(line) + 1 + len(text) > WIDTH:
            lines.append(line)
            line = " " + text
        elif glued:
            line += text
        else:
            line += " " + text
    return line


# (spec, d=, t=, h= names) -> the field's folded lines up to h= and the line being filled.
# Every message of a second from one domain shares them; cleared when it grows past HEADS.
_heads: dict[tuple[object, ...], tuple[tuple[str, ...], str]] = {}
HEADS = 256


def _head(
    spec: SigningSpec, domain: str, names: Sequence[str], now: int
) -> tuple[tuple[str, ...], str]:
    key = (spec, domain, now, *names)
    found = _heads.get(key)
    if found is not None:
        return found
    tokens: list[tuple[str, bool]] = [
        ("v=1;", False),
        (f"a={spec.algorithm};", False),
        (f"c={spec.header_canon}/{spec.body_canon};", False),
        (f"d={domain};", False),
        (f"s={spec.selector};", False),
        (f"t={now};", False),
    ]
    if spec.lifetime > 0:
        tokens.append((f"x={now + int(spec.lifetime)};", False))
    for index, name in enumerate(names):
        last = index == len(names) - 1
        text = ("h=" if index == 0 else "") + name + (";" if last else ":")
        tokens.append((text, index > 0))  # within h=, continue without a space
    lines: list[str] = []
    line = _fold(tokens, lines, NAME.decode() + ":")
    if len(_heads) >= HEADS:
        _heads.clear()
    found = _heads[key] = (tuple(lines), line)
    return found


def unsigned_field(
    spec: SigningSpec, domain: str, names: Sequence[str], bh: str, now: int
) -> bytes:
    """The field up to and including `b=` (folded; no CRLF)."""
    done, line = _head(spec, domain, names, now)
    lines = list(done)
    line = _fold(((f"bh={bh};", False), ("b=", False)), lines, line)
    lines.append(line)
    return "\r\n".join(lines).encode("ascii")


def fold_signature(head: bytes, signature: bytes) -> bytes:
    """`head` (ending in b=) with the base64 signature appended, folded, and CRLF."""
    value = base64.b64encode(signature)
    column = len(head) - (head.rfind(b"\n") + 1)
    parts = [head]
    room = max(WIDTH - column, 0)
    parts.append(value[:room])
    for start in range(room, len(value), WIDTH - 1):
        parts.append(b"\r\n " + value[start : start + WIDTH - 1])
    parts.append(b"\r\n")
    return b"".join(parts)


def signing_input(spec: SigningSpec, found: Index, head: bytes, names: Sequence[str]) -> bytes:
    """What the key signs: the fields `names` selects, then `head`, canonicalized."""
    own = canon.HEADER[spec.header_canon](NAME, head[len(NAME) + 1 :] + b"\r\n")
    return canon.FIELDS[spec.header_canon](select(found, names)) + own[:-2]


def signature_field(spec: SigningSpec, from_domain: str, found: Index, bh: str, now: int) -> bytes:
    """The complete DKIM-Signature field (CRLF-terminated) for the message whose header
    fields `found` indexes (headers.index)."""
    names = signed_names(found, spec.headers, spec.oversign)
    head = unsigned_field(spec, spec.domain or from_domain, names, bh, now)
    return fold_signature(head, spec.key.sign(signing_input(spec, found, head, names)))
