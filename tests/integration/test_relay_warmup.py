"""IP warm-up through the whole daemon, on a driven clock with real sinks: a binding on day 1
takes exactly its cap and the rest flows through a warm binding; on day 2 the cap grows;
with every binding capped the mail waits and leaves the next UTC day; the counts survive a
restart; the admin API and `relay admin bindings` show age, cap and count, and set an age."""

from __future__ import annotations

import asyncio
import urllib.error

import pytest

from relay.clock import ManualClock
from relay.schedule.warmup import DAY, date_start
from tests.integration.relay_harness import RelayFactory, RelayUnderTest
from tests.integration.test_relay_admin import api, cli
from tests.support.fixtures import DnsServerFactory, SinkFactory
from tests.support.sinks import SmtpSink

START = date_start("2026-12-01")
NOON = START + 12 * 3600
ZONE = {
    "one.test": {"MX": ["10 mx.one.test."]},
    "mx.one.test": {"A": ["127.0.0.10"]},
}
COLD = 'warmup_schedule = ( "3/day" "5/day" ) warmup_start = "2026-12-01"'


def config(port: int, b1: str, b2: str = "") -> str:
    return f"""
remote_smtp_port = {port}
retry_interval = 60
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 {b1} }}
  binding "b2" {{ bind_address = 127.0.0.3 {b2} }}
}}
"""


def by_peer(sink: SmtpSink) -> dict[str, int]:
    found: dict[str, int] = {}
    for message in sink.messages:
        found[message.peer_ip] = found.get(message.peer_ip, 0) + 1
    return found


async def send(relay: RelayUnderTest, first: int, count: int) -> None:
    for i in range(first, first + count):
        await relay.send("s@sender.test", [f"r{i}@one.test"])


async def test_day_one_cap_overflows_to_the_warm_binding_and_day_two_grows(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(NOON)
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        config(smtp_sink.port, COLD),
        dns=dns,
        clock=clock,
        listener='binding_group = "g"',
        admin=True,
    )
    await send(relay, 0, 10)
    await relay.wait(lambda: len(sink.messages) == 10)
    assert by_peer(sink) == {"127.0.0.2": 3, "127.0.0.3": 7}  # exactly the day-1 cap
    bindings = await api(relay, "GET", "/api/v1/bindings")
    b1 = next(b for b in bindings["binding_groups"]["g"] if b["binding"] == "b1")
    assert b1["warmup"] == {"age_days": 0, "cap": 3, "period": "day", "count": 3}
    code, out, _ = await cli(relay, "bindings")
    assert code == 0 and "age_days" in out and "cap" in out

    relay = await relay_factory.restart(relay, clock)  # the count is kept
    assert relay.daemon.scheduler is not None
    await send(relay, 10, 2)
    await relay.wait(lambda: len(sink.messages) == 12)
    assert by_peer(sink)["127.0.0.2"] == 3

    await clock.advance(DAY)  # day 2: cap 5
    sink.messages.clear()
    await send(relay, 20, 10)
    await relay.wait(lambda: len(sink.messages) == 10)
    assert by_peer(sink) == {"127.0.0.2": 5, "127.0.0.3": 5}

    answer = await api(relay, "POST", "/api/v1/bindings/warmup", {"binding": "b1", "age_days": 2})
    assert answer["warmup"]["cap"] is None  # past the schedule: no cap
    with pytest.raises(urllib.error.HTTPError) as refused:
        await api(relay, "POST", "/api/v1/bindings/warmup", {"binding": "b1", "age_days": -1})
    assert refused.value.code == 400 and b"age_days" in refused.value.read()


