import itertools

from relay.adaptive.engine import AdaptiveEngine, EngineConfig
from relay.adaptive.events import Adjust, Blackhole, OutcomeKind, Resume, Suspend
from relay.adaptive.rules import DEFAULT_REPLY_RULES, reply_rule
from relay.config.values import Throttle as Rate

from .helpers import make_settings

D = OutcomeKind.DELIVERED
T = OutcomeKind.TEMPORARY
P = OutcomeKind.PERMANENT


def test_outcome_kinds_have_no_local_member() -> None:
    assert {k.value for k in OutcomeKind} == {
        "delivered",
        "temporary",
        "permanent",
        "timeout",
        "connection",
    }
    assert [k for k in OutcomeKind if k.rejection] == [T, P]


def test_thirty_percent_rejections_suspend_after_the_attempt_threshold() -> None:
    engine = AdaptiveEngine()
    s = make_settings(
        adaptive_default_suspension_enabled=True,
        adaptive_attempt_threshold=100,
        adaptive_rejection_rate_suspension_percentage=20.0,
        adaptive_default_suspension=600.0,
    )
    now = 0.0
    for i in range(100):
        now = float(i)
        if i % 10 < 3:
            engine.record("b1", "example.com", T, 451, "4.3.0", "mailbox busy", now, s)
        else:
            engine.record("b1", "example.com", D, 250, "2.0.0", "ok", now, s)
        engine.record("b2", "example.com", D, 250, None, "ok", now, s)
        engine.record("b1", "other.example", D, 250, None, "ok", now, s)
        if i < 99:
            assert engine.suspension("b1", "example.com", now) is None
    hold = engine.suspension("b1", "EXAMPLE.com", now)
    assert hold is not None and hold.until == 99.0 + 600.0
    assert "30.0% > 20%" in hold.reason and "100 attempts" in hold.reason
    assert engine.suspension("b2", "example.com", now) is None
    assert engine.suspension("b1", "other.example", now) is None
    events = engine.due_actions(now)
    assert events == [Suspend("b1", "example.com", 699.0, hold.reason, 99.0)]
    # more rejections while suspended do not suspend again or move the end
    for i in range(100, 150):
        engine.record("b1", "example.com", T, 451, None, "mailbox busy", float(i), s)
    assert engine.due_actions(150.0) == []
    assert engine.next_due() == 699.0
    assert engine.suspension("b1", "example.com", 698.9) is not None
    assert engine.due_actions(698.9) == []
    assert engine.suspension("b1", "example.com", 699.0) is None
    assert engine.due_actions(699.0) == [Resume("b1", "example.com", "expired", 699.0)]
    assert engine.next_due() is None
    # the pair starts afresh: a few rejections right after resuming do not re-suspend it
    engine.record("b1", "example.com", T, 451, None, "mailbox busy", 700.0, s)
    assert engine.suspension("b1", "example.com", 700.0) is None


def test_suspension_needs_the_option_enabled() -> None:
    engine = AdaptiveEngine()
    s = make_settings(adaptive_attempt_threshold=10)  # suspension_enabled defaults to false
    for i in range(50):
        engine.record("b", "d.example", P, 550, None, "nope", float(i), s)
    assert engine.suspension("b", "d.example", 50.0) is None


def test_adaptive_disabled_records_nothing() -> None:
    engine = AdaptiveEngine()
    s = make_settings(adaptive_enabled=False, adaptive_max_outbound_connections=(1, 5))
    assert engine.record("b", "d", P, 550, "5.1.1", "user unknown", 0.0, s) is None
    assert engine.snapshot() == []
    assert engine.live_value("b", "d", "max_outbound_connections", 20, s) == 20


def _too_many(engine: AdaptiveEngine, now: float, settings: object) -> None:
    engine.record(
        "b1",
        "mx.example",
        T,
        421,
        "4.7.0",
        f"Too many connections from 192.0.2.{int(now) % 250}, try again later",
        now,
        settings,  # type: ignore[arg-type]
    )


