"""Adaptive delivery's settings for one binding x domain, from the configuration.

`build_settings(get)` takes `get(option_name) -> value` (the route compile step passes one
backed by the resolver for the binding x domain) and reads every adaptive_* option, the bounds
of each managed option and the configured value it bounds. Sweep and reply rules come from the
stanzas along the binding x domain's fallback chain (`collect_sweep_rules`,
`collect_reply_rules`); the defaults of 71.3.5.2 are added when none counts a bounce class /
an FBL category.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from relay.adaptive.knobs import KNOBS
from relay.adaptive.options import AdaptiveSettings
from relay.adaptive.rules import (
    DEFAULT_REPLY_RULES,
    ReplyClass,
    ReplyRule,
    SweepRule,
    applicable_sweep_rules,
    parse_action,
)
from relay.config.model import Block

__all__ = ["build_settings", "collect_reply_rules", "collect_sweep_rules"]

_ADDRESS_SPLIT = re.compile(r"[\s,]+")


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
    default_sender: str | None = None,
) -> AdaptiveSettings:
    """Read one binding x domain's adaptive settings through `get(option) -> value`;
    `default_sender`: the alerts' sender when adaptive_alert_email_sender is unset."""
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
        alert_email_sender=get("adaptive_alert_email_sender") or default_sender,
        sweep_rule_enabled=sweep_enabled,
        sweep_rules=applicable_sweep_rules(sweep_rules, sweep_enabled),
        reply_rules=DEFAULT_REPLY_RULES if reply_rules is None else tuple(reply_rules),
        bounds=bounds,
        configured=configured,
    )


def _setting(block: Block, name: str) -> Any:
    found = block.settings.get(name)
    return None if found is None else found.value


def collect_sweep_rules(chain: Sequence[Block]) -> tuple[SweepRule, ...]:
    """The adaptive_sweep_rule stanzas along one binding x domain's scope chain (most specific
    first, as `relay.config.resolve.chain` returns it). A name seen in a more specific scope
    hides the same name further out, even when disabled; rules in a scope whose effective
    adaptive_sweep_rule_enabled is false do not apply; rules without codes are ignored.
    Defaults are not added here (see `applicable_sweep_rules`)."""
    enabled_at: list[bool] = [True] * len(chain)
    effective = True
    for index in range(len(chain) - 1, -1, -1):  # least specific first
        own = _setting(chain[index], "adaptive_sweep_rule_enabled")
        if own is not None:
            effective = bool(own)
        enabled_at[index] = effective
    seen: set[str] = set()
    rules: list[SweepRule] = []
    for index, block in enumerate(chain):
        for name, stanza in block.sweep_rules.items():
            if name in seen:
                continue
            seen.add(name)
            if not enabled_at[index]:
                continue
            codes = _setting(stanza, "codes")
            if not codes:
                continue
            low = _setting(stanza, "low_threshold")
            high = _setting(stanza, "high_threshold")
            low_action = _setting(stanza, "low_action") or ("throttle", "down")
            high_action = _setting(stanza, "high_action") or ("suspend", "4 hours")
            rules.append(
                SweepRule(
                    name,
                    tuple(str(c).lower() for c in codes),
                    5.0 if low is None else float(low),
                    parse_action(low_action),
                    10.0 if high is None else float(high),
                    parse_action(high_action),
                )
            )
    return tuple(rules)


def collect_reply_rules(chain: Sequence[Block]) -> tuple[ReplyRule, ...]:
    """The reply rules for one binding x domain: `adaptive_reply_rule` stanzas along the
    fallback chain (most specific first; the first of a name wins, `enabled = false` turns
    one off, built-in ones included) plus the built-in rules no stanza renamed."""
    found: dict[str, ReplyRule | None] = {}
    for block in chain:
        for name, rule_block in block.reply_rules.items():
            if name in found:
                continue
            settings = {key: s.value for key, s in rule_block.settings.items()}
            if not settings.get("enabled", True):
                found[name] = None
                continue
            limit = settings["threshold"]
            replies = {"4xx": "4", "5xx": "5"}.get(str(settings.get("replies", "any")), "any")
            found[name] = ReplyRule(
                name,
                re.compile(str(settings["pattern"]), re.IGNORECASE),
                parse_action(settings["action"], settings.get("options")),
                limit.count,
                limit.period,
                cast(ReplyClass, replies),
                str(settings.get("scope", "binding")),
            )
    rules = [rule for rule in found.values() if rule is not None]
    rules.extend(rule for rule in DEFAULT_REPLY_RULES if rule.name not in found)
    return tuple(rules)
