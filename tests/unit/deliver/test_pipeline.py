from __future__ import annotations

import re

import pytest

from relay.deliver.pipeline import (
    Unsendable,
    data_content,
    ehlo_extensions,
    envelope_block,
    hello_line,
    mail_line,
    rcpt_line,
)


def test_command_lines() -> None:
    assert mail_line("a@x.test", ("SIZE=10", "BODY=8BITMIME"), False) == (
        b"MAIL FROM:<a@x.test> SIZE=10 BODY=8BITMIME\r\n"
    )
    assert mail_line("", (), False) == b"MAIL FROM:<>\r\n"
    assert rcpt_line("r@y.test", False) == b"RCPT TO:<r@y.test>\r\n"
    assert rcpt_line("ü@y.test", True) == "RCPT TO:<ü@y.test>\r\n".encode()


@pytest.mark.parametrize("address", ["a\r\nRCPT TO:<b>@x", "a\x00@x", "a\n@x", "a\x7f@x"])
def test_control_characters_are_unsendable(address: str) -> None:
    with pytest.raises(Unsendable):
        rcpt_line(address, False)
    with pytest.raises(Unsendable):
        mail_line(address, (), False)


def test_envelope_block_is_mail_rcpts_data_in_order() -> None:
    mail = mail_line("a@x.test", (), False)
    rcpts = [rcpt_line("r1@y.test", False), rcpt_line("r2@y.test", False)]
    assert envelope_block(mail, rcpts) == (
        b"MAIL FROM:<a@x.test>\r\nRCPT TO:<r1@y.test>\r\nRCPT TO:<r2@y.test>\r\nDATA\r\n"
    )
    assert envelope_block(mail, []) == mail  # no recipient to send: no DATA either


def test_dot_stuffing() -> None:
    content = b".first\r\nplain\r\n.\r\n..two\r\nend."
    assert data_content(content) == b"..first\r\nplain\r\n..\r\n...two\r\nend.\r\n.\r\n"
    assert data_content(b"a\r\n") == b"a\r\n.\r\n"
    assert data_content(b"") == b"\r\n.\r\n"


def _reference(content: bytes) -> bytes:
    """What aiosmtplib sends for DATA: the behaviour data_content keeps."""
    content = re.sub(rb"(?:\r\n|\n|\r(?!\n))", b"\r\n", content)
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", content) + b".\r\n"


@pytest.mark.parametrize(
    "content",
    [b"a\nb\n", b"a\rb", b"a\r\r\nb", b".a\n.b\r.c\r\n.d", b"\r\n\r\n.", b"x" * 100, b"\n.\n"],
)
def test_bare_line_endings_are_normalised_as_aiosmtplib_did(content: bytes) -> None:
    assert data_content(content) == _reference(content)


def test_ehlo_extensions_skip_the_greeting_line_and_keep_parameters() -> None:
    text = "mx.example.test hello\nPIPELINING\nSIZE 10240000\n8BITMIME\nAUTH=LOGIN\nSTARTTLS"
    assert ehlo_extensions(text) == {
        "pipelining": "",
        "size": "10240000",
        "8bitmime": "",
        "auth": "=LOGIN",
        "starttls": "",
    }
    assert ehlo_extensions("mx.example.test") == {}


def test_hello_line_refuses_control_characters() -> None:
    assert hello_line(b"EHLO", "relay.test") == b"EHLO relay.test\r\n"
    with pytest.raises(Unsendable):
        hello_line(b"HELO", "relay.test\r\nRCPT TO:<x@y>")


def test_rcpt_parameters_and_the_servers_size() -> None:
    from relay.deliver.pipeline import Unsendable, rcpt_line, size_limit

    assert rcpt_line("a@x.test", False, ["NOTIFY=NEVER", "ORCPT=rfc822;a+40x.test"]) == (
        b"RCPT TO:<a@x.test> NOTIFY=NEVER ORCPT=rfc822;a+40x.test\r\n"
    )
    with pytest.raises(Unsendable):
        rcpt_line("a@x.test", False, ["NOTIFY=NEVER\r\nRSET"])
    assert size_limit({"size": "1000"}) == 1000
    assert size_limit({"size": "0"}) is None and size_limit({"size": ""}) is None
    assert size_limit({}) is None and size_limit({"size": "big"}) is None
