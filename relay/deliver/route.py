"""Where mail for a domain goes: `gateway` if set, else MX per RFC 5321 section 5.

The decisions (ordering MX records, what a DNS answer means for delivery, parsing a
gateway) are pure functions; `Router` only adds the lookups. Routing failures are
`RouteError`s: null MX (RFC 7505) and NXDOMAIN are permanent, DNS trouble temporary.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from relay.deliver.dns import DnsAnswer, DnsResolver, LookupStatus, MxRecord
from relay.deliver.errors import DeliveryFailure, FailureKind, RouteError
from relay.deliver.settings import DeliverySettings
from relay.outcome import Phase, Remote, Reply

__all__ = [
    "Destination",
    "MxHost",
    "Route",
    "Router",
    "address_failure",
    "expand_destinations",
    "is_ip_literal",
    "mx_hosts_from_answer",
    "order_mx",
    "parse_gateway",
]


@dataclass(frozen=True, slots=True)
class MxHost:
    name: str  # host name (or an IP literal for a gateway given as an address)
    preference: int
    port: int
    implicit: bool = False  # the domain itself, because it has no MX records


@dataclass(frozen=True, slots=True)
class Destination:
    mx_host: str
    ip: str
    port: int
    preference: int

    @property
    def remote(self) -> Remote:
        return Remote(self.mx_host, self.ip, self.port)


@dataclass(frozen=True, slots=True)
class Route:
    """The hosts for a domain in the order to try them. `destinations` is set when every
    address is already known (fully_resolve_before_smtp, or a gateway IP literal).
    `authenticated`: the MX answer was DNSSEC-validated (AD), as DANE needs."""

    domain: str
    hosts: tuple[MxHost, ...]
    destinations: tuple[Destination, ...] | None = None
    authenticated: bool = False


# ---- pure decisions ------------------------------------------------------------------


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_gateway(text: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `1.2.3.4:25`, `[::1]`, `[::1]:25` or a bare IPv6 address."""
    text = text.strip()
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"gateway {text!r}: '[' without ']'")
        host, rest = text[1:close], text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"gateway {text!r}: expected ':port' after ']'")
        return host, _port(rest[1:], text) if rest else None
    if text.count(":") > 1:
        return text, None
    host, colon, port = text.partition(":")
    if not host:
        raise ValueError(f"gateway {text!r}: no host")
    return host.rstrip(".").lower(), _port(port, text) if colon else None


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"gateway {whole!r}: bad port {text!r}")
    return int(text)


def order_mx(records: Iterable[MxRecord], rng: random.Random) -> list[MxRecord]:
    """Lowest preference first; equal preferences in random order (RFC 5321 5.1);
    a host listed twice keeps its best preference."""
    best: dict[str, MxRecord] = {}
    for record in records:
        known = best.get(record.exchange)
        if known is None or record.preference < known.preference:
            best[record.exchange] = record
    shuffled = [best[name] for name in sorted(best)]  # the answer's order plays no part
    rng.shuffle(shuffled)
    return sorted(shuffled, key=lambda r: r.preference)  # stable: keeps the shuffle


def mx_hosts_from_answer(
    domain: str, answer: DnsAnswer, port: int, rng: random.Random, settings: DeliverySettings
) -> tuple[MxHost, ...]:
    """What an MX answer means for delivery; raises RouteError when it forbids it."""
    if answer.status is LookupStatus.OK:
        real = [r for r in answer.mx if r.exchange != ""]
        if not real:  # only "MX 0 ." : RFC 7505 null MX, the domain accepts no mail
            raise _route_error(
                settings,
                domain,
                FailureKind.DNS,
                Reply.make(556, "5.1.10", f"{domain} does not accept mail (null MX)"),
                "null MX",
            )
        return tuple(MxHost(r.exchange, r.preference, port) for r in order_mx(real, rng))
    if answer.status is LookupStatus.NODATA:
        return (MxHost(domain, 0, port, implicit=True),)
    if answer.status is LookupStatus.NXDOMAIN:
        raise _route_error(
            settings,
            domain,
            FailureKind.DNS,
            Reply.make(550, "5.1.2", f"domain {domain} does not exist (NXDOMAIN)"),
            answer.detail,
        )
    raise _route_error(
        settings,
        domain,
        FailureKind.DNS,
        Reply.make(451, "4.4.3", f"MX lookup for {domain} failed temporarily"),
        answer.detail,
    )


def expand_destinations(
    hosts: Sequence[MxHost], addresses: Sequence[DnsAnswer]
) -> tuple[Destination, ...]:
    """Hosts (in order) x their addresses; an address already listed is not repeated."""
    seen: set[tuple[str, int]] = set()
    out: list[Destination] = []
    for host, answer in zip(hosts, addresses, strict=True):
        for ip in answer.addresses:
            if (ip, host.port) not in seen:
                seen.add((ip, host.port))
                out.append(Destination(host.name, ip, host.port, host.preference))
    return tuple(out)


