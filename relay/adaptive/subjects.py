"""Reply rules that blame the sender rather than the IP (`scope = tenant` or `campaign`):
counted per (scope, tenant or campaign, destination) instead of per binding x domain, so a
receiver's "message content rejected" holds that sender's mail (schedule/holds.py) and not
the shared IP. Pure: callers pass the time."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from relay.adaptive.rules import ReplyRule

SUBJECT_SCOPES = ("tenant", "campaign")
DEFAULT_HOLD = 4 * 3600.0  # an action without a duration


@dataclass(frozen=True, slots=True)
class SubjectHold:
    """Hold `subject`'s mail (a tenant or a campaign) to `target` for `duration`."""

    kind: str  # "tenant" | "campaign"
    subject: str
    target: str  # a domain, or a provider's rollup key
    duration: float
    reason: str


class SubjectRules:
    def __init__(self) -> None:
        # (rule, kind, subject, target) -> times of the matching replies (the last `count`)
        self._seen: dict[tuple[str, str, str, str], deque[float]] = {}

    def record(
        self,
        rules: tuple[ReplyRule, ...],
        subjects: dict[str, str | None],
        target: str,
        code: int | None,
        text: str,
        now: float,
    ) -> list[SubjectHold]:
        """One failure reply for a message of these subjects ({"tenant": t, "campaign": c})
        to `target`; returns the holds its rules now call for."""
        out: list[SubjectHold] = []
        for rule in rules:
            subject = subjects.get(rule.scope)
            if subject is None or not rule.matches(code, text):
                continue
            key = (rule.name, rule.scope, subject, target)
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
                        rule.scope,
                        subject,
                        target,
                        rule.action.duration or DEFAULT_HOLD,
                        f"reply rule {rule.name}: {rule.count} x {text[:80]!r}",
                    )
                )
        return out
