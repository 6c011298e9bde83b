"""DNS lookups for routing: dnspython's async resolver behind a TTL cache, coalescing of
identical in-flight queries and a cap on concurrent queries.

Results are plain data (`DnsAnswer`); dnspython's exceptions stay in this module. The
resolver is configured from a resolv.conf path (Momentum's `resolv_conf`) and, for tests,
an explicit nameserver port, so nothing here needs /etc/resolv.conf or the internet.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

__all__ = ["DnsAnswer", "DnsResolver", "DnsStatistics", "LookupStatus", "MxRecord"]


class LookupStatus(enum.Enum):
    OK = "ok"
    NXDOMAIN = "nxdomain"  # the name does not exist (authoritative)
    NODATA = "nodata"  # the name exists, but has no record of this type
    TEMPFAIL = "tempfail"  # SERVFAIL, timeout, no nameserver answered


@dataclass(frozen=True, slots=True)
class MxRecord:
    preference: int
    exchange: str  # lower case, no trailing dot; "" for the null MX target "."


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    name: str
    rdtype: str  # "MX", "A", "AAAA", "TXT" or "TLSA"
    status: LookupStatus
    mx: tuple[MxRecord, ...] = ()
    addresses: tuple[str, ...] = ()
    ttl: float = 0.0
    detail: str = ""
    # TXT: each record's strings joined; TLSA: "usage selector mtype hexdata"
    texts: tuple[str, ...] = ()
    # the resolver set AD (RFC 4035 3.2.3, asked for per RFC 6840 5.7): DNSSEC-validated
    authenticated: bool = False


@dataclass(frozen=True, slots=True)
class DnsStatistics:
    queries: int  # sent to a nameserver
    cache_hits: int
    coalesced: int  # callers that joined an identical query already in flight
    in_flight: int
    cached: int


class DnsResolver:
    """Cached, coalescing, concurrency-capped MX/A/AAAA lookups.

    `resolv_conf` is read once (nameserver, options timeout/attempts...). `nameservers`
    overrides the file's nameservers; `port` applies to every nameserver (dnspython reads
    no port from resolv.conf). Positive answers are cached for their TTL (capped at
    `max_ttl`), NXDOMAIN/NODATA for `negative_ttl`; temporary failures are not cached.
    """

    def __init__(
        self,
        resolv_conf: str | None = "/etc/resolv.conf",
        *,
        nameservers: Sequence[str] | None = None,
        port: int = 53,
        timeout: float = 5.0,
        max_concurrent: int = 64,
        negative_ttl: float = 60.0,
        max_ttl: float = 86400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if resolv_conf is None and not nameservers:
            raise ValueError("DnsResolver needs a resolv_conf path or nameservers")
        resolver = dns.asyncresolver.Resolver(
            filename=resolv_conf or "/etc/resolv.conf", configure=resolv_conf is not None
        )
        addresses = list(nameservers) if nameservers else _addresses(resolver.nameservers)
        resolver.port = port
        resolver.nameservers = [dns.nameserver.Do53Nameserver(a, port) for a in addresses]
        resolver.lifetime = timeout
        resolver.cache = None  # ours below, with coalescing and statistics
        # Ask for the AD bit (RFC 6840 5.7): DANE trusts only validated answers.
        resolver.flags = dns.flags.RD | dns.flags.AD
        self._resolver = resolver
        self._limit = asyncio.Semaphore(max_concurrent)
        self._negative_ttl = negative_ttl
        self._max_ttl = max_ttl
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, DnsAnswer]] = {}
        self._in_flight: dict[tuple[str, str], asyncio.Future[DnsAnswer]] = {}
        self._queries = 0
        self._hits = 0
        self._coalesced = 0

    async def mx(self, domain: str) -> DnsAnswer:
        return await self.lookup(domain, "MX")

    async def addresses(self, host: str) -> DnsAnswer:
        """A and AAAA together: OK with every address (IPv4 first) if either has one;
        TEMPFAIL if either failed temporarily and neither has an address."""
        a, aaaa = await asyncio.gather(self.lookup(host, "A"), self.lookup(host, "AAAA"))
        found = a.addresses + aaaa.addresses
        if found:
            ttl = min(x.ttl for x in (a, aaaa) if x.status is LookupStatus.OK)
            # authenticated when every answer it is made of was (NODATA counts too)
            secure = all(
                x.authenticated for x in (a, aaaa) if x.status is not LookupStatus.TEMPFAIL
            )
            return DnsAnswer(
                _norm(host), "A", LookupStatus.OK, addresses=found, ttl=ttl, authenticated=secure
            )
        for status in (LookupStatus.TEMPFAIL, LookupStatus.NXDOMAIN):
            for answer in (a, aaaa):
                if answer.status is status:
                    return answer
        return a

    async def txt(self, name: str) -> DnsAnswer:
        return await self.lookup(name, "TXT")

    async def tlsa(self, name: str) -> DnsAnswer:
        return await self.lookup(name, "TLSA")

    async def lookup(self, name: str, rdtype: str) -> DnsAnswer:
        key = (_norm(name), rdtype.upper())
        cached = self._cache.get(key)
        if cached is not None:
            if cached[0] > self._clock():
                self._hits += 1
                return cached[1]
            del self._cache[key]
        task = self._in_flight.get(key)
        if task is None:
            # The query runs in its own task: a cancelled caller does not cancel the
            # lookup other callers joined.
            task = asyncio.ensure_future(self._query_and_cache(key))
            self._in_flight[key] = task
            task.add_done_callback(lambda _: self._in_flight.pop(key, None))
        else:
            self._coalesced += 1
        return await asyncio.shield(task)

    async def _query_and_cache(self, key: tuple[str, str]) -> DnsAnswer:
        answer = await self._query(*key)
        ttl = answer.ttl if answer.status is LookupStatus.OK else self._negative_ttl
        if answer.status is not LookupStatus.TEMPFAIL and ttl > 0:
            self._cache[key] = (self._clock() + min(ttl, self._max_ttl), answer)
        return answer

    def statistics(self) -> DnsStatistics:
        return DnsStatistics(
            self._queries, self._hits, self._coalesced, len(self._in_flight), len(self._cache)
        )

    def clear_cache(self) -> None:
        self._cache.clear()

    async def _query(self, name: str, rdtype: str) -> DnsAnswer:
        async with self._limit:
            self._queries += 1
            try:
                result = await self._resolver.resolve(
                    dns.name.from_text(name),
                    dns.rdatatype.from_text(rdtype),
                    search=False,
                    raise_on_no_answer=False,
                )
            except dns.resolver.NXDOMAIN:
                return DnsAnswer(name, rdtype, LookupStatus.NXDOMAIN, detail="NXDOMAIN")
            except dns.resolver.YXDOMAIN as exc:
                return DnsAnswer(name, rdtype, LookupStatus.NXDOMAIN, detail=str(exc))
            except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
                return DnsAnswer(name, rdtype, LookupStatus.TEMPFAIL, detail=_short(exc))
            except dns.exception.DNSException as exc:
                return DnsAnswer(name, rdtype, LookupStatus.TEMPFAIL, detail=_short(exc))
        secure = bool(result.response.flags & dns.flags.AD)
        rrset = result.rrset
        if rrset is None or len(rrset) == 0:
            return DnsAnswer(
                name, rdtype, LookupStatus.NODATA, detail="no records", authenticated=secure
            )
        ttl = float(rrset.ttl)
        ok = LookupStatus.OK
        if rdtype == "MX":
            records = tuple(MxRecord(int(r.preference), _norm(r.exchange.to_text())) for r in rrset)
            return DnsAnswer(name, rdtype, ok, mx=records, ttl=ttl, authenticated=secure)
        if rdtype == "TXT":
            texts = tuple(b"".join(r.strings).decode("utf-8", "replace") for r in rrset)
            return DnsAnswer(name, rdtype, ok, texts=texts, ttl=ttl, authenticated=secure)
        if rdtype == "TLSA":
            texts = tuple(f"{r.usage} {r.selector} {r.mtype} {r.cert.hex()}" for r in rrset)
            return DnsAnswer(name, rdtype, ok, texts=texts, ttl=ttl, authenticated=secure)
        addresses = tuple(r.address for r in rrset)
        return DnsAnswer(name, rdtype, ok, addresses=addresses, ttl=ttl, authenticated=secure)


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _addresses(nameservers: Sequence[str | dns.nameserver.Nameserver]) -> list[str]:
    out: list[str] = []
    for ns in nameservers:
        if isinstance(ns, str):
            out.append(ns)
        elif isinstance(ns, dns.nameserver.AddressAndPortNameserver):
            out.append(ns.address)
    return out
