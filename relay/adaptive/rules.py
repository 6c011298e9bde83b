"""Adaptive rules as data: Momentum's sweep rules (bounce-class and FBL rates) and relay's own
reply-text rules (a receiver that says "too many connections" in words).

Sweep rule (modules.adaptive.md, 71.3.5): `codes` ("bc:10" "fbl:abuse"), a rate in percent
summed over those codes, `low_threshold`/`low_action`, `high_threshold`/`high_action`. A bounce
rule's rate is failures of those classes / attempts in the stats window and needs
`adaptive_attempt_threshold` attempts; an FBL rule's rate is complaints / deliveries in the FBL
window and needs `adaptive_fbl_volume_threshold` deliveries.

Reply rule (relay's own): a regular expression over a failure reply's text, a threshold
"N matches within period seconds" per binding x domain, and an action.

Actions: ("throttle" "down"|"up") moves the throttle family (or the rule's own options) one
step, ("suspend" ["4 hours"]) and ("blackhole" ["1 hour"]) hold the binding x domain for the
duration (adaptive_default_suspension when none is given).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from relay.adaptive.knobs import THROTTLE_FAMILY, Direction, knob_name
from relay.config import values as v
from relay.config.errors import ValueProblem

__all__ = [
    "DEFAULT_BOUNCE_RULE",
    "DEFAULT_FBL_RULE",
    "DEFAULT_REPLY_RULES",
    "Action",
    "ReplyRule",
    "SweepRule",
    "applicable_sweep_rules",
    "parse_action",
    "reply_rule",
]

Verb = Literal["throttle", "suspend", "blackhole"]


@dataclass(frozen=True, slots=True)
class Action:
    verb: Verb
    direction: Direction = "down"  # throttle only
    duration: float | None = None  # suspend / blackhole; None: adaptive_default_suspension
    options: tuple[str, ...] = THROTTLE_FAMILY  # throttle only: the options moved

    @property
    def verb_hold(self) -> Literal["suspension", "blackhole"]:
        return "blackhole" if self.verb == "blackhole" else "suspension"

    def describe(self) -> str:
        if self.verb == "throttle":
            return f"throttle {self.direction} {' '.join(self.options)}"
        if self.duration is None:
            return self.verb
        return f"{self.verb} {v.display(self.duration)}s"


def parse_action(form: Sequence[str], options: Sequence[str] | None = None) -> Action:
    """("throttle" "down"), ("suspend" "4 hours"), ("blackhole" "1 hour"), ("suspend")."""
    items = [str(item).strip() for item in form]
    if not items:
        raise ValueError("empty action")
    verb = items[0].lower()
    moved = tuple(knob_name(o) for o in options) if options else THROTTLE_FAMILY
    if verb == "throttle":
        if len(items) != 2 or items[1].lower() not in ("down", "up"):
            raise ValueError(f'{" ".join(items)!r}: expected ("throttle" "down"|"up")')
        direction: Direction = "down" if items[1].lower() == "down" else "up"
        return Action("throttle", direction, None, moved)
    if verb in ("suspend", "blackhole") and len(items) in (1, 2):
        duration = None
        if len(items) == 2:
            try:
                duration = v.parse_duration(items[1])
            except ValueProblem as err:
                raise ValueError(str(err)) from None
        return Action("suspend" if verb == "suspend" else "blackhole", "down", duration)
    raise ValueError(f"{' '.join(items)!r} is not an action")


@dataclass(frozen=True, slots=True)
class SweepRule:
    name: str
    codes: tuple[str, ...]  # "bc:10", "fbl:abuse" (lowercased)
    low_threshold: float = 5.0  # percent
    low_action: Action = Action("throttle", "down")
    high_threshold: float = 10.0  # percent
    high_action: Action = Action("suspend", "down", 4 * 3600.0)

    @property
    def kind(self) -> Literal["bounce", "fbl", "mixed", "none"]:
        bounce = any(code.startswith("bc:") for code in self.codes)
        fbl = any(code.startswith("fbl:") for code in self.codes)
        if bounce and fbl:
            return "mixed"
        return "bounce" if bounce else "fbl" if fbl else "none"

    def action_for(self, rate: float) -> Action | None:
        """The action a rate (percent) calls for: high beats low; None below both."""
        if rate >= self.high_threshold:
            return self.high_action
        if rate >= self.low_threshold:
            return self.low_action
        return None


DEFAULT_BOUNCE_RULE = SweepRule(
    "default_bounce_rule",
    ("bc:10", "bc:24"),
    3.0,
    Action("throttle", "down"),
    10.0,
    Action("suspend", "down", 4 * 3600.0),
)
DEFAULT_FBL_RULE = SweepRule(
    "default_fbl_rule",
    ("fbl:abuse",),
    0.2,
    Action("throttle", "down"),
    0.5,
    Action("suspend", "down", 4 * 3600.0),
)


def applicable_sweep_rules(
    configured: Iterable[SweepRule], enabled: bool = True
) -> tuple[SweepRule, ...]:
    """The rules that apply to one binding x domain: configured rules with codes, minus those
    that mix bounce codes and FBL categories, plus the default bounce / FBL rule when no rule
    counts a bounce class / FBL category (71.3.5.1). Nothing when sweep rules are disabled."""
    if not enabled:
        return ()
    rules = [r for r in configured if r.kind in ("bounce", "fbl")]
    if not any(r.kind == "bounce" for r in rules):
        rules.append(DEFAULT_BOUNCE_RULE)
    if not any(r.kind == "fbl" for r in rules):
        rules.append(DEFAULT_FBL_RULE)
    return tuple(rules)


ReplyClass = Literal["any", "4", "5"]


@dataclass(frozen=True, slots=True)
class ReplyRule:
    """`count` failure replies matching `pattern` within `period` seconds -> `action`."""

    name: str
    pattern: re.Pattern[str]
    action: Action
    count: int = 1
    period: float = 60.0
    replies: ReplyClass = "any"  # only 4xx, only 5xx, or any failure (no reply included)
    # What the rule acts on: the binding x domain (adaptive's own), or the message's tenant
    # or campaign x domain (adaptive/subjects.py: holds, not suspensions of the IP).
    scope: str = "binding"

    def matches(self, code: int | None, text: str) -> bool:
        if self.replies != "any" and (code is None or str(code // 100) != self.replies):
            return False
        return self.pattern.search(text) is not None


def reply_rule(
    name: str,
    pattern: str,
    threshold: str,
    action: Sequence[str],
    options: Sequence[str] | None = None,
    replies: ReplyClass = "any",
) -> ReplyRule:
    """Build a reply rule from text: threshold "N/period" ("3/60", "10/10m"), action as in a
    sweep rule, `options` the options a throttle action moves (default: the throttle family)."""
    limit = v.parse_throttle(threshold)
    if limit is None:
        raise ValueError(f"{threshold!r}: a reply rule needs a threshold of at least 1")
    return ReplyRule(
        name,
        re.compile(pattern, re.IGNORECASE),
        parse_action(action, options),
        limit.count,
        limit.period,
        replies,
    )


DEFAULT_REPLY_RULES: tuple[ReplyRule, ...] = (
    reply_rule(
        "too_many_connections",
        r"too many (concurrent |simultaneous |smtp )?(connections|sessions)|"
        r"connection (rate )?limit|too many hosts|maximum (number of )?connections",
        "3/60",
        ("throttle", "down"),
        ("max_outbound_connections",),
        "4",
    ),
    reply_rule(
        "rate_limited",
        r"rate ?limit|ratelimit|too many (messages|mails|emails)|sending rate|throttl|"
        r"try (again )?later|temporarily deferred|unusual (rate|volume)|\[TS[S]?0[1-4]\]",
        "5/60",
        ("throttle", "down"),
        ("outbound_throttle_messages",),
        "4",
    ),
    reply_rule(
        "listed_ip",
        r"block ?list|black ?list|blocked using|listed (at|in|on|by)|spamhaus|"
        r"poor reputation|on our block list",
        "10/600",
        ("suspend", "1 hour"),
        None,
        "5",
    ),
)
