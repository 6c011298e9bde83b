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
GET  /api/v1/nodes              the cluster's live nodes (404 without a cluster stanza)
GET  /metrics                   Prometheus text format
"""

from __future__ import annotations

from dataclasses import asdict

from relay.admin.http import BadRequest, Request, Response, Routes
from relay.admin.metrics import render_metrics
from relay.admin.view import (
    ClusterUnavailable,
    DaemonView,
    NoCluster,
    NotFromFile,
    NotRunning,
)
from relay.config import ConfigError
from relay.config import options as config_options
from relay.config.errors import ValueProblem
from relay.config.tree import Scalar
from relay.config.values import parse_duration
from relay.spool.statistics import combine

NOT_RUNNING = "the daemon is not running"


def routes(daemon: DaemonView) -> Routes:
    def field(request: Request, name: str) -> str:
        value = request.body.get(name)
        if not isinstance(value, str) or not value:
            raise BadRequest(f"missing string field {name!r}")
        return value

    def pair(request: Request) -> tuple[str, str]:
        binding = field(request, "binding")
        if not daemon.has_binding(binding):
            raise BadRequest(f'no binding "{binding}"')
        return binding, field(request, "domain").lower()

    async def summary(request: Request) -> Response:
        parts = await daemon.spool_statistics()
        counts = daemon.queue_counts()
        return Response(
            200,
            {
                # With injection workers: every shard summed, and each one on its own.
                "spool": asdict(combine(parts.values())) if parts else None,
                "spool_parts": {name: asdict(stats) for name, stats in parts.items()},
                "scheduler": asdict(counts) if counts is not None else None,
                "events": dict(daemon.event_counts()),
                "listeners": list(daemon.listening()),
            },
        )

    async def bindings(request: Request) -> Response:
        groups = {
            group: [
                {
                    "binding": b.name,
                    "weight": b.weight,
                    "plumbed": b.plumbed,
                    "bind_address": b.bind_address,
                    "suspended": [asdict(s) for s in b.suspended],
                }
                for b in members
            ]
            for group, members in daemon.binding_groups().items()
        }
        return Response(200, {"binding_groups": groups})

    async def queues(request: Request) -> Response:
        try:
            return Response(200, {k: list(v) for k, v in daemon.queues().items()})
        except NotRunning:
            raise BadRequest(NOT_RUNNING) from None

    async def adaptive(request: Request) -> Response:
        try:
            return Response(200, {"pairs": [asdict(s) for s in daemon.adaptive_pairs()]})
        except NotRunning:
            raise BadRequest(NOT_RUNNING) from None

    async def suspend(request: Request) -> Response:
        binding, domain = pair(request)
        raw = request.body.get("duration", 4 * 3600)
        try:
            duration = float(raw) if isinstance(raw, (int, float)) else parse_duration(str(raw))
        except ValueProblem as err:
            raise BadRequest(str(err)) from None
        reason = str(request.body.get("reason") or "operator")
        try:
            event = daemon.suspend(binding, domain, duration, reason)
        except NotRunning:
            raise BadRequest(NOT_RUNNING) from None
        return Response(200, {"suspended": event.describe(), "until": event.until})

    async def resume(request: Request) -> Response:
        binding, domain = pair(request)
        try:
            events = daemon.resume(binding, domain)
        except NotRunning:
            raise BadRequest(NOT_RUNNING) from None
        return Response(200, {"resumed": [e.describe() for e in events]})

    async def override(request: Request) -> Response:
        binding, domain = pair(request)
        name = field(request, "option").lower()
        spec = config_options.OPTIONS.get(name)
        if spec is None:
            raise BadRequest(f"no option {name!r}")
        try:
            value = spec.type(Scalar(str(request.body.get("value", "")), True))
            event = daemon.override(binding, domain, name, value)
        except (ValueProblem, KeyError) as err:
            raise BadRequest(f"{name}: {err}") from None
        except NotRunning:
            raise BadRequest(NOT_RUNNING) from None
        return Response(200, {"override": event.describe()})

    async def reset(request: Request) -> Response:
        binding, domain = pair(request)
        try:
            events = daemon.reset(binding, domain)
        except NotRunning:
            raise BadRequest(NOT_RUNNING) from None
        return Response(200, {"reset": [e.describe() for e in events]})

    async def flush(request: Request) -> Response:
        domain = request.body.get("domain")
        try:
            moved = daemon.flush(str(domain) if domain else None)
        except NotRunning:
            raise BadRequest(NOT_RUNNING) from None
        return Response(200, {"flushed": moved})

    async def reload(request: Request) -> Response:
        try:
            path = await daemon.reload()
        except NotFromFile:
            raise BadRequest("this daemon was not started from a file") from None
        except ConfigError as err:
            return Response(
                400, {"error": "configuration refused", "problems": [str(p) for p in err.problems]}
            )
        return Response(200, {"reloaded": path})

    async def nodes(request: Request) -> Response:
        status = daemon.cluster_status()
        try:
            rows = await daemon.cluster_nodes()
        except NoCluster as err:
            return Response(404, {"error": str(err)})
        except ClusterUnavailable as err:
            return Response(503, {"error": str(err), "cluster": asdict(status) if status else None})
        return Response(200, {"cluster": asdict(status) if status else None, "nodes": list(rows)})

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
        ("GET", "/api/v1/nodes"): nodes,
        ("GET", "/metrics"): metrics,
    }
