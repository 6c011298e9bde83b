"""Rate limits as shared buckets: one per defining scope (Momentum's "by reference" rule).

A bucket is GCRA (the generic cell rate algorithm KumoMTA and Redis-cell use): `count`
events per `period`, allowing a burst of `count`. Pure: callers pass the time.
"""

from __future__ import annotations

from collections.abc import Hashable

from relay.config.values import Throttle


class Bucket:
    __slots__ = ("_emission", "_slack", "_tat", "_tolerance", "throttle")

    def __init__(self, throttle: Throttle) -> None:
        self.throttle = throttle
        self._emission = throttle.period / throttle.count
        self._tolerance = throttle.period - self._emission
        # Unix times near 1.8e9 carry 2.4e-7 s of rounding per addition: a "wait" this
        # short (0.1% of one emission interval) is rounding, not a limit. Without it a
        # driven clock that advanced exactly to the next allowance could stall.
        self._slack = self._emission * 1e-3
        self._tat = 0.0  # theoretical arrival time

    def delay(self, now: float) -> float:
        """Seconds until one event may happen (0: now)."""
        wait = max(self._tat, now) - self._tolerance - now
        return wait if wait > self._slack else 0.0

    def spend_burst(self, now: float) -> None:
        """As if the burst had just been spent: one event now, then the rate."""
        self._tat = max(self._tat, now + self._tolerance)

    def take(self, now: float) -> float:
        """Take one event if allowed now and return 0; else return the wait, taking nothing."""
        wait = self.delay(now)
        if wait <= 0:
            self._tat = max(self._tat, now) + self._emission
        return wait


class Buckets:
    """Buckets keyed by (kind, defining scope); rebuilt when the throttle value changes."""

    def __init__(self) -> None:
        self._buckets: dict[Hashable, Bucket] = {}

    def get(self, key: Hashable, throttle: Throttle) -> Bucket:
        bucket = self._buckets.get(key)
        if bucket is None or bucket.throttle != throttle:
            bucket = Bucket(throttle)
            self._buckets[key] = bucket
        return bucket

    def __len__(self) -> int:
        return len(self._buckets)
