"""Pure decisions of a cluster node: how many tokens to take per round trip, and each node's
share of a cluster limit while Redis cannot be asked."""

from __future__ import annotations

import math

from relay.config.values import Throttle

BATCH_WINDOW = 0.02  # a batch is about this many seconds of the cluster-wide rate
# At high rates a batch is large enough that a round trip slowed by a loaded machine (tens of
# ms) does not leave a busy node without tokens (measured: a throttle of 1,000,000/s never
# reached cost 18-40% of the rate with batches of 50 on a loaded 2-core VM).
MAX_BATCH = 1000


def batch_size(throttle: Throttle) -> int:
    """Tokens a node takes in one round trip: ~BATCH_WINDOW of the rate, 1..MAX_BATCH. Small
    enough that tokens one node holds unused (at most two batches) are a few percent of a
    second's budget."""
    rate = throttle.count / throttle.period
    return max(1, min(MAX_BATCH, math.ceil(rate * BATCH_WINDOW)))


def throttle_share(throttle: Throttle, nodes: int) -> Throttle:
    """One node's share of a cluster throttle among `nodes` live nodes: the same rate divided
    by `nodes` (exactly), with a burst of count // nodes (at least 1)."""
    nodes = max(1, nodes)
    count = max(1, throttle.count // nodes)
    return Throttle(count, throttle.period * count * nodes / throttle.count)


def cap_share(limit: int, nodes: int) -> int:
    """One node's share of a cluster connection cap: limit // nodes, at least 1 so that no node
    stalls (with more live nodes than the limit, the cluster may hold one each)."""
    if limit <= 0:
        return limit  # 0: none anywhere; < 0: unlimited
    return max(1, limit // max(1, nodes))
