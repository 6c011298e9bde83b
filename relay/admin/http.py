"""The admin API's HTTP side on aiohttp, on relay's own event loop: JSON in, JSON (or text)
out, keep-alive, HTTPS when `admin_tls_certificate`/`admin_tls_key` are set.

Each route has a scope (relay/admin/auth.py): `open` (no token), `read`, `inject`, `admin`.
Every refusal is a JSON object {"error": "..."} (and "field" when one field is at fault).
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from relay.admin.auth import Refusal, Scope, Token, decide

log = logging.getLogger("relay.admin")
MAX_BODY = 1 << 20


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    body: dict[str, Any]
    match: Mapping[str, str] = field(default_factory=dict)  # the path's {name} parts
    headers: Mapping[str, str] = field(default_factory=dict)
    token: str | None = None  # the name of the token the request presented
    peer: str = "127.0.0.1"  # the client's IP address
    tls: bool = False


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: Any  # JSON-able, or str for text
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


class BadRequest(Exception):
    """The request lacks a field or names something that does not exist (400 unless said)."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    handler: Handler
    scope: Scope


Routes = dict[tuple[str, str], Endpoint]


class Access:
    """The tokens requests are checked against (None: no token file); replaced on reload."""

    def __init__(self, tokens: Sequence[Token] | None) -> None:
        self.tokens = tokens


def error(status: int, message: str, field: str | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    headers = {"WWW-Authenticate": 'Bearer realm="relay"'} if status == 401 else {}
    return Response(status, body, headers=headers)


def _render(response: Response) -> web.Response:
    if isinstance(response.body, str):
        text = response.body
    else:
        text = json.dumps(response.body, indent=1, default=str) + "\n"
    content_type, _, params = response.content_type.partition(";")
    charset = "utf-8"
    reply = web.Response(
        status=response.status,
        text=text,
        content_type=content_type.strip(),
        charset=charset,
        headers=dict(response.headers),
    )
    if params.strip():  # e.g. Prometheus' "version=0.0.4"
        reply.headers["Content-Type"] = response.content_type
    return reply


async def _read_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as err:
        raise BadRequest(f"body is not JSON: {err}") from None
    if not isinstance(parsed, dict):
        raise BadRequest("body must be a JSON object")
    return parsed


def _peer(request: web.Request) -> str:
    peername = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peername, tuple) and peername and isinstance(peername[0], str):
        return peername[0]
    return "127.0.0.1"


def make_app(
    routes: Routes,
    access: Access,
    *,
    metrics_require_token: bool = False,
    max_body: int = MAX_BODY,
) -> web.Application:
    """The aiohttp application: every route behind its scope check."""

    def wrap(path: str, endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.Response]]:
        scope: Scope = endpoint.scope
        if path == "/metrics" and metrics_require_token:
            scope = "read"

        async def handle(request: web.Request) -> web.Response:
            tokens = access.tokens
            verdict = decide(tokens, request.headers.get("Authorization"), scope)
            if isinstance(verdict, Refusal):
                return _render(error(verdict.status, verdict.message))
            try:
                body = await _read_body(request)
                response = await endpoint.handler(
                    Request(
                        request.method,
                        path,
                        dict(request.query),
                        body,
                        dict(request.match_info),
                        request.headers,
                        verdict.name if verdict is not None else None,
                        _peer(request),
                        request.secure,
                    )
                )
            except BadRequest as err:
                response = error(err.status, str(err), err.field)
            except web.HTTPRequestEntityTooLarge:
                response = error(413, f"request body over {max_body} bytes")
            except Exception as err:  # an admin bug must not take the daemon down
                log.exception("admin request %s %s failed", request.method, path)
                response = error(500, f"internal error: {err}")
            return _render(response)

        return handle

    app = web.Application(client_max_size=max_body)
    for (method, path), endpoint in routes.items():
        app.router.add_route(method, path, wrap(path, endpoint))
    app.middlewares.append(_json_errors)
    return app


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own refusals (no such path, wrong method) as JSON too."""
    try:
        return await handler(request)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        text = "no such endpoint" if err.status in (404, 405) else err.reason
        return _render(error(err.status, text))


class AdminServer:
    """The running admin API; `close()` stops it."""

    def __init__(self, runner: web.AppRunner, site: web.TCPSite, access: Access) -> None:
        self._runner = runner
        self._site = site
        self.access = access

    @property
    def addresses(self) -> list[str]:
        return [str(a) for a in self._runner.addresses]

    async def close(self) -> None:
        await self._runner.cleanup()


async def start_admin(
    host: str,
    port: int,
    routes: Routes,
    *,
    tokens: Sequence[Token] | None = None,
    tls: ssl.SSLContext | None = None,
    metrics_require_token: bool = False,
    max_body: int = MAX_BODY,
) -> AdminServer:
    access = Access(tokens)
    app = make_app(routes, access, metrics_require_token=metrics_require_token, max_body=max_body)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return AdminServer(runner, site, access)
