"""`adaptive_scope = global`: a suspension (or its end) decided on one node applies on every
node within a second.

Each Suspend / Resume adaptive delivery applies here (AdaptiveLink.on_event) for a binding x
domain whose adaptive_scope is global is recorded in Redis (a hash, so a node that joins or
comes back later finds it) and pushed by pub/sub. Every node listens and applies what other
nodes decided through its own adaptive engine (the suspension table's one writer); what it
applies that way is not pushed back. `local` and `auto` (relay has no DuraVIP: local) stay on
the node. Window counts are not aggregated across nodes (yet): each node decides on its own
traffic, and what it decides applies everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import Callable

from relay.adaptive import Event, Resume, Suspend
from relay.cluster.store import RedisUnavailable, Store
from relay.schedule.adaptive_link import AdaptiveLink

log = logging.getLogger("relay.cluster")
LISTEN_WAIT = 0.25  # seconds per pub/sub read: the loop stays responsive to cancellation


def hold_field(binding: str, domain: str) -> str:
    return json.dumps([binding, domain.lower()])


class ClusterHolds:
    def __init__(
        self,
        store: Store,
        node: str,
        adaptive: AdaptiveLink,
        now: Callable[[], float],
        wake: Callable[[], None],
        retry: float,
    ) -> None:
        self.store = store
        self.node = node
        self.adaptive = adaptive
        self.now = now
        self.wake = wake  # the scheduler: a hold changed
        self.retry = retry
        self._remote = Counter[tuple[str, str]]()  # events of other nodes' decisions to come
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        adaptive.on_event = self.on_event

    # --- this node's decisions, out ------------------------------------------------------
    def on_event(self, event: Event) -> None:
        if not isinstance(event, Suspend | Resume):
            return
        key = (event.binding, event.domain.lower())
        if self._remote[key] > 0:
            self._remote[key] -= 1
            return
        if self.adaptive.settings(event.binding, event.domain).scope != "global":
            return
        until = event.until if isinstance(event, Suspend) else None
        message = json.dumps(
            {
                "node": self.node,
                "binding": event.binding,
                "domain": event.domain.lower(),
                "until": until,
                "reason": event.reason,
            }
        )
        task = asyncio.get_running_loop().create_task(self._publish(key, message, until))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, key: tuple[str, str], message: str, until: float | None) -> None:
        try:
            await self.store.publish_hold(hold_field(*key), message, until)
        except RedisUnavailable:
            log.warning("cluster: could not share the hold of %s x %s (Redis down)", *key)

    # --- other nodes' decisions, in -------------------------------------------------------
    def apply(self, text: str) -> None:
        try:
            message = json.loads(text)
            node, binding, domain = message["node"], message["binding"], message["domain"]
            until, reason = message["until"], str(message.get("reason", ""))
        except (ValueError, KeyError, TypeError):
            log.warning("cluster: ignored a malformed hold message %r", text[:200])
            return
        if node == self.node:
            return
        now = self.now()
        engine = self.adaptive.engine
        key = (binding, domain)
        if until is None:
            self._remote[key] += len(engine.resume(binding, domain, now))
        elif float(until) > now:
            if self.adaptive.suspensions.is_suspended(binding, domain, now):
                current = self.adaptive.suspensions.for_domain(domain, now).get(binding)
                if current is not None and abs(current.until - float(until)) < 1e-3:
                    return  # already applied (the hash, after the push)
            self._remote[key] += 1
            engine.suspend(binding, domain, now, float(until) - now, f"{reason} (node {node})")
        else:
            return
        self.wake()

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="cluster-holds")

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = await self.store.subscribe()
                try:
                    for text in await self.store.holds():  # what was decided before
                        self.apply(text)
                    while True:
                        pushed = await self.store.next_message(pubsub, LISTEN_WAIT)
                        if pushed is not None:
                            self.apply(pushed)
                finally:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
            except RedisUnavailable:
                await asyncio.sleep(self.retry)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.store.timeout * 2)
