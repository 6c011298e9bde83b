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
POST /api/v1/messages           inject a message (scope inject; compose.py reads the body)
GET  /api/v1/messages/{id}      a spooled message: envelope, recipients, states, last replies
POST /api/v1/bounce             {filter}: fail matching queued mail, with DSNs
POST /api/v1/delete             {filter}: drop matching queued mail, no DSN
POST /api/v1/rebind             {filter, "target"}: queued mail moves to binding group target
POST /api/v1/suspend            {"domain", "duration", "reason"}: every binding, for a domain
POST /api/v1/resume             {"domain"}: lift every binding's suspension for a domain
  a filter: any of "domain", "binding_group", "binding", "sender", "tenant", "campaign",
  "older_than" (seconds or "4 hours"); at least one; every field given must match
GET  /api/v1/nodes              the cluster's live nodes (404 without a cluster stanza)
GET  /api/v1/suppressions        ?tenant=&address=&limit=&offset=: the suppression list
POST /api/v1/suppressions        {"address" or "addresses", "tenant"?, "reason"?}: add
POST /api/v1/suppressions/remove {"address", "tenant"?}: remove (no tenant: the global entry)
GET  /metrics                   Prometheus text format (open unless metrics_require_token)
GET  /healthz                   200 when the spool is writable and the listeners are up (open)
GET  /readyz                    200 once recovery has finished (open)

Scopes (auth.py): GETs are `read`, injection `inject`, every other change `admin`.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from relay.admin.auth import Scope
from relay.admin.compose import read_injection
from relay.admin.http import BadRequest, Endpoint, Handler, Request, Response, Routes, error
from relay.admin.idempotency import MAX_KEY, Answer, IdempotencyStore, KeyReused
from relay.admin.metrics import render_metrics
from relay.admin.view import (
    ClusterUnavailable,
    DaemonView,
    MessageFilter,
    NoCluster,
    NotFromFile,
    NotRunning,
    SubmissionRefused,
    Taken,
)
from relay.config import ConfigError
from relay.config import options as config_options
from relay.config.errors import ValueProblem
from relay.config.tree import Scalar
from relay.config.values import parse_duration
from relay.spool.statistics import combine
from relay.suppress.entries import Entry

NOT_RUNNING = "the daemon is not running"


def reply_status(reply: str) -> int:
    """The HTTP status for an SMTP reply refusing an injection."""
    code, _, rest = reply.partition(" ")
    enhanced = rest.split(" ", 1)[0]
    if enhanced == "5.3.4":
        return 413  # over max_message_size
    if enhanced == "4.3.1":
        return 507  # the spool's disk is full
    if code.startswith("4"):
        return 422 if enhanced == "4.5.3" else 503  # too many recipients; spool trouble
    if code in ("500", "501", "553"):
        return 400  # syntax: a malformed address, a line too long
    return 422


FILTER_FIELDS = ("domain", "binding_group", "binding", "sender", "tenant", "campaign", "older_than")


def duration_of(raw: object, name: str) -> float:
    try:
        value = float(raw) if isinstance(raw, (int, float)) else parse_duration(str(raw))
    except ValueProblem as err:
        raise BadRequest(f"{name}: {err}", field=name) from None
    if value < 0:
        raise BadRequest(f"{name} must not be negative", field=name)
    return value


def read_filter(body: dict[str, object], also: tuple[str, ...] = ()) -> MessageFilter:
    """The filter of a bounce, delete or rebind; refuses an empty one (it would take all)."""
    for name in body:
        if name not in FILTER_FIELDS and name not in also:
            raise BadRequest(f"unknown field {name!r}", field=name)
    values: dict[str, str] = {}
    for name in FILTER_FIELDS[:-1]:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise BadRequest(f"field {name!r} must be a non-empty string", field=name)
        values[name] = value
    older = body.get("older_than")
    if not values and older is None:
        raise BadRequest(
            f"give at least one filter field ({', '.join(FILTER_FIELDS)})", field="domain"
        )
    return MessageFilter(
        **values, older_than=None if older is None else duration_of(older, "older_than")
    )


def taken(result: Taken) -> dict[str, int]:
    return {"messages": result.messages, "recipients": result.recipients}


