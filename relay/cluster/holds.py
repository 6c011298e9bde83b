"""`adaptive_scope = global`: a suspension or blackhole (or its end) and an adaptive throttle
(a managed option moved) decided on one node apply on every node within a second.

Each Suspend / Blackhole / Resume / Adjust adaptive delivery applies here
(AdaptiveLink.on_event) for a binding x domain whose adaptive_scope is global is recorded in
Redis (one record per pair and kind: "hold", a suspension; "blackhole"; "live", an option)
and pushed by pub/sub.
The record is a key that expires with what it holds (a hold at its end; an adjusted
value after adaptive_positive_adjustment_interval, by when delivery going well would have
moved it back), so a node that joins or comes back later finds what is still in force and
Redis keeps nothing old. Every node listens and applies what other nodes decided through its
own adaptive engine (the one writer of suspensions and live values); what it applies that
way is not pushed back. Operator overrides and resets of a live value stay on their node.
`local` and `auto` (relay has no DuraVIP: local) stay on the node. Window counts: counts.py.

A decision made while Redis is down is kept (the latest per pair and kind) and shared when
Redis answers again, before the node reads what others decided: a hold or blackhole still
in force unless Redis records one of another node's that ends later, a resume or an
adjusted value unless the record in Redis is another node's (theirs may be newer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from relay.adaptive import Adjust, Blackhole, Event, Resume, Suspend
from relay.adaptive.state import decode_value, encode_value
from relay.cluster.store import RedisUnavailable, Store
from relay.schedule.adaptive_link import AdaptiveLink

log = logging.getLogger("relay.cluster")
# Suspensions ending this close are one: two nodes that judged the same counts at once (or
# the record read after the push) do not replace each other's.
SAME_HOLD = 5.0
LISTEN_WAIT = 0.25  # seconds per pub/sub read: the loop stays responsive to cancellation


def hold_field(binding: str, domain: str) -> str:
    return json.dumps([binding, domain.lower()])


def live_field(binding: str, domain: str, option: str) -> str:
    return json.dumps([binding, domain.lower(), option])


def still_to_share(
    ends: float | None, theirs: tuple[str, float | None] | None, node: str, now: float
) -> bool:
    """Is a decision this node made while Redis was down (ending at `ends`; None: a resume)
    still worth sharing, given the record Redis has for the same pair and kind (`theirs`:
    (node, end; None for an adjusted value), None: no record)? Not once it is over, nor
    over another node's record unless that is a hold or blackhole ending before this one."""
    if ends is not None and ends <= now:
        return False  # over already
    if theirs is None or theirs[0] == node:
        return True  # nothing newer than this node's own decisions
    their_end = theirs[1]
    return ends is not None and their_end is not None and their_end < ends


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
        self.wake = wake  # the scheduler: a hold or live value changed
        self.retry = retry
        self._echo: list[Event] = []  # events of other nodes' decisions, not to push back
        # (kind, field) -> (sequence, message, when it ends; None: a resume or no end):
        # decisions Redis was down for, shared when it is back (_catch_up).
        self._unshared: dict[tuple[str, str], tuple[int, str, float | None]] = {}
        self._sequence = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        adaptive.on_event = self.on_event

    # --- this node's decisions, out ------------------------------------------------------
    def on_event(self, event: Event) -> None:
        for index, echo in enumerate(self._echo):
            if echo is event:
                del self._echo[index]
                return
        if not isinstance(event, Suspend | Blackhole | Resume | Adjust):
            return
        settings = self.adaptive.settings(event.binding, event.domain)
        if settings.scope != "global":
            return
        domain = event.domain.lower()
        base: dict[str, Any] = {"node": self.node, "binding": event.binding, "domain": domain}
        if isinstance(event, Adjust):
            if event.reason.startswith("operator"):
                return  # an operator's pin stays on the node it was set on
            field = live_field(event.binding, domain, event.option)
            message = {**base, "type": "live", "option": event.option}
            message.update(value=encode_value(event.new), reason=event.reason)
            ends: float | None = self.now() + settings.positive_adjustment_interval
            kind = "live"
        else:
            until = None if isinstance(event, Resume) else event.until
            blackhole = isinstance(event, Blackhole) or (
                isinstance(event, Resume) and event.ended == "blackhole"
            )
            kind = "blackhole" if blackhole else "hold"  # one record per pair and kind
            field = hold_field(event.binding, domain)
            message = {**base, "type": kind, "until": until, "reason": event.reason}
            ends = until  # the record lasts as long as the hold
        self._sequence += 1
        task = asyncio.get_running_loop().create_task(
            self._publish(self._sequence, kind, field, json.dumps(message), ends)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(
        self, sequence: int, kind: str, field: str, message: str, ends: float | None
    ) -> None:
        ttl = None if ends is None else ends - self.now()
        try:
            await self.store.share(kind, field, message, ttl)
        except RedisUnavailable:
            log.warning(
                "cluster: could not share %s %s (Redis down): shared when it is back", kind, field
            )
            held = self._unshared.get((kind, field))
            if held is None or held[0] < sequence:
                self._unshared[(kind, field)] = (sequence, message, ends)
            return
        held = self._unshared.get((kind, field))
        if held is not None and held[0] <= sequence:
            del self._unshared[(kind, field)]  # a later decision reached Redis

    async def _catch_up(self) -> None:
        """Share what was decided while Redis was down (see the module docstring); raises
        RedisUnavailable with what is left kept for the next time."""
        if not self._unshared:
            return
        pending, self._unshared = self._unshared, {}
        try:
            recorded = {kind: await self._records(kind) for kind in {k for k, _ in pending}}
            now = self.now()
            for (kind, field), (_, message, ends) in sorted(pending.items()):
                if not still_to_share(ends, recorded[kind].get(field), self.node, now):
                    del pending[(kind, field)]
                    continue
                ttl = None if ends is None else ends - now
                await self.store.share(kind, field, message, ttl)
                del pending[(kind, field)]
                log.info("cluster: shared %s %s decided while Redis was down", kind, field)
        finally:
            for key, value in pending.items():  # not shared yet: kept unless a later one is
                if key not in self._unshared or self._unshared[key][0] < value[0]:
                    self._unshared[key] = value

    async def _records(self, kind: str) -> dict[str, tuple[str, float | None]]:
        """field -> (node, end) of each `kind` record in Redis."""
        found: dict[str, tuple[str, float | None]] = {}
        for text in await self.store.shared(kind):
            try:
                message = json.loads(text)
                binding, domain = message["binding"], message["domain"]
                if kind == "live":
                    field = live_field(binding, domain, message["option"])
                    end = None
                else:
                    field = hold_field(binding, domain)
                    end = None if message.get("until") is None else float(message["until"])
                found[field] = (str(message["node"]), end)
            except (ValueError, KeyError, TypeError):
                continue
        return found

    # --- other nodes' decisions, in -------------------------------------------------------
    def apply(self, text: str) -> None:
        try:
            message = json.loads(text)
            node, binding, domain = message["node"], message["binding"], message["domain"]
            reason = f"{message.get('reason', '')} (node {node})"
            if message.get("type", "hold") == "live":
                option, value = str(message["option"]), decode_value(message["value"])
                until = None
            else:
                until = message["until"]
                until = None if until is None else float(until)
        except (ValueError, KeyError, TypeError):
            log.warning("cluster: ignored a malformed adaptive message %r", text[:200])
            return
        if node == self.node:
            return
        now = self.now()
        engine = self.adaptive.engine
        if message.get("type") == "blackhole":
            if until is None:
                self._echo.extend(engine.resume(binding, domain, now, ("blackhole",)))
            elif until > now:
                held = engine.blackhole(binding, domain, now)
                if held is not None and abs(held.until - until) < SAME_HOLD:
                    return  # already applied, or decided here too
                self._echo.append(engine.start_blackhole(binding, domain, now, until - now, reason))
            else:
                return
            self.wake()
            return
        if message.get("type", "hold") == "live":
            try:
                adjusted = engine.set_live(binding, domain, option, value, now, reason)
            except KeyError as err:  # a node of another version manages other options
                log.warning("cluster: ignored a live value: %s", err)
                return
            if adjusted is None:
                return
            self._echo.append(adjusted)
        elif until is None:
            self._echo.extend(engine.resume(binding, domain, now, ("suspension",)))
        elif until > now:
            if self.adaptive.suspensions.is_suspended(binding, domain, now):
                current = self.adaptive.suspensions.for_domain(domain, now).get(binding)
                if current is not None and abs(current.until - until) < SAME_HOLD:
                    return  # already applied (the record, after the push), or decided here too
            self._echo.append(engine.suspend(binding, domain, now, until - now, reason))
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
                    await self._catch_up()  # what this node decided while Redis was down
                    for kind in ("hold", "blackhole", "live"):  # what was decided before
                        for text in await self.store.shared(kind):
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
