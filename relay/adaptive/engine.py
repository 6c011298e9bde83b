"""The adaptive delivery engine: per binding x domain counts in, live option values,
suspensions and events out. Pure: no I/O, no clock of its own (every call takes `now`).

How the scheduler uses it:

    settings = route.adaptive                          # compiled once per binding x domain
    engine.record(b, d, OutcomeKind.TEMPORARY, 421, "4.7.0", text, now, settings)
    engine.live_value(b, d, "max_outbound_connections", configured, settings)
    engine.suspension(b, d, now)                       # a Hold or None, O(1)
    engine.suspensions                                 # the table the binding selector reads
    for event in engine.due_actions(now): apply and log event
    for mail in engine.notifications(now): send mail

`record` takes only real remote outcomes (see `OutcomeKind`, which has no "local" member):
relay's own waits and refusals (connection caps, throttles, host gates, suspensions, local
content checks) must never be recorded, or relay would punish a receiver for its own limits.

What happens on each record, for that binding x domain only (O(1): the work is bounded by
the window's bucket count and the number of rules, never by the number of pairs):
- the stats window counts the attempt, its outcome, its bounce class ("bc:N") and response
  fingerprint; the FBL window counts deliveries;
- reply rules: N matching failure replies within their period fire their action;
- default suspension: with adaptive_default_suspension_enabled, more than
  adaptive_rejection_rate_suspension_percentage rejections (4xx + 5xx replies) among at least
  adaptive_attempt_threshold attempts in the window suspend the pair for
  adaptive_default_suspension;
- bounce sweep rules: the summed rate of their classes over the attempts in the window,
  once adaptive_attempt_threshold attempts were made, picks the high or low action;
- on a delivery, a positive adjustment when the window is healthy (see `EngineConfig`).
FBL complaints (`record_complaint`) feed the FBL sweep rules, once adaptive_fbl_volume_threshold
deliveries were counted in the FBL window.

Pacing: at most one adjustment per pair per adaptive_adjustment_interval (one adjustment may
move several options at once); increases at most once per adaptive_positive_adjustment_interval
and not within that interval of a decrease. A suspended pair cannot be suspended again (its
end is not moved, 71.3.5.1). When a hold ends, the pair's windows start empty, so it has to
earn adaptive_attempt_threshold attempts again before it can be judged.

Suspensions have one owner: this engine. It writes every suspension it starts or ends
(its own, an operator's, one restored from saved state) into `suspensions`, the
`SuspensionTable` the binding selector reads; nobody else writes that table.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from relay.adaptive.classify import Classification, classify
from relay.adaptive.events import (
    Adjust,
    Blackhole,
    Event,
    Hold,
    Notification,
    OutcomeKind,
    Resume,
    Suspend,
    notification,
)
from relay.adaptive.knobs import (
    KNOBS,
    THROTTLE_FAMILY,
    Direction,
    clip,
    is_gentler,
    knob_name,
    start_value,
    step,
)
from relay.adaptive.options import AdaptiveSettings
from relay.adaptive.rules import Action, ReplyRule
from relay.adaptive.window import Window, fingerprint
from relay.bind.suspensions import SuspensionTable

__all__ = ["AdaptiveEngine", "EngineConfig", "PairSnapshot", "PairState"]

Key = tuple[str, str]
HoldKind = Literal["suspension", "blackhole"]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The engine's own constants (Momentum's adaptive stanza: adaptive_stats_period,
    fbl_stats_monitor), and what "delivery goes well" means for a positive adjustment."""

    stats_window: float = 3600.0  # attempts / rejections / bounce classes (one hour)
    stats_buckets: int = 60
    fbl_window: float = 86400.0  # deliveries and complaints for FBL rules (24 hours)
    fbl_buckets: int = 24
    fingerprint_keys: int = 64  # distinct response texts counted per pair
    healthy_rejection_percentage: float = 5.0  # at most this many rejections for an increase
    min_attempts_for_increase: int = 20  # and at least this many attempts in the window
    prune_interval: float = 3600.0  # how often tick() drops idle pairs


