"""Pure scheduling logic: throttles, retry math, connection caps, job splitting, clock."""

from __future__ import annotations

import asyncio
import random

from relay.clock import ManualClock
from relay.config.values import Throttle
from relay.dispose.retry import backoff, next_attempt
from relay.schedule.jobs import domain_of, jobs_for
from relay.schedule.limits import ConnectionCaps
from relay.schedule.throttle import Bucket, Buckets
from relay.spool.model import Envelope, Recipient, RecipientState


def test_bucket_allows_burst_then_paces() -> None:
    bucket = Bucket(Throttle(10, 1.0))
    assert all(bucket.take(100.0) == 0 for _ in range(10))
    wait = bucket.take(100.0)
    assert 0.09 < wait <= 0.1 + 1e-9
    assert bucket.take(100.0 + wait) == 0


def test_bucket_rate_over_time_matches_throttle() -> None:
    bucket = Bucket(Throttle(1, 60.0))
    now = 0.0
    sent = 0
    while now < 600:
        wait = bucket.take(now)
        if wait == 0:
            sent += 1
        else:
            now += wait
    assert sent == 10  # one per minute for ten minutes (the first at t=0)


def test_buckets_are_shared_by_key_and_reset_when_value_changes() -> None:
    buckets = Buckets()
    key = ("messages", ("binding_group", "g"))
    one = buckets.get(key, Throttle(10, 1.0))
    assert buckets.get(key, Throttle(10, 1.0)) is one
    assert buckets.get(key, Throttle(5, 1.0)) is not one


def test_backoff_doubles_up_to_max() -> None:
    assert [backoff(n, 10, 100) for n in range(1, 7)] == [10, 20, 40, 80, 100, 100]
    assert backoff(1000, 10, 100) == 100
    assert backoff(3, 1200, 1200) == 1200  # fixed-interval mode (max_retries page)


def test_next_attempt_fuzz_is_bounded() -> None:
    rng = random.Random(1)
    times = {next_attempt(0, 1, 100, 1000, fuzz=4096, rng=rng) for _ in range(50)}
    assert all(100 <= t <= 110 for t in times)
    assert len(times) > 1


def test_connection_caps_are_shared_by_key() -> None:
    caps = ConnectionCaps()
    a = [(("bd", "a", "x"), 2), (("scope", "g"), 3)]
    b = [(("bd", "b", "x"), 2), (("scope", "g"), 3)]
    caps.opened(a)
    caps.opened(a)
    assert not caps.can_open(a)  # per binding x domain
    caps.opened(b)
    assert not caps.can_open(b)  # the shared scope cap of 3 is used up
    caps.closed(a)
    assert caps.can_open(b) and caps.can_open(a)
    assert caps.can_open([(("unlimited",), -1)])


def test_jobs_split_by_domain_and_due_time() -> None:
    env = Envelope(
        "m1",
        "s@x.test",
        "g",
        None,
        0.0,
        [
            Recipient("a@One.test"),
            Recipient("b@one.test"),
            Recipient("c@two.test", attempts=2, next_attempt=50.0),
            Recipient("d@two.test", state=RecipientState.DELIVERED),
        ],
    )
    jobs = sorted(jobs_for(env), key=lambda j: j.domain)
    assert [(j.domain, [r[1] for r in j.recipients], j.due) for j in jobs] == [
        ("one.test", ["a@One.test", "b@one.test"], 0.0),
        ("two.test", ["c@two.test"], 50.0),
    ]
    assert jobs[1].recipients[0] == (2, "c@two.test", 2)
    assert domain_of("x@Example.COM.") == "example.com"
    assert domain_of("postmaster") == ""


async def test_manual_clock_wakes_sleepers_in_order() -> None:
    clock = ManualClock(start=0.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, delay: float) -> None:
        await clock.sleep(delay)
        woke.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper("late", 20)), asyncio.create_task(sleeper("early", 5))]
    await asyncio.sleep(0)
    await clock.advance(10)
    assert woke == [("early", 5.0)]
    await clock.advance(10)
    assert woke == [("early", 5.0), ("late", 20.0)]
    await asyncio.gather(*tasks)


def test_bucket_allowances_at_unix_times_are_exact_despite_rounding() -> None:
    """10/1 from t = 1.8e9, where each addition rounds by up to 2.4e-7 s. A worker takes
    an event, or sleeps the wait it is told and tries again (as the scheduler does on a
    driven clock). 10 at once, 15 by +0.5 s, 30 by +2.0 s: a "wait" that is only rounding
    must not push the last allowance past a clock advanced exactly to it."""
    from relay.config.values import Throttle
    from relay.schedule.throttle import Bucket

    start = 1_800_000_000.0
    bucket = Bucket(Throttle(10, 1.0))
    now, taken = start, 0

    def run_until(target: float) -> None:
        nonlocal now, taken
        for _ in range(10_000):
            wait = bucket.take(now)
            if wait == 0:
                taken += 1
                continue
            if now + wait > target:
                return
            now += wait
        raise AssertionError("no progress")

    run_until(start)
    assert taken == 10
    run_until(start + 0.5)
    assert taken == 15
    run_until(start + 2.0)
    assert taken == 30
