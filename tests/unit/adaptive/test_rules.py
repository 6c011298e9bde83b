import pytest

from relay.adaptive.engine import AdaptiveEngine
from relay.adaptive.events import Adjust, Blackhole, OutcomeKind, Suspend
from relay.adaptive.knobs import KNOBS, step
from relay.adaptive.rules import (
    DEFAULT_BOUNCE_RULE,
    DEFAULT_FBL_RULE,
    Action,
    SweepRule,
    applicable_sweep_rules,
    parse_action,
    reply_rule,
)
from relay.config import loads, resolve
from relay.config.resolve import chain
from relay.config.values import Throttle as Rate
from relay.wiring.adaptive import build_settings, collect_sweep_rules

from .helpers import kinds, make_settings

D = OutcomeKind.DELIVERED
P = OutcomeKind.PERMANENT


def test_parse_action_forms() -> None:
    assert parse_action(("throttle", "down")) == Action("throttle", "down")
    assert parse_action(("Throttle", "UP")).direction == "up"
    assert parse_action(("suspend", "4 hours")) == Action("suspend", "down", 14400.0)
    assert parse_action(("suspend",)).duration is None
    assert parse_action(("blackhole", "30m")) == Action("blackhole", "down", 1800.0)
    for bad in ((), ("throttle",), ("throttle", "sideways"), ("explode",), ("suspend", "soon")):
        with pytest.raises(ValueError):
            parse_action(bad)


def test_defaults_are_added_and_mixed_rules_ignored() -> None:
    assert applicable_sweep_rules(()) == (DEFAULT_BOUNCE_RULE, DEFAULT_FBL_RULE)
    assert applicable_sweep_rules((), enabled=False) == ()
    mine = SweepRule("mine", ("bc:50",))
    mixed = SweepRule("mixed", ("bc:10", "fbl:abuse"))
    empty = SweepRule("empty", ())
    assert applicable_sweep_rules((mine, mixed, empty)) == (mine, DEFAULT_FBL_RULE)
    assert DEFAULT_BOUNCE_RULE.codes == ("bc:10", "bc:24")
    assert (DEFAULT_FBL_RULE.low_threshold, DEFAULT_FBL_RULE.high_threshold) == (0.2, 0.5)


def test_action_for_thresholds() -> None:
    rule = SweepRule("r", ("bc:10",), 3.0, Action("throttle", "down"), 10.0, Action("suspend"))
    assert rule.action_for(2.9) is None
    assert rule.action_for(3.0) == Action("throttle", "down")
    assert rule.action_for(10.0) == Action("suspend")


CONFIG = """
adaptive_enabled = true
adaptive_sweep_rule "fbl" {
  codes = ("fbl:abuse")
  low_threshold = 0.2
  high_threshold = 0.5
  high_action = ("suspend" "2 hours")
}
binding_group "g" {
  binding "b1" {
    adaptive_sweep_rule_enabled = 0
    adaptive_sweep_rule "rule1" { codes = ("bc:24") }
    domain "d1.example" {
      adaptive_sweep_rule_enabled = 1
      adaptive_max_outbound_connections = ( 2 20 )
      adaptive_outbound_throttle_messages = ( "10/60" "100/60" )
      adaptive_alert_email_destination = "ops@example.com, noc@example.com"
      adaptive_sweep_rule "rule2" { codes = ("bc:10") low_threshold = 2 }
      adaptive_sweep_rule "fbl" { codes = ("fbl:abuse" "fbl:fraud") }
    }
  }
  binding "b2" { }
}
"""