def test_421_shrinks_connections_step_by_step_then_grows_back() -> None:
    engine = AdaptiveEngine(
        EngineConfig(stats_window=600.0, stats_buckets=10, min_attempts_for_increase=5)
    )
    s = make_settings(
        reply_rules=None,  # the built-in reply rules
        max_outbound_connections=20,
        adaptive_max_outbound_connections=(2, 20),
        adaptive_adjustment_interval=60.0,
        adaptive_positive_adjustment_interval=600.0,
    )
    assert s.reply_rules == DEFAULT_REPLY_RULES

    def live() -> int:
        value = engine.live_value("b1", "mx.example", "max_outbound_connections", 20, s)
        assert isinstance(value, int)
        return value

    assert live() == 20
    throttles: list[Adjust] = []
    for t in range(0, 300, 5):
        _too_many(engine, float(t), s)
        throttles += [e for e in engine.due_actions(float(t)) if isinstance(e, Adjust)]
    assert [(e.at, e.old, e.new) for e in throttles] == [
        (10.0, 20, 10),
        (70.0, 10, 5),
        (130.0, 5, 2),
    ]
    assert all(e.option == "max_outbound_connections" for e in throttles)
    assert "too_many_connections" in throttles[0].reason
    assert live() == 2
    # another pair is untouched
    assert engine.live_value("b2", "mx.example", "max_outbound_connections", 20, s) == 20

    # deliveries succeed again: +1 step at most once per positive_adjustment_interval
    ups: list[Adjust] = []
    for t in range(1000, 8000, 10):
        engine.record("b1", "mx.example", D, 250, "2.0.0", "ok", float(t), s)
        ups += [e for e in engine.due_actions(float(t)) if isinstance(e, Adjust)]
        assert 2 <= live() <= 20
    steps = [(e.old, e.new) for e in ups]
    assert steps == [(2, 3), (3, 4), (4, 5), (5, 7), (7, 9), (9, 12), (12, 15), (15, 19), (19, 20)]
    times = [e.at for e in ups]
    assert times[0] >= 130.0 + 600.0
    assert all(b - a >= 600.0 for a, b in itertools.pairwise(times))
    assert live() == 20


def test_no_bounds_means_not_adjusted() -> None:
    engine = AdaptiveEngine()
    s = make_settings(reply_rules=None, adaptive_adjustment_interval=0.0)
    for t in range(20):
        _too_many(engine, float(t), s)
    assert engine.due_actions(20.0) == []
    assert engine.live_value("b1", "mx.example", "max_outbound_connections", 20, s) == 20


def test_live_value_clips_configured_and_handles_unlimited() -> None:
    engine = AdaptiveEngine()
    s = make_settings(
        adaptive_max_outbound_connections=(2, 10),
        adaptive_max_retries=(1, 5),
        adaptive_retry_interval=(600.0, 3600.0),
        adaptive_outbound_throttle_messages=(Rate(10, 60.0), Rate(100, 60.0)),
    )
    get = engine.live_value
    assert get("b", "d", "max_outbound_connections", 50, s) == 10
    assert get("b", "d", "adaptive_max_outbound_connections", 1, s) == 2
    assert get("b", "d", "max_outbound_connections", -1, s) == 10  # unlimited -> high
    assert get("b", "d", "max_retries", "auto", s) == 5
    assert get("b", "d", "retry_interval", 1200.0, s) == 1200.0
    assert get("b", "d", "outbound_throttle_messages", None, s) == Rate(100, 60.0)
    assert get("b", "d", "outbound_throttle_messages", Rate(1, 1.0), s) == Rate(1, 1.0)
    assert get("b", "d", "message_expiration", 86400.0, s) == 86400.0  # not managed


def test_record_returns_the_bounce_class_and_counts_it() -> None:
    engine = AdaptiveEngine()
    s = make_settings()
    result = engine.record("b", "d", P, 550, "5.1.1", "user unknown", 0.0, s)
    assert result is not None and result.code == 10
    timeout = engine.record("b", "d", OutcomeKind.TIMEOUT, None, None, "", 1.0, s)
    assert timeout is not None and timeout.code == 24
    assert engine.record("b", "d", D, 250, None, "ok", 2.0, s) is None
    (snap,) = engine.snapshot(3.0)
    assert (snap.attempts, snap.delivered, snap.rejections) == (3, 1, 1)
    assert snap.bounce_classes == {"bc:10": 1, "bc:24": 1}
    assert sum(snap.responses.values()) == 2


def test_other_nodes_counts_add_to_this_nodes_and_are_judged_when_they_arrive() -> None:
    """adaptive_scope = global: 6 rejections here and 6 counted by other nodes make the 10
    attempts a rule needs; neither alone does."""
    engine = AdaptiveEngine()
    s = make_settings(
        adaptive_default_suspension_enabled=True,
        adaptive_attempt_threshold=10,
        adaptive_rejection_rate_suspension_percentage=20.0,
        adaptive_default_suspension=600.0,
    )
    for i in range(6):
        engine.record("b1", "example.com", T, 451, "4.3.0", "mailbox busy", float(i), s)
    assert engine.suspension("b1", "example.com", 6.0) is None
    remote = {"attempt": 6, "temporary": 6}
    assert engine.set_remote("b1", "example.com", remote, {}, 7.0, s)  # judged at once
    hold = engine.suspension("b1", "example.com", 7.0)
    assert hold is not None and "over 12 attempts" in hold.reason
    assert not engine.set_remote("b1", "example.com", remote, {}, 8.0, s)  # nothing new
    assert not engine.set_remote("b1", "nowhere.test", remote, {}, 8.0, s)  # not sent to here
    engine.resume("b1", "example.com", 9.0)  # the windows empty, the others' counts too
    assert engine.pairs[("b1", "example.com")].remote_stats == {}
    assert engine.pairs[("b1", "example.com")].cleared == 9.0
    engine.set_remote("b1", "example.com", remote, {}, 10.0, s)
    engine.clear_remote()  # Redis down: this node's own counts only
    assert engine.pairs[("b1", "example.com")].remote_stats == {}


