"""A web endpoint for delivery_method = HTTP tests: an aiohttp server on 127.0.0.N.

sink = await HttpSink("127.0.0.8").start()
sink.statuses = [503, 404]         # the next answers, then 201
sink.stall = True                  # never answer (until sink.release.set())
... deliver to f"{sink.host}:{sink.port}" ...
sink.requests   # [HttpRequest(peer_ip, method, path, version, headers, body)]
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDict

__all__ = ["HttpRequest", "HttpSink"]


@dataclass
class HttpRequest:
    peer_ip: str
    method: str
    path: str
    version: str
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class HttpSink:
    host: str = "127.0.0.1"
    port: int = 0
    statuses: list[int] = field(default_factory=list)
    by_recipient: dict[str, int] = field(default_factory=dict)
    stall: bool = False
    requests: list[HttpRequest] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    tls_context: ssl.SSLContext | None = None  # HTTPS (see sinks.server_tls_context)
    _runner: web.AppRunner | None = None

    async def start(self) -> HttpSink:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.tls_context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def delivered(self) -> list[HttpRequest]:
        return [r for r in self.requests if r.method in ("POST", "PUT")]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(
            HttpRequest(
                str(peer[0]) if peer else "",
                request.method,
                request.path,
                f"{request.version.major}.{request.version.minor}",
                CIMultiDict(request.headers),
                body,
            )
        )
        if self.stall:
            await self.release.wait()
        first = request.headers.get("X-Relay-Rcpt-To", "").strip("<>")
        status = self.by_recipient.get(first) or (self.statuses.pop(0) if self.statuses else 201)
        return web.Response(status=status, text=f"status {status} from the test endpoint")
