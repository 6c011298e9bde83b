"""What happens to each recipient after an attempt: pure decisions over results and a clock.

2xx: done. 5xx: failed (a bounce follows). 4xx and connection trouble: deferred with
exponential backoff, unless the message expired (`message_expiration` from reception),
ran out of retries (`max_retries`) or must not be retried (`never_retry`): then failed with
the last reply. Recipients a connection cap stopped are requeued with no penalty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.dispose.retry import next_attempt
from relay.outcome import EnhancedStatus, Outcome, RecipientResult, Reply

EXPIRED = EnhancedStatus(5, 4, 7)  # the DSN status of a recipient that ran out of time


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retry_interval: float = 1200.0
    max_retry_interval: float = 43200.0
    fuzz: float = 0.0
    message_expiration: float = 86400.0
    max_retries: int | None = None  # None: limited by message_expiration only
    never_retry: bool = False


@dataclass(frozen=True, slots=True)
class Delivered:
    index: int
    address: str
    reply: Reply


@dataclass(frozen=True, slots=True)
class Failed:
    index: int
    address: str
    reply: Reply
    attempts: int
    expired: bool = False


# One DSN to make: its action ("failed", "delayed" or "relayed") and the recipients it reports.
Notice = tuple[str, list[Failed]]


@dataclass(frozen=True, slots=True)
class Deferred:
    index: int
    address: str
    attempts: int
    next_attempt: float
    reply: Reply


@dataclass(slots=True)
class Decision:
    delivered: list[Delivered] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)
    requeue: list[tuple[int, str, int]] = field(default_factory=list)


def parse_max_retries(value: object) -> int | None:
    """max_retries: "auto" / "none" -> None (expiry decides), or a number of retries."""
    if isinstance(value, int):
        return value
    text = str(value).strip().lower()
    if text in ("auto", "none", ""):
        return None
    return int(text)


def expired(received_at: float, now: float, policy: RetryPolicy) -> bool:
    return now >= received_at + policy.message_expiration


def decide(
    recipients: list[tuple[int, str, int]],
    results: list[RecipientResult],
    received_at: float,
    now: float,
    policy: RetryPolicy,
) -> Decision:
    """`recipients`: (index, address, attempts so far); `results` in any order."""
    by_address = {r.recipient: r for r in results}
    decision = Decision()
    for index, address, attempts in recipients:
        result = by_address.get(address)
        if result is None or result.outcome is Outcome.NOT_ATTEMPTED:
            decision.requeue.append((index, address, attempts))
            continue
        if result.outcome is Outcome.DELIVERED:
            decision.delivered.append(Delivered(index, address, result.reply))
            continue
        tries = attempts + 1
        if result.outcome is Outcome.PERMANENT:
            decision.failed.append(Failed(index, address, result.reply, tries))
            continue
        decision_for_temporary(
            decision, index, address, tries, result.reply, received_at, now, policy
        )
    return decision


def decision_for_temporary(
    decision: Decision,
    index: int,
    address: str,
    tries: int,
    reply: Reply,
    received_at: float,
    now: float,
    policy: RetryPolicy,
) -> None:
    if policy.never_retry:
        decision.failed.append(Failed(index, address, reply, tries))
        return
    if policy.max_retries is not None and tries > policy.max_retries:
        decision.failed.append(Failed(index, address, reply, tries, expired=True))
        return
    expiry = received_at + policy.message_expiration
    if now >= expiry:
        decision.failed.append(Failed(index, address, reply, tries, expired=True))
        return
    # The last try happens at the expiry time itself, not never.
    when = min(
        expiry,
        next_attempt(now, tries, policy.retry_interval, policy.max_retry_interval, policy.fuzz),
    )
    decision.deferred.append(Deferred(index, address, tries, when, reply))


def delay_notice_due(
    received_at: float, now: float, sent: int, interval: float, max_interval: float
) -> bool:
    """Is the next delay DSN due? The first goes `interval` after reception, each later one
    after twice the previous gap, capped at `max_interval`: never two in one interval."""
    if interval <= 0:
        return False
    threshold = 0.0
    gap = interval
    for _ in range(sent + 1):
        threshold += gap
        gap = min(gap * 2, max(interval, max_interval))
    return now - received_at >= threshold
