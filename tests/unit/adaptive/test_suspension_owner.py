"""The engine is the one writer of the suspension table the binding selector reads."""

import json

from relay.adaptive import state
from relay.adaptive.engine import AdaptiveEngine
from relay.adaptive.events import OutcomeKind
from relay.bind.suspensions import SuspensionTable

from .helpers import make_settings

NOW = 1_800_000_000.0


def test_operator_suspend_and_resume_reach_the_table() -> None:
    table = SuspensionTable()
    engine = AdaptiveEngine(suspensions=table)
    engine.suspend("b1", "Example.COM", NOW, 600, "operator")
    assert table.is_suspended("b1", "example.com", NOW + 1)
    assert [s.reason for s in table.all()] == ["operator"]
    version = table.version("example.com")
    engine.resume("b1", "example.com", NOW + 2)
    assert table.all() == []
    assert table.version("example.com") > version  # the selector rebuilds its rotation


def test_a_hold_that_ends_leaves_the_table() -> None:
    table = SuspensionTable()
    engine = AdaptiveEngine(suspensions=table)
    engine.suspend("b1", "example.com", NOW, 60, "operator")
    engine.due_actions(NOW + 59)
    assert table.is_suspended("b1", "example.com", NOW + 59)
    events = engine.due_actions(NOW + 61)
    assert [e.kind for e in events] == ["resume"]
    assert table.all() == []


def test_the_engines_own_suspension_reaches_the_table() -> None:
    table = SuspensionTable()
    engine = AdaptiveEngine(suspensions=table)
    settings = make_settings(
        adaptive_default_suspension_enabled=True,
        adaptive_attempt_threshold=10,
        adaptive_rejection_rate_suspension_percentage=30,
    )
    for i in range(10):
        engine.record(
            "b1", "example.com", OutcomeKind.PERMANENT, 550, "5.7.1", "no", NOW + i, settings
        )
    assert table.is_suspended("b1", "example.com", NOW + 10)


def test_saved_suspensions_come_back_into_the_given_table() -> None:
    engine = AdaptiveEngine()
    engine.suspend("b1", "example.com", NOW, 600, "operator")
    text = state.to_json(engine)
    table = SuspensionTable()
    restored, warning = state.from_json(text, suspensions=table)
    assert warning is None
    assert restored.suspensions is table
    assert table.is_suspended("b1", "example.com", NOW + 1)


def test_corrupt_state_leaves_no_partial_suspensions() -> None:
    engine = AdaptiveEngine()
    engine.suspend("b1", "example.com", NOW, 600, "operator")
    engine.suspend("b2", "example.com", NOW, 600, "operator")
    data = json.loads(state.to_json(engine))
    data["pairs"][1]["created"] = "not a time"  # read after the first pair's suspension
    text = json.dumps(data)
    table = SuspensionTable()
    restored, warning = state.from_json(text, suspensions=table)
    assert warning is not None and "corrupt" in warning
    assert table.all() == []
    assert restored.suspensions is table
