"""delivery_method = HTTP: each message is the body of one request to a web endpoint.

    session = await open_http_session(settings, domain)    # the scheduler's Session
    results = await session.send(message)                  # a RecipientResult each
    await session.close()

The request: `http_method` (POST or PUT) to `http_host` + `http_uri` over HTTP/`http_version`,
from the binding's bind_address; body = the message as spooled (CRLF line ends), with

    Content-Type: message/rfc822
    X-Relay-Mail-From: <sender>              (<> for the null sender)
    X-Relay-Rcpt-To: <recipient>             (one field per recipient, in order)
    X-Relay-Queue-Id: <relay's message id>   (the same on every retry: deduplicate on it)
    Authorization: Basic ...                 (with http_basic_auth)

Header values are UTF-8. max_recipients_per_batch recipients per request. What the answer
means (`http_reply`, pure): 2xx delivered; 408, 429 and 5xx temporary; every other 4xx
permanent; 1xx/3xx temporary (redirects are not followed: a misconfigured endpoint is
fixed, not bounced); a connection failure or timeout temporary. The status goes into an
SMTP-style `Reply` ("250 2.0.0 HTTP 201 Created"), so events, DSNs and adaptive delivery
read HTTP results as they read SMTP ones.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

import aiohttp

from relay.deliver.errors import MessageLike
from relay.deliver.settings import DeliverySettings
from relay.outcome import Outcome, Phase, RecipientResult, Remote, Reply

__all__ = ["HttpSession", "http_reply", "open_http_session", "request_headers"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DETAIL_CHARS = 200  # of the response body, in the reply text


class Unsendable(ValueError):
    """A header value relay refuses to send (a control character would split fields)."""


def http_reply(status: int, reason: str, body: str = "") -> Reply:
    """What an HTTP status means for the recipients of the request, as a Reply: 2xx
    delivered, 408/429/5xx (and 1xx/3xx) temporary, other 4xx permanent."""
    detail = " ".join(body.split())[:_DETAIL_CHARS]
    text = f"HTTP {status} {reason}".rstrip() + (f": {detail}" if detail else "")
    if 200 <= status < 300:
        return Reply.parse(250, f"2.0.0 {text}")
    if status == 413:
        return Reply.parse(552, f"5.3.4 {text}")
    if 400 <= status < 500 and status not in (408, 429):
        enhanced = "5.7.1" if status in (401, 403) else "5.0.0"
        return Reply.parse(554, f"{enhanced} {text}")
    enhanced = "4.4.2" if status == 408 else "4.7.0" if status == 429 else "4.3.0"
    return Reply.parse(451, f"{enhanced} {text}")


def request_headers(
    sender: str,
    recipients: Sequence[str],
    message_id: str,
    basic_auth: str | None,
) -> list[tuple[str, str]]:
    """The request's header fields; raises Unsendable on a control character."""
    fields = [
        ("Content-Type", "message/rfc822"),
        ("X-Relay-Mail-From", f"<{sender}>"),
        *(("X-Relay-Rcpt-To", f"<{r}>") for r in recipients),
        ("X-Relay-Queue-Id", message_id),
    ]
    if basic_auth is not None:
        token = base64.b64encode(basic_auth.encode("utf-8")).decode("ascii")
        fields.append(("Authorization", f"Basic {token}"))
    for name, value in fields:
        if _CONTROL.search(value) is not None:
            raise Unsendable(f"{name} would contain a control character")
    return fields


def _connection_reply(exc: BaseException, seconds: float) -> Reply:
    if isinstance(exc, TimeoutError):
        return Reply.make(451, "4.4.2", f"HTTP timeout after {seconds:g}s")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Reply.make(451, "4.4.1", f"HTTP connection failed: {exc.os_error or exc}")
    return Reply.make(451, "4.4.2", f"HTTP request failed: {type(exc).__name__}: {exc}")


