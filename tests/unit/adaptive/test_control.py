import json
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from relay.adaptive import state
from relay.adaptive.engine import AdaptiveEngine
from relay.adaptive.events import Adjust, OutcomeKind, Resume
from relay.config.values import Throttle as Rate

from .helpers import kinds, make_settings

D = OutcomeKind.DELIVERED
T = OutcomeKind.TEMPORARY


def _alerting(**values: Any):  # type: ignore[no-untyped-def]
    return make_settings(
        reply_rules=None,
        max_outbound_connections=64,
        adaptive_max_outbound_connections=(1, 64),
        adaptive_adjustment_interval=60.0,
        adaptive_notification_interval=3600.0,
        adaptive_alert_email_destination="ops@example.com noc@example.com",
        adaptive_alert_email_sender="relay@example.com",
        **values,
    )


def _421(engine: AdaptiveEngine, binding: str, now: float, s) -> None:  # type: ignore[no-untyped-def]
    engine.record(binding, "mx.example", T, 421, "4.7.0", "Too many connections", now, s)


def test_notifications_one_per_interval_per_pair_and_kind() -> None:
    s = _alerting()
    engine = AdaptiveEngine()
    for t in range(0, 400, 5):  # 421s: throttles at 10, 70, ... 310 (64 -> 32 ... -> 1)
        _421(engine, "b1", float(t), s)
        _421(engine, "b2", float(t), s)
    assert kinds(engine.due_actions(400.0)).count("throttle") == 12
    mails = engine.notifications(400.0)
    assert [(m.binding, m.kind, m.at) for m in mails] == [
        ("b1", "throttle", 10.0),
        ("b2", "throttle", 10.0),
    ]
    mail = mails[0]
    assert mail.recipients == ("ops@example.com", "noc@example.com")
    assert mail.sender == "relay@example.com"
    assert "b1" in mail.subject and "mx.example" in mail.subject and "throttle" in mail.subject
    assert "max_outbound_connections 64 -> 32" in mail.body
    assert engine.notifications(400.0) == []
    # a suspension is another kind of event: alerted at once
    engine.suspend("b1", "mx.example", 500.0, 60.0, "operator", s)
    (suspended,) = engine.notifications(500.0)
    assert suspended.kind == "suspension"
    # an hour after the first throttle alert the next one goes out, counting those held back
    engine.override("b1", "mx.example", "max_outbound_connections", 64, 3700.0)
    engine.reset("b1", "mx.example", 3700.0)
    for t in range(3700, 3800, 5):
        _421(engine, "b1", float(t), s)
    (later,) = engine.notifications(3800.0)
    assert (later.kind, later.at, later.suppressed) == ("throttle", 3710.0, 5)
    assert "5 earlier throttle alert(s)" in later.body


def test_notifications_only_for_listed_events_and_with_a_destination() -> None:
    engine = AdaptiveEngine()
    only_suspensions = _alerting(adaptive_notification_events=("suspension",))
    for t in range(0, 30, 5):
        _421(engine, "b1", float(t), only_suspensions)
    assert kinds(engine.due_actions(30.0)) == ["throttle"]
    assert engine.notifications(30.0) == []
    nobody = make_settings(reply_rules=None, adaptive_max_outbound_connections=(1, 64))
    for t in range(0, 30, 5):
        _421(engine, "b2", float(t), nobody)
    assert kinds(engine.due_actions(30.0)) == ["throttle"]
    assert engine.notifications(30.0) == []


def test_override_reset_suspend_resume() -> None:
    s = _alerting()
    engine = AdaptiveEngine()
    event = engine.override("b", "MX.example", "adaptive_max_outbound_connections", 7, 0.0)
    assert event == Adjust(
        "b", "mx.example", "max_outbound_connections", None, 7, "operator override", 0.0
    )
    assert engine.live_value("b", "mx.example", "max_outbound_connections", 64, s) == 7
    for t in range(0, 300, 5):  # the engine leaves an overridden option alone
        _421(engine, "b", float(t), s)
    assert engine.live_value("b", "mx.example", "max_outbound_connections", 64, s) == 7
    assert kinds(engine.due_actions(300.0)) == ["throttle"]  # the override itself

    engine.suspend("b", "mx.example", 300.0, 3600.0, "maintenance")
    resets = engine.reset("b", "mx.example", 301.0)
    assert [(e.option, e.old, e.new) for e in resets] == [("max_outbound_connections", 7, None)]
    assert engine.live_value("b", "mx.example", "max_outbound_connections", 64, s) == 64
    hold = engine.suspension("b", "mx.example", 302.0)
    assert hold is not None and hold.reason == "maintenance"  # reset keeps the suspension
    assert engine.resume("b", "mx.example", 303.0) == [Resume("b", "mx.example", "operator", 303.0)]
    assert engine.suspension("b", "mx.example", 303.0) is None
    assert engine.resume("b", "mx.example", 304.0) == []
    assert engine.resume("nobody", "mx.example", 304.0) == []
    assert engine.reset("nobody", "mx.example", 304.0) == []
    # the stale expiry entry of the lifted suspension yields nothing
    assert kinds(engine.due_actions(5000.0)) == ["suspension", "throttle", "resume"]


def test_snapshot_lists_every_pair() -> None:
    s = _alerting()
    engine = AdaptiveEngine()
    engine.record("b2", "z.example", D, 250, None, "ok", 0.0, s)
    engine.override("b1", "a.example", "max_outbound_connections", 3, 0.0)
    engine.suspend("b1", "a.example", 0.0, 100.0)
    snaps = engine.snapshot(50.0)
    assert [(x.binding, x.domain) for x in snaps] == [("b1", "a.example"), ("b2", "z.example")]
    assert snaps[0].overrides == {"max_outbound_connections": 3}
    assert snaps[0].suspension is not None and snaps[0].suspension.until == 100.0
    assert snaps[1].delivered == 1
    assert engine.snapshot(150.0)[0].suspension is None


