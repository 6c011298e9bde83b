"""The settings adaptive delivery reads for one binding x domain, as one frozen value.

The settings compile step builds one per binding x domain per configuration load
(relay/wiring/adaptive.py: every adaptive_* option, the bounds of each managed option and the
configured value it bounds, the sweep and reply rule stanzas); pass it to every engine call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from relay.adaptive.rules import DEFAULT_REPLY_RULES, ReplyRule, SweepRule, applicable_sweep_rules

__all__ = ["NOTIFICATION_EVENTS", "AdaptiveSettings"]

NOTIFICATION_EVENTS = ("throttle", "suspension", "blackhole")


@dataclass(frozen=True, slots=True)
class AdaptiveSettings:
    enabled: bool = True
    scope: str = "auto"
    adjustment_interval: float = 60.0
    positive_adjustment_interval: float = 3600.0
    attempt_threshold: int = 2000
    default_suspension: float = 4 * 3600.0
    default_suspension_enabled: bool = False
    rejection_rate_suspension_percentage: float = 20.0
    fbl_volume_threshold: int = 20000
    notification_events: frozenset[str] = frozenset(NOTIFICATION_EVENTS)
    notification_interval: float = 3600.0
    alert_email_destination: tuple[str, ...] = ()
    alert_email_sender: str | None = None
    sweep_rule_enabled: bool = True
    sweep_rules: tuple[SweepRule, ...] = field(default_factory=lambda: applicable_sweep_rules(()))
    reply_rules: tuple[ReplyRule, ...] = DEFAULT_REPLY_RULES
    bounds: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)  # knob -> (low, high)
    configured: Mapping[str, Any] = field(default_factory=dict)  # knob -> configured value

    def managed(self, option: str) -> bool:
        return option in self.bounds
