"""Delivery status notifications (RFC 3464) and enhanced status codes (RFC 3463).

Pure: given the original message and what happened to which recipients, build the
multipart/report bytes. relay spools the DSN as an ordinary message from `<>`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, formatdate, make_msgid

ENHANCED = re.compile(r"^\s*\d{3}[ -]?([245])\.(\d{1,3})\.(\d{1,3})\b")
CODE = re.compile(r"^\s*(\d{3})")
MAX_INLINE_BODY = 256 * 1024


@dataclass(frozen=True, slots=True)
class Failure:
    recipient: str
    reply: str  # the remote reply or relay's own text, "550 5.1.1 no such user"
    remote: str = ""  # "mx.example.com [192.0.2.1]"
    action: str = "failed"  # failed | delayed
    status: str | None = None  # overrides the status parsed from the reply


def enhanced_status(reply: str) -> str:
    """The RFC 3463 code in a reply, else one derived from the reply code's class."""
    match = ENHANCED.match(reply)
    if match:
        return ".".join(match.groups())
    code = CODE.match(reply)
    if code:
        first = code.group(1)[0]
        if first in "45":
            return f"{first}.0.0"
        if first == "2":
            return "2.0.0"
    return "5.0.0" if not reply.startswith("4") else "4.0.0"


def reply_code(reply: str) -> int | None:
    match = CODE.match(reply)
    return int(match.group(1)) if match else None


def _headers_of(content: bytes) -> bytes:
    end = content.find(b"\r\n\r\n")
    if end < 0:
        return content if len(content) <= MAX_INLINE_BODY else content[:MAX_INLINE_BODY]
    return content[: end + 2]


def _subject(action: str) -> str:
    if action == "delayed":
        return "Delivery delayed: message not yet delivered"
    return "Undelivered Mail Returned to Sender"


def build_dsn(
    *,
    original: bytes,
    original_sender: str,
    original_id: str,
    received_at: float,
    failures: list[Failure],
    reporting_mta: str,
    from_address: str,
    inline: str = "headers",  # headers | full | all | none
    now: float | None = None,
) -> bytes:
    """A complete RFC 5322 message (CRLF line ends) carrying a multipart/report DSN."""
    now = time.time() if now is None else now
    action = "delayed" if all(f.action == "delayed" for f in failures) else "failed"
    boundary = f"=_relay_dsn_{original_id}_{int(now * 1000)}"
    human = _human_text(failures, reporting_mta, action)
    per_message = [
        f"Reporting-MTA: dns; {reporting_mta}",
        f"X-Relay-Queue-ID: {original_id}",
        f"Arrival-Date: {format_datetime(datetime.fromtimestamp(received_at, UTC))}",
    ]
    per_recipient: list[str] = []
    for failure in failures:
        status = failure.status or enhanced_status(failure.reply)
        if failure.action == "failed" and status.startswith("4."):
            status = "5." + status[2:]  # a final failure is permanent whatever the reply said
        block = [
            f"Final-Recipient: rfc822; {failure.recipient}",
            f"Action: {failure.action}",
            f"Status: {status}",
        ]
        if failure.remote:
            host = failure.remote.split(" ", 1)[0]
            block.append(f"Remote-MTA: dns; {host}")
        if reply_code(failure.reply) is not None:
            block.append(f"Diagnostic-Code: smtp; {_one_line(failure.reply)}")
        else:
            block.append(f"Diagnostic-Code: X-relay; {_one_line(failure.reply)}")
        per_recipient.append("\r\n".join(block))
    status_part = "\r\n".join(per_message) + "\r\n\r\n" + "\r\n\r\n".join(per_recipient)
    headers = [
        f"From: Mail Delivery System <{from_address}>",
        f"To: <{original_sender}>",
        f"Subject: {_subject(action)}",
        f"Date: {formatdate(now, localtime=False)}",
        f"Message-ID: {make_msgid(domain=reporting_mta)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    parts = [
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n" + human,
        "Content-Type: message/delivery-status\r\n\r\n" + status_part + "\r\n",
    ]
    out = "\r\n".join(headers) + "\r\n\r\nThis is a MIME-encapsulated message.\r\n"
    for part in parts:
        out += f"\r\n--{boundary}\r\n" + part
    body = out.encode("utf-8")
    mode = inline.lower()
    if mode in ("full", "all"):
        body += f"\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n".encode() + original
        if not original.endswith(b"\r\n"):
            body += b"\r\n"
    elif mode == "headers":
        body += (
            f"\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n".encode()
            + _headers_of(original)
        )
    body += f"\r\n--{boundary}--\r\n".encode()
    return body


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _human_text(failures: list[Failure], reporting_mta: str, action: str) -> str:
    if action == "delayed":
        lead = (
            f"This is the mail system at host {reporting_mta}.\r\n\r\n"
            "Your message could not be delivered yet. It will be retried; you do not need "
            "to send it again.\r\n\r\n"
        )
    else:
        lead = (
            f"This is the mail system at host {reporting_mta}.\r\n\r\n"
            "Your message could not be delivered to one or more recipients. It is attached "
            "below.\r\n\r\n"
        )
    lines = [f"<{f.recipient}>: {_one_line(f.reply)}" for f in failures]
    return lead + "\r\n".join(lines) + "\r\n"
