"""The whole daemon: SMTP in, spool, scheduler, bindings, SMTP out to loopback sinks found
through MX records of a loopback DNS server."""

from __future__ import annotations

from collections import Counter

from tests.integration.relay_harness import RelayFactory
from tests.support.fixtures import DnsServerFactory, SinkFactory

TWO_GROUPS = """
remote_smtp_port = {port}
binding_group "transactional" {{
  ehlo_hostname = "tx.relay.test"
  binding "tx-1" {{ bind_address = 127.0.0.2 }}
  binding "tx-2" {{ bind_address = 127.0.0.3 }}
}}
binding_group "marketing" {{
  ehlo_hostname = "news.relay.test"
  binding "mkt-1" {{ bind_address = 127.0.0.4 }}
  binding "mkt-2" {{ bind_address = 127.0.0.5  binding_weight = 3 }}
}}
"""


async def test_mail_leaves_from_the_groups_bindings_spread_by_weight(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(
        {
            "one.test": {"MX": ["10 mx.one.test."]},
            "mx.one.test": {"A": ["127.0.0.10"]},
            "two.test": {"MX": ["10 mx.two.test."]},
            "mx.two.test": {"A": ["127.0.0.11"]},
        }
    )
    one = await smtp_sink("127.0.0.10")
    two = await smtp_sink("127.0.0.11")
    relay = await relay_factory(TWO_GROUPS.format(port=smtp_sink.port), dns=dns)
    for i in range(8):
        await relay.send(
            f"s{i}@sender.test", [f"r{i}@one.test"], headers={"X-Binding-Group": "transactional"}
        )
    for i in range(16):
        await relay.send(
            f"s{i}@sender.test", [f"r{i}@two.test"], headers={"X-Binding-Group": "marketing"}
        )
    await relay.wait(lambda: len(one.messages) == 8 and len(two.messages) == 16)

    assert Counter(m.peer_ip for m in one.messages) == {"127.0.0.2": 4, "127.0.0.3": 4}
    assert Counter(m.peer_ip for m in two.messages) == {"127.0.0.4": 4, "127.0.0.5": 12}
    assert set(one.ehlo_names) == {"tx.relay.test"}
    assert set(two.ehlo_names) == {"news.relay.test"}
    for message in one.messages + two.messages:
        assert b"X-Binding-Group" not in message.content
        assert b"Received: from" in message.content
    delivered = relay.events("delivery")
    assert len(delivered) == 24
    assert {e["binding"] for e in delivered} == {"tx-1", "tx-2", "mkt-1", "mkt-2"}
    assert relay.daemon.spool is not None
    await relay.wait(lambda: len(relay.daemon.spool) == 0)  # type: ignore[union-attr]


ONE_DOMAIN_ZONE = {"one.test": {"MX": ["10 mx.one.test."]}, "mx.one.test": {"A": ["127.0.0.10"]}}


async def test_binding_domain_connection_cap_and_group_value(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    import asyncio

    from tests.support.sinks import Script

    dns = await dns_server(ONE_DOMAIN_ZONE)
    sink = await smtp_sink("127.0.0.10", script=Script(stall="DATA"))
    relay = await relay_factory(
        f"""
remote_smtp_port = {smtp_sink.port}
idle_timeout = 0.1
connection_allocation_aggressiveness = high   # a connection per waiting message, up to the cap
binding_group "g" {{
  max_outbound_connections = 4
  binding "b1" {{
    bind_address = 127.0.0.2
    domain "one.test" {{ max_outbound_connections = 2 }}
  }}
  binding "b2" {{ bind_address = 127.0.0.3 }}
}}
""",
        dns=dns,
    )
    for i in range(6):
        await relay.send("s@sender.test", [f"r{i}@one.test"], headers={"X-Binding": "b1"})
    await relay.wait(lambda: sink.active == 2)
    await asyncio.sleep(0.3)  # room for a third connection to (wrongly) appear
    assert sink.max_active == 2
    sink._release.set()
    await relay.wait(lambda: len(sink.messages) == 6)
    assert sink.max_active == 2
    assert {m.peer_ip for m in sink.messages} == {"127.0.0.2"}

    await relay.wait(lambda: sink.active == 0)  # b1's idle connections closed
    sink._release.clear()
    sink.max_active = 0
    for i in range(8):
        await relay.send("s@sender.test", [f"q{i}@one.test"], headers={"X-Binding": "b2"})
    await relay.wait(lambda: sink.active >= 4)
    await asyncio.sleep(0.3)
    assert sink.max_active == 4  # b2 falls back to the group's value
    sink._release.set()
    await relay.wait(lambda: len(sink.messages) == 14)


async def test_group_throttle_caps_the_whole_group(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    import asyncio

    from relay.clock import ManualClock

    clock = ManualClock(start=1_800_000_000.0)
    dns = await dns_server(ONE_DOMAIN_ZONE)
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        f"""
remote_smtp_port = {smtp_sink.port}
binding_group "g" {{
  outbound_throttle_messages = "10/1"
  binding "b1" {{ bind_address = 127.0.0.2 }}
  binding "b2" {{ bind_address = 127.0.0.3 }}
}}
""",
        dns=dns,
        clock=clock,
        listener='binding_group = "g"',
    )
    for i in range(30):
        await relay.send("s@sender.test", [f"r{i}@one.test"])
    await relay.wait(lambda: len(sink.messages) == 10)
    await asyncio.sleep(0.3)
    assert len(sink.messages) == 10  # the burst: ten for the group, not ten per binding
    assert {m.peer_ip for m in sink.messages} == {"127.0.0.2", "127.0.0.3"}
    # One more every 0.1 s. The clock moves a step at a time, each step once the
    # previous message has arrived: a worker busy sending when advance() looks for
    # sleepers must not let time jump ahead (the bucket would refill only up to its burst).
    for step in range(1, 21):
        await clock.advance(0.1)
        await relay.wait(lambda step=step: len(sink.messages) == 10 + step)  # type: ignore[misc]
        if step == 5:
            await asyncio.sleep(0.2)
            assert len(sink.messages) == 15  # nothing beyond the rate


async def test_unplumbed_binding_is_skipped(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ONE_DOMAIN_ZONE)
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        f"""
remote_smtp_port = {smtp_sink.port}
binding_group "g" {{
  binding "here" {{ bind_address = 127.0.0.2 }}
  binding "elsewhere" {{ bind_address = 192.0.2.1 }}
}}
""",
        dns=dns,
        listener='binding_group = "g"',
    )
    for i in range(6):
        await relay.send("s@sender.test", [f"r{i}@one.test"])
    await relay.wait(lambda: len(sink.messages) == 6)
    assert {m.peer_ip for m in sink.messages} == {"127.0.0.2"}
    assert [e["binding"] for e in relay.events("unplumbed")] == ["elsewhere"]


async def test_shared_connection_cap_hands_idle_connections_over(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ONE_DOMAIN_ZONE)
    sink = await smtp_sink("127.0.0.10")
    bindings = "".join(f'  binding "b{i}" {{ bind_address = 127.0.0.{2 + i} }}\n' for i in range(6))
    relay = await relay_factory(
        f"""
remote_smtp_port = {smtp_sink.port}
idle_timeout = 60   # an idle connection would hold its slot for a minute
binding_group "g" {{
  scope_max_outbound_connections = 2
{bindings}}}
""",
        dns=dns,
        listener='binding_group = "g"',
    )
    for i in range(18):
        await relay.send("s@sender.test", [f"r{i}@one.test"])
    await relay.wait(lambda: len(sink.messages) == 18, within=10)
    assert sink.max_active <= 2  # the group's cap, shared by its six bindings
    assert len({m.peer_ip for m in sink.messages}) == 6


async def test_normal_connection_allocation_opens_one_connection_per_eight_waiting(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    import asyncio

    from tests.support.sinks import Script

    dns = await dns_server(ONE_DOMAIN_ZONE)
    sink = await smtp_sink("127.0.0.10", script=Script(stall="DATA"))
    relay = await relay_factory(
        f"""
remote_smtp_port = {smtp_sink.port}
max_outbound_connections = 10
binding_group "g" {{ binding "b1" {{ bind_address = 127.0.0.2 }} }}
""",
        dns=dns,
        listener='binding_group = "g"',
    )
    for i in range(20):
        await relay.send("s@sender.test", [f"r{i}@one.test"])
    await relay.wait(lambda: sink.active >= 3)
    await asyncio.sleep(0.3)
    assert sink.max_active == 3  # ceil(20 / 8), not 10: Momentum's "normal" aggressiveness
    sink._release.set()
    await relay.wait(lambda: len(sink.messages) == 20)
