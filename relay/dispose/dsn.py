"""Delivery status notifications (RFC 3464) and enhanced status codes (RFC 3463).

Pure: given the original message and what happened to which recipients, build the
multipart/report bytes. relay spools the DSN as an ordinary message from `<>`.
Actions: failed, delayed, and relayed (a success DSN for NOTIFY=SUCCESS when the next hop
did not offer DSN: RFC 3461 4.1 says relay reports it, as "relayed", since nobody after it
will). With ENVID / ORCPT given at injection the report carries Original-Envelope-Id and
Original-Recipient (RFC 3464 2.2.1, 2.3.1). A UTF-8 address (SMTPUTF8) is reported as
`utf-8; address` in a message/global-delivery-status part, and UTF-8 original headers as
message/global-headers (RFC 6533); all-ASCII reports are as RFC 3464 has them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, formatdate, make_msgid

from relay.outcome import EnhancedStatus, Remote, Reply

MAX_INLINE_BODY = 256 * 1024


@dataclass(frozen=True, slots=True)
class DsnRecipient:
    """One recipient's block in a DSN."""

    recipient: str
    reply: Reply  # the remote reply or relay's own
    remote: Remote | None = None
    action: str = "failed"  # failed | delayed | relayed
    status: EnhancedStatus | None = None  # overrides the status the reply gives
    original_recipient: str | None = None  # ORCPT decoded: "rfc822;address"


def dsn_status(reply: Reply) -> EnhancedStatus:
    """The reply's RFC 3463 code, else one derived from the reply code's class."""
    if reply.enhanced is not None:
        return reply.enhanced
    if reply.code is not None and 200 <= reply.code < 300:
        return EnhancedStatus(2, 0, 0)
    if reply.code is not None and 400 <= reply.code < 500:
        return EnhancedStatus(4, 0, 0)
    return EnhancedStatus(5, 0, 0)


def _headers_of(content: bytes) -> bytes:
    end = content.find(b"\r\n\r\n")
    if end < 0:
        return content if len(content) <= MAX_INLINE_BODY else content[:MAX_INLINE_BODY]
    return content[: end + 2]


def _subject(action: str) -> str:
    if action == "delayed":
        return "Delivery delayed: message not yet delivered"
    if action == "relayed":
        return "Successful Mail Delivery Report (relayed)"
    return "Undelivered Mail Returned to Sender"


