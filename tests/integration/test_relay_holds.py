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
from tests.support.sinks import Script, SmtpSink

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


def content_rule(scope: str) -> str:
    return f"""adaptive_enabled = true
adaptive_reply_rule "content" {{
  pattern = "content rejected"
  threshold = "2/60"
  action = ( "suspend" "1 hour" )
  scope = {scope}
}}"""


def rejecting_bad(peer: str, rcpt: str) -> str | None:
    return "550 5.7.1 Message content rejected" if rcpt.startswith("bad") else None


def delivered(*sinks: SmtpSink) -> list[tuple[str, str]]:
    """(peer ip, recipient) of everything the sinks took."""
    return sorted((m.peer_ip, r) for sink in sinks for m in sink.messages for r in m.rcpt_tos)


def failures(relay: RelayUnderTest) -> list[object]:
    """The recipients of failed attempts so far (bounces and deferrals; not the DSNs')."""
    return sorted(
        e["recipient"]
        for kind in ("bounce", "transient_failure")
        for e in relay.events(kind)
        if e.get("tenant") is not None
    )


async def test_a_campaign_scope_reply_rule_holds_the_campaign(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    one = await smtp_sink("127.0.0.10", script=Script(rcpt_hook=rejecting_bad))
    relay = await relay_factory(
        config(smtp_sink.port, content_rule("campaign")),
        dns=dns,
        admin=True,
        listener='binding_group = "g"',
    )
    for rcpt in ("bad1@one.test", "bad2@one.test"):
        await relay.send("s@sender.test", [rcpt], headers={"X-Tenant": "t", "X-Campaign": "junk"})
    await relay.wait(lambda: len(relay.events("campaign_hold")) == 1)
    (event,) = relay.events("campaign_hold")
    assert (event["campaign"], event["target"], event["by"]) == ("junk", "one.test", "adaptive")
    await relay.wait(lambda: len(failures(relay)) == 2)  # both rejections logged
    attempts = failures(relay)
    await relay.send(
        "s@sender.test", ["later@one.test"], headers={"X-Tenant": "t", "X-Campaign": "junk"}
    )
    await relay.send(
        "s@sender.test", ["fine@one.test"], headers={"X-Tenant": "t", "X-Campaign": "news"}
    )
    await relay.wait(lambda: any("fine@one.test" in m.rcpt_tos for m in one.messages))
    await asyncio.sleep(0.3)
    assert not any("later@one.test" in m.rcpt_tos for m in one.messages)
    assert failures(relay) == attempts == ["bad1@one.test", "bad2@one.test"]  # held, not failed
    (row,) = (await api(relay, "GET", "/api/v1/queues"))["held"]
    assert (row["kind"], row["subject"], row["target"], row["queued"]) == (
        "campaign",
        "junk",
        "one.test",
        1,
    )


async def test_a_tenant_binding_scope_reply_rule_holds_the_tenant_on_that_binding_only(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    """The blamed binding keeps carrying other tenants' mail; the tenant's mail pinned to
    it is held (no attempt, no failure, in the queue view), its other mail uses b2."""
    dns = await dns_server(ZONE)
    one = await smtp_sink("127.0.0.10", script=Script(rcpt_hook=rejecting_bad))
    relay = await relay_factory(
        f"""
remote_smtp_port = {smtp_sink.port}
retry_interval = 60
{content_rule("tenant_binding")}
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 }}
  binding "b2" {{ bind_address = 127.0.0.3 }}
}}
""",
        dns=dns,
        admin=True,
        listener='binding_group = "g"',
    )
    on_b1 = {"X-Binding": "b1"}
    for rcpt in ("bad1@one.test", "bad2@one.test"):
        await relay.send("s@sender.test", [rcpt], headers={"X-Tenant": "spammer", **on_b1})
    await relay.wait(lambda: len(relay.events("tenant_hold")) == 1)
    (event,) = relay.events("tenant_hold")
    assert (event["tenant"], event["target"], event["binding"], event["by"]) == (
        "spammer",
        "one.test",
        "b1",
        "adaptive",
    )
    assert relay.events("adaptive_suspension") == []  # b1 itself is not suspended
    await relay.wait(lambda: len(failures(relay)) == 2)  # both rejections logged
    attempts = failures(relay)
    await relay.send("s@sender.test", ["held@one.test"], headers={"X-Tenant": "spammer", **on_b1})
    await relay.send("s@sender.test", ["good@one.test"], headers={"X-Tenant": "good", **on_b1})
    for i in range(3):
        await relay.send("s@sender.test", [f"moved{i}@one.test"], headers={"X-Tenant": "spammer"})
    await relay.wait(lambda: len(one.messages) == 4)
    await asyncio.sleep(0.3)
    assert delivered(one) == [
        ("127.0.0.2", "good@one.test"),
        ("127.0.0.3", "moved0@one.test"),
        ("127.0.0.3", "moved1@one.test"),
        ("127.0.0.3", "moved2@one.test"),
    ]
    assert failures(relay) == attempts == ["bad1@one.test", "bad2@one.test"]
    (row,) = (await api(relay, "GET", "/api/v1/queues"))["held"]
    assert (row["subject"], row["target"], row["binding"], row["queued"]) == (
        "spammer",
        "one.test",
        "b1",
        1,
    )


async def test_a_tenant_provider_scope_reply_rule_holds_the_tenant_for_every_domain_of_it(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    """A reply from one domain of a provider holds the tenant for all of its domains (no
    adaptive_provider_rollup needed); other tenants' mail on the same binding flows."""
    dns = await dns_server(
        {
            "one.test": {"MX": ["10 mx1.big.test."]},
            "two.test": {"MX": ["10 mx2.big.test."]},
            "mx1.big.test": {"A": ["127.0.0.10"]},
            "mx2.big.test": {"A": ["127.0.0.11"]},
        }
    )
    one = await smtp_sink("127.0.0.10", script=Script(rcpt_hook=rejecting_bad))
    two = await smtp_sink("127.0.0.11")
    relay = await relay_factory(
        config(
            smtp_sink.port,
            content_rule("tenant_provider") + '\nprovider "big" { match_mx = ( "*.big.test" ) }',
        ),
        dns=dns,
        admin=True,
        listener='binding_group = "g"',
    )
    for rcpt in ("bad1@one.test", "bad2@one.test"):
        await send(relay, "spammer", rcpt)
    await relay.wait(lambda: len(relay.events("tenant_hold")) == 1)
    (event,) = relay.events("tenant_hold")
    assert (event["tenant"], event["target"], event["binding"]) == (
        "spammer",
        "provider:big",
        None,
    )
    await relay.wait(lambda: len(failures(relay)) == 2)  # both rejections logged
    attempts = failures(relay)
    await send(relay, "spammer", "held1@one.test")
    await send(relay, "spammer", "held2@two.test")  # the provider's other domain too
    await send(relay, "good", "fine1@one.test")
    await send(relay, "good", "fine2@two.test")
    await relay.wait(lambda: len(one.messages) == 1 and len(two.messages) == 1)
    await asyncio.sleep(0.3)
    assert delivered(one, two) == [
        ("127.0.0.2", "fine1@one.test"),
        ("127.0.0.2", "fine2@two.test"),
    ]
    assert failures(relay) == attempts == ["bad1@one.test", "bad2@one.test"]
    (row,) = (await api(relay, "GET", "/api/v1/queues"))["held"]
    assert (row["subject"], row["target"], row["queued"]) == ("spammer", "provider:big", 2)
