"""Adaptive delivery wired into the scheduler: outcomes in, live values and holds out.

The engine (relay/adaptive) decides; this module feeds it every *remote* outcome per binding
x domain, turns its events into suspensions the selector honours, applies live option values
to the route settings the scheduler uses, mails alerts through relay itself, and keeps the
engine's state on disk across restarts. relay's own waits (limits, throttles, host gates,
all-bindings-suspended) are never recorded, so a suspension cannot feed itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from relay.adaptive import (
    AdaptiveEngine,
    AdaptiveSettings,
    Adjust,
    Blackhole,
    Event,
    Notification,
    OutcomeKind,
    Resume,
    Suspend,
)
from relay.adaptive import state as adaptive_state
from relay.adaptive.subjects import Destination, SubjectHold, SubjectRules
from relay.bind.suspensions import SuspensionTable
from relay.durable import write_atomically
from relay.outcome import Outcome, RecipientResult, Reply
from relay.schedule.route_settings import RouteSettings, RouteSettingsSource

log = logging.getLogger("relay.adaptive")
EventSink = Callable[[str, dict[str, object]], None]
AlertSender = Callable[[str, tuple[str, ...], bytes], Awaitable[None]]


class AdaptiveLink:
    def __init__(
        self,
        routes: RouteSettingsSource,
        suspensions: SuspensionTable,
        events: EventSink,
        *,
        state_path: Path | None = None,
        engine: AdaptiveEngine | None = None,
    ) -> None:
        self.routes = routes
        self.engine = engine or AdaptiveEngine(suspensions=suspensions)
        self.suspensions = suspensions  # written by the engine only
        self.events = events
        self.state_path = state_path
        self.send_alert: AlertSender | None = None
        self.on_change: Callable[[str, str], None] = lambda binding, domain: None
        # Every applied event, after it took effect (relay/cluster shares global-scope holds).
        self.on_event: Callable[[Event], None] = lambda event: None
        # The engine's key for a destination domain: the domain, or its provider's rollup
        # key (adaptive_provider_rollup, schedule/providers.py); set by the scheduler.
        self.key_of: Callable[[str], str] = lambda domain: domain
        # The destination's provider key ("provider:NAME", None: in no provider), for reply
        # rules with scope = tenant_provider; set by the scheduler.
        self.provider_key_of: Callable[[str], str | None] = lambda domain: None
        # Tenant / campaign reply rules (adaptive/subjects.py); their holds go to the
        # scheduler's hold table through `hold_subject` (set by the scheduler).
        self.subjects = SubjectRules()
        self.hold_subject: Callable[[SubjectHold], None] = lambda hold: None
        self._versions: dict[tuple[str, str], int] = {}
        self._dirty = False

    # --- configuration --------------------------------------------------------------
    def reload(self, routes: RouteSettingsSource) -> None:
        self.routes = routes
        for key in list(self._versions):
            self._versions[key] += 1

    def settings(self, binding: str, domain: str) -> AdaptiveSettings:
        return self.routes.get(binding, domain).adaptive

    def version(self, binding: str, domain: str) -> int:
        return self._versions.get((binding, self.key_of(domain)), 0)

    # --- live values -------------------------------------------------------------------
    def effective(self, route: RouteSettings) -> RouteSettings:
        """The route's settings with adaptive's live values for this binding x domain."""
        settings = route.adaptive
        key = self.key_of(route.domain)
        if not settings.enabled or not (settings.bounds or self._has_overrides(route.binding, key)):
            return route

        def live(option: str, configured: Any) -> Any:
            return self.engine.live_value(route.binding, key, option, configured, settings)

        return self.routes.with_live_values(route, live)

    def _has_overrides(self, binding: str, domain: str) -> bool:
        pair = self.engine.pairs.get((binding, domain.lower()))
        return pair is not None and bool(pair.overrides)

    def blackholed(self, binding: str, domain: str, now: float) -> str | None:
        hold = self.engine.blackhole(binding, self.key_of(domain), now)
        return hold.reason if hold is not None else None

    # --- outcomes ------------------------------------------------------------------------
    def record_results(
        self,
        policy: RouteSettings,
        results: list[RecipientResult],
        now: float,
        tenant: str | None = None,
        campaign: str | None = None,
    ) -> None:
        settings = policy.adaptive
        if not settings.enabled:
            return
        scoped = (tenant is not None or campaign is not None) and any(
            rule.scope != "binding" for rule in settings.reply_rules
        )
        for result in results:
            kind = self._kind(result)
            if kind is None:
                continue
            self._record(policy.binding, policy.domain, kind, result.reply, now, settings)
            if scoped and kind is not OutcomeKind.DELIVERED:
                self._record_subjects(policy, result.reply, now, tenant, campaign)
        self._dirty = True

    def _record_subjects(
        self,
        policy: RouteSettings,
        reply: Reply,
        now: float,
        tenant: str | None,
        campaign: str | None,
    ) -> None:
        """Reply rules with a sender scope (tenant, campaign, tenant_binding,
        tenant_provider): hold that sender's mail (holds.py)."""
        domain = policy.domain
        where = Destination(
            domain, self.key_of(domain), self.provider_key_of(domain), policy.binding
        )
        holds = self.subjects.record(
            policy.adaptive.reply_rules,
            {"tenant": tenant, "campaign": campaign},
            where,
            reply.code,
            reply.message,
            now,
        )
        for hold in holds:
            on = "" if hold.binding is None else f"{hold.binding} x "
            log.info(
                "adaptive: %s %s x %s%s held: %s",
                hold.kind,
                hold.subject,
                on,
                hold.target,
                hold.reason,
            )
            self.hold_subject(hold)

    def record_connect_failure(self, policy: RouteSettings, reply: Reply, now: float) -> None:
        settings = policy.adaptive
        if not settings.enabled:
            return
        code = reply.code
        kind = OutcomeKind.TEMPORARY if code is not None and code >= 400 else OutcomeKind.CONNECTION
        if code is not None and code >= 500:
            kind = OutcomeKind.PERMANENT
        self._record(policy.binding, policy.domain, kind, reply, now, settings)
        self._dirty = True

    def _record(
        self,
        binding: str,
        domain: str,
        kind: OutcomeKind,
        reply: Reply,
        now: float,
        settings: AdaptiveSettings,
    ) -> None:
        enhanced = None if reply.enhanced is None else str(reply.enhanced)
        self.engine.record(
            binding, self.key_of(domain), kind, reply.code, enhanced, reply.message, now, settings
        )

    def record_complaint(self, binding: str, domain: str, kind: str, now: float) -> None:
        """An FBL complaint about mail binding sent to domain."""
        settings = self.settings(binding, domain)
        self.engine.record_complaint(binding, self.key_of(domain), kind, now, settings)
        self._dirty = True

    @staticmethod
    def _kind(result: RecipientResult) -> OutcomeKind | None:
        if result.outcome is Outcome.NOT_ATTEMPTED:
            return None
        if result.outcome is Outcome.DELIVERED:
            return OutcomeKind.DELIVERED
        if result.local:
            # relay wrote this reply itself: a timeout or lost connection counts as an
            # attempt, relay's own refusals (content, limits) not at all.
            return OutcomeKind.CONNECTION if result.outcome is Outcome.TEMPORARY else None
        if result.outcome is Outcome.PERMANENT:
            return OutcomeKind.PERMANENT
        return OutcomeKind.TEMPORARY

    # --- events and time ------------------------------------------------------------------
    def next_due(self) -> float | None:
        return self.engine.next_due()

    async def poll(self, now: float) -> None:
        """Apply the engine's due events and send due alerts."""
        for event in self.engine.due_actions(now):
            self.apply(event)
        for alert in self.engine.notifications(now):
            await self._alert(alert)

    def apply(self, event: Event) -> None:
        self._dirty = True
        fields: dict[str, object] = {
            "binding": event.binding,
            "domain": event.domain,
            "reason": event.reason,
            "at": event.at,  # the scheduler clock's time of the decision
        }
        if isinstance(event, Suspend):
            fields["until"] = event.until
        elif isinstance(event, Resume):
            fields["ended"] = event.ended
        elif isinstance(event, Blackhole):
            fields["until"] = event.until
        elif isinstance(event, Adjust):
            fields.update(option=event.option, old=str(event.old), new=str(event.new))
            key = (event.binding, event.domain)
            self._versions[key] = self._versions.get(key, 0) + 1
        log.info("adaptive: %s", event.describe())
        self.events(f"adaptive_{event.kind}", fields)
        self.on_change(event.binding, event.domain)
        self.on_event(event)

    async def _alert(self, alert: Notification) -> None:
        if not alert.recipients or self.send_alert is None:
            return
        sender = alert.sender or "MAILER-DAEMON"  # the compile step sets MAILER-DAEMON@hostname
        content = (
            f"From: relay adaptive delivery <{sender}>\r\n"
            f"To: {', '.join(alert.recipients)}\r\n"
            f"Subject: {alert.subject}\r\n"
            f"Date: {formatdate(alert.at)}\r\n"
            f"Message-ID: {make_msgid(domain='relay.adaptive')}\r\n"
            "Auto-Submitted: auto-generated\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            + alert.body.replace("\r\n", "\n").replace("\n", "\r\n")
            + "\r\n"
        ).encode()
        await self.send_alert(sender, alert.recipients, content)
        self.events(
            "adaptive_alert",
            {
                "binding": alert.binding,
                "domain": alert.domain,
                "kind": alert.kind,
                "to": list(alert.recipients),
            },
        )

    # --- an operator's commands (through the engine, which owns every hold) -------------
    def suspend(
        self, binding: str, domain: str, now: float, duration: float, reason: str
    ) -> Suspend:
        self._dirty = True
        return self.engine.suspend(binding, domain, now, duration, reason)

    def resume(self, binding: str, domain: str, now: float) -> list[Resume]:
        self._dirty = True
        return self.engine.resume(binding, domain, now)

    def override(self, binding: str, domain: str, option: str, value: Any, now: float) -> Event:
        self._dirty = True
        return self.engine.override(binding, domain, option, value, now)

    def reset(self, binding: str, domain: str, now: float) -> list[Event]:
        self._dirty = True
        return list(self.engine.reset(binding, domain, now))

    # --- state ---------------------------------------------------------------------------
    def restore(self) -> None:
        """Load saved state, its suspensions included (call before dispatching)."""
        if self.state_path is None:
            return
        self.suspensions.clear()
        engine, warning = adaptive_state.load(self.state_path, self.engine.config, self.suspensions)
        if warning:
            log.warning("adaptive state: %s", warning)
        self.engine = engine

    async def save(self) -> None:
        """Snapshot on the loop, write in a thread."""
        if self.state_path is None or not self._dirty:
            return
        text = adaptive_state.to_json(self.engine)
        self._dirty = False
        try:
            await asyncio.to_thread(write_atomically, text, self.state_path)
        except OSError as err:
            self._dirty = True
            log.error("cannot save adaptive state to %s: %s", self.state_path, err)

    async def keep_saving(self, every: float, sleep: Callable[[float], Awaitable[None]]) -> None:
        while True:
            await sleep(every)
            await self.save()
