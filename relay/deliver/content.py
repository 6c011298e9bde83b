"""8BITMIME: what to send when a message has 8-bit content (RFC 6152 / RFC 1652).

Pure functions over bytes. `prepare_content` decides from the settings and whether the
server offers 8BITMIME; `downconvert` re-encodes 8-bit MIME leaf parts as
quoted-printable.
"""

from __future__ import annotations

import email
import email.policy
import io
import quopri
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import Message

from relay.deliver.settings import DeliverySettings

__all__ = ["PreparedContent", "downconvert", "has_8bit", "prepare_content", "strip_high_bit"]

_STRIP = bytes(b & 0x7F for b in range(256))
_POLICY = email.policy.compat32.clone(linesep="\r\n", max_line_length=0)


def has_8bit(data: bytes) -> bool:
    return not data.isascii()


def strip_high_bit(data: bytes) -> bytes:
    return data.translate(_STRIP)


def downconvert(content: bytes) -> bytes:
    """Re-encode every 8-bit non-multipart part as quoted-printable and say so in its
    Content-Transfer-Encoding. 8-bit bytes in headers are left as they are (the caller
    checks for leftovers). Content without 8-bit bytes is returned unchanged."""
    if not has_8bit(content):
        return content
    message = email.message_from_bytes(content, policy=_POLICY)
    for part in message.walk():
        if part.is_multipart():
            continue
        _qp_encode(part)
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_POLICY).flatten(message)
    return out.getvalue()


def _qp_encode(part: Message) -> None:
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if cte in ("base64", "quoted-printable"):
        return  # already 7-bit encoded; stray 8-bit bytes there are left for the caller
    raw = part.get_payload(decode=True)  # 7bit/8bit/binary: the bytes as received
    if not isinstance(raw, bytes) or raw.isascii():
        return
    encoded = quopri.encodestring(raw.replace(b"\r\n", b"\n")).decode("ascii")
    del part["Content-Transfer-Encoding"]
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(encoded.replace("\n", "\r\n"))


@dataclass(frozen=True, slots=True)
class PreparedContent:
    data: bytes
    mail_options: tuple[str, ...]  # e.g. ("BODY=8BITMIME",)
    refused: str | None = None  # why the content cannot be sent (strict mode leftovers)


def prepare_content(
    content: bytes, settings: DeliverySettings, server_8bitmime: bool
) -> PreparedContent:
    """send_8bitmime / transform_8bitmime_content, Momentum's semantics:
    the server offers 8BITMIME: send as is, with BODY=8BITMIME if send_8bitmime=ifavailable;
    otherwise for 8-bit content: `no` sends as is, `ifneeded` downconverts to
    quoted-printable, `strict` downconverts and refuses (5.6.3) if 8-bit bytes remain
    (e.g. in headers), `strip` clears the high bit of every byte."""
    if not has_8bit(content):
        return PreparedContent(content, ())
    if server_8bitmime:
        body = ("BODY=8BITMIME",) if settings.send_8bitmime == "ifavailable" else ()
        return PreparedContent(content, body)
    mode = settings.transform_8bitmime_content
    if mode == "no":
        return PreparedContent(content, ())
    if mode == "strip":
        return PreparedContent(strip_high_bit(content), ())
    converted = downconvert(content)
    if mode == "strict" and has_8bit(converted):
        return PreparedContent(
            content, (), "8-bit content the server cannot take could not be converted"
        )
    return PreparedContent(converted, ())
