"""DKIM canonicalization (RFC 6376 section 3.4): pure functions over CRLF-terminated bytes.

    body_simple(b"hi\r\n\r\n\r\n") == b"hi\r\n"
    body_relaxed(b"a  b \r\n\r\n") == b"a b\r\n"
    header_relaxed(b"Subject", b" Hi \r\n  there\r\n") == b"subject:Hi there\r\n"

A header field is given as its name and its raw value: everything after the colon,
continuation lines and the final CRLF included.
"""

from __future__ import annotations

import re
from collections.abc import Callable

SIMPLE = "simple"
RELAXED = "relaxed"

_WSP_RUN = re.compile(rb"[ \t]+")
_WSP_BEFORE_CRLF = re.compile(rb"[ \t]+\r\n")
_TRAILING_CRLFS = re.compile(rb"(?:\r\n)+\Z")
_FOLD = re.compile(rb"\r\n(?=[ \t])")


def _strip_trailing_lines(body: bytes) -> bytes:
    """The body ending in exactly one CRLF (empty lines at the end removed)."""
    found = _TRAILING_CRLFS.search(body)
    if found is None:
        return body + b"\r\n"
    return body[: found.start()] + b"\r\n"


def body_simple(body: bytes) -> bytes:
    """Section 3.4.3: empty lines at the end removed; an empty body becomes one CRLF."""
    return _strip_trailing_lines(body)


def body_relaxed(body: bytes) -> bytes:
    """Section 3.4.4: white space at line ends removed, other runs of white space made
    one space, empty lines at the end removed; a body of empty lines becomes empty."""
    if not body:
        return b""
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    body = _WSP_RUN.sub(b" ", _WSP_BEFORE_CRLF.sub(b"\r\n", body))
    body = _strip_trailing_lines(body)
    return b"" if body == b"\r\n" else body


def header_simple(name: bytes, value: bytes) -> bytes:
    """Section 3.4.1: the field exactly as it is."""
    return name + b":" + value


def header_relaxed(name: bytes, value: bytes) -> bytes:
    """Section 3.4.2: name lower-cased, value unfolded, white space runs made one space,
    white space around the colon and at the end removed."""
    unfolded = _FOLD.sub(b"", value)
    if unfolded.endswith(b"\r\n"):
        unfolded = unfolded[:-2]
    text = _WSP_RUN.sub(b" ", unfolded).strip(b" ")
    return name.lower().rstrip(b" \t") + b":" + text + b"\r\n"


BODY: dict[str, Callable[[bytes], bytes]] = {SIMPLE: body_simple, RELAXED: body_relaxed}
HEADER: dict[str, Callable[[bytes, bytes], bytes]] = {
    SIMPLE: header_simple,
    RELAXED: header_relaxed,
}