def build_dsn(
    *,
    original: bytes,
    original_sender: str,
    original_id: str,
    received_at: float,
    failures: list[DsnRecipient],
    reporting_mta: str,
    from_address: str,
    inline: str = "headers",  # headers | full | all | none
    now: float | None = None,
    envelope_id: str | None = None,  # ENVID decoded: Original-Envelope-Id
    tenant: str | None = None,  # the original's tenant and campaign: X-Tenant, X-Campaign
    campaign: str | None = None,
) -> bytes:
    """A complete RFC 5322 message (CRLF line ends) carrying a multipart/report DSN."""
    now = time.time() if now is None else now
    actions = {f.action for f in failures}
    action = actions.pop() if len(actions) == 1 else "failed"
    boundary = f"=_relay_dsn_{original_id}_{int(now * 1000)}"
    human = _human_text(failures, reporting_mta, action)
    per_message = [] if envelope_id is None else [f"Original-Envelope-Id: {envelope_id}"]
    per_message += [
        f"Reporting-MTA: dns; {reporting_mta}",
        f"X-Relay-Queue-ID: {original_id}",
        *_labels("X-Relay-", tenant, campaign),
        f"Arrival-Date: {format_datetime(datetime.fromtimestamp(received_at, UTC))}",
    ]
    per_recipient: list[str] = []
    for failure in failures:
        status = failure.status or dsn_status(failure.reply)
        if failure.action == "failed" and status.klass == 4:
            status = replace(status, klass=5)  # a final failure is permanent whatever it said
        block = (
            []
            if failure.original_recipient is None
            else [f"Original-Recipient: {failure.original_recipient}"]
        )
        block += [
            f"Final-Recipient: {_address_type(failure.recipient)}; {failure.recipient}",
            f"Action: {failure.action}",
            f"Status: {status}",
        ]
        if failure.remote is not None:
            block.append(f"Remote-MTA: dns; {failure.remote.mx_host}")
        kind = "X-relay" if failure.reply.code is None else "smtp"
        block.append(f"Diagnostic-Code: {kind}; {_one_line(str(failure.reply))}")
        per_recipient.append("\r\n".join(block))
    status_part = "\r\n".join(per_message) + "\r\n\r\n" + "\r\n\r\n".join(per_recipient)
    headers = [
        f"From: Mail Delivery System <{from_address}>",
        f"To: <{original_sender}>",
        f"Subject: {_subject(action)}",
        f"Date: {formatdate(now, localtime=False)}",
        f"Message-ID: {make_msgid(domain=reporting_mta)}",
        "Auto-Submitted: auto-replied",
        *_labels("X-", tenant, campaign, encode=True),
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    parts = [
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n" + human,
        f"Content-Type: message/{'' if status_part.isascii() else 'global-'}delivery-status"
        "\r\n\r\n" + status_part + "\r\n",
    ]
    out = "\r\n".join(headers) + "\r\n\r\nThis is a MIME-encapsulated message.\r\n"
    for part in parts:
        out += f"\r\n--{boundary}\r\n" + part
    body = out.encode("utf-8")
    mode = inline.lower()
    if mode in ("full", "all"):
        kind = "rfc822" if _headers_of(original).isascii() else "global"
        body += f"\r\n--{boundary}\r\nContent-Type: message/{kind}\r\n\r\n".encode() + original
        if not original.endswith(b"\r\n"):
            body += b"\r\n"
    elif mode == "headers":
        body += (
            f"\r\n--{boundary}\r\nContent-Type: {_headers_type(original)}\r\n\r\n".encode()
            + _headers_of(original)
        )
    body += f"\r\n--{boundary}--\r\n".encode()
    return body


def _labels(
    prefix: str, tenant: str | None, campaign: str | None, encode: bool = False
) -> list[str]:
    """The original's tenant and campaign as header fields (message headers: X-Tenant,
    X-Campaign, UTF-8 as RFC 2047 words; per-message DSN extension fields, RFC 3464 2.4:
    X-Relay-Tenant, X-Relay-Campaign, UTF-8 making the part global-delivery-status)."""
    fields = []
    for name, value in (("Tenant", tenant), ("Campaign", campaign)):
        if value is None:
            continue
        text = _one_line(value)
        if encode and not text.isascii():
            text = Header(text, "utf-8").encode()
        fields.append(f"{prefix}{name}: {text}")
    return fields


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _human_text(failures: list[DsnRecipient], reporting_mta: str, action: str) -> str:
    if action == "delayed":
        lead = (
            f"This is the mail system at host {reporting_mta}.\r\n\r\n"
            "Your message could not be delivered yet. It will be retried; you do not need "
            "to send it again.\r\n\r\n"
        )
    elif action == "relayed":
        lead = (
            f"This is the mail system at host {reporting_mta}.\r\n\r\n"
            "Your message was delivered to the next mail server, which does not send "
            "delivery notifications: no further notification will follow.\r\n\r\n"
        )
    else:
        lead = (
            f"This is the mail system at host {reporting_mta}.\r\n\r\n"
            "Your message could not be delivered to one or more recipients. It is attached "
            "below.\r\n\r\n"
        )
    lines = [f"<{f.recipient}>: {_one_line(str(f.reply))}" for f in failures]
    return lead + "\r\n".join(lines) + "\r\n"


def _address_type(address: str) -> str:
    """RFC 6533 3: an address with UTF-8 is of type utf-8, not rfc822."""
    return "rfc822" if address.isascii() else "utf-8"


def _headers_type(original: bytes) -> str:
    return "text/rfc822-headers" if _headers_of(original).isascii() else "message/global-headers"
