"""Scheduling policies through the whole daemon: blackhole, suspend_delivery, null MX,
fairness across domains, connect_timeout_to_delay, drop_body_after_trans_fail, SIGTERM
drain and DSN loops."""

from __future__ import annotations

import asyncio
import email

from relay.clock import ManualClock
from tests.integration.relay_harness import RelayFactory
from tests.support.fixtures import DnsServerFactory, SinkFactory
from tests.support.sinks import Script

START = 1_800_000_000.0
ZONE = {
    "one.test": {"MX": ["10 mx.one.test."]},
    "two.test": {"MX": ["10 mx.two.test."]},
    "big.test": {"MX": ["10 mx.big.test."]},
    "mx.one.test": {"A": ["127.0.0.10"]},
    "mx.two.test": {"A": ["127.0.0.11"]},
    "mx.big.test": {"A": ["127.0.0.13"]},
    "null.test": {"MX": ["0 ."]},
    "sender.test": {"MX": ["10 mx.sender.test."]},
    "mx.sender.test": {"A": ["127.0.0.12"]},
}


def group(port: int, extra: str = "", binding_extra: str = "") -> str:
    return f"""
remote_smtp_port = {port}
retry_interval = 100
{extra}
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 {binding_extra} }}
  binding "b2" {{ bind_address = 127.0.0.3 }}
}}
"""


