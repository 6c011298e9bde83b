"""The settings adaptive delivery reads for one binding x domain, as one frozen value.

`build_settings(get)` takes `get(option_name) -> value` (the scheduler passes one backed by
relay's config resolver for the binding x domain, e.g.
`lambda name: resolve(config, name, binding=b, domain=d).value`) and reads every adaptive_*
option, the bounds of each managed option and the configured value it bounds. Sweep rules
come from the scope chain (`rules.collect_sweep_rules`), passed in as `sweep_rules`; the
defaults of 71.3.5.2 are added here when none counts a bounce class / an FBL category.

Build it once per binding x domain per configuration load and pass it to every engine call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from relay.adaptive.knobs import KNOBS
from relay.adaptive.rules import DEFAULT_REPLY_RULES, ReplyRule, SweepRule, applicable_sweep_rules

__all__ = ["NOTIFICATION_EVENTS", "AdaptiveSettings", "build_settings"]

NOTIFICATION_EVENTS = ("throttle", "suspension", "blackhole")
_ADDRESS_SPLIT = re.compile(r"[\s,]+")


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


def _addresses(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        value = " ".join(str(item) for item in value)
    return tuple(a for a in _ADDRESS_SPLIT.split(str(value)) if a)


def build_settings(
    get: Callable[[str], Any],
    sweep_rules: Iterable[SweepRule] = (),
    reply_rules: Iterable[ReplyRule] | None = None,
) -> AdaptiveSettings:
    """Read one binding x domain's adaptive settings through `get(option) -> value`."""
    bounds: dict[str, tuple[Any, Any]] = {}
    configured: dict[str, Any] = {}
    for name, knob in KNOBS.items():
        found = get(knob.bounds_option)
        if found is None:
            continue
        low, high = found
        bounds[name] = (low, high)
        configured[name] = get(name)
    sweep_enabled = bool(get("adaptive_sweep_rule_enabled"))
    events = get("adaptive_notification_events")
    return AdaptiveSettings(
        enabled=bool(get("adaptive_enabled")),
        scope=str(get("adaptive_scope")),
        adjustment_interval=float(get("adaptive_adjustment_interval")),
        positive_adjustment_interval=float(get("adaptive_positive_adjustment_interval")),
        attempt_threshold=int(get("adaptive_attempt_threshold")),
        default_suspension=float(get("adaptive_default_suspension")),
        default_suspension_enabled=bool(get("adaptive_default_suspension_enabled")),
        rejection_rate_suspension_percentage=float(
            get("adaptive_rejection_rate_suspension_percentage")
        ),
        fbl_volume_threshold=int(get("adaptive_fbl_volume_threshold")),
        notification_events=frozenset(str(e).lower() for e in (events or ())),
        notification_interval=float(get("adaptive_notification_interval")),
        alert_email_destination=_addresses(get("adaptive_alert_email_destination")),
        alert_email_sender=get("adaptive_alert_email_sender"),
        sweep_rule_enabled=sweep_enabled,
        sweep_rules=applicable_sweep_rules(sweep_rules, sweep_enabled),
        reply_rules=DEFAULT_REPLY_RULES if reply_rules is None else tuple(reply_rules),
        bounds=bounds,
        configured=configured,
    )
