"""Limits held outside this process (relay/cluster implements them), as the queue core sees
them: synchronous answers from what the implementation already holds. It never blocks: when
it has to ask elsewhere it says "not now" and fetches in the background; the core asks again
after the wait it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from relay.schedule.limits import Cap
from relay.schedule.route_settings import ThrottleRef

SHARED_RETRY = 0.05  # a refused shared lease is asked for again after this


class SharedLimits(Protocol):
    def take(self, throttle: ThrottleRef, now: float) -> float:
        """Take one event from a shared throttle: 0 (taken), or seconds to wait (nothing
        taken; ask again then)."""
        ...

    def acquire(self, caps: Sequence[Cap], now: float) -> bool:
        """Hold one connection lease under every cap, or False (ask again later)."""
        ...

    def release(self, caps: Sequence[Cap]) -> None:
        """A connection that held a lease under `caps` closed."""
        ...
