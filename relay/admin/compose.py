"""The JSON body of POST /api/v1/messages, read and checked (pure): the envelope, and the
content given whole (`content`) or built here as MIME with the stdlib `email` package
(`subject`, `text`, `html`, `headers`)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from relay.admin.http import BadRequest

FIELDS = frozenset(
    {
        "from",
        "to",
        "content",
        "subject",
        "text",
        "html",
        "headers",
        "binding_group",
        "binding",
        "tenant",
        "campaign",
        "priority",
    }
)
BUILT = ("subject", "text", "html", "headers")


@dataclass(frozen=True, slots=True)
class Injection:
    sender: str
    recipients: tuple[str, ...]
    content: bytes
    binding_group: str | None
    binding: str | None
    tenant: str | None = None  # as a listener's default: the content's X-Tenant wins
    campaign: str | None = None
    priority: str | None = None  # "transactional" | "bulk": X-Priority-Class wins


def _string(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"missing field {name!r}", field=name)
        return None
    if not isinstance(value, str):
        raise BadRequest(f"field {name!r} must be a string", field=name)
    return value


def read_injection(body: dict[str, Any]) -> Injection:
    for name in body:
        if name not in FIELDS:
            raise BadRequest(f"unknown field {name!r}", field=name)
    sender = _string(body, "from", required=True)
    assert sender is not None
    to = body.get("to")
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not to:
        raise BadRequest("field 'to' must be a non-empty list of addresses", field="to")
    for index, item in enumerate(to):
        if not isinstance(item, str) or not item:
            raise BadRequest(f"to[{index}] must be a non-empty string", field=f"to[{index}]")
    content = _string(body, "content")
    built = [name for name in BUILT if name in body]
    if content is not None and built:
        raise BadRequest(
            f"give either 'content' or {', '.join(map(repr, BUILT))}, not both", field=built[0]
        )
    raw = build_mime(body, sender, to) if content is None else content.encode("utf-8")
    return Injection(
        sender,
        tuple(to),
        raw,
        _string(body, "binding_group") or None,
        _string(body, "binding") or None,
        _string(body, "tenant") or None,
        _string(body, "campaign") or None,
        _priority(body),
    )


def _priority(body: dict[str, Any]) -> str | None:
    value = _string(body, "priority")
    if value is None or not value:
        return None
    if value.strip().lower() not in ("transactional", "bulk"):
        raise BadRequest(
            f"field 'priority' must be transactional or bulk, not {value!r}", field="priority"
        )
    return value.strip().lower()


def build_mime(body: dict[str, Any], sender: str, to: list[str]) -> bytes:
    subject = _string(body, "subject")
    text = _string(body, "text")
    html = _string(body, "html")
    if text is None and html is None:
        raise BadRequest("give 'content', or 'text' and/or 'html'", field="content")
    extra = body.get("headers", {})
    if not isinstance(extra, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in extra.items()
    ):
        raise BadRequest("field 'headers' must be an object of strings", field="headers")
    message = EmailMessage(policy=SMTP)
    try:
        for name, value in (("From", sender), ("To", ", ".join(to)), ("Subject", subject)):
            if value is not None and name.lower() not in {k.lower() for k in extra}:
                message[name] = value
        for name, value in extra.items():
            message[name] = value
    except (ValueError, TypeError) as err:  # CR/LF in a value, a bad name
        raise BadRequest(f"bad header: {err}", field="headers") from None
    if text is not None:
        message.set_content(text)
    if html is not None:
        if text is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    try:
        return message.as_bytes()
    except (ValueError, TypeError) as err:
        raise BadRequest(f"cannot build the message: {err}", field="headers") from None