@dataclass(slots=True)
class PairState:
    """Everything the engine knows about one binding x domain."""

    created: float
    stats: Window
    fingerprints: Window
    fbl: Window
    live: dict[str, Any] = field(default_factory=dict)  # knob -> adjusted value
    overrides: dict[str, Any] = field(default_factory=dict)  # knob -> operator value
    matches: dict[str, deque[float]] = field(default_factory=dict)  # reply rule -> times
    last_adjust: float | None = None
    last_negative: float | None = None
    last_positive: float | None = None
    suspension: Hold | None = None
    blackhole: Hold | None = None
    # adaptive_scope = global: what the other nodes counted in their windows (relay/cluster
    # sets these; empty on a single node or while Redis cannot be asked).
    remote_stats: dict[str, int] = field(default_factory=dict)
    remote_fbl: dict[str, int] = field(default_factory=dict)
    # Reply rules across nodes: the other nodes' match times per rule, the latest time any
    # other node fired the rule (matches until then are spent), and when this node fired it.
    remote_matches: dict[str, tuple[float, ...]] = field(default_factory=dict)
    remote_fired: dict[str, float] = field(default_factory=dict)
    fired: dict[str, float] = field(default_factory=dict)
    cleared: float = 0.0  # when a hold ending last emptied the windows (0: never)


@dataclass(frozen=True, slots=True)
class PairSnapshot:
    binding: str
    domain: str
    live: Mapping[str, Any]
    overrides: Mapping[str, Any]
    suspension: Hold | None
    blackhole: Hold | None
    attempts: int
    delivered: int
    rejections: int
    bounce_classes: Mapping[str, int]
    responses: Mapping[str, int]
    complaints: Mapping[str, int]
    last_adjust: float | None


_COUNTED = {kind: kind.value for kind in OutcomeKind}


