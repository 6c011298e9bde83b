"""What a session puts on the wire: command lines, the RFC 2920 command block and the DATA
content, and what an EHLO reply offers. Pure functions, no I/O.

    mail = mail_line(sender, ("SIZE=2048",), utf8=False)      # b"MAIL FROM:<s> SIZE=2048\\r\\n"
    rcpt = rcpt_line("r@example.com", utf8=False)              # Unsendable on CR/LF/NUL...
    block = envelope_block(mail, [rcpt])                       # MAIL + RCPTs + DATA, one write
    body = data_content(content)                               # dot-stuffed, ends ".\\r\\n"

With PIPELINING the whole envelope goes out in one write and the replies come back in the
same order (one for MAIL, one per RCPT, one for DATA); without it, one line per round trip.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "DATA_LINE",
    "END_OF_DATA",
    "Unsendable",
    "bdat_line",
    "crlf_only",
    "data_content",
    "ehlo_extensions",
    "envelope_block",
    "hello_line",
    "mail_line",
    "rcpt_line",
]

DATA_LINE = b"DATA\r\n"
END_OF_DATA = b".\r\n"  # alone: ends a DATA the server accepted after every RCPT failed

# Every C0 control and DEL: CR/LF/NUL in an argument would inject commands (the same rule
# aiosmtplib applies to its own commands).
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_BARE_LINE_ENDING = re.compile(rb"\r\n|\n|\r(?!\n)")
_EXTENSION = re.compile(r"(?P<ext>[A-Za-z0-9][A-Za-z0-9\-]*) ?")


class Unsendable(ValueError):
    """An argument relay refuses to put on the wire; nothing was sent."""

    def __init__(self) -> None:
        super().__init__("Command arg contains a prohibited control character")


def _address(prefix: bytes, address: str, utf8: bool) -> bytes:
    arg = prefix + b"<" + address.encode("utf-8" if utf8 else "ascii") + b">"
    if _CONTROL.search(arg) is not None:
        raise Unsendable
    return arg


def hello_line(verb: bytes, hostname: str) -> bytes:
    """`EHLO name` / `HELO name` with its CRLF; raises Unsendable."""
    encoded = hostname.encode("utf-8")
    if _CONTROL.search(encoded) is not None:
        raise Unsendable
    return verb + b" " + encoded + b"\r\n"


def ehlo_extensions(text: str) -> dict[str, str]:
    """The extensions an EHLO reply's text offers (after the first line, which names the
    server): lower-case keyword -> its parameters ("size" -> "10240000")."""
    offered: dict[str, str] = {}
    for line in text.split("\n")[1:]:
        match = _EXTENSION.match(line)
        if match is not None:
            offered[match["ext"].lower()] = line[match.end("ext") :].strip()
    return offered


def mail_line(sender: str, options: Sequence[str], utf8: bool) -> bytes:
    """`MAIL FROM:<sender> OPTIONS...` with its CRLF; raises Unsendable."""
    parts = [b"MAIL", _address(b"FROM:", sender, utf8)]
    for option in options:
        encoded = option.encode("ascii")
        if _CONTROL.search(encoded) is not None:
            raise Unsendable
        parts.append(encoded)
    return b" ".join(parts) + b"\r\n"


def rcpt_line(recipient: str, utf8: bool, options: Sequence[str] = ()) -> bytes:
    """`RCPT TO:<recipient> OPTIONS...` with its CRLF; raises Unsendable."""
    line = b"RCPT " + _address(b"TO:", recipient, utf8)
    for option in options:
        encoded = option.encode("ascii")
        if _CONTROL.search(encoded) is not None:
            raise Unsendable
        line += b" " + encoded
    return line + b"\r\n"


def size_limit(extensions: dict[str, str]) -> int | None:
    """The largest message the server takes by its SIZE keyword (RFC 1870), or None when
    it names no limit ("SIZE", "SIZE 0", no SIZE, or something that is not a number)."""
    value = extensions.get("size", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def envelope_block(mail: bytes, rcpts: Sequence[bytes], data: bool = True) -> bytes:
    """The pipelined group: MAIL, every RCPT, and DATA when there is a RCPT to send (and
    `data`: not when the content goes by BDAT, which is sent once a RCPT was accepted)."""
    if not rcpts:
        return mail
    return b"".join((mail, *rcpts, DATA_LINE) if data else (mail, *rcpts))


def bdat_line(size: int) -> bytes:
    """`BDAT <size> LAST` (RFC 3030): the whole message in one chunk."""
    return b"BDAT %d LAST\r\n" % size


def crlf_only(content: bytes) -> bool:
    """Every line ends with CRLF (no bare CR or LF) and the last one too: the content can
    go by BDAT as it is."""
    crlf = content.count(b"\r\n")
    return (
        content.endswith(b"\r\n") and content.count(b"\n") == crlf and content.count(b"\r") == crlf
    )


def data_content(content: bytes) -> bytes:
    """The message as sent after 354: line ends made CRLF (relay's spool already stores
    CRLF, so this is a check), a final CRLF, lines starting with "." doubled (RFC 5321
    4.5.2), and the terminating ".\\r\\n"."""
    crlf = content.count(b"\r\n")
    if content.count(b"\n") != crlf or content.count(b"\r") != crlf:
        content = _BARE_LINE_ENDING.sub(b"\r\n", content)
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    if content.startswith(b"."):
        content = b"." + content
    return content.replace(b"\r\n.", b"\r\n..") + END_OF_DATA
