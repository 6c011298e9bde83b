"""The scheduler's counters as plain data (what the admin API and metrics report)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    """Jobs per tier, open connections, recipient outcomes since start."""

    scheduled: int
    due: int
    ready: int
    in_flight: int
    connections: int
    delivered: int
    deferred: int
    failed: int
