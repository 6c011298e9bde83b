"""Tenant and campaign holds through the whole daemon with real sinks: a tenant x domain
hold stops only that tenant's mail to that domain while another tenant's mail on the same
binding flows (no attempts, shown in the queue view); a reply rule with scope = tenant holds
the tenant, not the IP."""

from __future__ import annotations

import asyncio

from relay.clock import ManualClock
from tests.integration.relay_harness import RelayFactory, RelayUnderTest
from tests.integration.test_relay_admin import api, cli
from tests.support.fixtures import DnsServerFactory, SinkFactory
from tests.support.sinks import Script

START = 1_800_000_000.0
ZONE = {
    "one.test": {"MX": ["10 mx.one.test."]},
    "two.test": {"MX": ["10 mx.two.test."]},
    "mx.one.test": {"A": ["127.0.0.10"]},
    "mx.two.test": {"A": ["127.0.0.11"]},
}


def config(port: int, extra: str = "") -> str:
    return f"""
remote_smtp_port = {port}
retry_interval = 60
{extra}
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 }}
}}
"""


async def send(relay: RelayUnderTest, tenant: str, rcpt: str) -> None:
    await relay.send("s@sender.test", [rcpt], headers={"X-Tenant": tenant})


async def test_a_tenant_x_domain_hold_stops_only_that_tenant(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    one = await smtp_sink("127.0.0.10")
    two = await smtp_sink("127.0.0.11")
    relay = await relay_factory(
        config(smtp_sink.port), dns=dns, admin=True, listener='binding_group = "g"'
    )
    held = await api(
        relay,
        "POST",
        "/api/v1/holds",
        {"kind": "tenant", "subject": "acme", "domain": "one.test", "reason": "complaints"},
    )
    assert held["held"]["target"] == "one.test"
    for i in range(3):
        await send(relay, "acme", f"a{i}@one.test")
        await send(relay, "other", f"o{i}@one.test")
    await send(relay, "acme", "a@two.test")  # the hold is for one.test only
    await relay.wait(lambda: len(one.messages) == 3 and len(two.messages) == 1)
    await asyncio.sleep(0.3)
    assert sorted(r for m in one.messages for r in m.rcpt_tos) == [
        "o0@one.test",
        "o1@one.test",
        "o2@one.test",
    ]
    assert relay.events("transient_failure") == []  # held mail is not attempted
    queues = await api(relay, "GET", "/api/v1/queues")
    (row,) = queues["held"]
    assert (row["kind"], row["subject"], row["target"], row["queued"]) == (
        "tenant",
        "acme",
        "one.test",
        3,
    )
    code, out, _ = await cli(relay, "holds")
    assert code == 0 and "acme" in out
    code, _, _ = await cli(relay, "release", "tenant", "acme", "--domain", "one.test")
    assert code == 0
    await relay.wait(lambda: len(one.messages) == 6)
    assert [e["tenant"] for e in relay.events("tenant_hold")] == ["acme"]


async def test_a_tenant_scope_reply_rule_holds_the_tenant_not_the_ip(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    one = await smtp_sink(
        "127.0.0.10",
        script=Script(
            rcpt_hook=lambda peer, rcpt: (
                "550 5.7.1 Message content rejected" if rcpt.startswith("bad") else None
            )
        ),
    )
    relay = await relay_factory(
        config(
            smtp_sink.port,
            """adaptive_enabled = true
adaptive_reply_rule "content" {
  pattern = "content rejected"
  threshold = "2/60"
  action = ( "suspend" "1 hour" )
  scope = tenant
}""",
        ),
        dns=dns,
        clock=clock,
        admin=True,
        listener='binding_group = "g"',
    )
    await send(relay, "spammer", "bad1@one.test")
    await send(relay, "spammer", "bad2@one.test")
    await relay.wait(lambda: len(relay.events("tenant_hold")) == 1)
    (event,) = relay.events("tenant_hold")
    assert (event["tenant"], event["target"], event["by"]) == ("spammer", "one.test", "adaptive")
    assert relay.events("adaptive_suspension") == []  # the IP is not suspended
    await send(relay, "spammer", "later@one.test")
    await send(relay, "good", "fine@one.test")
    await relay.wait(lambda: any("fine@one.test" in m.rcpt_tos for m in one.messages))
    await asyncio.sleep(0.3)
    assert not any("later@one.test" in m.rcpt_tos for m in one.messages)
    await clock.advance(3601)  # the hold ends
    await relay.wait(lambda: any("later@one.test" in m.rcpt_tos for m in one.messages))


async def test_an_admin_hold_survives_a_restart(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    one = await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        config(smtp_sink.port), dns=dns, admin=True, clock=clock, listener='binding_group = "g"'
    )
    await api(
        relay,
        "POST",
        "/api/v1/holds",
        {
            "kind": "tenant",
            "subject": "acme",
            "domain": "one.test",
            "duration": 3600,
            "reason": "complaints",
        },
    )
    saved = relay.directory / "spool" / "holds.json"
    await relay.wait(saved.exists)  # written when the hold is added, not only at stop
    await send(relay, "acme", "a@one.test")
    relay = await relay_factory.restart(relay, clock=clock)
    (row,) = (await api(relay, "GET", "/api/v1/holds"))["holds"]
    assert (row["subject"], row["target"], row["until"]) == ("acme", "one.test", START + 3600)
    await send(relay, "other", "o@one.test")
    await relay.wait(lambda: len(one.messages) == 1)
    await asyncio.sleep(0.3)
    assert [r for m in one.messages for r in m.rcpt_tos] == ["o@one.test"]  # acme still held
    await clock.advance(3601)  # the hold ends after the restart as it would have before
    await relay.wait(lambda: len(one.messages) == 2)
    relay = await relay_factory.restart(relay, clock=clock)
    assert (await api(relay, "GET", "/api/v1/holds"))["holds"] == []