async def test_blackhole_modes_and_suspend_delivery(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    one = await smtp_sink("127.0.0.10")
    two = await smtp_sink("127.0.0.11")
    sender_mx = await smtp_sink("127.0.0.12")
    relay = await relay_factory(
        group(
            smtp_sink.port,
            'domain "one.test" { blackhole = internal }\n'
            'domain "two.test" { blackhole = true }\n'
            'domain "big.test" { suspend_delivery = true }',
            binding_extra='domain "null.test" { }',
        ),
        dns=dns,
        listener='binding_group = "g"',
    )
    await relay.send("s@sender.test", ["a@one.test"])  # accepted and dropped, no DSN
    await relay.send("s@sender.test", ["b@two.test"])  # failed with a DSN
    await relay.send("s@sender.test", ["c@big.test"])  # held
    await relay.wait(lambda: len(sender_mx.messages) == 1)
    dsn = email.message_from_bytes(sender_mx.messages[0].content)
    status = dsn.get_payload()[1].get_payload()[1]  # type: ignore[index,union-attr]
    assert status["Final-Recipient"] == "rfc822; b@two.test"
    assert "blackholed" in status["Diagnostic-Code"]
    assert one.messages == [] and two.messages == []
    deliveries = [d["recipient"] for d in relay.events("delivery")]
    assert "a@one.test" in deliveries and "b@two.test" not in deliveries
    await asyncio.sleep(0.3)
    assert relay.daemon.spool is not None and len(relay.daemon.spool) == 1  # c@big.test waits
    assert relay.events("transient_failure") == []  # holding is not an attempt


async def test_null_mx_bounces_with_5110(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sender_mx = await smtp_sink("127.0.0.12")
    relay = await relay_factory(group(smtp_sink.port), dns=dns, listener='binding_group = "g"')
    await relay.send("s@sender.test", ["x@null.test"])
    await relay.wait(lambda: len(sender_mx.messages) == 1)
    status = email.message_from_bytes(sender_mx.messages[0].content).get_payload()[1]
    block = status.get_payload()[1]  # type: ignore[union-attr]
    assert block["Status"] == "5.1.10"


async def test_one_huge_domain_does_not_starve_another(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    big = await smtp_sink("127.0.0.13", script=Script(stall="DATA"))
    small = await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        group(smtp_sink.port, "max_outbound_connections = 2\nmax_resident_active_queue = 20"),
        dns=dns,
        listener='binding_group = "g"',
    )
    sends = [relay.send("s@sender.test", [f"r{i}@big.test"]) for i in range(300)]
    for chunk in range(0, 300, 50):
        await asyncio.gather(*sends[chunk : chunk + 50])
    for i in range(5):
        await relay.send("s@sender.test", [f"r{i}@one.test"])
    await relay.wait(lambda: len(small.messages) == 5, within=5)
    assert big.messages == []  # the big domain is stuck, the small one is not
    assert relay.daemon.scheduler is not None
    stats = relay.daemon.scheduler.statistics()
    assert stats.in_flight <= 2 * 20 + 4  # ready queues are bounded, the rest stay scheduled
    big._release.set()
    await relay.wait(lambda: len(big.messages) == 300, within=30)


async def test_connect_timeout_to_delay_stops_hammering(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server({**ZONE, "mx.one.test": {"A": ["127.0.0.99"]}})  # nobody listens
    await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        group(
            smtp_sink.port,
            "connect_timeout_to_delay = 150\nmax_retry_interval = 100",
        ),
        dns=dns,
        clock=clock,
        listener='binding = "b1"',
    )
    await relay.send("s@sender.test", ["a@one.test"])
    await relay.wait(lambda: len(relay.events("connect_failure")) == 1)
    await clock.advance(100)
    await relay.wait(lambda: len(relay.events("connect_failure")) == 2)
    await clock.advance(100)  # t=200: failing for 200 s >= 150: binding x domain delayed
    await relay.wait(lambda: len(relay.events("connect_failure")) == 3)
    assert relay.daemon.scheduler is not None
    assert relay.daemon.scheduler.unreachable_until("b1", "one.test") is not None
    await relay.send("s@sender.test", ["b@one.test"])  # new mail waits, no new connection
    await asyncio.sleep(0.3)
    assert len(relay.events("connect_failure")) == 3


async def test_drop_body_after_transient_failures(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    await smtp_sink("127.0.0.10", script=Script(rcpt={"*": ["451 4.3.2 later"] * 10}))
    relay = await relay_factory(
        group(smtp_sink.port, "drop_body_after_trans_fail = 2"),
        dns=dns,
        clock=clock,
        listener='binding_group = "g"',
    )
    assert relay.daemon.spool is not None
    spool = relay.daemon.spool
    await relay.send("s@sender.test", ["a@one.test"])
    await relay.wait(lambda: len(relay.events("transient_failure")) == 1)
    assert spool.statistics().resident_bodies == 1
    await clock.advance(100)
    await relay.wait(lambda: len(relay.events("transient_failure")) == 2)
    await relay.wait(lambda: spool.statistics().resident_bodies == 0)  # on disk only now
    await clock.advance(200)
    await relay.wait(lambda: len(relay.events("transient_failure")) == 3)  # read back


async def test_no_dsn_to_relays_own_mailer_daemon(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    await smtp_sink("127.0.0.10", script=Script(rcpt={"*": ["550 5.1.1 unknown"]}))
    relay = await relay_factory(group(smtp_sink.port), dns=dns, listener='binding_group = "g"')
    await relay.send("MAILER-DAEMON@relay.test", ["a@one.test"])
    await relay.wait(lambda: len(relay.events("dsn_suppressed")) == 1)
    assert "mailer-daemon" in str(relay.events("dsn_suppressed")[0]["reason"])


async def test_sigterm_lets_a_delivery_in_flight_finish(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10", script=Script(stall="DATA"))
    relay = await relay_factory(group(smtp_sink.port), dns=dns, listener='binding_group = "g"')
    await relay.send("s@sender.test", ["a@one.test"])
    await relay.wait(lambda: "DATA" in sink.commands)
    stopping = asyncio.create_task(relay.daemon.stop(deadline=5))
    await asyncio.sleep(0.3)
    assert not stopping.done()  # waiting for the delivery in flight
    sink._release.set()
    await asyncio.wait_for(stopping, 10)
    relay_factory.running.remove(relay)
    assert len(sink.messages) == 1
    assert [e["recipient"] for e in relay.events("delivery")] == ["a@one.test"]
