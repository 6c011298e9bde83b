"""A small HTTP/1.1 server for the admin API: JSON in, JSON (or text) out, one request per
connection. Local operators only: it listens where `admin_listen` says (loopback by default).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger("relay.admin")
MAX_BODY = 1 << 20
STATUS_TEXT = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    500: "Internal Server Error",
}


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: Any  # JSON-able, or str for text
    content_type: str = "application/json"


class BadRequest(Exception):
    """The request names something that does not exist or lacks a field (400)."""


Handler = Callable[[Request], Awaitable[Response]]
Routes = dict[tuple[str, str], Handler]


async def _read_request(reader: asyncio.StreamReader) -> Request:
    line = (await reader.readline()).decode("latin-1").strip()
    parts = line.split()
    if len(parts) != 3:
        raise BadRequest(f"bad request line {line!r}")
    method, target, _ = parts
    length = 0
    while True:
        header = (await reader.readline()).decode("latin-1").strip()
        if not header:
            break
        name, _, value = header.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length > MAX_BODY:
        raise BadRequest("body too large")
    raw = await reader.readexactly(length) if length else b""
    body: dict[str, Any] = {}
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError as err:
            raise BadRequest(f"body is not JSON: {err}") from None
        if not isinstance(parsed, dict):
            raise BadRequest("body must be a JSON object")
        body = parsed
    url = urlsplit(target)
    return Request(method.upper(), url.path.rstrip("/") or "/", dict(parse_qsl(url.query)), body)


def _encode(response: Response) -> bytes:
    if isinstance(response.body, str):
        payload = response.body.encode()
    else:
        payload = (json.dumps(response.body, indent=1, default=str) + "\n").encode()
    head = (
        f"HTTP/1.1 {response.status} {STATUS_TEXT.get(response.status, 'OK')}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + payload


async def start_admin(host: str, port: int, routes: Routes) -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                request = await asyncio.wait_for(_read_request(reader), 10)
                handler = routes.get((request.method, request.path))
                if handler is None:
                    known = any(path == request.path for _, path in routes)
                    response = Response(405 if known else 404, {"error": "no such endpoint"})
                else:
                    response = await handler(request)
            except BadRequest as err:
                response = Response(400, {"error": str(err)})
            except (asyncio.IncompleteReadError, TimeoutError, ValueError) as err:
                response = Response(400, {"error": f"malformed request: {err}"})
            except Exception as err:  # an admin bug must not take the daemon down
                log.exception("admin request failed")
                response = Response(500, {"error": str(err)})
            writer.write(_encode(response))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(serve, host, port)
