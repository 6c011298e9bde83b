"""The admin's memory of each message's last attempt: the newest LAST_ATTEMPTS messages, in
constant time per attempt also once it is full (found by tests/reliability/test_under_load)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from relay.clock import ManualClock
from relay.schedule import outcomes
from relay.schedule.outcomes import OutcomeRecorder


def attempt(recorder: OutcomeRecorder, message_id: str) -> None:
    job: Any = SimpleNamespace(message_id=message_id, group="g")
    policy: Any = SimpleNamespace(binding="b1")
    recorder._attempted(job, policy)


def recorder() -> OutcomeRecorder:
    spool: Any = None
    return OutcomeRecorder(spool, ManualClock(100.0), lambda kind, fields: None)


def test_the_newest_attempts_are_kept_and_a_retry_counts_as_new(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outcomes, "LAST_ATTEMPTS", 3)
    r = recorder()
    for message_id in ["m1", "m2", "m3", "m1", "m4"]:
        attempt(r, message_id)
    assert list(r.last_attempts) == ["m3", "m1", "m4"]
    assert r.last_attempts["m4"] == ("g", "b1", 100.0)


def test_a_full_memory_costs_no_more_per_attempt() -> None:
    """A dict used as a FIFO (del d[next(iter(d))]) took 0.7 ms per attempt once full: the
    oldest entry is found by skipping those deleted before it. 200,000 attempts past the
    bound take about a second now, minutes that way."""
    r = recorder()
    for i in range(outcomes.LAST_ATTEMPTS):
        attempt(r, f"old-{i}")
    start = time.perf_counter()
    for i in range(200_000):
        attempt(r, f"new-{i}")
    assert time.perf_counter() - start < 20.0
    assert len(r.last_attempts) == outcomes.LAST_ATTEMPTS
    assert next(iter(r.last_attempts)) == "new-100000"
