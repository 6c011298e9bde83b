"""Binding selection: weights, suspensions, plumbing, explicit bindings, O(1) picks."""

from __future__ import annotations

from collections import Counter

import pytest

from relay.bind import selector as selector_module
from relay.bind.plumbing import is_plumbed
from relay.bind.rotation import smooth_sequence
from relay.bind.selector import Member, Selector
from relay.bind.suspensions import SuspensionTable


def always(_: str) -> bool:
    return True


def test_smooth_sequence_interleaves_by_weight() -> None:
    assert smooth_sequence([("a", 3), ("b", 1)]) == ("a", "a", "b", "a")
    assert Counter(smooth_sequence([("a", 2), ("b", 1), ("c", 0)])) == {"a": 2, "b": 1}
    assert smooth_sequence([("a", 0)]) == ()
    assert smooth_sequence([("a", 100), ("b", 50)]) == ("a", "b", "a")  # reduced by gcd


def test_picks_spread_by_weight() -> None:
    sel = Selector({"g": [Member("a", 1), Member("b", 2), Member("c", 0)]}, SuspensionTable())
    picks = Counter(sel.pick("g", "x.com", 0.0, always).binding for _ in range(300))
    assert picks == {"a": 100, "b": 200}


def test_suspended_binding_is_skipped_for_that_domain_only() -> None:
    table = SuspensionTable()
    sel = Selector({"g": [Member("a", 1), Member("b", 1)]}, table)
    table.suspend("a", "x.com", until=100.0, reason="test")
    assert {sel.pick("g", "x.com", 10.0, always).binding for _ in range(10)} == {"b"}
    assert {sel.pick("g", "y.com", 10.0, always).binding for _ in range(10)} == {"a", "b"}
    # Past its end the binding is back, though nobody has removed the entry yet.
    assert {sel.pick("g", "x.com", 100.0, always).binding for _ in range(10)} == {"a", "b"}


def test_all_suspended_waits_for_earliest_resumption() -> None:
    table = SuspensionTable()
    sel = Selector({"g": [Member("a", 1), Member("b", 1)]}, table)
    table.suspend("a", "x.com", until=300.0, reason="r")
    table.suspend("b", "x.com", until=200.0, reason="r")
    pick = sel.pick("g", "X.com", 10.0, always)
    assert pick.binding is None and pick.wait_until == 200.0


def test_unplumbed_bindings_are_never_picked() -> None:
    sel = Selector({"g": [Member("a", 1, plumbed=False), Member("b", 1)]}, SuspensionTable())
    assert {sel.pick("g", "x.com", 0.0, always).binding for _ in range(10)} == {"b"}
    only_unplumbed = Selector({"g": [Member("a", 1, plumbed=False)]}, SuspensionTable())
    assert only_unplumbed.pick("g", "x.com", 0.0, always).no_candidates


def test_full_bindings_are_skipped_and_all_full_reported() -> None:
    sel = Selector({"g": [Member("a", 1), Member("b", 1)]}, SuspensionTable())
    assert {sel.pick("g", "x.com", 0.0, lambda n: n == "b").binding for _ in range(6)} == {"b"}
    assert sel.pick("g", "x.com", 0.0, lambda n: False).all_full


def test_explicit_binding() -> None:
    table = SuspensionTable()
    sel = Selector({"g": [Member("a", 1), Member("b", 1)]}, table)
    assert sel.pick("g", "x.com", 0.0, always, binding="b").binding == "b"
    table.suspend("b", "x.com", until=50.0, reason="r")
    assert sel.pick("g", "x.com", 0.0, always, binding="b").wait_until == 50.0
    assert sel.pick("g", "x.com", 0.0, always, binding="nope").no_candidates


@pytest.mark.parametrize("size", [2, 1000])
def test_pick_cost_does_not_grow_with_group_size(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds = 0
    real = selector_module.smooth_sequence

    def counting(members: list[tuple[str, int]]) -> tuple[str, ...]:
        nonlocal builds
        builds += 1
        return real(members)

    monkeypatch.setattr(selector_module, "smooth_sequence", counting)
    table = SuspensionTable()
    sel = Selector({"g": [Member(f"b{i}", 1) for i in range(size)]}, table)
    # Half the group is suspended: probes still stop at the first candidate with room.
    for i in range(0, size, 2):
        table.suspend(f"b{i}", "x.com", until=1e9, reason="r")
    probes = 0

    def room(_: str) -> bool:
        nonlocal probes
        probes += 1
        return True

    for _ in range(500):
        assert sel.pick("g", "x.com", 0.0, room).binding is not None
    assert probes == 500  # one probe per pick, whatever the size
    assert builds == 1  # the rotation was built once, not per pick


def test_is_plumbed_on_loopback_and_not_elsewhere() -> None:
    assert is_plumbed(None)
    assert is_plumbed("127.0.0.2")
    assert not is_plumbed("192.0.2.1")  # TEST-NET-1: never configured here


def test_an_ended_suspension_is_not_a_wake_up_time() -> None:
    table = SuspensionTable()
    table.suspend("a", "x.com", until=100.0, reason="r")
    table.suspend("b", "x.com", until=300.0, reason="r")
    assert table.earliest_end(10.0) == 100.0
    assert table.earliest_end(100.0) == 300.0  # "a" ended; its entry waits to be lifted
    assert table.earliest_end(300.0) is None
