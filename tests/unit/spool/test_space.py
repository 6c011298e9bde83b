"""The spool's allowance between two statvfs calls (relay/spool/space.py), decided directly."""

from __future__ import annotations

from relay.spool.space import SPACE_TRUSTED, SpaceAllowance


def test_nothing_is_allowed_before_the_filesystem_was_asked() -> None:
    assert not SpaceAllowance().take(1, 0.0)


def test_an_answer_allows_half_of_what_it_left_above_the_kept_space() -> None:
    space = SpaceAllowance()
    space.grant(above_kept=10_000, size=2_000, now=100.0)
    assert space.left == 4_000
    assert space.take(3_000, 100.01)
    assert not space.take(1_001, 100.02)  # 1,000 left: ask again
    assert space.take(1_000, 100.02)
    assert not space.take(1, 100.02)


def test_an_answer_stands_for_SPACE_TRUSTED_seconds_only() -> None:
    space = SpaceAllowance()
    space.grant(above_kept=1 << 30, size=0, now=100.0)
    assert space.take(1, 100.0 + SPACE_TRUSTED * 0.9)
    assert not space.take(1, 100.0 + SPACE_TRUSTED)


def test_close_to_the_kept_space_every_message_asks() -> None:
    space = SpaceAllowance()
    space.grant(above_kept=2_048, size=2_048, now=100.0)
    assert not space.take(1, 100.0)


def test_a_revoked_allowance_asks_again_at_once() -> None:
    space = SpaceAllowance()
    space.grant(above_kept=1 << 30, size=0, now=100.0)
    space.revoke()
    assert not space.take(1, 100.0)
