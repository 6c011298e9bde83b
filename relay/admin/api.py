"""The admin API's endpoints over a running daemon (KumoMTA's shape: one function each).

GET  /api/v1/summary            spool (all shards summed, and each), queues, connections, counts
GET  /api/v1/bindings           groups, bindings, addresses, weights, plumbing, suspensions
GET  /api/v1/queues             ready queues per binding x domain, scheduled per group x domain
GET  /api/v1/adaptive           every binding x domain adaptive delivery knows
POST /api/v1/adaptive/suspend   {"binding", "domain", "duration" (seconds or "4 hours"), "reason"}
POST /api/v1/adaptive/resume    {"binding", "domain"}
POST /api/v1/adaptive/override  {"binding", "domain", "option", "value"}
POST /api/v1/adaptive/reset     {"binding", "domain"}
POST /api/v1/flush              {"domain"?}: delayed mail becomes due now
POST /api/v1/reload             re-read the configuration file (refused if invalid)
GET  /metrics                   Prometheus text format
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from relay.admin.http import BadRequest, Request, Response, Routes
from relay.admin.metrics import render_metrics
from relay.config import ConfigError, load
from relay.config import options as config_options
from relay.config.errors import ValueProblem
from relay.config.tree import Scalar
from relay.config.values import parse_duration
from relay.spool.statistics import combine

if TYPE_CHECKING:
    from relay.daemon import Daemon


def routes(daemon: Daemon) -> Routes:
    def field(request: Request, name: str) -> str:
        value = request.body.get(name)
        if not isinstance(value, str) or not value:
            raise BadRequest(f"missing string field {name!r}")
        return value

    def pair(request: Request) -> tuple[str, str]:
        binding = field(request, "binding")
        if binding not in daemon.config.bindings:
            raise BadRequest(f'no binding "{binding}"')
        return binding, field(request, "domain").lower()

    def engine_and_now() -> tuple[Any, float]:
        if daemon.adaptive is None:
            raise BadRequest("the daemon is not running")
        return daemon.adaptive.engine, daemon.clock.now()

    def applied() -> None:
        if daemon.scheduler is not None:
            daemon.scheduler.wake()

    async def summary(request: Request) -> Response:
        parts = await daemon.spool_statistics()
        scheduler = daemon.scheduler.statistics() if daemon.scheduler is not None else None
        return Response(
            200,
            {
                # With injection workers: every shard summed, and each one on its own.
                "spool": asdict(combine(parts.values())) if parts else None,
                "spool_parts": {name: asdict(stats) for name, stats in parts.items()},
                "scheduler": asdict(scheduler) if scheduler is not None else None,
                "events": dict(daemon.events.counts),
                "listeners": [b.listen for b in daemon.listeners.bound] if daemon.listeners else [],
            },
        )

    async def bindings(request: Request) -> Response:
        now = daemon.clock.now()
        suspended: dict[str, list[dict[str, object]]] = {}
        for s in daemon.suspensions.all():
            if s.until > now:
                suspended.setdefault(s.binding, []).append(
                    {"domain": s.domain, "until": s.until, "reason": s.reason}
                )
        groups: dict[str, list[dict[str, object]]] = {}
        selector = daemon.scheduler.selector if daemon.scheduler is not None else None
        for group in daemon.config.groups:
            members = selector.members(group) if selector is not None else ()
            groups[group] = [
                {
                    "binding": m.name,
                    "weight": m.weight,
                    "plumbed": m.plumbed,
                    "bind_address": daemon.binding_address(m.name),
                    "suspended": suspended.get(m.name, []),
                }
                for m in members
            ]
        return Response(200, {"binding_groups": groups})

    async def queues(request: Request) -> Response:
        if daemon.scheduler is None:
            raise BadRequest("the daemon is not running")
        return Response(200, daemon.scheduler.queues())

    async def adaptive(request: Request) -> Response:
        engine, now = engine_and_now()
        return Response(200, {"pairs": [asdict(s) for s in engine.snapshot(now)]})

    async def suspend(request: Request) -> Response:
        binding, domain = pair(request)
        engine, now = engine_and_now()
        raw = request.body.get("duration", 4 * 3600)
        try:
            duration = float(raw) if isinstance(raw, (int, float)) else parse_duration(str(raw))
        except ValueProblem as err:
            raise BadRequest(str(err)) from None
        reason = str(request.body.get("reason") or "operator")
        event = engine.suspend(binding, domain, now, duration, reason)
        applied()
        return Response(200, {"suspended": event.describe(), "until": event.until})

    async def resume(request: Request) -> Response:
        binding, domain = pair(request)
        engine, now = engine_and_now()
        events = engine.resume(binding, domain, now)
        daemon.suspensions.resume(binding, domain)  # also an operator's own suspension
        applied()
        return Response(200, {"resumed": [e.describe() for e in events]})

    async def override(request: Request) -> Response:
        binding, domain = pair(request)
        engine, now = engine_and_now()
        name = field(request, "option").lower()
        spec = config_options.OPTIONS.get(name)
        if spec is None:
            raise BadRequest(f"no option {name!r}")
        try:
            value = spec.type(Scalar(str(request.body.get("value", "")), True))
            event = engine.override(binding, domain, name, value, now)
        except (ValueProblem, KeyError) as err:
            raise BadRequest(f"{name}: {err}") from None
        applied()
        return Response(200, {"override": event.describe()})

    async def reset(request: Request) -> Response:
        binding, domain = pair(request)
        engine, now = engine_and_now()
        events = engine.reset(binding, domain, now)
        applied()
        return Response(200, {"reset": [e.describe() for e in events]})

    async def flush(request: Request) -> Response:
        if daemon.scheduler is None:
            raise BadRequest("the daemon is not running")
        domain = request.body.get("domain")
        moved = daemon.scheduler.flush(str(domain) if domain else None)
        return Response(200, {"flushed": moved})

    async def reload(request: Request) -> Response:
        if daemon.path is None:
            raise BadRequest("this daemon was not started from a file")
        try:
            config = load(daemon.path)
        except ConfigError as err:
            return Response(
                400, {"error": "configuration refused", "problems": [str(p) for p in err.problems]}
            )
        await daemon.reload(config)
        return Response(200, {"reloaded": daemon.path})

    async def metrics(request: Request) -> Response:
        await daemon.spool_statistics()  # the workers' shards, asked now
        return Response(200, render_metrics(daemon), "text/plain; version=0.0.4")

    return {
        ("GET", "/api/v1/summary"): summary,
        ("GET", "/api/v1/bindings"): bindings,
        ("GET", "/api/v1/queues"): queues,
        ("GET", "/api/v1/adaptive"): adaptive,
        ("POST", "/api/v1/adaptive/suspend"): suspend,
        ("POST", "/api/v1/adaptive/resume"): resume,
        ("POST", "/api/v1/adaptive/override"): override,
        ("POST", "/api/v1/adaptive/reset"): reset,
        ("POST", "/api/v1/flush"): flush,
        ("POST", "/api/v1/reload"): reload,
        ("GET", "/metrics"): metrics,
    }
