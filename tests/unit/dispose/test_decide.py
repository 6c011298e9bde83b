"""Per-recipient decisions after an attempt."""

from __future__ import annotations

from relay.dispose.decide import RetryPolicy, decide, parse_max_retries
from relay.outcome import Outcome, RecipientResult, Reply

R = [(0, "a@x", 0), (1, "b@x", 0), (2, "c@x", 0)]


def results(*outcomes: Outcome) -> list[RecipientResult]:
    return [
        RecipientResult(addr, o, Reply.parse(code, "reply"))
        for (_, addr, _), o, code in zip(
            R, outcomes, [250 if o is Outcome.DELIVERED else 450 for o in outcomes], strict=False
        )
    ]


def test_mixed_outcomes_split_per_recipient() -> None:
    d = decide(
        R,
        results(Outcome.DELIVERED, Outcome.PERMANENT, Outcome.TEMPORARY),
        received_at=0,
        now=10,
        policy=RetryPolicy(retry_interval=100),
    )
    assert [x.address for x in d.delivered] == ["a@x"]
    assert [(x.address, x.attempts) for x in d.failed] == [("b@x", 1)]
    assert [(x.address, x.attempts, x.next_attempt) for x in d.deferred] == [("c@x", 1, 110)]


def test_backoff_uses_attempt_count() -> None:
    d = decide(
        [(0, "a@x", 2)],
        [RecipientResult("a@x", Outcome.TEMPORARY, Reply.parse(451, "later"))],
        received_at=0,
        now=1000,
        policy=RetryPolicy(retry_interval=100, max_retry_interval=10000),
    )
    assert d.deferred[0].attempts == 3
    assert d.deferred[0].next_attempt == 1000 + 400


def test_last_retry_is_at_expiry_then_expired() -> None:
    policy = RetryPolicy(retry_interval=100, message_expiration=150)
    first = decide(
        [(0, "a@x", 0)],
        [RecipientResult("a@x", Outcome.TEMPORARY, Reply.parse(451, ""))],
        0,
        100,
        policy,
    )
    assert first.deferred[0].next_attempt == 150
    second = decide(
        [(0, "a@x", 1)],
        [RecipientResult("a@x", Outcome.TEMPORARY, Reply.parse(451, ""))],
        0,
        150,
        policy,
    )
    assert second.failed[0].expired and second.failed[0].reply == Reply.parse(451, "")


def test_never_retry_and_max_retries() -> None:
    temp = [RecipientResult("a@x", Outcome.TEMPORARY, Reply.parse(451, ""))]
    assert decide([(0, "a@x", 0)], temp, 0, 1, RetryPolicy(never_retry=True)).failed
    policy = RetryPolicy(max_retries=2)
    # max_retries = 2: the first attempt and two retries, then failed.
    assert decide([(0, "a@x", 0)], temp, 0, 1, policy).deferred
    assert decide([(0, "a@x", 1)], temp, 0, 1, policy).deferred
    assert decide([(0, "a@x", 2)], temp, 0, 1, policy).failed
    assert parse_max_retries("auto") is None
    assert parse_max_retries("none") is None
    assert parse_max_retries("5") == 5


def test_not_attempted_is_requeued_without_penalty() -> None:
    d = decide(
        R[:2],
        [RecipientResult("a@x", Outcome.DELIVERED, Reply.parse(250, ""))],
        0,
        1,
        RetryPolicy(),
    )
    assert d.requeue == [(1, "b@x", 0)]


def test_delay_notices_first_after_interval_then_doubling() -> None:
    from relay.dispose.decide import delay_notice_due

    # interval 100, max 300: notices due at 100, 300 (100+200), 600 (300+300), 900, ...
    assert not delay_notice_due(0, 99, 0, 100, 300)
    assert delay_notice_due(0, 100, 0, 100, 300)
    assert not delay_notice_due(0, 299, 1, 100, 300)
    assert delay_notice_due(0, 300, 1, 100, 300)
    assert not delay_notice_due(0, 599, 2, 100, 300)
    assert delay_notice_due(0, 600, 2, 100, 300)
    assert delay_notice_due(0, 900, 3, 100, 300)