def routes(daemon: DaemonView, idempotency: IdempotencyStore | None = None) -> Routes:
    def field(request: Request, name: str) -> str:
        value = request.body.get(name)
        if not isinstance(value, str) or not value:
            raise BadRequest(f"missing string field {name!r}", field=name)
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
                "webhooks": {name: dict(counts) for name, counts in daemon.webhooks().items()},
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
                    "warmup": dict(b.warmup) if b.warmup is not None else None,
                    "warmup_domains": [dict(w) for w in b.warmup_domains],
                    "warmup_providers": [dict(w) for w in b.warmup_providers],
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

    async def tls(request: Request) -> Response:
        try:
            return Response(200, {"today": [dict(c) for c in daemon.tls_counts()]})
        except NotRunning:
            raise BadRequest(NOT_RUNNING) from None

    def hold_target(request: Request) -> tuple[str, str, str, str | None]:
        """(kind, subject, target, binding) of a hold request."""
        kind = field(request, "kind")
        if kind not in ("tenant", "campaign"):
            raise BadRequest('kind must be "tenant" or "campaign"', field="kind")
        subject = field(request, "subject")
        domain, provider = request.body.get("domain"), request.body.get("provider")
        if isinstance(domain, str) and domain and provider is None:
            target = domain.lower()
        elif isinstance(provider, str) and provider and domain is None:
            target = "provider:" + provider.lower()
        else:
            raise BadRequest("give one of domain or provider", field="domain")
        binding = request.body.get("binding")
        if binding is not None:
            if not isinstance(binding, str) or not daemon.has_binding(binding):
                raise BadRequest(f"no binding {binding!r}", field="binding")
            if kind != "tenant" or provider is not None:
                raise BadRequest("a binding holds only a tenant x domain", field="binding")
        return kind, subject, target, binding

    async def hold(request: Request) -> Response:
        kind, subject, target, binding = hold_target(request)
        duration = duration_of(request.body.get("duration", "4 hours"), "duration")
        reason = request.body.get("reason", "operator")
        try:
            entry = daemon.hold(kind, subject, target, duration, str(reason), binding)
        except NotRunning:
            raise BadRequest(NOT_RUNNING, status=503) from None
        return Response(200, {"held": dict(entry)})

    async def release_hold(request: Request) -> Response:
        kind, subject, target, binding = hold_target(request)
        try:
            released = daemon.release_hold(kind, subject, target, binding)
        except NotRunning:
            raise BadRequest(NOT_RUNNING, status=503) from None
        if not released:
            raise BadRequest(f"no {kind} hold for {subject} x {target}", status=404)
        return Response(200, {"released": True})

    async def holds(request: Request) -> Response:
        try:
            return Response(200, {"holds": [dict(h) for h in daemon.holds()]})
        except NotRunning:
            raise BadRequest(NOT_RUNNING) from None

    async def warmup_age(request: Request) -> Response:
        """{"binding": B, "age_days": N}: B is N days into its warm-up schedules."""
        binding = field(request, "binding")
        if not daemon.has_binding(binding):
            raise BadRequest(f'no binding "{binding}"', field="binding")
        days = request.body.get("age_days")
        if isinstance(days, bool) or not isinstance(days, int) or days < 0:
            raise BadRequest("age_days must be a whole number of days >= 0", field="age_days")
        try:
            status = daemon.set_warmup_age(binding, days)
        except NotRunning:
            raise BadRequest(NOT_RUNNING, status=503) from None
        return Response(200, {"binding": binding, "warmup": status})

    async def providers(request: Request) -> Response:
        """?domain=D: that domain's provider as dispatch knows it (known: classified yet)."""
        try:
            found = daemon.providers()
        except NotRunning:
            raise BadRequest(NOT_RUNNING) from None
        domain = request.query.get("domain")
        if domain:
            domains = found["domains"]
            assert isinstance(domains, dict)
            name = domain.lower().rstrip(".")
            return Response(
                200, {"domain": name, "provider": domains.get(name), "known": name in domains}
            )
        return Response(200, dict(found))

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

    async def inject_once(request: Request) -> Answer:
        injection = read_injection(request.body)
        try:
            stored = await daemon.submit(
                sender=injection.sender,
                recipients=injection.recipients,
                content=injection.content,
                binding_group=injection.binding_group,
                binding=injection.binding,
                client_ip=request.peer,
                tls=request.tls,
                tenant=injection.tenant,
                campaign=injection.campaign,
                priority=injection.priority,
            )
        except SubmissionRefused as err:
            body = error(reply_status(err.reply), err.reply, err.field)
            return Answer(body.status, {**body.body, "smtp_reply": err.reply})
        except NotRunning as err:
            return Answer(503, {"error": str(err)})
        answer: dict[str, object] = {
            "id": stored.message_id or None,  # None: every recipient suppressed, none queued
            "recipients": stored.recipients,
        }
        if stored.suppressed:
            answer["suppressed"] = stored.suppressed
        return Answer(201, answer)

    async def messages(request: Request) -> Response:
        key = request.headers.get("Idempotency-Key")
        if key is None or idempotency is None:
            answer = await inject_once(request)
        else:
            if not key or len(key) > MAX_KEY:
                raise BadRequest(f"Idempotency-Key must be 1 to {MAX_KEY} characters")
            canonical = json.dumps(request.body, sort_keys=True).encode()

            async def work() -> Answer:
                return await inject_once(request)

            try:
                answer = await idempotency.once(f"{request.token}\0{key}", canonical, work)
            except KeyReused:
                raise BadRequest(
                    "Idempotency-Key was used before with a different request", status=422
                ) from None
        return Response(answer.status, answer.body)

    async def healthz(request: Request) -> Response:
        health = await daemon.health()
        return Response(
            200 if not health.problems else 503,
            {
                "status": "ok" if not health.problems else "failing",
                "spool_writable": health.spool_writable,
                "listeners": list(health.listeners),
                "problems": list(health.problems),
            },
        )

    async def readyz(request: Request) -> Response:
        ready = daemon.ready()
        return Response(200 if ready else 503, {"ready": ready})

    async def message(request: Request) -> Response:
        try:
            found = await daemon.message(request.match["id"])
        except NotRunning:
            raise BadRequest(NOT_RUNNING, status=503) from None
        if found is None:
            return error(404, f"no message {request.match['id']!r} in the spool")
        return Response(200, found)

    async def bounce(request: Request) -> Response:
        selection = read_filter(request.body)
        try:
            return Response(200, {"bounced": taken(await daemon.bounce(selection))})
        except NotRunning:
            raise BadRequest(NOT_RUNNING, status=503) from None

    async def delete(request: Request) -> Response:
        selection = read_filter(request.body)
        try:
            return Response(200, {"deleted": taken(await daemon.delete(selection))})
        except NotRunning:
            raise BadRequest(NOT_RUNNING, status=503) from None

    async def rebind(request: Request) -> Response:
        target = field(request, "target")
        if target not in daemon.binding_groups():
            raise BadRequest(f'no binding_group "{target}"', field="target")
        selection = read_filter(request.body, also=("target",))
        try:
            return Response(200, {"rebound": taken(await daemon.rebind(selection, target))})
        except NotRunning:
            raise BadRequest(NOT_RUNNING, status=503) from None

    async def suspend_domain(request: Request) -> Response:
        domain = field(request, "domain").lower()
        duration = duration_of(request.body.get("duration", 4 * 3600), "duration")
        reason = str(request.body.get("reason") or "operator")
        try:
            events = daemon.suspend_domain(domain, duration, reason)
        except NotRunning:
            raise BadRequest(NOT_RUNNING, status=503) from None
        until = max((e.until for e in events), default=None)
        return Response(200, {"suspended": [e.describe() for e in events], "until": until})

    async def resume_domain(request: Request) -> Response:
        domain = field(request, "domain").lower()
        try:
            events = daemon.resume_domain(domain)
        except NotRunning:
            raise BadRequest(NOT_RUNNING, status=503) from None
        return Response(200, {"resumed": [e.describe() for e in events]})

    def suppression_key(source: dict[str, object]) -> tuple[str | None, str]:
        tenant = source.get("tenant")
        if tenant is not None and (not isinstance(tenant, str) or not 0 < len(tenant) <= 128):
            raise BadRequest(
                "field 'tenant' must be a string of 1 to 128 characters", field="tenant"
            )
        address = source.get("address")
        if not isinstance(address, str) or "@" not in address.strip("@") or " " in address:
            raise BadRequest("field 'address' must be an email address", field="address")
        return tenant, address.lower()

    async def suppressions(request: Request) -> Response:
        query = request.query
        try:
            limit = int(query.get("limit", "100"))
            offset = int(query.get("offset", "0"))
        except ValueError:
            raise BadRequest("limit and offset must be whole numbers", field="limit") from None
        if not 1 <= limit <= 10000 or offset < 0:
            raise BadRequest("limit must be 1 to 10000, offset not negative", field="limit")
        address = query.get("address")
        try:
            entries, total = await daemon.suppressions(
                query.get("tenant"), address.lower() if address else None, limit, offset
            )
        except NotRunning as err:
            raise BadRequest(str(err), status=409) from None
        return Response(
            200,
            {"entries": [e.describe() for e in entries], "total": total, "offset": offset},
        )

    async def suppress(request: Request) -> Response:
        body = request.body
        for name in body:
            if name not in ("address", "addresses", "tenant", "reason"):
                raise BadRequest(f"unknown field {name!r}", field=name)
        listed = body.get("addresses", [body.get("address")] if "address" in body else None)
        if not isinstance(listed, list) or not listed or len(listed) > 10000:
            raise BadRequest("give 'address' or 'addresses' (1 to 10000)", field="address")
        reason = body.get("reason", "")
        if not isinstance(reason, str):
            raise BadRequest("field 'reason' must be a string", field="reason")
        now = daemon.now()
        entries = []
        for item in listed:
            tenant, address = suppression_key({"tenant": body.get("tenant"), "address": item})
            entries.append(Entry(tenant or "", address, reason, "operator", now))
        try:
            added = await daemon.suppress(entries)
        except NotRunning as err:
            raise BadRequest(str(err), status=409) from None
        return Response(200, {"added": len(added), "entries": [e.describe() for e in added]})

    async def unsuppress(request: Request) -> Response:
        for name in request.body:
            if name not in ("address", "tenant"):
                raise BadRequest(f"unknown field {name!r}", field=name)
        tenant, address = suppression_key(request.body)
        try:
            removed = await daemon.unsuppress(tenant, address)
        except NotRunning as err:
            raise BadRequest(str(err), status=409) from None
        return Response(200, {"removed": 1 if removed else 0})

    table: dict[tuple[str, str], Handler] = {
        ("GET", "/api/v1/summary"): summary,
        ("GET", "/api/v1/bindings"): bindings,
        ("GET", "/api/v1/queues"): queues,
        ("GET", "/api/v1/adaptive"): adaptive,
        ("GET", "/api/v1/tls"): tls,
        ("GET", "/api/v1/providers"): providers,
        ("POST", "/api/v1/bindings/warmup"): warmup_age,
        ("GET", "/api/v1/holds"): holds,
        ("POST", "/api/v1/holds"): hold,
        ("POST", "/api/v1/holds/release"): release_hold,
        ("POST", "/api/v1/adaptive/suspend"): suspend,
        ("POST", "/api/v1/adaptive/resume"): resume,
        ("POST", "/api/v1/adaptive/override"): override,
        ("POST", "/api/v1/adaptive/reset"): reset,
        ("POST", "/api/v1/flush"): flush,
        ("POST", "/api/v1/reload"): reload,
        ("POST", "/api/v1/messages"): messages,
        ("GET", "/api/v1/messages/{id}"): message,
        ("POST", "/api/v1/bounce"): bounce,
        ("POST", "/api/v1/delete"): delete,
        ("POST", "/api/v1/rebind"): rebind,
        ("POST", "/api/v1/suspend"): suspend_domain,
        ("POST", "/api/v1/resume"): resume_domain,
        ("GET", "/api/v1/nodes"): nodes,
        ("GET", "/api/v1/suppressions"): suppressions,
        ("POST", "/api/v1/suppressions"): suppress,
        ("POST", "/api/v1/suppressions/remove"): unsuppress,
        ("GET", "/metrics"): metrics,
        ("GET", "/healthz"): healthz,
        ("GET", "/readyz"): readyz,
    }
    return {
        (method, path): Endpoint(h, scope_of(method, path)) for (method, path), h in table.items()
    }


OPEN = frozenset({"/metrics", "/healthz", "/readyz"})


def scope_of(method: str, path: str) -> Scope:
    """Reads need `read`, injection `inject`, every other change `admin`."""
    if path in OPEN:
        return "open"
    if method == "GET":
        return "read"
    return "inject" if path == "/api/v1/messages" else "admin"
