"""The one module that talks to Redis: every command under a timeout, Redis' errors
translated at the boundary, and whether Redis answers now (`up`), logged once per change.

A failed or slow command marks Redis down; the limits fall back to each node's share until
the next heartbeat gets an answer (membership.py calls `ping`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from relay.cluster import scripts
from relay.cluster.settings import ClusterSettings

log = logging.getLogger("relay.cluster")
T = TypeVar("T")


class RedisUnavailable(Exception):
    """Redis did not answer in time, or refused: the node uses its local share."""


class Store:
    def __init__(self, settings: ClusterSettings, password: str | None = None) -> None:
        self.settings = settings
        self.prefix = settings.key_prefix
        self.timeout = settings.redis_timeout
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            settings.redis_url,
            password=password,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
            retry_on_timeout=False,
            decode_responses=True,
        )
        self._gcra = self._redis.register_script(scripts.GCRA_TAKE)
        self._acquire = self._redis.register_script(scripts.LEASE_ACQUIRE)
        self._renew = self._redis.register_script(scripts.LEASE_RENEW)
        self.up = True  # until a command fails
        self.fallbacks = 0  # times Redis went down (for /metrics)
        self.on_change: Callable[[bool], None] = lambda up: None

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def _call(self, what: str, command: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                result = await command()
        except (RedisError, OSError, TimeoutError) as err:
            self.mark_down(f"{what}: {type(err).__name__}: {err}")
            raise RedisUnavailable(str(err) or type(err).__name__) from err
        return result

    def mark_down(self, why: str) -> None:
        if self.up:
            self.up = False
            self.fallbacks += 1
            log.warning(
                "cluster: Redis at %s is unavailable (%s); each node uses its local share "
                "of the cluster limits until it answers",
                self.settings.redis_url,
                why,
            )
            self.on_change(False)

    def mark_up(self) -> None:
        if not self.up:
            self.up = True
            log.warning("cluster: Redis answers again; cluster limits are shared again")
            self.on_change(True)

    async def ping(self) -> None:
        await self._call("PING", self._redis.ping)
        self.mark_up()

    async def gcra(
        self, key: str, emission: float, tolerance: float, want: int, now: float | None = None
    ) -> tuple[int, float]:
        """(tokens granted, wait when none) from the shared bucket `key`."""
        args = [repr(emission), repr(tolerance), str(want), "" if now is None else repr(now)]
        keys = [key, self.key("kept")]
        reply: Any = await self._call("GCRA", lambda: self._gcra(keys=keys, args=args))
        return int(reply[0]), float(reply[1])

    async def acquire(
        self, keys: Sequence[str], limits: Sequence[int], lease: str, now: float | None = None
    ) -> bool:
        args = [lease, repr(self.settings.lease_period), "" if now is None else repr(now)]
        args += [str(limit) for limit in limits]
        reply: Any = await self._call("lease", lambda: self._acquire(keys=list(keys), args=args))
        return int(reply) == 1

    async def renew(self, keys: Sequence[str], leases: Sequence[str]) -> None:
        args = [repr(self.settings.lease_period), "", *leases]
        await self._call("renew", lambda: self._renew(keys=list(keys), args=args))

    async def release(self, keys: Sequence[str], lease: str) -> None:
        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zrem(key, lease)
                await pipe.execute()

        await self._call("release", run)

    async def heartbeat(self, node: str, fields: dict[str, str], ttl: float) -> None:
        async def run() -> None:
            key = self.key("node", node)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=dict[Any, Any](fields))
                pipe.pexpire(key, int(ttl * 1000))
                pipe.sadd(self.key("nodes"), node)
                await pipe.execute()

        await self._call("heartbeat", run)
        self.mark_up()

    async def nodes(self) -> list[dict[str, str]]:
        """Every node that heartbeat within its ttl (a node's hash expires with it)."""

        async def run() -> list[dict[str, str]]:
            names = sorted(str(name) for name in await self._redis.smembers(self.key("nodes")))
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(self.key("node", name))
                found: list[dict[str, str]] = await pipe.execute()
            gone = [name for name, fields in zip(names, found, strict=True) if not fields]
            if gone:
                await self._redis.srem(self.key("nodes"), *gone)
            return [
                {"node": name, **{str(k): str(v) for k, v in fields.items()}}
                for name, fields in zip(names, found, strict=True)
                if fields
            ]

        return await self._call("nodes", run)

    # --- adaptive_scope = global: state in keys that expire, changes pushed by pub/sub ------
    async def share(self, kind: str, field: str, message: str, ttl: float | None) -> None:
        """Record one piece of shared state (kind "hold": a suspension, "blackhole", "live":
        an adjusted option) for `ttl` seconds, or forget it (None), and push `message` to every
        node. The key expires with what it holds, so Redis never keeps an old hold or throttle."""

        async def run() -> None:
            key, index = self.key(kind, field), self.key(kind + "-index")
            async with self._redis.pipeline(transaction=True) as pipe:
                if ttl is None or ttl <= 0:
                    pipe.delete(key)
                    pipe.srem(index, field)
                else:
                    pipe.set(key, message, px=max(1, math.ceil(ttl * 1000)))
                    pipe.sadd(index, field)
                pipe.publish(self.key("holds"), message)
                await pipe.execute()

        await self._call("publish", run)

    async def shared(self, kind: str) -> list[str]:
        """Every piece of `kind` state still recorded (for a node that joins, or comes back,
        later); the index forgets keys that expired."""

        async def run() -> list[str]:
            index = self.key(kind + "-index")
            fields = sorted(str(name) for name in await self._redis.smembers(index))
            if not fields:
                return []
            found = await self._redis.mget([self.key(kind, name) for name in fields])
            gone = [name for name, value in zip(fields, found, strict=True) if value is None]
            if gone:
                await self._redis.srem(index, *gone)
            return [str(value) for value in found if value is not None]

        return await self._call("shared", run)

    async def sync_counts(
        self,
        writes: Sequence[tuple[str, Mapping[str, str], Sequence[str], float]],
        reads: Sequence[str],
    ) -> list[dict[str, str]]:
        """One round trip: each write (hash, fields to set, fields to delete, ttl), then every
        field of each hash in `reads`."""

        async def run() -> list[dict[str, str]]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, fields, gone, ttl in writes:
                    if fields:
                        pipe.hset(key, mapping=dict[Any, Any](fields))
                    if gone:
                        pipe.hdel(key, *gone)
                    pipe.pexpire(key, max(1, math.ceil(ttl * 1000)))
                for key in reads:
                    pipe.hgetall(key)
                replies: list[Any] = await pipe.execute()
            return (
                [{str(k): str(v) for k, v in reply.items()} for reply in replies[-len(reads) :]]
                if reads
                else []
            )

        return await self._call("counts", run)

    async def subscribe(self) -> Any:
        """A pub/sub connection listening to the holds channel, returned once Redis confirmed
        the subscription: SUBSCRIBE only sends the command, and a node that read the records
        (ClusterHolds._listen) before Redis processed it would miss a record shared between the
        two, on that connection and in the read both."""
        pubsub: Any = self._redis.pubsub()  # redis-py leaves PubSub.aclose untyped
        channel = self.key("holds")

        async def run() -> None:
            await pubsub.subscribe(channel)
            while True:
                reply = await pubsub.get_message(timeout=self.timeout)
                if reply is not None and reply.get("type") == "subscribe":
                    return

        try:
            await self._call("subscribe", run)
        except RedisUnavailable:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        return pubsub

    async def next_message(self, pubsub: Any, wait: float) -> str | None:
        """The next pushed message, or None after `wait` seconds."""
        try:
            message = await pubsub.get_message(timeout=wait)
        except (RedisError, OSError, TimeoutError) as err:
            raise RedisUnavailable(str(err) or type(err).__name__) from err
        if message is None or message.get("type") != "message":
            return None
        return str(message["data"])

    async def close(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self._redis.aclose()
        except (RedisError, OSError, TimeoutError):
            pass
