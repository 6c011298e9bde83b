"""TLS reporting (RFC 8460), the I/O part: the counts kept on disk, and each finished
day's report sent to the rua URIs of the policy domain's `_smtp._tls` TXT record, by
HTTPS POST (application/tlsrpt+gzip) or by mail through relay itself.

    reports = TlsReports(path, resolver, clock.now, organization=..., contact=...,
                         send_mail=daemon's own-mail submit)
    reports.counts.record(...)      # delivery counts (relay/deliver/tls_policy.py)
    await reports.send_due()        # every finished day: report, send, forget
    await reports.run(sleep)        # both, and saving, every `interval` seconds
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from relay.deliver.dns import DnsResolver, LookupStatus
from relay.deliver.sts_fetch import RelayResolver
from relay.deliver.tls_report import (
    Bucket,
    TlsCounts,
    build_report,
    day_of,
    gzip_report,
    parse_tlsrpt_record,
    report_mail,
)
from relay.durable import write_atomically

__all__ = ["ReportSent", "TlsReports"]

log = logging.getLogger("relay.tlsrpt")

SendMail = Callable[[str, tuple[str, ...], bytes], Awaitable[None]]
KEEP_DAYS = 7  # a day whose report could not be sent is given up after this many days
POST_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class ReportSent:
    day: str
    domain: str
    uri: str
    ok: bool
    detail: str = ""


class TlsReports:
    def __init__(
        self,
        path: Path | None,
        resolver: DnsResolver,
        now: Callable[[], float],
        *,
        organization: str,
        contact: str,
        send_mail: SendMail | None = None,
        enabled: bool = True,
        ca_file: str | None = None,
    ) -> None:
        self.path = path
        self.resolver = resolver
        self.now = now
        self.organization = organization
        self.contact = contact
        self.send_mail = send_mail
        self.enabled = enabled
        self.ca_file = ca_file
        self.counts = self._load()
        self.sent: list[ReportSent] = []

    def _load(self) -> TlsCounts:
        if self.path is None:
            return TlsCounts()
        try:
            return TlsCounts.from_json(json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return TlsCounts()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("TLS report counts %s unreadable, starting empty: %s", self.path, exc)
            return TlsCounts()

    def save(self) -> None:
        """Write the counts (atomically) if they changed."""
        if self.path is None or not self.counts.changed:
            return
        self.counts.changed = False
        write_atomically(json.dumps(self.counts.to_json(), sort_keys=True), self.path)

    async def send_due(self) -> list[ReportSent]:
        """Report every finished day to its domain's rua (when it publishes one), then
        forget the day; a day whose every send failed is tried again later (up to
        KEEP_DAYS)."""
        now = self.now()
        days: dict[tuple[str, str], list[Bucket]] = {}
        for bucket in self.counts.before(now):
            days.setdefault((bucket.day, bucket.domain), []).append(bucket)
        results: list[ReportSent] = []
        for (day, domain), buckets in sorted(days.items()):
            outcome = await self._send_day(day, domain, buckets) if self.enabled else []
            results += outcome
            too_old = day < day_of(now - KEEP_DAYS * 86400)
            if not self.enabled or any(r.ok for r in outcome) or not outcome or too_old:
                self.counts.drop(day, domain)
        self.sent += results
        await asyncio.to_thread(self.save)
        return results

    async def _send_day(self, day: str, domain: str, buckets: list[Bucket]) -> list[ReportSent]:
        answer = await self.resolver.txt(f"_smtp._tls.{domain}")
        uris = parse_tlsrpt_record(answer.texts) if answer.status is LookupStatus.OK else None
        if not uris:
            return []
        report_id = f"{day}.{domain}@{self.organization}"
        report = build_report(buckets, self.organization, self.contact, report_id)
        results = []
        for uri in uris:
            try:
                if uri.startswith("mailto:"):
                    await self._mail(uri, report, domain)
                else:
                    await self._post(uri, gzip_report(report))
            except (ReportNotSent, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("TLS report for %s (%s) to %s not sent: %s", domain, day, uri, exc)
                results.append(ReportSent(day, domain, uri, False, str(exc)))
                continue
            log.info("TLS report for %s (%s) sent to %s", domain, day, uri)
            results.append(ReportSent(day, domain, uri, True))
        return results

    async def _mail(self, uri: str, report: dict[str, object], domain: str) -> None:
        address = uri.removeprefix("mailto:").split("?", 1)[0]
        if self.send_mail is None or "@" not in address:
            raise ReportNotSent(f"cannot mail to {uri!r}")
        content = report_mail(report, self.contact, address, domain, self.now())
        await self.send_mail(self.contact, (address,), content)

    async def _post(self, uri: str, body: bytes) -> None:
        context = await asyncio.to_thread(ssl.create_default_context, cafile=self.ca_file)
        connector = aiohttp.TCPConnector(resolver=RelayResolver(self.resolver), ssl=context)
        limits = aiohttp.ClientTimeout(total=POST_TIMEOUT)
        headers = {"Content-Type": "application/tlsrpt+gzip"}
        async with (
            aiohttp.ClientSession(connector=connector, timeout=limits) as client,
            client.post(uri, data=body, headers=headers, allow_redirects=False) as response,
        ):
            if not 200 <= response.status < 300:
                raise ReportNotSent(f"HTTP {response.status}")

    async def run(self, sleep: Callable[[float], Awaitable[None]], interval: float = 3600) -> None:
        """Save and send what is due every `interval` seconds, until cancelled."""
        while True:
            await sleep(interval)
            try:
                await self.send_due()
            except OSError as exc:
                log.error("TLS report counts not saved: %s", exc)


class ReportNotSent(Exception):
    """A report could not be delivered to one rua URI (the text says why)."""
