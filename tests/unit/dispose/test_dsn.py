"""DSNs parse back as RFC 3464 multipart/report; enhanced codes come from replies."""

from __future__ import annotations

import email
from email.header import decode_header, make_header
from email.message import Message

import pytest

from relay.dispose.dsn import DsnRecipient, build_dsn, dsn_status
from relay.outcome import Remote, Reply

ORIGINAL = (
    b"From: sender@example.test\r\nTo: a@x.test\r\nSubject: hello\r\n"
    b"Message-ID: <orig@example.test>\r\n\r\nbody line\r\n"
)


def make(inline: str = "headers", action: str = "failed") -> Message:
    raw = build_dsn(
        original=ORIGINAL,
        original_sender="sender@example.test",
        original_id="M1",
        received_at=1_700_000_000.0,
        failures=[
            DsnRecipient(
                "a@x.test",
                Reply.parse(550, "5.1.1 <a@x.test>: no such user"),
                Remote("mx.x.test", "127.0.0.9", 25),
                action=action,
            ),
            DsnRecipient(
                "b@x.test", Reply.parse(554, "5.4.7 delivery time expired"), action=action
            ),
        ],
        reporting_mta="relay.example.test",
        from_address="MAILER-DAEMON@relay.example.test",
        inline=inline,
        now=1_700_000_100.0,
    )
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    return email.message_from_bytes(raw)


def test_dsn_is_multipart_report_with_delivery_status() -> None:
    msg = make()
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["To"] == "<sender@example.test>"
    assert "MAILER-DAEMON@relay.example.test" in msg["From"]
    parts = msg.get_payload()
    assert isinstance(parts, list)
    assert [p.get_content_type() for p in parts] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    status_blocks = parts[1].get_payload()
    assert isinstance(status_blocks, list)
    assert status_blocks[0]["Reporting-MTA"] == "dns; relay.example.test"
    first, second = status_blocks[1], status_blocks[2]
    assert first["Final-Recipient"] == "rfc822; a@x.test"
    assert first["Action"] == "failed"
    assert first["Status"] == "5.1.1"
    assert first["Remote-MTA"] == "dns; mx.x.test"
    assert first["Diagnostic-Code"] == "smtp; 550 5.1.1 <a@x.test>: no such user"
    assert second["Status"] == "5.4.7"
    assert "Subject: hello" in parts[2].get_payload()


@pytest.mark.parametrize(
    ("inline", "types"),
    [
        ("full", ["text/plain", "message/delivery-status", "message/rfc822"]),
        ("none", ["text/plain", "message/delivery-status"]),
    ],
)
def test_inline_original_modes(inline: str, types: list[str]) -> None:
    parts = make(inline).get_payload()
    assert isinstance(parts, list)
    assert [p.get_content_type() for p in parts] == types
    if inline == "full":
        inner = parts[2].get_payload()[0]
        assert inner["Subject"] == "hello"
        assert inner.get_payload().strip() == "body line"


def test_delay_dsn() -> None:
    msg = make(action="delayed")
    assert msg["Subject"].startswith("Delivery delayed")
    blocks = msg.get_payload()[1].get_payload()
    assert blocks[1]["Action"] == "delayed"


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (Reply.parse(550, "5.1.1 user unknown"), "5.1.1"),
        (Reply.parse(550, "5.7.1 policy\n5.7.1 second line"), "5.7.1"),
        (Reply.parse(451, "try later"), "4.0.0"),
        (Reply.parse(550, "no"), "5.0.0"),
        (Reply.parse(421, "4.7.0 too many connections"), "4.7.0"),
        (Reply.parse(None, "garbage", local=True), "5.0.0"),
    ],
)
def test_dsn_status(reply: Reply, status: str) -> None:
    assert str(dsn_status(reply)) == status


def test_original_envelope_id_and_original_recipient_and_relayed() -> None:
    raw = build_dsn(
        original=ORIGINAL,
        original_sender="sender@example.test",
        original_id="M1",
        received_at=1_700_000_000.0,
        failures=[
            DsnRecipient(
                "a@x.test",
                Reply.parse(250, "2.0.0 queued"),
                action="relayed",
                original_recipient="rfc822;A@x.test",
            )
        ],
        reporting_mta="relay.example.test",
        from_address="MAILER-DAEMON@relay.example.test",
        now=1_700_000_100.0,
        envelope_id="QQ+1",
    )
    msg = email.message_from_bytes(raw)
    assert "relayed" in msg["Subject"]
    parts = msg.get_payload()
    assert isinstance(parts, list)
    blocks = parts[1].get_payload()
    assert isinstance(blocks, list)
    assert blocks[0]["Original-Envelope-Id"] == "QQ+1"
    assert list(blocks[1].keys())[:2] == ["Original-Recipient", "Final-Recipient"]
    assert blocks[1]["Original-Recipient"] == "rfc822;A@x.test"
    assert blocks[1]["Action"] == "relayed" and blocks[1]["Status"] == "2.0.0"


def dsn_with(tenant: str | None, campaign: str | None) -> Message:
    raw = build_dsn(
        original=ORIGINAL,
        original_sender="sender@example.test",
        original_id="M1",
        received_at=1_700_000_000.0,
        failures=[DsnRecipient("a@x.test", Reply.parse(550, "5.1.1 no such user"))],
        reporting_mta="relay.example.test",
        from_address="MAILER-DAEMON@relay.example.test",
        now=1_700_000_100.0,
        tenant=tenant,
        campaign=campaign,
    )
    return email.message_from_bytes(raw)


def test_the_tenant_and_campaign_are_in_the_headers_and_the_per_message_fields() -> None:
    msg = dsn_with("acme", "spring\r\nBcc: x@y.test")  # a line break cannot add a field
    assert msg["X-Tenant"] == "acme"
    assert msg["X-Campaign"] == "spring Bcc: x@y.test"
    assert msg["Bcc"] is None
    parts = msg.get_payload()
    assert isinstance(parts, list)
    assert parts[1].get_content_type() == "message/delivery-status"
    blocks = parts[1].get_payload()
    assert isinstance(blocks, list)
    assert blocks[0]["X-Relay-Tenant"] == "acme"
    assert blocks[0]["Reporting-MTA"] == "dns; relay.example.test"  # still a valid block
    assert blocks[1]["Final-Recipient"] == "rfc822; a@x.test"


def test_a_utf8_tenant_is_an_encoded_word_and_makes_the_status_global() -> None:
    msg = dsn_with("café", None)
    raw = msg["X-Tenant"]
    assert raw.isascii() and str(make_header(decode_header(raw))) == "café"
    assert msg["X-Campaign"] is None
    parts = msg.get_payload()
    assert isinstance(parts, list)
    assert parts[1].get_content_type() == "message/global-delivery-status"
    plain = dsn_with(None, None)
    assert plain["X-Tenant"] is None and "X-Relay-Tenant" not in plain.as_string()
