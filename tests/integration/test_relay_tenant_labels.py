"""The tenant and campaign outside the event log, through the whole daemon: a bounce's DSN
names them (X-Tenant / X-Campaign, and X-Relay-Tenant in the delivery-status part), and
/metrics counts recipient outcomes per tenant (relay_tenant_recipients) and per campaign
(relay_campaign_recipients)."""

from __future__ import annotations

import email

from tests.integration.relay_harness import RelayFactory
from tests.integration.test_relay_admin import api
from tests.support.fixtures import DnsServerFactory, SinkFactory
from tests.support.sinks import Script

ZONE = {
    "one.test": {"MX": ["10 mx.one.test."]},
    "mx.one.test": {"A": ["127.0.0.10"]},
    "sender.test": {"MX": ["10 mx.sender.test."]},
    "mx.sender.test": {"A": ["127.0.0.11"]},
}


def config(port: int) -> str:
    return f"""
remote_smtp_port = {port}
tenant "acme" {{ }}
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 }}
}}
"""


async def test_a_dsn_names_the_tenant_and_campaign_and_metrics_count_per_tenant(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink(
        "127.0.0.10", script=Script(rcpt={"bad@one.test": ["550 5.1.1 no such user"]})
    )
    sender_mx = await smtp_sink("127.0.0.11")
    relay = await relay_factory(
        config(smtp_sink.port), dns=dns, admin=True, listener='binding_group = "g"'
    )
    await relay.send(
        "s@sender.test",
        ["a@one.test", "bad@one.test"],
        headers={"X-Tenant": "acme", "X-Campaign": "spring"},
    )
    await relay.send("s@sender.test", ["z@one.test"], headers={"X-Tenant": "zeta"})
    await relay.send("s@sender.test", ["n@one.test"])  # no tenant: not in the tenant metric
    await relay.wait(lambda: len(sender_mx.messages) == 1 and len(sink.messages) == 3)
    dsn = email.message_from_bytes(sender_mx.messages[0].content)
    assert dsn.get_content_type() == "multipart/report"
    assert (dsn["X-Tenant"], dsn["X-Campaign"]) == ("acme", "spring")
    status = dsn.get_payload()[1].get_payload()  # type: ignore[index,union-attr]
    assert status[0]["X-Relay-Tenant"] == "acme"
    assert status[0]["X-Relay-Campaign"] == "spring"
    assert status[1]["Final-Recipient"] == "rfc822; bad@one.test"
    metrics = await api(relay, "GET", "/metrics")
    assert 'relay_tenant_recipients_total{outcome="delivered",tenant="acme"} 1.0' in metrics
    assert 'relay_tenant_recipients_total{outcome="failed",tenant="acme"} 1.0' in metrics
    assert 'relay_tenant_recipients_total{outcome="delivered",tenant="zeta"} 1.0' in metrics
    assert 'tenant=""' not in metrics
    assert 'relay_campaign_recipients_total{campaign="spring",outcome="delivered"} 1.0' in metrics
    assert 'relay_campaign_recipients_total{campaign="spring",outcome="failed"} 1.0' in metrics
    assert 'campaign="_other"' not in metrics and 'campaign=""' not in metrics
