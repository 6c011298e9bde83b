"""The pure parts of the delivery methods: XCLIENT lines, LMTP reply pairing, what an HTTP
status means, the HTTP request's header fields, and which method and port settings mean."""

from __future__ import annotations

import pytest

from relay.deliver import DeliverySettings
from relay.deliver.http_post import Unsendable, http_reply, request_headers
from relay.deliver.lmtp import data_replies
from relay.deliver.xclient import xclient_line, xtext
from relay.outcome import Outcome, Reply


def test_xtext_escapes_plus_equals_and_everything_outside_printable_ascii() -> None:
    assert xtext("mail.example") == "mail.example"
    assert xtext("a+b=c d") == "a+2Bb+3Dc+20d"
    assert xtext("h\u00e9") == "h+C3+A9"


@pytest.mark.parametrize(
    ("offered", "client", "line"),
    [
        (
            "NAME ADDR HELO",
            ("192.0.2.1", "c.example"),
            "NAME=[UNAVAILABLE] ADDR=192.0.2.1 HELO=c.example",
        ),
        ("helo proto addr", ("192.0.2.1", "c.example"), "ADDR=192.0.2.1 HELO=c.example"),
        ("ADDR", ("2001:db8::5", "x"), "ADDR=IPV6:2001:db8::5"),
        (
            "NAME ADDR HELO",
            ("192.0.2.1", None),
            "NAME=[UNAVAILABLE] ADDR=192.0.2.1 HELO=[UNAVAILABLE]",
        ),
        ("NAME ADDR HELO", None, "NAME=[UNAVAILABLE] ADDR=[UNAVAILABLE] HELO=[UNAVAILABLE]"),
        ("", ("192.0.2.1", "c"), "NAME=[UNAVAILABLE] ADDR=192.0.2.1 HELO=c"),  # no list: all
        (
            "ADDR HELO",
            ("192.0.2.1", "evil\r\nRCPT TO:<x>"),
            "ADDR=192.0.2.1 HELO=evil+0D+0ARCPT+20TO:<x>",
        ),
    ],
)
def test_xclient_line(offered: str, client: tuple[str, str | None] | None, line: str) -> None:
    assert xclient_line(offered, client) == f"XCLIENT {line}\r\n".encode()


def test_xclient_line_none_without_a_common_attribute_and_long_helo_unavailable() -> None:
    assert xclient_line("PROTO LOGIN", ("192.0.2.1", "c")) is None
    line = xclient_line("ADDR HELO", ("192.0.2.1", "\u00e9" * 200))
    assert line == b"XCLIENT ADDR=192.0.2.1 HELO=[UNAVAILABLE]\r\n"


def test_lmtp_replies_pair_in_rcpt_order_and_the_unanswered_get_the_failure() -> None:
    ok, full = Reply.parse(250, "2.1.5 ok"), Reply.parse(452, "4.2.2 full")
    lost = Reply.make(451, "4.4.2", "timeout")
    assert data_replies([0, 2, 3], [ok, full, ok], lost) == [(0, ok), (2, full), (3, ok)]
    assert data_replies([0, 2, 3], [ok], lost) == [(0, ok), (2, lost), (3, lost)]
    assert data_replies([1], [ok, full], lost) == [(1, ok)]  # a server out of step


@pytest.mark.parametrize(
    ("status", "outcome", "code"),
    [
        (200, Outcome.DELIVERED, 250),
        (202, Outcome.DELIVERED, 250),
        (204, Outcome.DELIVERED, 250),
        (408, Outcome.TEMPORARY, 451),
        (429, Outcome.TEMPORARY, 451),
        (500, Outcome.TEMPORARY, 451),
        (503, Outcome.TEMPORARY, 451),
        (400, Outcome.PERMANENT, 554),
        (401, Outcome.PERMANENT, 554),
        (404, Outcome.PERMANENT, 554),
        (413, Outcome.PERMANENT, 552),
        (422, Outcome.PERMANENT, 554),
        (301, Outcome.TEMPORARY, 451),
        (100, Outcome.TEMPORARY, 451),
    ],
)
def test_http_status_outcomes(status: int, outcome: Outcome, code: int) -> None:
    reply = http_reply(status, "Reason", "line one\n  line two")
    assert reply.outcome is outcome and reply.code == code
    assert not reply.local  # the endpoint's verdict, not relay's
    assert f"HTTP {status} Reason: line one line two" in str(reply)


def test_http_reply_enhanced_codes_and_body_cut() -> None:
    assert str(http_reply(403, "Forbidden").enhanced) == "5.7.1"
    assert str(http_reply(429, "Too Many Requests").enhanced) == "4.7.0"
    assert len(http_reply(500, "x", "y" * 5000).text) < 300


def test_request_headers() -> None:
    fields = request_headers("", ["a@x.test", "b@x.test"], "q1", "u:p")
    assert fields == [
        ("Content-Type", "message/rfc822"),
        ("X-Relay-Mail-From", "<>"),
        ("X-Relay-Rcpt-To", "<a@x.test>"),
        ("X-Relay-Rcpt-To", "<b@x.test>"),
        ("X-Relay-Queue-Id", "q1"),
        ("Authorization", "Basic dTpw"),
    ]
    with pytest.raises(Unsendable):
        request_headers("s@x.test", ["a@x.test\r\nX-Evil: 1"], "q1", None)


def test_method_and_port() -> None:
    assert DeliverySettings().method == "ESMTP"
    assert DeliverySettings(delivery_method=("SMTP",)).method == "SMTP"
    assert DeliverySettings(delivery_method=("ESMTP", "SMTP")).method == "ESMTP"
    lmtp = DeliverySettings(delivery_method=("LMTP",), lmtp_port=24, remote_smtp_port=2525)
    assert (lmtp.method, lmtp.port) == ("LMTP", 24)
    assert DeliverySettings(remote_smtp_port=2525).port == 2525
    assert DeliverySettings(delivery_method=("HTTP",)).method == "HTTP"
    assert DeliverySettings().xclient == "no" and DeliverySettings().lmtp_port == 2003