class HttpSession:
    """One aiohttp client session (one kept-alive connection) for a binding x domain; the
    scheduler's Session. Used by one worker at a time."""

    def __init__(
        self, settings: DeliverySettings, url: str, client: aiohttp.ClientSession, remote: Remote
    ) -> None:
        self.settings = settings
        self.url = url
        self.remote = remote
        self._client = client
        self._deliveries = 0
        self._recipients_sent = 0
        self._closed = False

    @property
    def usable(self) -> bool:
        settings = self.settings
        if self._closed:
            return False
        if 0 < settings.max_deliveries_per_connection <= self._deliveries:
            return False
        return not 0 < settings.max_recipients_per_connection <= self._recipients_sent

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.close()

    @property
    def sends_ahead(self) -> bool:
        return False  # a request per message: nothing to gain from knowing the next

    async def send(
        self, message: MessageLike, then: MessageLike | None = None
    ) -> list[RecipientResult]:
        """One request per max_recipients_per_batch recipients; a result per recipient, in
        order. Recipients beyond max_recipients_per_connection come back NOT_ATTEMPTED."""
        settings = self.settings
        recipients = list(message.recipients)
        room = len(recipients)
        if settings.max_recipients_per_connection > 0:
            room = max(0, settings.max_recipients_per_connection - self._recipients_sent)
        results: list[RecipientResult] = []
        batch_size = max(1, settings.max_recipients_per_batch)
        todo = recipients[:room] if self.usable else []
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            reply = await self._request(message, batch)
            self._recipients_sent += len(batch)
            results.extend(self._results(batch, reply, reply.outcome))
        if any(r.outcome is Outcome.DELIVERED for r in results):
            self._deliveries += 1
        skipped = recipients[len(results) :]
        results.extend(self._results(skipped, _NOT_ATTEMPTED, Outcome.NOT_ATTEMPTED))
        return results

    def _results(
        self, recipients: Iterable[str], reply: Reply, outcome: Outcome
    ) -> list[RecipientResult]:
        return [RecipientResult(r, outcome, reply, self.remote, Phase.DATA) for r in recipients]

    async def _request(self, message: MessageLike, recipients: Sequence[str]) -> Reply:
        settings = self.settings
        try:
            headers = request_headers(
                message.sender, recipients, message.message_id, settings.http_basic_auth
            )
        except Unsendable as exc:
            return Reply.make(501, "5.5.2", f"refused to send the HTTP request: {exc}")
        try:
            async with self._client.request(
                settings.http_method,
                self.url,
                data=message.content,
                headers=headers,
                allow_redirects=False,
            ) as response:
                body = await response.text(errors="replace")
                return http_reply(response.status, response.reason or "", body)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return _connection_reply(exc, settings.body_timeout)


_NOT_ATTEMPTED = Reply.make(451, "4.4.0", "not attempted on this connection")


async def open_http_session(settings: DeliverySettings, domain: str) -> HttpSession:
    """A session for the endpoint; nothing is connected until the first request. Raises
    ValueError when http_host is not set (a configuration the operator must complete)."""
    if settings.http_host is None:
        raise ValueError(
            f"binding {settings.binding} domain {domain}: delivery_method HTTP needs http_host"
        )
    url = settings.http_host + settings.http_uri
    context: ssl.SSLContext | bool = True  # https: verified against the system's CAs
    if url.startswith("https://") and settings.tls_ca is not None:  # or a private CA
        context = await asyncio.to_thread(ssl.create_default_context, cafile=settings.tls_ca)
    local = (settings.bind_address, 0) if settings.bind_address is not None else None
    connector = aiohttp.TCPConnector(
        limit=1,
        local_addr=local,
        ssl=context,
        force_close=settings.http_version == "1.0",
    )
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=settings.connect_timeout, sock_read=settings.body_timeout
    )
    client = aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        version=aiohttp.HttpVersion10 if settings.http_version == "1.0" else aiohttp.HttpVersion11,
        auto_decompress=False,
        trust_env=False,
    )
    parts = urlsplit(url)
    host = parts.hostname or settings.http_host
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return HttpSession(settings, url, client, Remote(host, host, port))
