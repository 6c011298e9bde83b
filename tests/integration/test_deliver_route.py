"""Routing and the DNS resolver against the loopback DNS server (tests/support/dns_server)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from relay.deliver import DeliverySettings, LookupStatus, Outcome, RouteError, Router
from tests.support.dns_server import SERVFAIL, TIMEOUT
from tests.support.fixtures import DnsServerFactory

ZONE: dict[str, Any] = {
    "pref.test": {"MX": ["20 mx20.pref.test.", "10 mx10a.pref.test.", "10 mx10b.pref.test."]},
    "mx10a.pref.test": {"A": ["127.0.1.1"]},
    "mx10b.pref.test": {"A": ["127.0.1.2"], "AAAA": ["::1"]},
    "mx20.pref.test": {"A": ["127.0.1.3"]},
    "implicit.test": {"A": ["127.0.2.1"]},
    "null.test": {"MX": ["0 ."]},
    "broken.test": SERVFAIL,
    "slow.test": TIMEOUT,
    "noaddr.test": {"MX": ["10 gone.noaddr.test."]},
    "tempaddr.test": {"MX": ["10 broken.test."]},
    "gw.test": {"A": ["127.0.3.1"]},
    "ttl.test": {"A": ["127.0.4.1"], "ttl": 1},
}


async def test_mx_by_preference_with_random_order_among_equals(
    dns_server: DnsServerFactory,
) -> None:
    dns = await dns_server(ZONE)
    pol = DeliverySettings(remote_smtp_port=2525)
    firsts = set()
    for seed in range(12):
        router = Router(dns.resolver(), rng=random.Random(seed))
        route = await router.resolve(pol, "pref.test")
        names = [h.name for h in route.hosts]
        assert set(names[:2]) == {"mx10a.pref.test", "mx10b.pref.test"}
        assert names[2] == "mx20.pref.test"
        firsts.add(names[0])
        assert route.destinations is not None
        assert route.destinations[-1].ip == "127.0.1.3"
        assert all(d.port == 2525 for d in route.destinations)
    assert firsts == {"mx10a.pref.test", "mx10b.pref.test"}


async def test_every_address_of_an_mx_host_is_a_destination(
    dns_server: DnsServerFactory,
) -> None:
    dns = await dns_server(ZONE)
    route = await Router(dns.resolver()).resolve(DeliverySettings(), "PREF.test.")
    assert route.destinations is not None
    ips = [d.ip for d in route.destinations]
    assert sorted(ips) == ["127.0.1.1", "127.0.1.2", "127.0.1.3", "::1"]
    assert ips.index("127.0.1.2") < ips.index("::1")  # IPv4 first within a host


async def test_implicit_mx_when_there_is_no_mx(dns_server: DnsServerFactory) -> None:
    dns = await dns_server(ZONE)
    route = await Router(dns.resolver()).resolve(DeliverySettings(), "implicit.test")
    assert [(h.name, h.implicit) for h in route.hosts] == [("implicit.test", True)]
    assert route.destinations is not None
    assert [d.ip for d in route.destinations] == ["127.0.2.1"]


@pytest.mark.parametrize(
    ("domain", "outcome", "enhanced"),
    [
        ("null.test", Outcome.PERMANENT, "5.1.10"),
        ("nxdomain.test", Outcome.PERMANENT, "5.1.2"),
        ("broken.test", Outcome.TEMPORARY, "4.4.3"),
        ("noaddr.test", Outcome.PERMANENT, "5.4.4"),
        ("tempaddr.test", Outcome.TEMPORARY, "4.4.3"),
    ],
)
async def test_route_failures(
    dns_server: DnsServerFactory, domain: str, outcome: Outcome, enhanced: str
) -> None:
    dns = await dns_server(ZONE)
    with pytest.raises(RouteError) as caught:
        await Router(dns.resolver()).resolve(DeliverySettings(binding="b2"), domain)
    assert caught.value.outcome is outcome
    assert str(caught.value.reply.enhanced) == enhanced
    assert caught.value.failure.binding == "b2"
    assert caught.value.failure.domain == domain


async def test_dns_timeout_is_temporary(dns_server: DnsServerFactory) -> None:
    dns = await dns_server(ZONE)
    with pytest.raises(RouteError) as caught:
        await Router(dns.resolver(timeout=0.3)).resolve(DeliverySettings(), "slow.test")
    assert caught.value.outcome is Outcome.TEMPORARY


async def test_lazy_route_raises_only_when_no_host_has_an_address(
    dns_server: DnsServerFactory,
) -> None:
    dns = await dns_server(ZONE)
    pol = DeliverySettings(fully_resolve_before_smtp=False)
    router = Router(dns.resolver())
    route = await router.resolve(pol, "noaddr.test")
    with pytest.raises(RouteError):
        async for _ in router.destinations(pol, route):
            pass


async def test_gateway_name_is_resolved_without_mx(dns_server: DnsServerFactory) -> None:
    dns = await dns_server(ZONE)
    pol = DeliverySettings(gateway=("gw.test", 2526))
    route = await Router(dns.resolver()).resolve(pol, "pref.test")
    assert route.destinations is not None
    assert [(d.mx_host, d.ip, d.port) for d in route.destinations] == [
        ("gw.test", "127.0.3.1", 2526)
    ]
    assert ("pref.test", "MX") not in dns.queries


async def test_mx_failures_fallback_to_a(dns_server: DnsServerFactory) -> None:
    dns = await dns_server({"flaky.test": {"MX": SERVFAIL, "A": ["127.0.5.1"]}})
    router = Router(dns.resolver(), mx_failures_fallback_to_a=2)
    with pytest.raises(RouteError):  # first MX failure: temporary
        await router.resolve(DeliverySettings(), "flaky.test")
    route = await router.resolve(DeliverySettings(), "flaky.test")  # second: the domain's A
    assert route.hosts[0].implicit
    assert route.destinations is not None
    assert route.destinations[0].ip == "127.0.5.1"
    with pytest.raises(RouteError):  # without the option, never
        await Router(dns.resolver()).resolve(DeliverySettings(), "flaky.test")


async def test_cache_honours_ttl(dns_server: DnsServerFactory) -> None:
    dns = await dns_server(ZONE)
    now = [1000.0]
    resolver = dns.resolver(clock=lambda: now[0])
    first = await resolver.lookup("ttl.test", "A")
    again = await resolver.lookup("ttl.test", "A")
    assert first == again
    assert dns.queries.count(("ttl.test", "A")) == 1
    now[0] += 1.5  # past the 1 s TTL
    await resolver.lookup("ttl.test", "A")
    assert dns.queries.count(("ttl.test", "A")) == 2
    assert resolver.statistics().cache_hits == 1


async def test_negative_answers_are_cached_temporary_failures_are_not(
    dns_server: DnsServerFactory,
) -> None:
    dns = await dns_server(ZONE)
    resolver = dns.resolver()
    for _ in range(2):
        assert (await resolver.mx("nxdomain.test")).status is LookupStatus.NXDOMAIN
        assert (await resolver.mx("broken.test")).status is LookupStatus.TEMPFAIL
    assert dns.queries.count(("nxdomain.test", "MX")) == 1
    assert dns.queries.count(("broken.test", "MX")) == 2


async def test_identical_lookups_in_flight_are_coalesced(dns_server: DnsServerFactory) -> None:
    dns = await dns_server(ZONE)
    dns.delay = 0.2
    resolver = dns.resolver()
    answers = await asyncio.gather(*(resolver.mx("pref.test") for _ in range(10)))
    assert len({a for a in answers}) == 1
    assert dns.queries.count(("pref.test", "MX")) == 1
    assert resolver.statistics().coalesced == 9


async def test_concurrent_queries_are_capped(dns_server: DnsServerFactory) -> None:
    dns = await dns_server({f"h{i}.test": {"A": [f"127.0.6.{i}"]} for i in range(6)})
    dns.delay = 0.1
    resolver = dns.resolver(max_concurrent=2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(resolver.lookup(f"h{i}.test", "A") for i in range(6)))
    assert loop.time() - started >= 0.28  # 6 queries of 0.1 s, two at a time
    assert len(dns.queries) == 6
