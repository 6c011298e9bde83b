"""GCRA with batches: the pure reference against a ManualClock, and the Lua script (run by a
real redis-server) against the reference on the same times."""

from __future__ import annotations

import redis.asyncio as aioredis

from relay.clock import ManualClock
from relay.cluster import gcra, scripts
from relay.cluster.settings import ClusterSettings
from relay.cluster.store import Store
from tests.support.redis_server import RedisServer

EMISSION = 0.1  # 10 per second
TOLERANCE = 1.0 - EMISSION  # burst 10


async def test_a_burst_then_the_rate() -> None:
    clock = ManualClock()
    tat = 0.0
    got = gcra.take(tat, clock.now(), EMISSION, TOLERANCE, 25)
    assert got.granted == 10  # the burst
    tat = got.tat
    empty = gcra.take(tat, clock.now(), EMISSION, TOLERANCE, 1)
    assert empty.granted == 0
    assert abs(empty.wait - EMISSION) < 1e-6  # float rounding at Unix times
    await clock.advance(0.35)  # sub-second: 3 more emission intervals passed
    got = gcra.take(tat, clock.now(), EMISSION, TOLERANCE, 10)
    assert got.granted == 3
    assert gcra.take(got.tat, clock.now(), EMISSION, TOLERANCE, 1).wait > 0


async def test_over_a_long_run_the_rate_holds() -> None:
    clock = ManualClock()
    tat, total = 0.0, 0
    for _ in range(1000):  # ask for 5 every 13 ms for 13 s
        got = gcra.take(tat, clock.now(), EMISSION, TOLERANCE, 5)
        tat, total = got.tat, total + got.granted
        await clock.advance(0.013)
    assert 10 + 129 <= total <= 10 + 131  # burst + 13 s x 10/s


def settings(url: str) -> ClusterSettings:
    return ClusterSettings(url, "n1", "t:", None, 1.0, 2.0, 0.2)


async def test_the_lua_script_mirrors_the_reference(redis_server: RedisServer) -> None:
    store = Store(settings(redis_server.url))
    await mark_kept(redis_server)  # a Redis that kept its data: a missing bucket is full
    start = 1_800_000_000.0
    times = [start + step * 0.037 for step in range(200)]
    tat = 0.0
    for index, now in enumerate(times):
        want = 1 + index % 4
        expected = gcra.take(tat, now, EMISSION, TOLERANCE, want)
        granted, wait = await store.gcra("t:bucket", EMISSION, TOLERANCE, want, now=now)
        assert granted == expected.granted, (index, now)
        assert abs(wait - expected.wait) < 1e-5
        tat = expected.tat
    await store.close()


async def mark_kept(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    await client.set("t:kept", "1")
    await client.aclose()


async def test_the_script_uses_redis_time_by_default(redis_server: RedisServer) -> None:
    store = Store(settings(redis_server.url))
    await mark_kept(redis_server)
    granted, _ = await store.gcra("t:b2", EMISSION, TOLERANCE, 50)
    assert granted == 10
    granted, wait = await store.gcra("t:b2", EMISSION, TOLERANCE, 1)
    assert granted == 0 and 0 < wait <= EMISSION
    client = aioredis.Redis.from_url(redis_server.url)
    assert 0 < await client.pttl("t:b2") <= 2100  # the bucket key expires when idle
    await client.aclose()
    await store.close()
    assert scripts.GCRA_TAKE.count("TIME") == 1


async def test_a_redis_that_lost_its_data_starts_the_bucket_as_just_spent(
    redis_server: RedisServer,
) -> None:
    """No marker (a fresh or restarted Redis without persistence): one event now, then the
    rate, never a fresh burst of 10. Once the marker is there, a bucket that lapsed while idle
    is full again (a whole burst)."""
    store = Store(settings(redis_server.url))
    now = 1_800_000_000.0
    granted, wait = await store.gcra("t:b3", EMISSION, TOLERANCE, 50, now=now)
    assert granted == 1
    granted, wait = await store.gcra("t:b3", EMISSION, TOLERANCE, 50, now=now)
    assert granted == 0 and abs(wait - EMISSION) < 1e-5
    granted, _ = await store.gcra("t:b3", EMISSION, TOLERANCE, 50, now=now + 0.5)
    assert granted == 5  # the rate: 10/s
    client = aioredis.Redis.from_url(redis_server.url)
    assert await client.get("t:kept") == b"1" and await client.pttl("t:kept") == -1
    await client.delete("t:b3")  # as if it lapsed while idle
    await client.aclose()
    granted, _ = await store.gcra("t:b3", EMISSION, TOLERANCE, 50, now=now + 10)
    assert granted == 10  # the marker says Redis kept its data: a whole burst
    await store.close()
