"""Settings for adaptive tests, built the way the compile step builds them: from a get()."""

from __future__ import annotations

from typing import Any

from relay.adaptive.events import Event
from relay.adaptive.options import AdaptiveSettings
from relay.adaptive.rules import ReplyRule, SweepRule
from relay.config.options import OPTIONS
from relay.wiring.adaptive import build_settings


def make_settings(
    sweep_rules: tuple[SweepRule, ...] = (),
    reply_rules: tuple[ReplyRule, ...] | None = (),
    **values: Any,
) -> AdaptiveSettings:
    table = {name: option.default_value() for name, option in OPTIONS.items()}
    table["adaptive_enabled"] = True
    table["adaptive_sweep_rule_enabled"] = False
    table.update(values)
    return build_settings(table.__getitem__, sweep_rules, reply_rules)


def kinds(events: list[Event]) -> list[str]:
    return [event.kind for event in events]