def _busy_engine() -> AdaptiveEngine:
    s = _alerting(adaptive_outbound_throttle_messages=(Rate(10, 60.0), Rate(100, 60.0)))
    engine = AdaptiveEngine()
    for t in range(0, 100, 5):
        _421(engine, "b1", float(t), s)
        engine.record("b2", "mx.example", D, 250, None, "ok", float(t), s)
        engine.record(
            "b2", "mx.example", T, 451, None, "Rate limited, try again later", float(t), s
        )
    engine.suspend("b3", "mx.example", 100.0, 600.0, "operator")
    engine.record_complaint("b2", "mx.example", "abuse", 100.0, s)
    engine.due_actions(100.0)
    engine.notifications(100.0)
    return engine


def test_state_round_trip(tmp_path: Path) -> None:
    engine = _busy_engine()
    text = state.to_json(engine)
    restored, warning = state.from_json(text)
    assert warning is None
    assert state.to_json(restored) == text
    assert restored.snapshot(101.0) == engine.snapshot(101.0)
    assert restored.alert_times == engine.alert_times
    live = restored.snapshot()[1].live
    assert live["outbound_throttle_messages"] == Rate(25, 60.0)  # 100 -> 50 -> 25
    # the restored suspension ends on time
    assert restored.next_due() == 700.0
    assert kinds(restored.due_actions(700.0)) == ["resume"]

    path = tmp_path / "adaptive.json"
    state.save(engine, path)
    assert [p.name for p in tmp_path.iterdir()] == ["adaptive.json"]  # no temp file left
    loaded, warning = state.load(path)
    assert warning is None
    assert loaded.snapshot(101.0) == engine.snapshot(101.0)


def test_corrupt_or_missing_state_starts_empty(tmp_path: Path) -> None:
    missing, warning = state.load(tmp_path / "none.json")
    assert warning is None and missing.snapshot() == []
    for content in (
        b"{not json",
        b'{"format": "something else"}',
        b"\xff\xfe\x00",
        b'{"format": "relay-adaptive-state/1", "pairs": [{"binding": 1}]}',
    ):
        path = tmp_path / "state.json"
        path.write_bytes(content)
        engine, warning = state.load(path)
        assert engine.snapshot() == []
        assert warning is not None and str(path) in warning


def test_window_shape_change_keeps_values_and_drops_counts() -> None:
    from relay.adaptive.engine import EngineConfig

    engine = _busy_engine()
    restored, warning = state.from_json(state.to_json(engine), EngineConfig(stats_window=60.0))
    assert warning is not None and "dropped" in warning
    before = {(x.binding, x.domain): x.live for x in engine.snapshot()}
    after = {(x.binding, x.domain): x.live for x in restored.snapshot()}
    assert before == after
    assert all(x.attempts == 0 for x in restored.snapshot())
    json.loads(state.to_json(restored))


def _calls_in_one_record(pairs: int) -> int:
    s = _alerting()
    engine = AdaptiveEngine()
    for i in range(pairs):
        engine.record(f"b{i % 50}", f"d{i}.example", D, 250, None, "ok", 0.0, s)
        engine.record(
            f"b{i % 50}", f"d{i}.example", T, 421, "4.7.0", "Too many connections", 0.0, s
        )
    calls = 0

    def count(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        calls += 1

    sys.setprofile(count)
    try:
        engine.record("b0", "d0.example", T, 421, "4.7.0", "Too many connections", 30.0, s)
    finally:
        sys.setprofile(None)
    return calls


def test_record_cost_does_not_grow_with_the_number_of_pairs() -> None:
    small = _calls_in_one_record(10)
    large = _calls_in_one_record(5000)
    assert small > 0
    assert large == small


def test_a_fired_reply_rule_does_not_fire_again_on_spent_matches_after_a_restart() -> None:
    """adaptive_scope = global: the time this node last fired a rule is saved, so the other
    nodes' matches it spent (still in Redis, read again after the restart) stay spent; they
    fired the rule a second time on a restarted node."""
    from relay.adaptive.rules import reply_rule

    rule = reply_rule("slow", r"slow down", "3/60", ("throttle", "down"), replies="4")
    s = make_settings(
        reply_rules=(rule,),
        adaptive_outbound_throttle_messages=(Rate(10, 60.0), Rate(100, 60.0)),
        adaptive_adjustment_interval=1.0,  # a second throttle may follow soon after
    )
    theirs = {"slow": (0.5, 1.0)}  # two matches on another node
    engine = AdaptiveEngine()
    engine.record("b", "d", T, 450, None, "please slow down", 2.0, s)  # and one here
    engine.set_remote("b", "d", {}, {}, 2.0, s, matches=theirs)
    assert [e for e in engine.due_actions(2.0) if isinstance(e, Adjust)], "3 in 60 s: fired"
    restored, warning = state.from_json(state.to_json(engine))
    assert warning is None
    restored.set_remote("b", "d", {}, {}, 4.0, s, matches=theirs)  # the first sync after
    restored.record("b", "d", T, 450, None, "please slow down", 4.0, s)
    again = [e for e in restored.due_actions(4.0) if isinstance(e, Adjust)]
    assert again == [], "the other node's spent matches fired the rule again"
    for t in (5.0, 6.0):  # three new ones since it fired: it fires again
        restored.record("b", "d", T, 450, None, "please slow down", t, s)
    assert [e for e in restored.due_actions(6.0) if isinstance(e, Adjust)]
