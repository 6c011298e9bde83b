"""Reply rules that blame the sender rather than the IP: counted per sender x destination
instead of per binding x domain, so a receiver's "message content rejected" holds that
sender's mail (schedule/holds.py) and not the shared IP. Pure: callers pass the time.

A rule's `scope` says what a suspend action holds (SCOPES):
- `tenant` / `campaign`: the message's tenant / campaign x domain (x provider with
  adaptive_provider_rollup: the destination's adaptive key);
- `tenant_binding`: the tenant x the binding that sent x domain (the tenant's mail moves to
  the group's other bindings);
- `tenant_provider`: the tenant x the domain's provider (every domain of it; a domain in no
  provider: the tenant x that domain).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from relay.adaptive.rules import ReplyRule

# scope -> (which subject the message gives, what the hold covers)
SCOPES: dict[str, tuple[str, str]] = {
    "tenant": ("tenant", "destination"),
    "campaign": ("campaign", "destination"),
    "tenant_binding": ("tenant", "binding"),
    "tenant_provider": ("tenant", "provider"),
}
SUBJECT_SCOPES = tuple(SCOPES)
DEFAULT_HOLD = 4 * 3600.0  # an action without a duration


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the failed message went, in the terms a hold can name."""

    domain: str
    key: str  # adaptive's key: the domain, or the provider's rollup key (with rollup)
    provider_key: str | None  # "provider:NAME" when the domain is in a provider
    binding: str


@dataclass(frozen=True, slots=True)
class SubjectHold:
    """Hold `subject`'s mail (a tenant or a campaign) to `target` (on `binding` only, if
    set) for `duration`."""

    kind: str  # "tenant" | "campaign"
    subject: str
    target: str  # a domain, or a provider's rollup key
    duration: float
    reason: str
    binding: str | None = None


def hold_target(scope: str, where: Destination) -> tuple[str, str | None]:
    """(target, binding) a rule of `scope` holds for a failure at `where`."""
    covers = SCOPES[scope][1]
    if covers == "binding":
        return where.domain, where.binding
    if covers == "provider":
        return where.provider_key or where.domain, None
    return where.key, None


class SubjectRules:
    def __init__(self) -> None:
        # (rule, kind, subject, target, binding) -> times of the matching replies (the last
        # `count`)
        self._seen: dict[tuple[str, str, str, str, str], deque[float]] = {}

    def record(
        self,
        rules: tuple[ReplyRule, ...],
        subjects: dict[str, str | None],
        where: Destination,
        code: int | None,
        text: str,
        now: float,
    ) -> list[SubjectHold]:
        """One failure reply for a message of these subjects ({"tenant": t, "campaign": c})
        sent through `where`; returns the holds its rules now call for."""
        out: list[SubjectHold] = []
        for rule in rules:
            scope = SCOPES.get(rule.scope)
            if scope is None:
                continue  # scope = binding: the engine's own
            kind = scope[0]
            subject = subjects.get(kind)
            if subject is None or not rule.matches(code, text):
                continue
            target, binding = hold_target(rule.scope, where)
            key = (rule.name, kind, subject, target, binding or "")
            seen = self._seen.get(key)
            if seen is None or seen.maxlen != rule.count:
                seen = self._seen[key] = deque(seen or (), maxlen=rule.count)
            seen.append(now)
            if len(seen) >= rule.count and now - seen[0] <= rule.period:
                seen.clear()
                if rule.action.verb == "throttle":
                    continue  # nothing to throttle for one sender: suspensions only
                out.append(
                    SubjectHold(
                        kind,
                        subject,
                        target,
                        rule.action.duration or DEFAULT_HOLD,
                        f"reply rule {rule.name}: {rule.count} x {text[:80]!r}",
                        binding,
                    )
                )
        return out