def address_failure(
    settings: DeliverySettings, domain: str, answers: Sequence[DnsAnswer]
) -> RouteError:
    """No host had an address: temporary if any lookup failed temporarily, else permanent."""
    names = ", ".join(a.name for a in answers) or domain
    if any(a.status is LookupStatus.TEMPFAIL for a in answers):
        reply = Reply.make(451, "4.4.3", f"address lookup failed temporarily for {names}")
    else:
        reply = Reply.make(550, "5.4.4", f"no address for {names}")
    detail = "; ".join(f"{a.name} {a.rdtype}: {a.detail}" for a in answers if a.detail)
    return _route_error(settings, domain, FailureKind.DNS, reply, detail)


def _route_error(
    settings: DeliverySettings, domain: str, kind: FailureKind, reply: Reply, detail: str
) -> RouteError:
    return RouteError(
        DeliveryFailure(kind, Phase.RESOLVE, reply, settings.binding, domain, None, detail)
    )


# ---- lookups ------------------------------------------------------------------------------


class Router:
    """Resolves a domain's route with a shared `DnsResolver`.

    `mx_failures_fallback_to_a`: after that many consecutive temporary MX failures for a
    domain, deliver to the domain's own A/AAAA (None or 0: never).
    """

    def __init__(
        self,
        resolver: DnsResolver,
        *,
        mx_failures_fallback_to_a: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.resolver = resolver
        self._fallback_after = mx_failures_fallback_to_a or 0
        self._mx_failures: dict[str, int] = {}
        self._rng = rng or random.Random()

    async def resolve(self, settings: DeliverySettings, domain: str) -> Route:
        """The route for `domain`; with fully_resolve_before_smtp every host's addresses
        too. Raises RouteError."""
        domain = domain.rstrip(".").lower()
        hosts, secure = await self._hosts(settings, domain)
        if len(hosts) == 1 and is_ip_literal(hosts[0].name):
            host = hosts[0]
            return Route(domain, hosts, (Destination(host.name, host.name, host.port, 0),))
        if not settings.fully_resolve_before_smtp:
            return Route(domain, hosts, authenticated=secure)
        answers = await asyncio.gather(*(self.resolver.addresses(h.name) for h in hosts))
        destinations = expand_destinations(hosts, answers)
        if not destinations:
            raise address_failure(settings, domain, answers)
        return Route(domain, hosts, destinations, secure)

    async def destinations(
        self, settings: DeliverySettings, route: Route
    ) -> AsyncIterator[Destination]:
        """The route's destinations in order, resolving each host only when the previous
        ones are used up (unless already resolved). Raises RouteError if no host has an
        address."""
        if route.destinations is not None:
            for destination in route.destinations:
                yield destination
            return
        answers: list[DnsAnswer] = []
        seen: set[tuple[str, int]] = set()
        for host in route.hosts:
            answer = await self.resolver.addresses(host.name)
            answers.append(answer)
            for destination in expand_destinations((host,), (answer,)):
                key = (destination.ip, destination.port)
                if key not in seen:
                    seen.add(key)
                    yield destination
        if not seen:
            raise address_failure(settings, route.domain, answers)

    async def mx_host_names(self, domain: str) -> tuple[str, ...] | None:
        """The domain's MX host names as DNS has them (the domain itself without an MX
        record, none when it does not exist or has a null MX); None: the lookup failed
        temporarily. What a provider's match_mx is matched on (schedule/providers.py)."""
        domain = domain.rstrip(".").lower()
        answer = await self.resolver.mx(domain)
        if answer.status is LookupStatus.OK:
            return tuple(r.exchange for r in order_mx(answer.mx, self._rng) if r.exchange)
        if answer.status is LookupStatus.NODATA:
            return (domain,)
        if answer.status is LookupStatus.NXDOMAIN:
            return ()
        return None

    async def _hosts(
        self, settings: DeliverySettings, domain: str
    ) -> tuple[tuple[MxHost, ...], bool]:
        """The hosts, and whether the MX answer was authenticated."""
        if settings.gateway is not None:
            host, port = settings.gateway
            return (MxHost(host, 0, port or settings.port),), False
        answer = await self.resolver.mx(domain)
        if answer.status is LookupStatus.TEMPFAIL and self._fallback_after:
            failures = self._mx_failures.get(domain, 0) + 1
            self._mx_failures[domain] = failures
            if failures >= self._fallback_after:
                return (MxHost(domain, 0, settings.port, implicit=True),), False
        else:
            self._mx_failures.pop(domain, None)
        hosts = mx_hosts_from_answer(domain, answer, settings.port, self._rng, settings)
        return hosts, answer.authenticated
