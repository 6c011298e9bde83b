"""The scheduler's counters as plain data (what the admin API and metrics report)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


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
    # tenant -> outcome -> recipients (configured tenants and the first seen: bounded)
    tenants: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    campaigns: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # the same
