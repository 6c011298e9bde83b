"""`ClusterNode`: this node's part of the cluster (limits.py, holds.py, counts.py).
Heartbeats (name, version, queue size, last seen) every heartbeat_interval, learns how many
nodes are live (the fallback share divides by that last count), renews its leases, and
notices Redis coming back.

    node = ClusterNode(settings, queue_size=lambda: scheduler.statistics().scheduled)
    await node.start()        # never fails for want of Redis: it starts in fallback
    node.limits               # the scheduler's SharedLimits
    await node.nodes()        # the live nodes, for the admin API
    await node.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from relay import __version__
from relay.cluster.counts import ClusterCounts
from relay.cluster.holds import ClusterHolds
from relay.cluster.limits import ClusterLimits
from relay.cluster.settings import ClusterSettings
from relay.cluster.store import RedisUnavailable, Store
from relay.schedule.adaptive_link import AdaptiveLink

log = logging.getLogger("relay.cluster")
LIVE_INTERVALS = 3  # a node unseen for this many heartbeat intervals is not live


class ClusterConfigError(Exception):
    """The cluster stanza names something relay cannot use (e.g. an unreadable password file)."""


@dataclass(frozen=True, slots=True)
class NodeRow:
    node: str
    version: str
    queue_size: int
    last_seen: float  # Unix time


def read_password(settings: ClusterSettings) -> str | None:
    path = settings.redis_password_file
    if path is None:
        return None
    try:
        return path.read_text().strip()
    except OSError as err:
        raise ClusterConfigError(
            f"cluster: redis_password_file {str(path)!r} cannot be read: {err.strerror}"
        ) from err


class ClusterNode:
    def __init__(
        self,
        settings: ClusterSettings,
        queue_size: Callable[[], int] = lambda: 0,
        password: str | None = None,
    ) -> None:
        self.settings = settings
        self.name = settings.node_name
        self.queue_size = queue_size
        self.store = Store(settings, password)
        self.live = 1  # live nodes at the last heartbeat (this one included)
        self.limits = ClusterLimits(self.store, self.name, lambda: self.live)
        self._task: asyncio.Task[None] | None = None
        self.holds: ClusterHolds | None = None
        self.counts: ClusterCounts | None = None
        self._last_renew = 0.0
        self.store.on_change = self._redis_changed

    def _redis_changed(self, up: bool) -> None:
        if up:
            self._last_renew = 0.0  # register this node's leases again at once

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._run(), name="cluster-heartbeat")

    async def _run(self) -> None:
        interval = self.settings.heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.beat()
            except Exception:
                log.exception("cluster heartbeat failed")

    async def beat(self) -> None:
        """One heartbeat: say this node is alive, count the live nodes, renew leases."""
        settings = self.settings
        fields = {
            "version": __version__,
            "queue_size": str(self.queue_size()),
            "last_seen": f"{time.time():.3f}",
        }
        try:
            await self.store.heartbeat(
                self.name, fields, settings.heartbeat_interval * LIVE_INTERVALS
            )
            self.live = max(1, len(await self.store.nodes()))
            now = time.monotonic()
            if now - self._last_renew >= settings.lease_period / 3:
                await self.limits.renew()
                self._last_renew = now
        except RedisUnavailable:
            return  # logged once by the store; the next beat tries again

    async def share_holds(
        self, adaptive: AdaptiveLink, now: Callable[[], float], wake: Callable[[], None]
    ) -> None:
        """Share suspensions, adaptive throttles and window counts of adaptive_scope = global
        pairs with the other nodes."""
        self.holds = ClusterHolds(
            self.store, self.name, adaptive, now, wake, self.settings.heartbeat_interval
        )
        await self.holds.start()
        self.counts = ClusterCounts(self.store, self.name, adaptive, now, wake)
        await self.counts.start()

    async def nodes(self) -> list[NodeRow]:
        """The live nodes as Redis knows them (RedisUnavailable when it cannot be asked)."""
        return [
            NodeRow(
                row["node"],
                row.get("version", ""),
                int(row.get("queue_size", "0")),
                float(row.get("last_seen", "0")),
            )
            for row in await self.store.nodes()
        ]

    async def stop(self) -> None:
        if self.counts is not None:
            await self.counts.stop()
        if self.holds is not None:
            await self.holds.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.limits.close()