class AdaptiveEngine:
    def __init__(
        self, config: EngineConfig | None = None, suspensions: SuspensionTable | None = None
    ) -> None:
        self.config = config or EngineConfig()
        self.suspensions = suspensions if suspensions is not None else SuspensionTable()
        self._pairs: dict[Key, PairState] = {}
        self._pending: deque[Event] = deque()
        self._alerts: deque[Notification] = deque()
        self._last_alert: dict[tuple[str, str, str], float] = {}
        self._suppressed: dict[tuple[str, str, str], int] = {}
        self._expiry: list[tuple[float, str, str, str]] = []  # (until, kind, binding, domain)
        self._last_prune: float | None = None

    # --- pairs -----------------------------------------------------------------------
    @property
    def pairs(self) -> Mapping[Key, PairState]:
        return self._pairs

    @property
    def alert_times(self) -> dict[tuple[str, str, str], float]:
        """(binding, domain, event kind) -> when the last alert about it was made."""
        return self._last_alert

    def restore_pair(self, binding: str, domain: str, pair: PairState) -> None:
        """Put back a pair read from saved state (holds included)."""
        domain = domain.lower()
        self._pairs[(binding, domain)] = pair
        for hold in (pair.suspension, pair.blackhole):
            if hold is not None:
                heapq.heappush(self._expiry, (hold.until, hold.kind, binding, domain))
        if pair.suspension is not None:
            hold = pair.suspension
            self.suspensions.suspend(binding, domain, hold.until, hold.reason)

    def new_pair(self, now: float) -> PairState:
        cfg = self.config
        return PairState(
            created=now,
            stats=Window(cfg.stats_window, cfg.stats_buckets, max_keys=64),
            fingerprints=Window(cfg.stats_window, cfg.stats_buckets, cfg.fingerprint_keys),
            fbl=Window(cfg.fbl_window, cfg.fbl_buckets, max_keys=64),
        )

    def _pair(self, binding: str, domain: str, now: float) -> PairState:
        key = (binding, domain.lower())
        pair = self._pairs.get(key)
        if pair is None:
            pair = self._pairs[key] = self.new_pair(now)
        return pair

    # --- recording -------------------------------------------------------------------
    def record(
        self,
        binding: str,
        domain: str,
        outcome: OutcomeKind,
        code: int | None,
        enhanced: str | None,
        text: str,
        now: float,
        settings: AdaptiveSettings,
    ) -> Classification | None:
        """Count one real remote outcome for binding x domain and act on it. Returns the
        failure's bounce classification (None for a delivery or when adaptive is disabled).
        Resulting events are queued for `due_actions`."""
        if not settings.enabled:
            return None
        domain = domain.lower()
        pair = self._pair(binding, domain, now)
        stats = pair.stats
        stats.add(now, "attempt")
        stats.add(now, _COUNTED[outcome])
        if outcome is OutcomeKind.DELIVERED:
            pair.fbl.add(now, "delivered")
            self._check_rates(binding, domain, pair, now, settings)
            self._maybe_increase(binding, domain, pair, now, settings)
            return None
        if outcome is OutcomeKind.TIMEOUT and code is None:
            text = text or "timeout"
        result = classify(code, enhanced, text)
        stats.add(now, f"bc:{result.code}")
        pair.fingerprints.add(now, fingerprint(code, text))
        for rule in settings.reply_rules:
            if rule.scope != "binding" or not rule.matches(code, text):
                continue  # tenant / campaign rules: adaptive/subjects.py
            seen = pair.matches.get(rule.name)
            if seen is None or seen.maxlen != rule.count:
                seen = pair.matches[rule.name] = deque(seen or (), maxlen=rule.count)
            seen.append(now)
            if _reply_matches(pair, rule, now) >= rule.count:
                reason = f"reply rule {rule.name}: {rule.count} x {fingerprint(code, text)!r}"
                if self._act(binding, domain, pair, rule.action, reason, now, settings):
                    seen.clear()
                    pair.fired[rule.name] = now
        self._check_rates(binding, domain, pair, now, settings)
        return result

    def record_complaint(
        self, binding: str, domain: str, kind: str, now: float, settings: AdaptiveSettings
    ) -> None:
        """Count one FBL complaint ("abuse", "unsubscribe", ...) for mail binding sent to
        domain, and apply the FBL sweep rules."""
        if not settings.enabled:
            return
        domain = domain.lower()
        pair = self._pair(binding, domain, now)
        pair.fbl.add(now, f"fbl:{kind.strip().lower()}")
        if not settings.sweep_rule_enabled:
            return
        pair.fbl.expire(now)
        deliveries = _fbl(pair, "delivered")
        if deliveries <= 0 or deliveries < settings.fbl_volume_threshold:
            return
        for rule in settings.sweep_rules:
            if rule.kind != "fbl":
                continue
            rate = 100.0 * sum(_fbl(pair, code) for code in rule.codes) / deliveries
            action = rule.action_for(rate)
            if action is not None:
                reason = (
                    f"sweep rule {rule.name}: {' '.join(rule.codes)} at {rate:.2f}% "
                    f"of {deliveries} deliveries"
                )
                self._act(binding, domain, pair, action, reason, now, settings)

    def _check_rates(
        self, binding: str, domain: str, pair: PairState, now: float, settings: AdaptiveSettings
    ) -> None:
        attempts = _stat(pair, "attempt")
        if attempts <= 0 or attempts < settings.attempt_threshold:
            return
        if settings.default_suspension_enabled:
            rejections = _stat(pair, "temporary") + _stat(pair, "permanent")
            limit = settings.rejection_rate_suspension_percentage
            if rejections * 100.0 > limit * attempts:
                reason = (
                    f"rejection rate {100.0 * rejections / attempts:.1f}% > {v_pct(limit)}% "
                    f"over {attempts} attempts"
                )
                self._hold(binding, domain, pair, "suspension", None, reason, now, settings)
        if not settings.sweep_rule_enabled:
            return
        for rule in settings.sweep_rules:
            if rule.kind != "bounce":
                continue
            rate = 100.0 * sum(_stat(pair, code) for code in rule.codes) / attempts
            action = rule.action_for(rate)
            if action is not None:
                reason = (
                    f"sweep rule {rule.name}: {' '.join(rule.codes)} at {rate:.1f}% "
                    f"of {attempts} attempts"
                )
                self._act(binding, domain, pair, action, reason, now, settings)

    # --- actions ---------------------------------------------------------------------
    def _act(
        self,
        binding: str,
        domain: str,
        pair: PairState,
        action: Action,
        reason: str,
        now: float,
        settings: AdaptiveSettings,
    ) -> bool:
        if action.verb == "throttle":
            return self._adjust(
                binding, domain, pair, action.options, action.direction, reason, now, settings
            )
        return self._hold(
            binding, domain, pair, action.verb_hold, action.duration, reason, now, settings
        )

    def _current(self, pair: PairState | None, name: str, settings: AdaptiveSettings) -> Any:
        if pair is not None and name in pair.overrides:
            return pair.overrides[name]
        knob = KNOBS[name]
        bounds = settings.bounds[name]
        if pair is not None and name in pair.live:
            return clip(knob, pair.live[name], bounds)
        return start_value(knob, settings.configured.get(name), bounds)

    def _adjust(
        self,
        binding: str,
        domain: str,
        pair: PairState,
        options: tuple[str, ...],
        direction: Direction,
        reason: str,
        now: float,
        settings: AdaptiveSettings,
    ) -> bool:
        if pair.last_adjust is not None and now - pair.last_adjust < settings.adjustment_interval:
            return False
        changes: list[Event] = []
        for name in options:
            if name not in settings.bounds or name in pair.overrides:
                continue
            old = self._current(pair, name, settings)
            new = step(KNOBS[name], old, direction, settings.bounds[name])
            if new != old:
                pair.live[name] = new
                changes.append(Adjust(binding, domain, name, old, new, reason, now))
        if not changes:
            return False
        pair.last_adjust = now
        if direction == "down":
            pair.last_negative = now
        else:
            pair.last_positive = now
        self._emit(tuple(changes), settings)
        return True

    def _maybe_increase(
        self, binding: str, domain: str, pair: PairState, now: float, settings: AdaptiveSettings
    ) -> None:
        if not settings.bounds or pair.suspension is not None:
            return
        interval = settings.positive_adjustment_interval
        last_up = pair.last_positive if pair.last_positive is not None else pair.created
        if now - last_up < interval:
            return
        if pair.last_negative is not None and now - pair.last_negative < interval:
            return
        attempts = _stat(pair, "attempt")
        if attempts < max(1, self.config.min_attempts_for_increase):
            return
        rejections = _stat(pair, "temporary") + _stat(pair, "permanent")
        if rejections * 100.0 > self.config.healthy_rejection_percentage * attempts:
            return
        options = tuple(dict.fromkeys((*THROTTLE_FAMILY, *pair.live)))
        reason = f"delivery going well: {rejections} rejections in {attempts} attempts"
        self._adjust(binding, domain, pair, options, "up", reason, now, settings)

    def _hold(
        self,
        binding: str,
        domain: str,
        pair: PairState,
        kind: HoldKind,
        duration: float | None,
        reason: str,
        now: float,
        settings: AdaptiveSettings | None,
        replace: bool = False,
    ) -> bool:
        current = pair.suspension if kind == "suspension" else pair.blackhole
        if current is not None and current.until > now and not replace:
            return False  # a suspended pair is not suspended again (71.3.5.1)
        if duration is None:
            duration = settings.default_suspension if settings else 4 * 3600.0
        until = now + duration
        hold = Hold(binding, domain, kind, now, until, reason)
        if kind == "suspension":
            pair.suspension = hold
            self.suspensions.suspend(binding, domain, until, reason)
            event: Event = Suspend(binding, domain, until, reason, now)
        else:
            pair.blackhole = hold
            event = Blackhole(binding, domain, until, reason, now)
        heapq.heappush(self._expiry, (until, kind, binding, domain))
        self._emit((event,), settings)
        return True

    def _emit(self, events: tuple[Event, ...], settings: AdaptiveSettings | None) -> None:
        self._pending.extend(events)
        if settings is None or not settings.alert_email_destination:
            return
        first = events[0]
        if first.kind not in settings.notification_events:
            return
        key = (first.binding, first.domain, first.kind)
        last = self._last_alert.get(key)
        if last is not None and first.at - last < settings.notification_interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last_alert[key] = first.at
        suppressed = self._suppressed.pop(key, 0)
        self._alerts.append(
            notification(
                events, settings.alert_email_sender, settings.alert_email_destination, suppressed
            )
        )

    # --- queries ---------------------------------------------------------------------
    def live_value(
        self,
        binding: str,
        domain: str,
        option: str,
        configured_value: Any,
        settings: AdaptiveSettings,
    ) -> Any:
        """The value to use now for a managed option ("max_outbound_connections" or
        "adaptive_max_outbound_connections"): an operator override, else the adjusted value,
        else the configured one clipped to its bounds. Options without bounds, options adaptive
        does not manage, and pairs with adaptive disabled get `configured_value` back."""
        try:
            name = knob_name(option)
        except KeyError:
            return configured_value
        if not settings.enabled:
            return configured_value
        pair = self._pairs.get((binding, domain.lower()))
        if pair is not None and name in pair.overrides:
            return pair.overrides[name]
        if name not in settings.bounds:
            return configured_value
        knob = KNOBS[name]
        bounds = settings.bounds[name]
        if pair is not None and name in pair.live:
            return clip(knob, pair.live[name], bounds)
        return start_value(knob, configured_value, bounds)

    def suspension(self, binding: str, domain: str, now: float) -> Hold | None:
        pair = self._pairs.get((binding, domain.lower()))
        if pair is None or pair.suspension is None or pair.suspension.until <= now:
            return None
        return pair.suspension

    def blackhole(self, binding: str, domain: str, now: float) -> Hold | None:
        pair = self._pairs.get((binding, domain.lower()))
        if pair is None or pair.blackhole is None or pair.blackhole.until <= now:
            return None
        return pair.blackhole

    def next_due(self) -> float | None:
        """When the earliest hold ends (for the scheduler's timer), or None."""
        while self._expiry:
            until, kind, binding, domain = self._expiry[0]
            if self._live_hold(until, kind, binding, domain):
                return until
            heapq.heappop(self._expiry)
        return None

    def _live_hold(self, until: float, kind: str, binding: str, domain: str) -> bool:
        pair = self._pairs.get((binding, domain))
        if pair is None:
            return False
        hold = pair.suspension if kind == "suspension" else pair.blackhole
        return hold is not None and hold.until == until

    # --- time ------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """End holds whose time has come (queuing Resume events) and drop idle pairs."""
        while self._expiry and self._expiry[0][0] <= now:
            until, kind, binding, domain = heapq.heappop(self._expiry)
            if not self._live_hold(until, kind, binding, domain):
                continue
            pair = self._pairs[(binding, domain)]
            ended: HoldKind = "suspension" if kind == "suspension" else "blackhole"
            self._lift(binding, domain, pair, ended, now)
            self._pending.append(Resume(binding, domain, "expired", now, ended))
        if self._last_prune is None:
            self._last_prune = now
        elif now - self._last_prune >= self.config.prune_interval:
            self._last_prune = now
            self.prune(now)

    def _lift(self, binding: str, domain: str, pair: PairState, kind: HoldKind, now: float) -> None:
        if kind == "suspension":
            pair.suspension = None
            self.suspensions.resume(binding, domain)
        else:
            pair.blackhole = None
        pair.stats.clear()
        pair.fingerprints.clear()
        pair.fbl.clear()
        pair.matches.clear()
        pair.remote_stats, pair.remote_fbl = {}, {}
        pair.remote_matches, pair.remote_fired, pair.fired = {}, {}, {}
        pair.cleared = now

    def due_actions(self, now: float) -> list[Event]:
        """Everything the scheduler must apply now, oldest first (runs `tick` first)."""
        self.tick(now)
        events = list(self._pending)
        self._pending.clear()
        return events

    def notifications(self, now: float) -> list[Notification]:
        """Alert mails due by `now`: at most one per binding x domain x event kind per
        adaptive_notification_interval, only for adaptive_notification_events, and only when
        adaptive_alert_email_destination is set. Later alerts in the interval are counted in
        the next one's `suppressed`."""
        due = [alert for alert in self._alerts if alert.at <= now]
        for alert in due:
            self._alerts.remove(alert)
        return due

    def prune(self, now: float) -> int:
        """Forget pairs with nothing to remember (O(pairs); tick calls it now and then)."""
        idle = []
        for key, pair in self._pairs.items():
            pair.stats.expire(now)
            pair.fbl.expire(now)
            pair.fingerprints.expire(now)
            if (
                pair.stats.is_empty()
                and pair.fbl.is_empty()
                and not pair.live
                and not pair.overrides
                and pair.suspension is None
                and pair.blackhole is None
            ):
                idle.append(key)
        for key in idle:
            del self._pairs[key]
            for kind in ("throttle", "suspension", "blackhole"):
                self._last_alert.pop((*key, kind), None)
                self._suppressed.pop((*key, kind), None)
        return len(idle)

    # --- other nodes (adaptive_scope = global, relay/cluster) -------------------------
    def set_remote(
        self,
        binding: str,
        domain: str,
        stats: Mapping[str, int],
        fbl: Mapping[str, int],
        now: float,
        settings: AdaptiveSettings,
        matches: Mapping[str, tuple[float, ...]] | None = None,
        fired: Mapping[str, float] | None = None,
    ) -> bool:
        """What the other nodes counted for binding x domain in their windows now, and the
        times of their replies matching each reply rule (`matches`; `fired`: the latest time
        another node fired a rule, matches until then are spent): the rules judge this node's
        counts plus these (only for a pair this node sends to). New counts are judged at once,
        as a record would (a node whose own mail came before the other nodes' counts still
        acts). True when that queued events."""
        pair = self._pairs.get((binding, domain.lower()))
        matches, fired = dict(matches or {}), dict(fired or {})
        if pair is None or (
            pair.remote_stats == stats
            and pair.remote_fbl == fbl
            and pair.remote_matches == matches
            and pair.remote_fired == fired
        ):
            return False
        pair.remote_stats, pair.remote_fbl = dict(stats), dict(fbl)
        pair.remote_matches, pair.remote_fired = matches, fired
        if not settings.enabled:
            return False
        queued = len(self._pending)
        domain = domain.lower()
        for rule in settings.reply_rules:
            if rule.scope != "binding" or rule.name not in matches:
                continue
            count = _reply_matches(pair, rule, now)
            if count >= rule.count:
                reason = f"reply rule {rule.name}: {count} matching replies across nodes"
                if self._act(binding, domain, pair, rule.action, reason, now, settings):
                    pair.matches.pop(rule.name, None)
                    pair.fired[rule.name] = now
        self._check_rates(binding, domain, pair, now, settings)
        return len(self._pending) > queued

    def clear_remote(self) -> None:
        """Back to this node's own counts (Redis cannot be asked)."""
        for pair in self._pairs.values():
            pair.remote_stats, pair.remote_fbl = {}, {}
            pair.remote_matches, pair.remote_fired = {}, {}

    def set_live(
        self, binding: str, domain: str, option: str, value: Any, now: float, reason: str
    ) -> Adjust | None:
        """Another node moved a managed option of binding x domain: take its value (None:
        back to the configured one) as if decided here, paced from now. None when this node
        already has it (or an operator pinned the option here)."""
        name = knob_name(option)
        domain = domain.lower()
        pair = self._pair(binding, domain, now)
        old = pair.live.get(name)
        if name in pair.overrides or old == value:
            return None
        if value is None:
            pair.live.pop(name, None)
        else:
            pair.live[name] = value
            if old is not None and is_gentler(KNOBS[name], old, value):
                pair.last_negative = now
            else:
                pair.last_positive = now
        pair.last_adjust = now
        event = Adjust(binding, domain, name, old, value, reason, now)
        self._pending.append(event)
        return event

    # --- manual control --------------------------------------------------------------
    def override(self, binding: str, domain: str, option: str, value: Any, now: float) -> Adjust:
        """Pin a managed option to `value` for binding x domain until `reset`."""
        name = knob_name(option)
        domain = domain.lower()
        pair = self._pair(binding, domain, now)
        old = pair.overrides.get(name, pair.live.get(name))
        pair.overrides[name] = value
        event = Adjust(binding, domain, name, old, value, "operator override", now)
        self._pending.append(event)
        return event

    def reset(self, binding: str, domain: str, now: float) -> list[Adjust]:
        """Forget live values, overrides, counts and pacing for binding x domain (its
        suspension, if any, stays: use `resume`). Returns one event per option reset; `new`
        is None, meaning "back to the configured value"."""
        domain = domain.lower()
        pair = self._pairs.get((binding, domain))
        if pair is None:
            return []
        events = [
            Adjust(binding, domain, name, value, None, "operator reset", now)
            for name, value in {**pair.live, **pair.overrides}.items()
        ]
        fresh = self.new_pair(now)
        fresh.suspension, fresh.blackhole = pair.suspension, pair.blackhole
        fresh.cleared = now
        self._pairs[(binding, domain)] = fresh
        self._pending.extend(events)
        return events

    def suspend(
        self,
        binding: str,
        domain: str,
        now: float,
        duration: float,
        reason: str = "operator",
        settings: AdaptiveSettings | None = None,
    ) -> Suspend:
        """Suspend binding x domain for `duration` seconds (replacing any suspension)."""
        domain = domain.lower()
        pair = self._pair(binding, domain, now)
        self._hold(binding, domain, pair, "suspension", duration, reason, now, settings, True)
        event = self._pending[-1]
        assert isinstance(event, Suspend)
        return event

    def start_blackhole(
        self, binding: str, domain: str, now: float, duration: float, reason: str
    ) -> Blackhole:
        """Blackhole binding x domain for `duration` seconds (replacing any blackhole): what
        another node decided (adaptive_scope = global)."""
        domain = domain.lower()
        pair = self._pair(binding, domain, now)
        self._hold(binding, domain, pair, "blackhole", duration, reason, now, None, True)
        event = self._pending[-1]
        assert isinstance(event, Blackhole)
        return event

    def resume(
        self, binding: str, domain: str, now: float, kinds: tuple[HoldKind, ...] | None = None
    ) -> list[Resume]:
        """Lift the suspension and blackhole of binding x domain (or only `kinds`), if any."""
        domain = domain.lower()
        pair = self._pairs.get((binding, domain))
        if pair is None:
            return []
        events = []
        for kind, hold in (("suspension", pair.suspension), ("blackhole", pair.blackhole)):
            if kinds is not None and kind not in kinds:
                continue
            if hold is not None and hold.until > now:
                ended: HoldKind = "suspension" if kind == "suspension" else "blackhole"
                self._lift(binding, domain, pair, ended, now)
                events.append(Resume(binding, domain, "operator", now, ended))
        self._pending.extend(events)
        return events

    def snapshot(self, now: float | None = None) -> list[PairSnapshot]:
        """Every binding x domain's live values, overrides, holds and window counts."""
        return list(self._snapshots(now))

    def _snapshots(self, now: float | None) -> Iterator[PairSnapshot]:
        for (binding, domain), pair in sorted(self._pairs.items()):
            if now is not None:
                pair.stats.expire(now)
                pair.fingerprints.expire(now)
                pair.fbl.expire(now)
            totals = pair.stats.totals
            suspension = _in_force(pair.suspension, now)
            blackhole = _in_force(pair.blackhole, now)
            yield PairSnapshot(
                binding=binding,
                domain=domain,
                live=dict(pair.live),
                overrides=dict(pair.overrides),
                suspension=suspension,
                blackhole=blackhole,
                attempts=totals.get("attempt", 0),
                delivered=totals.get("delivered", 0),
                rejections=totals.get("temporary", 0) + totals.get("permanent", 0),
                bounce_classes={k: n for k, n in totals.items() if k.startswith("bc:")},
                responses=dict(pair.fingerprints.totals),
                complaints={k: n for k, n in pair.fbl.totals.items() if k.startswith("fbl:")},
                last_adjust=pair.last_adjust,
            )


