"""Adaptive delivery: per binding x domain outcome counts in, live option values, suspensions,
blackholes and alert mails out. Pure decision logic (no I/O) plus a JSON state store.

- `classify`: reply -> Momentum bounce classification code
- `window`: time-bucketed counters
- `knobs`: the managed options and how a step moves each within its ( low high ) bounds
- `rules`: sweep rules (bounce classes, FBL categories) and reply-text rules as data
- `options`: `AdaptiveSettings` for one binding x domain (built by relay/wiring/adaptive.py)
- `events`: OutcomeKind (remote outcomes only), Adjust / Suspend / Blackhole / Resume,
  Hold, Notification
- `engine`: `AdaptiveEngine`
- `state`: save / load the engine as JSON, atomically
"""

from relay.adaptive.classify import BounceClass, Classification, classify
from relay.adaptive.engine import AdaptiveEngine, EngineConfig, PairSnapshot
from relay.adaptive.events import (
    Adjust,
    Blackhole,
    Event,
    Hold,
    Notification,
    OutcomeKind,
    Resume,
    Suspend,
)
from relay.adaptive.options import AdaptiveSettings
from relay.adaptive.rules import ReplyRule, SweepRule, reply_rule

__all__ = [
    "AdaptiveEngine",
    "AdaptiveSettings",
    "Adjust",
    "Blackhole",
    "BounceClass",
    "Classification",
    "EngineConfig",
    "Event",
    "Hold",
    "Notification",
    "OutcomeKind",
    "PairSnapshot",
    "ReplyRule",
    "Resume",
    "Suspend",
    "SweepRule",
    "classify",
    "reply_rule",
]