def test_sweep_rules_and_settings_from_the_configuration() -> None:
    config = loads(CONFIG)

    def settings_for(binding: str, domain: str):  # type: ignore[no-untyped-def]

        rules = collect_sweep_rules(chain(config, binding=binding, domain=domain))
        return build_settings(
            lambda name: resolve(config, name, binding=binding, domain=domain).value, rules
        )

    s = settings_for("b1", "d1.example")
    assert s.enabled and s.sweep_rule_enabled
    # rule1 is in a scope where sweep rules are disabled; "fbl" of the domain hides the global
    assert [(r.name, r.codes, r.low_threshold) for r in s.sweep_rules] == [
        ("rule2", ("bc:10",), 2.0),
        ("fbl", ("fbl:abuse", "fbl:fraud"), 5.0),
    ]
    assert s.bounds == {
        "max_outbound_connections": (2, 20),
        "outbound_throttle_messages": (Rate(10, 60.0), Rate(100, 60.0)),
    }
    assert s.alert_email_destination == ("ops@example.com", "noc@example.com")
    # elsewhere in b1 sweep rules are off; b2 gets the global fbl rule and the default bounce rule
    assert settings_for("b1", "other.example").sweep_rules == ()
    b2 = settings_for("b2", "other.example")
    assert [r.name for r in b2.sweep_rules] == ["fbl", "default_bounce_rule"]
    assert b2.sweep_rules[0].high_action == Action("suspend", "down", 7200.0)
    assert b2.bounds == {}


def _stream(engine: AdaptiveEngine, binding: str, every: int, count: int, s, start: int = 0):  # type: ignore[no-untyped-def]
    """Attempts number start..start+count-1 (one a second); every `every`-th is a bounce."""
    for i in range(start, start + count):
        now = float(i)
        if i % every == 0:
            engine.record(binding, "d.example", P, 550, "5.1.1", "user unknown", now, s)
        else:
            engine.record(binding, "d.example", D, 250, None, "ok", now, s)


def test_bounce_sweep_rule_low_and_high_actions() -> None:
    rule = SweepRule(
        "users", ("bc:10",), 5.0, Action("throttle", "down"), 20.0, parse_action(("suspend", "1h"))
    )
    s = make_settings(
        (rule,),
        adaptive_sweep_rule_enabled=True,
        adaptive_attempt_threshold=100,
        adaptive_max_outbound_connections=(1, 20),
        max_outbound_connections=20,
    )
    assert s.sweep_rules[0] is rule
    engine = AdaptiveEngine()
    _stream(engine, "low", 10, 99, s)  # 10 %: only once 100 attempts are in
    _stream(engine, "high", 4, 99, s)  # 25 %
    _stream(engine, "fine", 50, 300, s)  # 2 %
    assert engine.due_actions(99.0) == []
    assert engine.live_value("low", "d.example", "max_outbound_connections", 20, s) == 20
    _stream(engine, "low", 10, 1, s, start=99)
    _stream(engine, "high", 4, 1, s, start=99)
    events = engine.due_actions(100.0)
    assert kinds(events) == ["throttle", "suspension"]
    throttle, suspend = events
    assert isinstance(throttle, Adjust) and (throttle.binding, throttle.new) == ("low", 10)
    assert "users" in throttle.reason and "10.0%" in throttle.reason
    assert isinstance(suspend, Suspend) and suspend.binding == "high"
    assert suspend.until == 99.0 + 3600.0
    assert engine.live_value("low", "d.example", "max_outbound_connections", 20, s) == 10
    assert engine.suspension("high", "d.example", 100.0) is not None
    assert engine.suspension("fine", "d.example", 100.0) is None


def test_blackhole_action() -> None:
    rule = SweepRule("bh", ("bc:10",), 1.0, parse_action(("blackhole", "10 minutes")), 90.0)
    s = make_settings((rule,), adaptive_sweep_rule_enabled=True, adaptive_attempt_threshold=10)
    engine = AdaptiveEngine()
    _stream(engine, "b", 2, 10, s)
    (event,) = engine.due_actions(10.0)
    assert isinstance(event, Blackhole) and event.until == 9.0 + 600.0
    assert engine.blackhole("b", "d.example", 10.0) is not None
    assert engine.suspension("b", "d.example", 10.0) is None
    assert kinds(engine.due_actions(609.0)) == ["resume"]
    assert engine.blackhole("b", "d.example", 609.0) is None


