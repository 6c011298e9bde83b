"""GCRA with batches: the reference the Lua script (scripts.GCRA_TAKE) mirrors.

A bucket of `count` events per `period` has an emission interval T = period / count and a
tolerance tau = period - T (a burst of `count`). Its only state is the theoretical arrival
time `tat`. One event may happen at `now` when max(tat, now) - tau <= now; each event moves
tat by T. Asking for `want` events grants as many as fit now (0..want) in one step, so a node
takes a small batch in one round trip. Pure: times are passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# A "wait" below this share of one emission interval is float rounding, not a limit
# (as relay/schedule/throttle.py).
SLACK = 1e-6


@dataclass(frozen=True, slots=True)
class Grant:
    tat: float  # the bucket's new theoretical arrival time
    granted: int  # events allowed now (0..want)
    wait: float  # when granted == 0: seconds until one event fits


def take(tat: float, now: float, emission: float, tolerance: float, want: int) -> Grant:
    start = max(tat, now)
    room = math.floor((now + tolerance - start) / emission + SLACK) + 1
    granted = max(0, min(want, room))
    if granted > 0:
        return Grant(start + granted * emission, granted, 0.0)
    return Grant(tat, 0, max(0.0, start - tolerance - now))
