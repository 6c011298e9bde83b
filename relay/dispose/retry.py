"""When to try a deferred recipient again: pure retry math.

`retry_interval` doubles after each failure (1x, 2x, 4x, ...) up to `max_retry_interval`,
spread by up to `fuzz` seconds (adaptive_retry_fuzz) so a requeued domain does not stampede.
"""

from __future__ import annotations

import math
import random


def backoff(attempts: int, retry_interval: float, max_retry_interval: float) -> float:
    """The wait after the `attempts`-th failed attempt (attempts >= 1)."""
    exponent = max(0, attempts - 1)
    if exponent > 60:
        return max_retry_interval
    return min(math.ldexp(retry_interval, exponent), max(retry_interval, max_retry_interval))


def next_attempt(
    now: float,
    attempts: int,
    retry_interval: float,
    max_retry_interval: float,
    fuzz: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    wait = backoff(attempts, retry_interval, max_retry_interval)
    if fuzz > 0:
        # Spread over at most a tenth of the wait, so small test intervals stay predictable.
        spread = min(fuzz, wait / 10)
        wait += (rng or random).uniform(0, spread)
    return now + wait
