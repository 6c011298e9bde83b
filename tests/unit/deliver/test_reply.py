from __future__ import annotations

import pytest

from relay.deliver.transcode import transcode
from relay.outcome import EnhancedStatus, Outcome, Reply


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(250, Outcome.DELIVERED), (251, Outcome.DELIVERED), (421, Outcome.TEMPORARY),
     (451, Outcome.TEMPORARY), (550, Outcome.PERMANENT), (554, Outcome.PERMANENT),
     (None, Outcome.TEMPORARY), (999, Outcome.TEMPORARY)],
)  # fmt: skip
def test_classification(code: int | None, outcome: Outcome) -> None:
    assert Reply.parse(code, "text").outcome is outcome


def test_enhanced_status_is_parsed_from_the_text() -> None:
    reply = Reply.parse(550, "5.1.1 <x@y>: no such user\n5.1.1 second line")
    assert reply.enhanced == EnhancedStatus(5, 1, 1)
    assert str(reply) == "550 5.1.1 <x@y>: no such user / 5.1.1 second line"
    assert Reply.parse(550, "no such user").enhanced is None
    assert Reply.parse(550, "5.1.10 null MX").enhanced == EnhancedStatus(5, 1, 10)
    assert Reply.parse(550, "5.1.1x no").enhanced is None


def test_invalid_code_has_no_code() -> None:
    reply = Reply.parse(-1, "garbage")
    assert reply.code is None
    assert reply.outcome is Outcome.TEMPORARY
    assert str(reply) == "garbage"


def test_local_reply() -> None:
    reply = Reply.make(451, "4.4.2", "timeout")
    assert reply.local and reply.code == 451 and str(reply.enhanced) == "4.4.2"


def test_transcode_rewrites_matching_error_replies_with_groups() -> None:
    pattern, replace = "454 no such user ('.*')", "554 no such user $1"
    out = transcode(Reply.parse(454, "no such user 'bob'"), pattern, replace)
    assert out.code == 554
    assert out.text == "no such user 'bob'"
    assert out.outcome is Outcome.PERMANENT


def test_transcode_whole_match_and_enhanced_code() -> None:
    out = transcode(Reply.parse(550, "5.7.1 spam"), r"^550 (5\.7\.1) .*", "451 4.7.1 was: $0")
    assert out.code == 451
    assert out.enhanced == EnhancedStatus(4, 7, 1)
    assert out.text == "4.7.1 was: 550 5.7.1 spam"


def test_transcode_leaves_other_replies_alone() -> None:
    ok = Reply.parse(250, "2.0.0 no such user 'x'")
    assert transcode(ok, "no such user", "554 nope") is ok  # only 4xx/5xx
    other = Reply.parse(550, "mailbox full")
    assert transcode(other, "no such user", "554 nope") is other
    assert transcode(other, None, "554 nope") is other


def test_transcode_replacement_without_code_keeps_the_code() -> None:
    out = transcode(Reply.parse(550, "bad thing"), "bad", "rewritten")
    assert (out.code, out.text) == (550, "rewritten")
