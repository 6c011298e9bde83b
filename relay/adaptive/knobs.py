"""The options adaptive delivery can move, and how one step moves each within its bounds.

Every managed option has an `adaptive_<name> = ( low high )` bounds option; with no bounds set
the option is never adjusted. "Down" means gentler on the receiver, "up" more aggressive:

- counts (connections, deliveries per connection, recipients, queue size, retries): gentler is
  lower; a step down halves the value, a step up adds a quarter (at least 1);
- durations (retry intervals, SMTP timeouts): gentler is longer; a step down doubles, a step
  up takes a fifth off;
- outbound_throttle_messages (`Throttle(count, period)`): gentler is fewer messages per
  period; the count steps like a count, the period is kept.

The result is always clipped to ( low high ). Pure functions over plain values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from relay.config import values as v

__all__ = [
    "KNOBS",
    "THROTTLE_FAMILY",
    "Direction",
    "Knob",
    "clip",
    "is_gentler",
    "knob_name",
    "start_value",
    "step",
]

Direction = Literal["down", "up"]
Kind = Literal["count", "duration", "throttle"]


@dataclass(frozen=True, slots=True)
class Knob:
    name: str  # the core option: "max_outbound_connections"
    kind: Kind
    gentle: Literal["lower", "higher"]

    @property
    def bounds_option(self) -> str:
        return f"adaptive_{self.name}"


KNOBS: dict[str, Knob] = {
    k.name: k
    for k in (
        Knob("max_outbound_connections", "count", "lower"),
        Knob("max_deliveries_per_connection", "count", "lower"),
        Knob("max_recipients_per_batch", "count", "lower"),
        Knob("max_recipients_per_connection", "count", "lower"),
        Knob("max_resident_active_queue", "count", "lower"),
        Knob("max_retries", "count", "lower"),
        Knob("outbound_throttle_messages", "throttle", "lower"),
        Knob("retry_interval", "duration", "higher"),
        Knob("max_retry_interval", "duration", "higher"),
        Knob("body_timeout", "duration", "higher"),
        Knob("ehlo_timeout", "duration", "higher"),
        Knob("idle_timeout", "duration", "higher"),
        Knob("mailfrom_timeout", "duration", "higher"),
        Knob("rcptto_timeout", "duration", "higher"),
        Knob("rset_timeout", "duration", "higher"),
    )
}

# What a plain ("throttle" "down"|"up") action moves: the options the page says the AD rules
# govern. Positive (speculative) adjustments also move only these, plus any option an earlier
# action moved.
THROTTLE_FAMILY: tuple[str, ...] = (
    "max_outbound_connections",
    "max_deliveries_per_connection",
    "outbound_throttle_messages",
    "retry_interval",
)


def knob_name(option: str) -> str:
    """ "adaptive_max_outbound_connections" or "max_outbound_connections" -> the core name."""
    name = option.lower()
    if name.startswith("adaptive_") and name[len("adaptive_") :] in KNOBS:
        name = name[len("adaptive_") :]
    if name not in KNOBS:
        raise KeyError(f"{option!r} is not an option adaptive delivery manages")
    return name


def _rate(value: Any) -> float:
    if isinstance(value, v.Throttle):
        return value.count / value.period
    return float(value)


def _unlimited(knob: Knob, value: Any) -> bool:
    if value is None:
        return True
    if knob.kind == "count":
        return _as_count(value) is None
    return False


def _as_count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value):
        return int(value) if value >= 0 else None
    try:
        number = int(str(value).strip())
    except ValueError:
        return None  # "auto", "none": no fixed number
    return number if number >= 0 else None


def clip(knob: Knob, value: Any, bounds: tuple[Any, Any]) -> Any:
    low, high = bounds
    if _rate(value) < _rate(low):
        return low
    if _rate(value) > _rate(high):
        return high
    return value


def is_gentler(knob: Knob, old: Any, new: Any) -> bool:
    """Whether `new` is gentler on the receiver than `old` (a step "down")."""
    if knob.gentle == "lower":
        return _rate(new) < _rate(old)
    return _rate(new) > _rate(old)


def start_value(knob: Knob, configured: Any, bounds: tuple[Any, Any]) -> Any:
    """The value before any adjustment: the configured one clipped to the bounds. An unset or
    unlimited configured value ("auto", -1, no throttle) starts at the aggressive end."""
    low, high = bounds
    if _unlimited(knob, configured):
        return high if knob.gentle == "lower" else low
    if knob.kind == "count":
        configured = _as_count(configured)
    elif knob.kind == "duration":
        configured = float(configured)
    return clip(knob, configured, bounds)


def step(knob: Knob, value: Any, direction: Direction, bounds: tuple[Any, Any]) -> Any:
    """One adjustment of `value` toward gentler ("down") or more aggressive ("up")."""
    lower = (direction == "down") == (knob.gentle == "lower")
    if knob.kind == "count":
        count = int(value)
        new: Any = min(count - 1, count // 2) if lower else max(count + 1, math.ceil(count * 1.25))
        return clip(knob, max(new, 0), bounds)
    if knob.kind == "duration":
        seconds = float(value)
        return clip(knob, seconds * 0.8 if lower else seconds * 2.0, bounds)
    assert isinstance(value, v.Throttle)
    count = value.count
    new_count = min(count - 1, count // 2) if lower else max(count + 1, math.ceil(count * 1.25))
    return clip(knob, v.Throttle(max(new_count, 1), value.period), bounds)
