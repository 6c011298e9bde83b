"""Feedback loops: mark delivered mail with the binding and domain it left through, and read
ARF complaint reports (RFC 5965) back into (binding, domain, feedback type).

Pure functions over bytes. The header is relay's own (`X-Relay-FBL`); receivers' FBL reports
quote the original headers, which is how a complaint finds its binding x domain. It names
the recipient (`r=`, when the delivery had exactly one) and the tenant (`t=`, when the
message has one), percent-encoded, so a complaint can put the recipient on the
suppression list; a report's own `Original-Rcpt-To:` is preferred.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import Message
from urllib.parse import quote, unquote

HEADER = "X-Relay-FBL"
_FIELD = re.compile(r"\b([bdirt])=([^;\s]+)")
_SAFE = re.compile(r"[^A-Za-z0-9._@:+-]")


@dataclass(frozen=True, slots=True)
class Complaint:
    binding: str
    domain: str
    feedback_type: str  # abuse, fraud, unsubscribe, ... (RFC 5965 Feedback-Type)
    message_id: str
    recipient: str | None = None  # who complained, when the report or the header says
    tenant: str | None = None  # the complained message's tenant (the header's t=)


def fbl_header(
    binding: str,
    domain: str,
    message_id: str,
    recipient: str | None = None,
    tenant: str | None = None,
) -> bytes:
    def safe(text: str) -> str:
        return _SAFE.sub("_", text)

    extra = ""
    if recipient is not None:
        extra += f"; r={quote(recipient, safe='@.+-_')}"
    if tenant is not None:
        extra += f"; t={quote(tenant, safe='.+-_')}"
    return (
        f"{HEADER}: b={safe(binding)}; d={safe(domain)}; i={safe(message_id)}{extra}\r\n"
    ).encode()


def _marker(headers: str) -> dict[str, str] | None:
    for line in headers.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == HEADER.lower():
            return dict(_FIELD.findall(value))
    return None


def parse_arf(content: bytes) -> Complaint | None:
    """The complaint in an ARF report, or None if this is not one relay can attribute."""
    message = email.message_from_bytes(content, policy=email.policy.compat32)
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type") or "").lower() != "feedback-report":
        return None
    feedback_type = "abuse"
    original_headers: str | None = None
    reported: str | None = None
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/feedback-report":
            feedback_type = _feedback_type(part) or feedback_type
            reported = _report_field(part, "Original-Rcpt-To")
        elif kind in ("message/rfc822", "text/rfc822-headers"):
            original_headers = _headers_text(part)
    if original_headers is None:
        return None
    fields = _marker(original_headers)
    if not fields or "b" not in fields or "d" not in fields:
        return None
    recipient = reported or (unquote(fields["r"]) if "r" in fields else None)
    tenant = unquote(fields["t"]) if "t" in fields else None
    return Complaint(
        fields["b"], fields["d"], feedback_type.lower(), fields.get("i", ""), recipient, tenant
    )


def _feedback_type(part: Message) -> str | None:
    return _report_field(part, "Feedback-Type")


def _report_field(part: Message, name: str) -> str | None:
    """A field of the machine-readable report (its first word; `<>` taken off)."""
    payload = part.get_payload()
    if isinstance(payload, list):  # parsed as a sequence of header blocks
        for block in payload:
            if isinstance(block, Message) and block.get(name):
                return str(block[name]).strip().strip("<>") or None
        return None
    text = payload if isinstance(payload, str) else ""
    match = re.search(rf"^{name}:\s*<?([^\s<>]+)", text, re.MULTILINE | re.IGNORECASE)
    return match.group(1) if match else None


def _headers_text(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        inner = payload[0]
        return "".join(f"{k}: {v}\n" for k, v in inner.items())
    if isinstance(payload, str):
        return payload
    raw = part.get_payload(decode=True)
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