def _stat(pair: PairState, key: str) -> int:
    """A stats window count: this node's, plus the other nodes' (adaptive_scope = global)."""
    return pair.stats.totals.get(key, 0) + pair.remote_stats.get(key, 0)


def _reply_matches(pair: PairState, rule: ReplyRule, now: float) -> int:
    """Replies matching `rule` within its period: this node's since it last fired the rule,
    plus the other nodes' (adaptive_scope = global) since any node fired it; matches before
    the latest firing on another node are spent here too."""
    remote_fired = pair.remote_fired.get(rule.name, -math.inf)
    oldest = now - rule.period
    own = sum(1 for t in pair.matches.get(rule.name, ()) if t >= oldest and t > remote_fired)
    remote = pair.remote_matches.get(rule.name)
    if not remote:
        return own
    floor = max(remote_fired, pair.fired.get(rule.name, -math.inf), pair.cleared)
    return own + sum(1 for t in remote if t >= oldest and t > floor)


def _fbl(pair: PairState, key: str) -> int:
    return pair.fbl.totals.get(key, 0) + pair.remote_fbl.get(key, 0)


def v_pct(value: float) -> str:
    return f"{value:g}"


def _in_force(hold: Hold | None, now: float | None) -> Hold | None:
    if hold is None or (now is not None and hold.until <= now):
        return None
    return hold
