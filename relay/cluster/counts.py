"""`adaptive_scope = global`: adaptive window counts and reply rule matches aggregated
across nodes.

Every SYNC_INTERVAL each node writes, for each binding x domain of global scope it knows, the
buckets of its stats and FBL windows that changed since its last write, and its reply rules'
match times, and reads every other node's, in one pipelined round trip under the command
timeout. Redis holds one hash per pair and window: field [node, bucket index] -> {"since",
"counts"}, expiring one window after its last write; buckets older than the window are
deleted by whichever node sees them. Reply rules ("N matching replies within a period") have
one hash per pair: field [node, rule] -> {"times": the node's matches within the period,
"fired": when the node last fired the rule}, expiring one (longest) period after its last
write. The engine's rules judge this node's counts plus the sum of the others' live buckets
and matches (engine.set_remote, which judges new counts at once), so failures seen half on
each node add up; a rule fired on one node spends the matches before it on every node.
Rules are evaluated where the mail is sent (as the reference page says): a node reads only
the pairs it sends to. Two nodes may decide the same suspension at once; each takes
the first it hears of (holds.py).

A hold ending empties a pair's windows on every node (the hold was global) and moves its
`cleared` time; another node's buckets from before this node's clearing, written before
that node emptied its own windows (since < this node's cleared - CLEAR_SLACK), are not
counted, so old failures do not trip the pair again at once.
Redis down: each node judges its own counts and matches (clear_remote) until a sync answers
again, then shares them again (everything written afresh).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from relay.adaptive.window import Window
from relay.cluster.limits import redis_name
from relay.cluster.store import RedisUnavailable, Store
from relay.schedule.adaptive_link import AdaptiveLink

log = logging.getLogger("relay.cluster")
SYNC_INTERVAL = 0.5  # seconds between syncs of the window counts
CLEAR_SLACK = 5.0  # a hold's end reaches every node within this


class ClusterCounts:
    def __init__(
        self,
        store: Store,
        node: str,
        adaptive: AdaptiveLink,
        now: Callable[[], float],
        wake: Callable[[], None],
        interval: float = SYNC_INTERVAL,
    ) -> None:
        self.store = store
        self.node = node
        self.adaptive = adaptive
        self.now = now
        self.wake = wake  # the scheduler: the combined counts made adaptive act
        self.interval = interval
        self._written: dict[str, dict[str, str]] = {}  # hash -> fields this node wrote last
        self._stale: dict[str, set[str]] = {}  # hash -> old buckets to delete next time
        self._task: asyncio.Task[None] | None = None
        self.syncs = 0

    def _pairs(self) -> list[tuple[str, str]]:
        found = []
        for binding, domain in list(self.adaptive.engine.pairs):
            settings = self.adaptive.settings(binding, domain)
            if settings.enabled and settings.scope == "global":
                found.append((binding, domain))
        return found

    async def sync(self) -> None:
        """One write-and-read round trip (RedisUnavailable when Redis cannot be asked)."""
        now = self.now()
        engine = self.adaptive.engine
        writes: list[tuple[str, dict[str, str], list[str], float]] = []
        reads: list[tuple[str, str, str, Window | None, float, str]] = []
        current: dict[str, dict[str, str]] = {}
        for binding, domain in self._pairs():
            pair = engine.pairs[(binding, domain)]
            for name, window in (("stats", pair.stats), ("fbl", pair.fbl)):
                key = self.store.key("counts", name, redis_name((binding, domain)))
                mine = {
                    json.dumps([self.node, epoch]): json.dumps(
                        {"since": pair.cleared, "counts": counts}, sort_keys=True
                    )
                    for epoch, counts in window.bucket_counts(now).items()
                }
                self._write(key, mine, window.span + window.width, writes)
                current[key] = mine
                reads.append((binding, domain, name, window, pair.cleared, key))
            settings = self.adaptive.settings(binding, domain)
            rules = [rule for rule in settings.reply_rules if rule.scope == "binding"]
            if not rules:
                continue
            key = self.store.key("counts", "replies", redis_name((binding, domain)))
            mine = {}
            for rule in rules:
                times = sorted(t for t in pair.matches.get(rule.name, ()) if now - t <= rule.period)
                fired = pair.fired.get(rule.name, 0.0)
                if times or now - fired <= rule.period:
                    mine[json.dumps([self.node, rule.name])] = json.dumps(
                        {"times": times, "fired": fired}
                    )
            longest = max(rule.period for rule in rules)
            self._write(key, mine, longest + self.interval, writes)
            current[key] = mine
            reads.append((binding, domain, "replies", None, longest, key))
        if not reads:
            return
        try:
            found = await self.store.sync_counts(writes, [read[-1] for read in reads])
        except RedisUnavailable:
            self._written.clear()  # written again in full once Redis answers
            raise
        self._written = current
        self.syncs += 1
        totals: dict[tuple[str, str], dict[str, dict[str, int]]] = {}
        matches: dict[tuple[str, str], tuple[dict[str, list[float]], dict[str, float]]] = {}
        for (binding, domain, name, shape, cleared, key), fields in zip(reads, found, strict=True):
            if shape is None:  # reply rule matches; `cleared` holds the longest period
                matches[(binding, domain)] = self._matches(key, fields, now - cleared)
                continue
            window = shape
            sums = totals.setdefault((binding, domain), {"stats": {}, "fbl": {}})[name]
            oldest = window.epoch(now) - window.buckets
            for field, value in fields.items():
                try:
                    node, epoch = json.loads(field)
                    data = json.loads(value)
                    since, counts = float(data["since"]), dict(data["counts"])
                except (ValueError, KeyError, TypeError):
                    self._stale.setdefault(key, set()).add(field)
                    continue
                if int(epoch) <= oldest:
                    self._stale.setdefault(key, set()).add(field)
                    continue
                if node == self.node:
                    continue
                if since < cleared - CLEAR_SLACK and int(epoch) <= window.epoch(cleared):
                    continue  # counted before this node's windows were emptied
                for count_key, count in counts.items():
                    sums[count_key] = sums.get(count_key, 0) + int(count)
        acted = False
        for (binding, domain), seen in totals.items():
            settings = self.adaptive.settings(binding, domain)
            remote_times, remote_fired = matches.get((binding, domain), ({}, {}))
            acted |= engine.set_remote(
                binding,
                domain,
                seen["stats"],
                seen["fbl"],
                now,
                settings,
                {rule: tuple(sorted(found)) for rule, found in remote_times.items()},
                remote_fired,
            )
        if acted:
            self.wake()

    def _write(
        self,
        key: str,
        mine: dict[str, str],
        ttl: float,
        writes: list[tuple[str, dict[str, str], list[str], float]],
    ) -> None:
        """Queue what changed in this node's fields of hash `key` since its last write (and
        the stale fields found last time, to delete)."""
        before = self._written.get(key, {})
        changed = {f: value for f, value in mine.items() if before.get(f) != value}
        gone = {f for f in before if f not in mine} | self._stale.pop(key, set())
        if changed or gone:
            writes.append((key, changed, sorted(gone), ttl))

    def _matches(
        self, key: str, fields: dict[str, str], oldest: float
    ) -> tuple[dict[str, list[float]], dict[str, float]]:
        """The other nodes' reply rule matches (rule -> times) and latest firings (rule ->
        time) in one pair's hash; fields of nothing newer than `oldest` are deleted."""
        times: dict[str, list[float]] = {}
        fired: dict[str, float] = {}
        for field, value in fields.items():
            try:
                node, rule = json.loads(field)
                data = json.loads(value)
                found = [float(t) for t in data["times"]]
                last = float(data["fired"])
                rule = str(rule)
            except (ValueError, KeyError, TypeError):
                self._stale.setdefault(key, set()).add(field)
                continue
            if max(found, default=last) < oldest and last < oldest:
                self._stale.setdefault(key, set()).add(field)
                continue
            if node == self.node:
                continue
            times.setdefault(rule, []).extend(found)
            fired[rule] = max(fired.get(rule, 0.0), last)
        return times, fired

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cluster-counts")

    async def _run(self) -> None:
        shared = True
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sync()
                shared = True
            except RedisUnavailable:
                if shared:
                    self.adaptive.engine.clear_remote()  # judge this node's own counts
                shared = False
            except Exception:
                log.exception("cluster: syncing adaptive counts failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