def test_fbl_rules_need_the_delivery_volume() -> None:
    s = make_settings(
        adaptive_sweep_rule_enabled=True,
        adaptive_fbl_volume_threshold=1000,
        adaptive_max_outbound_connections=(1, 20),
        max_outbound_connections=20,
    )
    assert DEFAULT_FBL_RULE in s.sweep_rules
    engine = AdaptiveEngine()
    for i in range(999):
        engine.record("b", "isp.example", D, 250, None, "ok", float(i) / 10, s)
    for _ in range(4):
        engine.record_complaint("b", "isp.example", "abuse", 100.0, s)
    assert engine.due_actions(100.0) == []  # 999 deliveries: below the volume threshold
    engine.record("b", "isp.example", D, 250, None, "ok", 100.0, s)
    # any complaint re-evaluates; "other" is not counted: 4/1000 = 0.4 % -> low action
    engine.record_complaint("b", "isp.example", "other", 101.0, s)
    assert kinds(engine.due_actions(101.0)) == ["throttle"]
    engine.record_complaint("b", "isp.example", "Abuse", 102.0, s)  # 5/1000 = 0.5 %: high
    events = engine.due_actions(102.0)
    assert kinds(events) == ["suspension"]
    assert "0.50%" in events[0].reason
    (snap,) = engine.snapshot(103.0)
    assert snap.complaints == {"fbl:abuse": 5, "fbl:other": 1}


def test_fbl_low_threshold_throttles() -> None:
    s = make_settings(
        adaptive_sweep_rule_enabled=True,
        adaptive_fbl_volume_threshold=1000,
        adaptive_max_outbound_connections=(1, 20),
        max_outbound_connections=20,
    )
    engine = AdaptiveEngine()
    for i in range(1000):
        engine.record("b", "isp.example", D, 250, None, "ok", float(i) / 10, s)
    engine.record_complaint("b", "isp.example", "abuse", 100.0, s)
    engine.record_complaint("b", "isp.example", "abuse", 101.0, s)  # 0.2 %: low
    (event,) = engine.due_actions(101.0)
    assert isinstance(event, Adjust) and (event.old, event.new) == (20, 10)


def test_reply_rule_threshold_and_class() -> None:
    rule = reply_rule("slow", r"slow down", "3/60", ("suspend", "5m"), replies="4")
    s = make_settings(reply_rules=(rule,))
    engine = AdaptiveEngine()
    T = OutcomeKind.TEMPORARY
    engine.record("b", "d", T, 450, None, "please slow down", 0.0, s)
    engine.record("b", "d", P, 550, None, "please slow down", 1.0, s)  # a 5xx: not counted
    engine.record("b", "d", T, 450, None, "please slow down", 70.0, s)
    engine.record("b", "d", T, 450, None, "please slow down", 80.0, s)
    assert engine.due_actions(80.0) == []  # 3 matches, but not within 60 s
    engine.record("b", "d", T, 450, None, "Please SLOW DOWN", 90.0, s)
    (event,) = engine.due_actions(90.0)
    assert isinstance(event, Suspend) and event.until == 390.0
    with pytest.raises(ValueError):
        reply_rule("bad", "x", "0", ("suspend",))


def test_knob_steps() -> None:
    conns = KNOBS["max_outbound_connections"]
    assert step(conns, 20, "down", (2, 20)) == 10
    assert step(conns, 3, "down", (2, 20)) == 2
    assert step(conns, 19, "up", (2, 20)) == 20
    retry = KNOBS["retry_interval"]  # gentler = longer
    assert step(retry, 600.0, "down", (300.0, 1000.0)) == 1000.0
    assert step(retry, 1000.0, "up", (300.0, 1000.0)) == 800.0
    rate = KNOBS["outbound_throttle_messages"]
    assert step(rate, Rate(100, 60.0), "down", (Rate(10, 60.0), Rate(100, 60.0))) == Rate(50, 60.0)
    assert step(rate, Rate(12, 60.0), "down", (Rate(10, 60.0), Rate(100, 60.0))) == Rate(10, 60.0)
