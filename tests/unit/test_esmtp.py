"""relay/esmtp.py: xtext (RFC 3461 4), NOTIFY values, and what a message's parameters say."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.esmtp import Esmtp, XtextError, notify_value, orcpt_valid, xtext_decode, xtext_encode


@pytest.mark.parametrize(
    ("xtext", "text"),
    [
        ("", ""),
        ("plain", "plain"),
        ("a+2Bb", "a+b"),
        ("a+3Db", "a=b"),
        ("+20+7E", " ~"),
        ("user+40example.com", "user@example.com"),
    ],
)
def test_xtext_decodes(xtext: str, text: str) -> None:
    assert xtext_decode(xtext) == text


@pytest.mark.parametrize("bad", ["a+", "a+2", "a+2b", "a+GG", "a=b", "a b", "a\x7fb", "é"])
def test_bad_xtext_is_refused(bad: str) -> None:
    with pytest.raises(XtextError):
        xtext_decode(bad)


@given(st.text(st.characters(min_codepoint=0, max_codepoint=127)))
def test_xtext_round_trips(text: str) -> None:
    assert xtext_decode(xtext_encode(text)) == text


def test_notify_values_are_made_canonical() -> None:
    assert notify_value("never") == "NEVER"
    assert notify_value("delay,Success") == "SUCCESS,DELAY"
    assert notify_value("FAILURE,DELAY,SUCCESS") == "SUCCESS,FAILURE,DELAY"
    for bad in ("", "NEVER,FAILURE", "SUCCESS,,FAILURE", "FAILURE,FAILURE", "ALWAYS"):
        assert notify_value(bad) is None
    assert orcpt_valid("rfc822;a+40b") and not orcpt_valid("rfc822") and not orcpt_valid(";a")


def test_what_the_parameters_ask_for() -> None:
    esmtp = Esmtp(
        ret="HDRS",
        envid="E+2B1",
        notify=("NEVER", "SUCCESS,FAILURE", None),
        orcpt=(None, "rfc822;b+40x.test"),
    )
    assert [esmtp.wants(i, "FAILURE", True) for i in range(4)] == [False, True, True, True]
    assert [esmtp.wants(i, "SUCCESS", False) for i in range(3)] == [False, True, False]
    assert [esmtp.wants(i, "DELAY", True) for i in range(3)] == [False, False, True]
    assert esmtp.envid_text == "E+1" and esmtp.original_recipient(1) == "rfc822;b@x.test"
    assert esmtp.original_recipient(0) is None and esmtp.original_recipient(5) is None
    assert esmtp.mail_options(dsn=True) == ["RET=HDRS", "ENVID=E+2B1"]
    assert esmtp.mail_options(dsn=False) == []
    assert esmtp.rcpt_options(1) == ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b+40x.test"]
    assert esmtp.rcpt_options(2) == []
