"""Injection without an SMTP conversation: the same checks as a session (pure parts)."""

from __future__ import annotations

import pytest

from relay.inject import replies
from relay.inject.settings import InjectSettings
from relay.inject.submission import Refused, envelope, normalized

SETTINGS = InjectSettings(listeners=(), hostname="relay.test", max_recipients=2)


def test_envelope_checks_like_smtp() -> None:
    assert envelope("<>", ["a@x.test", "<b@x.test>"], SETTINGS) == ("", ("a@x.test", "b@x.test"))
    for sender, recipients, field, reply in (
        ("s@x.test", [], "to", replies.NEED_RCPT),
        ("s@x.test", ["a@x.test", "b@x.test", "c@x.test"], "to", replies.TOO_MANY_RECIPIENTS),
        ("s@x.test", ["<>"], "to[0]", replies.NULL_RECIPIENT),
        ("s@x.test", ["a@x.test> SIZE=1"], "to[0]", None),
        ("nobody", ["a@x.test"], "from", None),
    ):
        with pytest.raises(Refused) as caught:
            envelope(sender, recipients, SETTINGS)
        assert caught.value.field == field
        if reply is not None:
            assert caught.value.reply == reply


def test_content_gets_crlf_and_keeps_dots() -> None:
    assert normalized(b"A: b\n\n.x\r\n..y\rz", SETTINGS) == b"A: b\r\n\r\n.x\r\n..y\r\nz\r\n"


@pytest.mark.parametrize(
    ("raw", "reply"),
    [
        (b"a\x00b", replies.NUL_IN_DATA),
        (b"x" * 999, replies.LINE_TOO_LONG),
    ],
)
def test_content_rules(raw: bytes, reply: str) -> None:
    with pytest.raises(Refused) as caught:
        normalized(raw, SETTINGS)
    assert (caught.value.field, caught.value.reply) == ("content", reply)


def test_size_limit() -> None:
    small = InjectSettings(listeners=(), hostname="relay.test", max_message_size=10)
    with pytest.raises(Refused) as caught:
        normalized(b"0123456789\n", small)
    assert caught.value.reply == replies.MESSAGE_TOO_BIG