def test_reply_rule_matches_add_up_with_the_other_nodes() -> None:
    """adaptive_scope = global: 2 matches here and 2 on another node trip a 4/60 rule; the
    other node's matches before its own firing (or this node's) are spent."""
    rule = reply_rule("slow", "slow down", "4/60", ("blackhole", "10 minutes"))
    s = make_settings(reply_rules=(rule,))
    engine = AdaptiveEngine()
    for now in (1.0, 2.0):
        engine.record("b1", "example.com", T, 451, "4.7.0", "please slow down", now, s)
    assert engine.blackhole("b1", "example.com", 2.0) is None  # 2 < 4 alone
    assert not engine.set_remote("b1", "example.com", {}, {}, 3.0, s, {"slow": (2.5,)}, {})
    assert engine.set_remote("b1", "example.com", {}, {}, 4.0, s, {"slow": (2.5, 3.5)}, {})
    hold = engine.blackhole("b1", "example.com", 4.0)
    assert hold is not None and "4 matching replies across nodes" in hold.reason
    pair = engine.pairs[("b1", "example.com")]
    assert pair.fired == {"slow": 4.0} and not pair.matches.get("slow")
    engine.resume("b1", "example.com", 5.0)
    assert pair.remote_matches == {} and pair.fired == {}  # a hold's end empties them
    # The other node fired at 20: its matches and this node's until then are spent.
    for now in (10.0, 11.0, 12.0):
        engine.record("b1", "example.com", T, 451, "4.7.0", "please slow down", now, s)
    remote = {"slow": (19.0, 19.5, 21.0)}
    assert not engine.set_remote("b1", "example.com", {}, {}, 22.0, s, remote, {"slow": 20.0})
    engine.record("b1", "example.com", T, 451, "4.7.0", "please slow down", 23.0, s)
    assert engine.blackhole("b1", "example.com", 23.0) is None  # 21 and 23: 2 < 4
    # Matches older than the period do not count, this node's nor the others'.
    engine.set_remote("b1", "example.com", {}, {}, 90.0, s, {"slow": (21.0, 89.0)}, {})
    assert engine.blackhole("b1", "example.com", 90.0) is None
    # A single node (no remote matches) fires on its own, as before.
    alone = AdaptiveEngine()
    for now in (1.0, 2.0, 3.0, 4.0):
        alone.record("b1", "example.com", T, 451, "4.7.0", "please slow down", now, s)
    assert alone.blackhole("b1", "example.com", 4.0) is not None
    # Redis down: this node's own matches only.
    engine.set_remote("b1", "example.com", {}, {}, 95.0, s, {"slow": (94.0,)}, {})
    engine.clear_remote()
    assert pair.remote_matches == {} and pair.remote_fired == {}


def test_a_blackhole_decided_on_another_node_is_taken_and_lifted_by_kind() -> None:
    engine = AdaptiveEngine()
    event = engine.start_blackhole("b1", "Example.com", 1.0, 60.0, "reply rule x (node n1)")
    assert isinstance(event, Blackhole) and event.until == 61.0
    assert engine.due_actions(1.0) == [event]
    engine.suspend("b1", "example.com", 2.0, 600.0)
    lifted = engine.resume("b1", "example.com", 3.0, ("blackhole",))
    assert [e.ended for e in lifted] == ["blackhole"]
    assert engine.blackhole("b1", "example.com", 3.0) is None
    assert engine.suspension("b1", "example.com", 3.0) is not None  # the other kind stays
    assert engine.resume("b1", "example.com", 4.0, ("blackhole",)) == []


def test_a_live_value_decided_on_another_node_is_taken_and_paced_from_now() -> None:
    engine = AdaptiveEngine()
    event = engine.set_live(
        "b1", "example.com", "outbound_throttle_messages", Rate(5, 1.0), 3.0, "x"
    )
    assert isinstance(event, Adjust) and event.new == Rate(5, 1.0)
    pair = engine.pairs[("b1", "example.com")]
    assert pair.live == {"outbound_throttle_messages": Rate(5, 1.0)} and pair.last_adjust == 3.0
    assert engine.due_actions(3.0) == [event]
    again = engine.set_live(
        "b1", "example.com", "outbound_throttle_messages", Rate(5, 1.0), 4.0, "x"
    )
    assert again is None  # already so
    down = engine.set_live(
        "b1", "example.com", "outbound_throttle_messages", Rate(2, 1.0), 5.0, "x"
    )
    assert down is not None and pair.last_negative == 5.0
