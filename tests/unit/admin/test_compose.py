"""The injection body, read and built into a message (pure)."""

from __future__ import annotations

import email
import email.policy

import pytest

from relay.admin.api import reply_status
from relay.admin.compose import read_injection
from relay.admin.http import BadRequest


def test_content_given_whole() -> None:
    got = read_injection({"from": "", "to": "r@x.test", "content": "Subject: é\n\nhi\n"})
    assert (got.sender, got.recipients) == ("", ("r@x.test",))
    assert got.content == "Subject: é\n\nhi\n".encode()
    assert (got.binding_group, got.binding) == (None, None)


def test_mime_built_with_the_email_package() -> None:
    got = read_injection(
        {
            "from": "s@x.test",
            "to": ["a@y.test", "b@y.test"],
            "subject": "Grüße",
            "text": "plain",
            "html": "<b>html</b>",
            "headers": {"To": "list@y.test", "X-Id": "7"},
            "binding_group": "g",
        }
    )
    parsed = email.message_from_bytes(got.content, policy=email.policy.default)
    assert parsed["To"] == "list@y.test"  # the given To: replaces the envelope's
    assert parsed["Subject"] == "Grüße" and parsed["X-Id"] == "7"
    assert parsed.get_content_type() == "multipart/alternative"
    assert b"\r\n" in got.content and b"\n" not in got.content.replace(b"\r\n", b"")
    assert got.binding_group == "g"


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"to": ["a@y.test"], "text": "x"}, "from", 400),
        ({"from": 1, "to": ["a@y.test"], "text": "x"}, "from", 400),
        ({"from": "s@x.test", "to": [1], "text": "x"}, "to[0]", 400),
        ({"from": "s@x.test", "to": ["a@y.test"]}, "content", 400),
        ({"from": "s@x.test", "to": ["a@y.test"], "text": "x", "headers": []}, "headers", 400),
        ({"from": "s@x.test", "to": ["a@y.test"], "text": "x", "campaign": 3}, "campaign", 400),
    ],
)
def test_refusals_name_the_field(body: dict[str, object], field: str, status: int) -> None:
    with pytest.raises(BadRequest) as caught:
        read_injection(body)
    assert (caught.value.field, caught.value.status) == (field, status)


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("552 5.3.4 Message size exceeds fixed maximum message size", 413),
        ("452 4.3.1 Insufficient system storage", 507),
        ("451 4.3.0 Local error in processing, try again later", 503),
        ("452 4.5.3 Too many recipients", 422),
        ("501 5.1.3 Bad recipient address syntax", 400),
        ("550 5.7.1 Unknown binding group", 422),
        ("554 5.4.0 Too many Received headers: mail loop?", 422),
    ],
)
def test_reply_status(reply: str, status: int) -> None:
    assert reply_status(reply) == status
