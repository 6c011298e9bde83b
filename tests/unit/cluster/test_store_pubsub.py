"""The holds channel against a real redis-server: a subscription is confirmed before
`subscribe` returns, and a dropped pub/sub connection is reported, never hidden."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from relay.cluster.settings import ClusterSettings
from relay.cluster.store import RedisUnavailable, Store
from tests.support.redis_server import RedisServer


def settings(url: str) -> ClusterSettings:
    return ClusterSettings(url, "n1", "t:", None, 1.0, 2.0, 0.3)


async def test_subscribe_returns_once_redis_counts_the_subscriber(
    redis_server: RedisServer,
) -> None:
    """A node reads the records right after subscribing; a record shared in between reaches
    it only if Redis processed SUBSCRIBE first, so `subscribe` waits for the confirmation."""
    store = Store(settings(redis_server.url))
    other = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        pubsub = await store.subscribe()
        assert await other.pubsub_numsub("t:holds") == [("t:holds", 1)]
        assert await other.publish("t:holds", "a hold") == 1
        assert await store.next_message(pubsub, 1.0) == "a hold"  # the confirmation consumed
        await pubsub.aclose()
    finally:
        await other.aclose()
        await store.close()


async def test_a_dropped_subscription_is_reported(redis_server: RedisServer) -> None:
    """Messages pushed while the connection was gone are lost to it: the listener must hear of
    the drop to read the records again (ClusterHolds._listen)."""
    store = Store(settings(redis_server.url))
    other = aioredis.Redis.from_url(redis_server.url)
    try:
        pubsub = await store.subscribe()
        assert await other.client_kill_filter(_type="pubsub") == 1
        with pytest.raises(RedisUnavailable):
            for _ in range(8):  # the first read may still find the socket open
                await store.next_message(pubsub, 0.1)
        await pubsub.aclose()
    finally:
        await other.aclose()
        await store.close()


async def test_subscribe_to_a_redis_that_is_gone(redis_server: RedisServer) -> None:
    store = Store(settings(redis_server.url))
    redis_server.kill()
    with pytest.raises(RedisUnavailable):
        await store.subscribe()
    assert not store.up
    await store.close()
