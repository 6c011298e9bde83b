"""Relay nodes sharing limits through Redis (the `cluster { }` stanza).

Each node keeps its own spool; what several nodes must share lives in Redis: cluster-wide
throttles (GCRA, gcra.py + scripts.py), connection leases that expire, and membership
heartbeats. The queue core never waits on Redis: it asks `relay.schedule.shared.SharedLimits`
synchronously and this package answers from what it already holds, fetching more in the
background (limits.py). When Redis is down or slow each node falls back to its share of each
limit (share.py) and returns to sharing when Redis answers again (store.py).
"""