async def test_every_binding_capped_waits_and_leaves_the_next_day(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(NOON)
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10")
    cold = COLD.replace('"3/day"', '"2/day"')
    relay = await relay_factory(
        config(smtp_sink.port, cold, cold), dns=dns, clock=clock, listener='binding_group = "g"'
    )
    await send(relay, 0, 6)
    await relay.wait(lambda: len(sink.messages) == 4)
    await clock.advance(DAY / 2 - 60)  # 23:59 UTC: still capped
    await relay.wait(lambda: len(sink.messages) == 4, within=0.5)
    assert len(sink.messages) == 4
    assert relay.events("transient_failure") == []  # waiting is no attempt
    await clock.advance(60)  # the next UTC day
    await relay.wait(lambda: len(sink.messages) == 6)
    assert by_peer(sink) == {"127.0.0.2": 3, "127.0.0.3": 3}


async def test_a_provider_stanza_warmup_caps_each_binding_x_provider(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(NOON)
    zone = {
        **ZONE,
        "two.test": {"MX": ["10 mx.two.test."]},
        "mx.two.test": {"A": ["127.0.0.11"]},
    }
    dns = await dns_server(zone)
    one = await smtp_sink("127.0.0.10")
    two = await smtp_sink("127.0.0.11")
    relay = await relay_factory(
        config(smtp_sink.port, "")
        + 'provider "p" { match_domain = ( "one.test" "two.test" ) '
        + 'warmup_schedule = ( "2/day" ) warmup_start = "2026-12-01" }\n',
        dns=dns,
        clock=clock,
        listener='binding_group = "g"',
    )
    for i in range(3):  # 6 messages to the provider's two domains; 2 per binding a day
        await relay.send("s@sender.test", [f"a{i}@one.test"])
        await relay.send("s@sender.test", [f"b{i}@two.test"])
    await relay.wait(lambda: len(one.messages) + len(two.messages) == 4)
    await clock.advance(1)
    await asyncio.sleep(0.3)
    assert len(one.messages) + len(two.messages) == 4  # both bindings at the provider's cap
    both: dict[str, int] = {}
    for sink in (one, two):
        for peer, n in by_peer(sink).items():
            both[peer] = both.get(peer, 0) + n
    assert both == {"127.0.0.2": 2, "127.0.0.3": 2}  # counted across the provider's domains
    assert relay.events("transient_failure") == []  # waiting, not attempted
    await clock.advance(DAY)  # the next UTC day: no cap past the schedule
    await relay.wait(lambda: len(one.messages) + len(two.messages) == 6)


async def test_bindings_show_warmup_per_binding_x_domain_and_binding_x_provider(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    """GET /api/v1/bindings (and `relay admin bindings`) give each plan's age, today's cap
    and today's count: the binding's own, per domain stanza and per provider stanza."""
    clock = ManualClock(NOON + DAY)  # day 1 of schedules started 2026-12-01
    zone = {
        **ZONE,
        "two.test": {"MX": ["10 mx.two.test."]},
        "mx.two.test": {"A": ["127.0.0.11"]},
    }
    dns = await dns_server(zone)
    one = await smtp_sink("127.0.0.10")
    two = await smtp_sink("127.0.0.11")
    relay = await relay_factory(
        f"""
remote_smtp_port = {smtp_sink.port}
retry_interval = 60
binding_group "g" {{
  binding "b1" {{
    bind_address = 127.0.0.2
    domain "one.test" {{ warmup_schedule = ( "3/day" "7/day" ) warmup_start = "2026-12-01" }}
  }}
}}
provider "p" {{ match_domain = ( "two.test" ) warmup_schedule = ( "2/day" "4/day" "8/day" )
  warmup_start = "2026-11-30" }}
""",
        dns=dns,
        clock=clock,
        admin=True,
        listener='binding_group = "g"',
    )
    await relay.send("s@sender.test", ["a@one.test"])
    for i in range(3):
        await relay.send("s@sender.test", [f"b{i}@two.test"])
    await relay.wait(lambda: len(one.messages) == 1 and len(two.messages) == 3)
    (b1,) = (await api(relay, "GET", "/api/v1/bindings"))["binding_groups"]["g"]
    assert b1["warmup"] is None  # no binding-wide schedule
    assert b1["warmup_domains"] == [
        {"domain": "one.test", "age_days": 1, "cap": 7, "period": "day", "count": 1}
    ]
    assert b1["warmup_providers"] == [
        {"provider": "p", "age_days": 2, "cap": 8, "period": "day", "count": 3}
    ]
    await api(relay, "POST", "/api/v1/bindings/warmup", {"binding": "b1", "age_days": 0})
    (b1,) = (await api(relay, "GET", "/api/v1/bindings"))["binding_groups"]["g"]
    assert [(w["age_days"], w["cap"]) for w in b1["warmup_domains"]] == [(0, 3)]
    assert [(w["age_days"], w["cap"]) for w in b1["warmup_providers"]] == [(0, 2)]
    code, out, _ = await cli(relay, "bindings")
    assert code == 0 and "warmup_providers" in out and '"provider":"p"' in out
