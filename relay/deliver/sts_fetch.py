"""MTA-STS discovery and policy fetching (RFC 8461 3), and the policy cache kept on disk.

`StsPolicies.lookup(domain, ca_file)` looks up `_mta-sts.DOMAIN` TXT through relay's
resolver, fetches `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` when the pure rules of
`mta_sts.refresh_needed` say so (certificate verified, no redirects, at most 64 KiB, under
a time limit; `mta-sts.DOMAIN` resolved by relay's resolver too, never the system's), and
keeps each policy in one JSON file (in the spool directory) so a restart does not fetch
every policy at once. A failed fetch keeps the cached policy; without one the domain is
delivered to as without MTA-STS (RFC 8461 5), and the failure is logged and reported.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from relay.deliver.dns import DnsResolver, LookupStatus
from relay.deliver.mta_sts import (
    CachedPolicy,
    Policy,
    PolicyError,
    parse_policy,
    parse_sts_record,
    refresh_needed,
    usable,
)
from relay.durable import write_atomically

__all__ = [
    "PolicyFetchError",
    "PolicyStore",
    "RelayResolver",
    "StsLookup",
    "StsPolicies",
    "fetch_policy",
]

log = logging.getLogger("relay.mta_sts")

MAX_POLICY_SIZE = 64 * 1024  # RFC 8461 3.3: "a reasonable maximum", e.g. 64 KiB
FETCH_TIMEOUT = 60.0  # RFC 8461 3.3: "a reasonable timeout", e.g. one minute
FAILED_FETCH_RETRY = 300.0  # after a failed fetch, wait this long before the next one
STORE_VERSION = 1


class PolicyFetchError(Exception):
    """The policy could not be fetched (`kind` is the RFC 8460 result type:
    sts-policy-fetch-error, sts-webpki-invalid or sts-policy-invalid)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class StsLookup:
    """What applies to a domain now: its policy (None: deliver as without MTA-STS) and,
    when the last fetch failed, the RFC 8460 result type and why."""

    policy: Policy | None
    failure: str | None = None
    detail: str = ""


