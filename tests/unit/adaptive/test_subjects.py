"""Reply rules with a sender scope (adaptive/subjects.py): what each scope holds."""

from __future__ import annotations

import dataclasses

import pytest

from relay.adaptive.rules import ReplyRule, reply_rule
from relay.adaptive.subjects import Destination, SubjectHold, SubjectRules

GMAIL = Destination("gmail.test", "gmail.test", "provider:google", "b1")
ROLLED = Destination("gmail.test", "provider:google", "provider:google", "b1")
ALONE = Destination("small.test", "small.test", None, "b2")
SUBJECTS: dict[str, str | None] = {"tenant": "acme", "campaign": "spring"}


def rule(
    scope: str, action: tuple[str, ...] = ("suspend", "1 hour"), threshold: str = "2/60"
) -> ReplyRule:
    return dataclasses.replace(
        reply_rule("content", "content rejected", threshold, action), scope=scope
    )


def fail(rules: SubjectRules, scope: str, where: Destination, now: float) -> list[SubjectHold]:
    return rules.record((rule(scope),), SUBJECTS, where, 550, "5.7.1 Message content rejected", now)


@pytest.mark.parametrize(
    ("scope", "where", "expected"),
    [
        ("tenant", GMAIL, ("tenant", "acme", "gmail.test", None)),
        ("tenant", ROLLED, ("tenant", "acme", "provider:google", None)),
        ("campaign", GMAIL, ("campaign", "spring", "gmail.test", None)),
        ("tenant_binding", GMAIL, ("tenant", "acme", "gmail.test", "b1")),
        ("tenant_binding", ROLLED, ("tenant", "acme", "gmail.test", "b1")),
        ("tenant_provider", GMAIL, ("tenant", "acme", "provider:google", None)),
        ("tenant_provider", ALONE, ("tenant", "acme", "small.test", None)),
    ],
)
def test_each_scope_holds_its_subject_and_target(
    scope: str, where: Destination, expected: tuple[str, str, str, str | None]
) -> None:
    rules = SubjectRules()
    assert fail(rules, scope, where, 0.0) == []  # one of two
    (hold,) = fail(rules, scope, where, 10.0)
    assert (hold.kind, hold.subject, hold.target, hold.binding) == expected
    assert hold.duration == 3600.0
    assert "content" in hold.reason


def test_tenant_binding_counts_each_binding_apart() -> None:
    rules = SubjectRules()
    other = dataclasses.replace(GMAIL, binding="b2")
    assert fail(rules, "tenant_binding", GMAIL, 0.0) == []
    assert fail(rules, "tenant_binding", other, 1.0) == []  # b2's first, not b1's second
    (hold,) = fail(rules, "tenant_binding", other, 2.0)
    assert hold.binding == "b2"


def test_tenant_provider_counts_across_the_providers_domains() -> None:
    rules = SubjectRules()
    other = dataclasses.replace(GMAIL, domain="googlemail.test", key="googlemail.test")
    assert fail(rules, "tenant_provider", GMAIL, 0.0) == []
    (hold,) = fail(rules, "tenant_provider", other, 1.0)
    assert hold.target == "provider:google"


def test_replies_outside_the_period_do_not_add_up() -> None:
    rules = SubjectRules()
    assert fail(rules, "tenant_binding", GMAIL, 0.0) == []
    assert fail(rules, "tenant_binding", GMAIL, 61.0) == []
    assert len(fail(rules, "tenant_binding", GMAIL, 62.0)) == 1


def test_no_subject_no_binding_scope_and_throttle_actions_hold_nothing() -> None:
    rules = SubjectRules()
    text = "5.7.1 Message content rejected"
    for _ in range(3):
        assert (
            rules.record((rule("tenant_provider"),), {"campaign": "c"}, GMAIL, 550, text, 0.0) == []
        )
        assert rules.record((rule("binding"),), SUBJECTS, GMAIL, 550, text, 0.0) == []
        throttle = rule("tenant_binding", ("throttle", "down"))
        assert rules.record((throttle,), SUBJECTS, GMAIL, 550, text, 0.0) == []
    assert rules.record((rule("tenant_binding"),), SUBJECTS, GMAIL, 550, "mailbox full", 0.0) == []
