"""IP warm-up: a new binding may send at most the k-th cap of its schedule on day k after
its start (UTC days), per day or per hour; past the list, no cap. Pure: callers pass `now`.

`warmup_schedule = ( "50/day" "100/day" "20/hour" )` and `warmup_start = "2026-12-01"` in
binding (or group, global) scope cap the binding as a whole; in a domain stanza, the binding
x that domain stanza. A count is shared by everything that falls back to the defining scope,
per binding (`WarmupPlan.key`). A binding's age set through the admin API replaces the start
of every plan of that binding. What counts is each message placed on the binding (a retry
counts again). `WarmupCounts` keeps the counts of the current period and the ages; the
scheduler saves them to the spool directory (`warmup.json`) every half second while they
change and at stop, so a restart keeps them (a crash loses at most the last half second of
counts).
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass
from pathlib import Path

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class WarmupPlan:
    key: tuple[str, ...]  # (binding, *the defining scope's path): whose count it shares
    binding_wide: bool  # defined outside any domain stanza: caps the binding for every domain
    start: float  # unix time of the start day's 00:00 UTC (0: no start configured)
    steps: tuple[tuple[int, float], ...]  # (cap, period in seconds: a day or an hour)


@dataclass(frozen=True, slots=True)
class WarmupCap:
    limit: int
    period_start: float
    period_end: float
    day: int  # days since the start (0 = the first day)


def utc_midnight(now: float) -> float:
    return math.floor(now / DAY) * DAY


def date_start(text: str) -> float:
    """ "YYYY-MM-DD" -> unix time of that day's 00:00 UTC."""
    day = datetime.date.fromisoformat(text)
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC).timestamp()


def day_index(start: float, now: float) -> int:
    return max(0, math.floor((now - start) / DAY))


def cap_now(plan: WarmupPlan, now: float, start: float | None = None) -> WarmupCap | None:
    """The cap in force now (None: past the schedule, or no start known)."""
    begin = plan.start if start is None else start
    if begin <= 0:
        return None
    day = day_index(begin, now)
    if day >= len(plan.steps):
        return None
    limit, period = plan.steps[day]
    period_start = math.floor(now / period) * period  # unix time is UTC-aligned
    return WarmupCap(limit, period_start, period_start + period, day)


class WarmupCounts:
    """Messages placed per plan key in its current period, and ages set by an operator."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, ...], tuple[float, int]] = {}  # key -> (period, n)
        self.starts: dict[str, float] = {}  # binding -> start set through the admin API
        self.dirty = False

    def count(self, key: tuple[str, ...], period_start: float) -> int:
        found = self._counts.get(key)
        return found[1] if found is not None and found[0] == period_start else 0

    def add(self, key: tuple[str, ...], period_start: float) -> int:
        found = self._counts.get(key)
        n = found[1] + 1 if found is not None and found[0] == period_start else 1
        self._counts[key] = (period_start, n)
        self.dirty = True
        return n

    def start_of(self, binding: str) -> float | None:
        return self.starts.get(binding)

    def set_age(self, binding: str, days: int, now: float) -> float:
        """Make `binding` `days` days old today (day `days` of its schedules)."""
        start = utc_midnight(now) - days * DAY
        self.starts[binding] = start
        self.dirty = True
        return start

    # --- on disk -------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(
            {
                "counts": [[list(k), p, n] for k, (p, n) in self._counts.items()],
                "starts": self.starts,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> WarmupCounts:
        data = json.loads(text)
        counts = cls()
        for key, period, n in data.get("counts", []):
            counts._counts[tuple(str(k) for k in key)] = (float(period), int(n))
        counts.starts = {str(b): float(s) for b, s in data.get("starts", {}).items()}
        return counts

    @classmethod
    def load(cls, path: Path) -> WarmupCounts:
        """The saved counts; empty when there are none, or the file is unreadable (logged by
        the caller through the exception it gets: ValueError, OSError)."""
        if not path.exists():
            return cls()
        return cls.from_json(path.read_text(encoding="utf-8"))
