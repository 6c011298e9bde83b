"""`ClusterLimits`: the queue core's SharedLimits (relay/schedule/shared.py) over Redis.

Throttles: per shared bucket the node holds a few tokens (share.batch_size) taken from Redis
in one round trip (store.gcra); `take` spends one at once, and fetches the next batch in the
background when less than a batch is left (so a busy node rarely waits for one, even when
a round trip is slow), making one round trip per batch, not per message. When Redis says
the bucket is empty, its wait is kept and no more is asked until then. Unused tokens lapse
after TOKEN_LIFETIME, so none are hoarded into a later burst.

Leases: `acquire` uses a lease fetched earlier for the same caps, or starts fetching one and
says "not now"; each held lease is renewed every lease_period / 3 and removed from Redis when
its connection closes. A crashed node renews nothing: its leases lapse within lease_period.

Redis down (store.up False): throttles use a local bucket at this node's share of the rate,
caps this node's share of the limit (share.py), counting the connections open now. Nothing
waits on Redis: every answer is synchronous. Each stretch alone starts every local bucket as
just spent (one event, then the share's rate): its burst may have gone through Redis a moment
before, and a Redis that flaps (a stale connection failing right after a restart) let a
full local burst through each time, on top of the cluster rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from relay.cluster.share import batch_size, cap_share, throttle_share
from relay.cluster.store import RedisUnavailable, Store
from relay.schedule.limits import Cap
from relay.schedule.route_settings import ThrottleRef
from relay.schedule.throttle import Buckets

log = logging.getLogger("relay.cluster")

REFILL_WAIT = 0.005  # a connection waiting for a batch in flight asks again after this
TOKEN_LIFETIME = 1.0  # tokens unused this long lapse
LEASE_RETRY = 0.1  # a refused lease is asked for again after this
SPARE_LIFETIME = 1.0  # a lease fetched but not used this long goes back


@dataclass(slots=True)
class _Pool:
    want: int  # tokens per round trip (share.batch_size)
    tokens: int = 0
    lapse: float = 0.0  # the tokens held lapse then
    empty_until: float = 0.0  # Redis said the bucket is empty until then
    fetching: bool = False


def redis_name(key: Hashable) -> str:
    """A bucket or cap key as a name every node spells the same way."""
    return json.dumps(key, separators=(",", ":"))


class ClusterLimits:
    def __init__(self, store: Store, node: str, live_nodes: Callable[[], int]) -> None:
        self.store = store
        self.node = node
        self.live_nodes = live_nodes  # nodes seen lately (membership), this one included
        self._pools: dict[Hashable, _Pool] = {}
        self._fallback = Buckets()  # while Redis is down: this node's share
        self._stretch = -1  # the store's fallback count the local buckets were spent for
        self._spent: set[Hashable] = set()  # local buckets started as spent this stretch
        # Leases held, not in use yet: (lease, time.monotonic() when granted).
        self._spare: dict[tuple[Cap, ...], list[tuple[str, float]]] = {}
        self._held: dict[tuple[Cap, ...], list[str]] = {}  # leases of open connections
        self._asking: dict[tuple[Cap, ...], float] = {}  # a lease fetch runs, or refused until
        self._open = Counter[Hashable]()  # connections open per cap key (Redis or not)
        self._ids = itertools.count()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.round_trips = 0

    # --- throttles ----------------------------------------------------------------------
    def take(self, throttle: ThrottleRef, now: float) -> float:
        key, rate = throttle
        if not self.store.up:
            if self._stretch != self.store.fallbacks:  # a new stretch alone
                self._stretch, self._spent = self.store.fallbacks, set()
            bucket = self._fallback.get(("share", key), throttle_share(rate, self.live_nodes()))
            if key not in self._spent:
                self._spent.add(key)
                bucket.spend_burst(now)
            return bucket.take(now)
        pool = self._pools.get(key)
        if pool is None or pool.want != batch_size(rate):
            pool = self._pools[key] = _Pool(batch_size(rate))
        if pool.tokens and now >= pool.lapse:
            pool.tokens = 0
        if pool.tokens:
            pool.tokens -= 1
            if pool.tokens <= pool.want and not pool.fetching and now >= pool.empty_until:
                self._fetch(key, throttle, pool, now)  # the next batch, before it is needed
            return 0.0
        if now < pool.empty_until:
            return pool.empty_until - now
        if not pool.fetching:
            self._fetch(key, throttle, pool, now)
        return REFILL_WAIT

    def _fetch(self, key: Hashable, throttle: ThrottleRef, pool: _Pool, now: float) -> None:
        pool.fetching = True
        rate = throttle[1]
        emission = rate.period / rate.count
        name = self.store.key("gcra", redis_name(key))
        want = pool.want

        async def run() -> None:
            try:
                granted, wait = await self.store.gcra(name, emission, rate.period - emission, want)
            except RedisUnavailable:
                return
            finally:
                pool.fetching = False
            self.round_trips += 1
            if granted:
                pool.tokens += granted
                pool.lapse = now + TOKEN_LIFETIME
                # Less than a batch: the bucket is at its rate. Ask again when a whole batch
                # has accrued, not as soon as these are spent (one round trip per batch).
                pool.empty_until = now + (want - granted) * emission
            else:
                pool.empty_until = now + wait

        self._spawn(run())

    # --- connection leases --------------------------------------------------------------
    def acquire(self, caps: Sequence[Cap], now: float) -> bool:
        combo = tuple(caps)
        if not self.store.up:
            nodes = self.live_nodes()
            if any(0 <= cap_share(limit, nodes) <= self._open[key] for key, limit in combo):
                return False
            self._held.setdefault(combo, []).append(self._lease_id())
            self._opened(combo)
            return True
        spare = self._spare.get(combo)
        if spare:
            self._held.setdefault(combo, []).append(spare.pop()[0])
            self._opened(combo)
            return True
        if self._asking.get(combo, 0.0) <= now:
            self._asking[combo] = float("inf")
            self._ask_lease(combo, now)
        return False

    def _ask_lease(self, combo: tuple[Cap, ...], now: float) -> None:
        lease = self._lease_id()
        keys = [self.store.key("lease", redis_name(key)) for key, _ in combo]

        async def run() -> None:
            try:
                got = await self.store.acquire(keys, [limit for _, limit in combo], lease)
            except RedisUnavailable:
                self._asking.pop(combo, None)
                return
            self.round_trips += 1
            if got:
                self._spare.setdefault(combo, []).append((lease, time.monotonic()))
                self._asking.pop(combo, None)
            else:
                self._asking[combo] = now + LEASE_RETRY

        self._spawn(run())

    def release(self, caps: Sequence[Cap]) -> None:
        combo = tuple(caps)
        held = self._held.get(combo)
        if not held:
            return
        lease = held.pop()
        for key, _ in combo:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]
        if self.store.up:
            keys = [self.store.key("lease", redis_name(key)) for key, _ in combo]
            self._spawn(self._release(keys, lease))

    async def _release(self, keys: list[str], lease: str) -> None:
        with contextlib.suppress(RedisUnavailable):  # else it lapses within lease_period
            await self.store.release(keys, lease)

    async def renew(self) -> None:
        """Move on the expiry of every lease in use; after a Redis restart this registers
        them again. Spare leases unused for SPARE_LIFETIME go back (the queue that asked
        for them found another connection, or emptied)."""
        now = time.monotonic()
        for combo, spares in list(self._spare.items()):
            keys = [self.store.key("lease", redis_name(key)) for key, _ in combo]
            for lease, at in list(spares):
                if now - at >= SPARE_LIFETIME:
                    spares.remove((lease, at))
                    await self.store.release(keys, lease)
            if not spares:
                del self._spare[combo]
        for combo, leases in list(self._held.items()):
            if leases:
                keys = [self.store.key("lease", redis_name(key)) for key, _ in combo]
                await self.store.renew(keys, list(leases))
            else:
                del self._held[combo]
        for combo, spares in self._spare.items():
            keys = [self.store.key("lease", redis_name(key)) for key, _ in combo]
            await self.store.renew(keys, [lease for lease, _ in spares])

    def _opened(self, combo: tuple[Cap, ...]) -> None:
        for key, _ in combo:
            self._open[key] += 1

    def _lease_id(self) -> str:
        return f"{self.node}#{next(self._ids)}"

    # --- life ---------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        await self.drain()
        await self.store.close()

    async def drain(self) -> None:
        """Let fetches and releases in flight finish (each has the command timeout), then
        cancel what is left."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.store.timeout * 2)
        for task in list(self._tasks):
            task.cancel()