class RelayResolver(AbstractResolver):
    """aiohttp's host name resolution through relay's DnsResolver (no system resolver)."""

    def __init__(self, resolver: DnsResolver) -> None:
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answer = await self._resolver.addresses(host)
        if answer.status is not LookupStatus.OK:
            raise OSError(f"cannot resolve {host}: {answer.detail or answer.status.value}")
        return [
            ResolveResult(
                hostname=host,
                host=ip,
                port=port,
                family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for ip in answer.addresses
        ]

    async def close(self) -> None:
        return None


def _context(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


async def fetch_policy(
    domain: str,
    resolver: DnsResolver,
    *,
    ca_file: str | None = None,
    port: int = 443,
    seconds: float = FETCH_TIMEOUT,
) -> str:
    """The policy text of `domain`; raises PolicyFetchError."""
    url = f"https://mta-sts.{domain}:{port}/.well-known/mta-sts.txt"
    context = await asyncio.to_thread(_context, ca_file)
    connector = aiohttp.TCPConnector(resolver=RelayResolver(resolver), ssl=context, limit=1)
    limits = aiohttp.ClientTimeout(total=seconds)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=limits) as client,
            client.get(url, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise PolicyFetchError(
                    "sts-policy-fetch-error", f"{url}: HTTP {response.status} (needs 200)"
                )
            if response.content_type != "text/plain":
                raise PolicyFetchError(
                    "sts-policy-invalid", f"{url}: Content-Type {response.content_type}"
                )
            body = bytearray()
            async for chunk in response.content.iter_chunked(16384):
                body += chunk
                if len(body) > MAX_POLICY_SIZE:
                    raise PolicyFetchError(
                        "sts-policy-invalid", f"{url}: larger than {MAX_POLICY_SIZE} bytes"
                    )
    except aiohttp.ClientConnectorCertificateError as exc:
        raise PolicyFetchError("sts-webpki-invalid", f"{url}: {exc.certificate_error}") from exc
    except aiohttp.ClientSSLError as exc:
        raise PolicyFetchError("sts-webpki-invalid", f"{url}: {exc}") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise PolicyFetchError("sts-policy-fetch-error", f"{url}: {exc}") from exc
    except TimeoutError as exc:
        raise PolicyFetchError(
            "sts-policy-fetch-error", f"{url}: no answer in {seconds:g}s"
        ) from exc
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyFetchError("sts-policy-invalid", f"{url}: not UTF-8") from exc


class PolicyStore:
    """The cached policies in one JSON file, rewritten whole (atomically) on each change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, CachedPolicy]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("MTA-STS policy store %s unreadable, starting empty: %s", self.path, exc)
            return {}
        found: dict[str, CachedPolicy] = {}
        for entry in data.get("policies", []) if isinstance(data, dict) else []:
            try:
                cached = CachedPolicy.from_json(entry)
            except (KeyError, ValueError, TypeError) as exc:
                log.warning("MTA-STS policy store %s: entry skipped: %r", self.path, exc)
                continue
            found[cached.domain] = cached
        return found

    def save(self, policies: dict[str, CachedPolicy]) -> None:
        data = {"version": STORE_VERSION, "policies": [p.to_json() for p in policies.values()]}
        write_atomically(json.dumps(data, indent=1, sort_keys=True), self.path)


class StsPolicies:
    """The MTA-STS policies of every domain relay delivers to, cached and refreshed."""

    def __init__(
        self,
        resolver: DnsResolver,
        store: PolicyStore | None,
        now: Callable[[], float],
        *,
        https_port: int = 443,
        timeout: float = FETCH_TIMEOUT,
    ) -> None:
        self.resolver = resolver
        self.https_port = https_port
        self.timeout = timeout
        self._store = store
        self._now = now
        self._cache: dict[str, CachedPolicy] = store.load() if store is not None else {}
        self._failed: dict[str, tuple[float, str, str]] = {}  # domain -> (when, kind, why)
        self._in_flight: dict[str, asyncio.Future[StsLookup]] = {}
        # called once per failed fetch: (domain, RFC 8460 result type)
        self.on_failure: Callable[[str, str], None] | None = None

    def cached(self, domain: str) -> CachedPolicy | None:
        return self._cache.get(domain.lower())

    async def lookup(self, domain: str, ca_file: str | None = None) -> StsLookup:
        """The policy that applies to `domain` now (fetching it if due); never raises."""
        domain = domain.rstrip(".").lower()
        task = self._in_flight.get(domain)
        if task is None:
            task = asyncio.ensure_future(self._lookup(domain, ca_file))
            self._in_flight[domain] = task
            task.add_done_callback(lambda _: self._in_flight.pop(domain, None))
        return await asyncio.shield(task)

    async def _lookup(self, domain: str, ca_file: str | None) -> StsLookup:
        answer = await self.resolver.txt(f"_mta-sts.{domain}")
        record = parse_sts_record(answer.texts) if answer.status is LookupStatus.OK else None
        now = self._now()
        cached = self._cache.get(domain)
        failed = self._failed.get(domain)
        if failed is not None and now < failed[0] + FAILED_FETCH_RETRY:
            kept = usable(cached, now)
            return StsLookup(kept.policy if kept else None, failed[1], failed[2])
        if record is not None and refresh_needed(cached, record.id, now):
            try:
                text = await fetch_policy(
                    domain,
                    self.resolver,
                    ca_file=ca_file,
                    port=self.https_port,
                    seconds=self.timeout,
                )
                policy = parse_policy(text)
            except (PolicyFetchError, PolicyError) as exc:
                kind = exc.kind if isinstance(exc, PolicyFetchError) else "sts-policy-invalid"
                self._failed[domain] = (now, kind, str(exc))
                if self.on_failure is not None:
                    self.on_failure(domain, kind)
                kept = usable(cached, now)
                log.warning(
                    "MTA-STS policy of %s not fetched (%s): %s; %s",
                    domain,
                    kind,
                    exc,
                    "keeping the cached one" if kept else "delivering as without MTA-STS",
                )
                return StsLookup(kept.policy if kept else None, kind, str(exc))
            self._failed.pop(domain, None)
            cached = CachedPolicy(domain, policy, record.id, now)
            self._cache[domain] = cached
            if self._store is not None:
                await asyncio.to_thread(self._store.save, dict(self._cache))
            log.info("MTA-STS policy of %s: mode %s, id %s", domain, policy.mode.value, record.id)
        kept = usable(cached, now)
        return StsLookup(kept.policy if kept else None)
