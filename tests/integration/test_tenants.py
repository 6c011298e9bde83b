"""Tenants and campaigns carried with each message (issue 17's first bullet): X-Tenant /
X-Campaign read at injection and removed before delivery, listener and peer defaults, the
HTTP injection fields, kept in the spool across a restart, in the event log, the admin
filters and the message lookup."""

from __future__ import annotations

from relay.clock import ManualClock
from tests.integration.relay_harness import RelayFactory
from tests.integration.test_admin_control import START, ZONE, admin, config
from tests.integration.test_admin_http import call, inject
from tests.support.fixtures import DnsServerFactory, SinkFactory
from tests.support.sinks import Script


async def test_tenant_header_removed_and_carried(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        config(smtp_sink.port),
        dns=dns,
        admin=True,
        listener='binding_group = "g" tenant = "house" campaign = "default-run"',
    )
    await relay.send(
        "s@sender.test",
        ["a@one.test"],
        headers={"X-Tenant": "acme", "X-Campaign": "black friday"},
    )
    await relay.send("s@sender.test", ["b@one.test"])  # the listener's defaults
    await relay.wait(lambda: len(sink.messages) == 2)
    for received in sink.messages:
        head = received.content.split(b"\r\n\r\n", 1)[0].lower()
        assert b"x-tenant" not in head and b"x-campaign" not in head
    receptions = relay.events("reception")
    assert {(e["tenant"], e["campaign"]) for e in receptions} == {
        ("acme", "black friday"),
        ("house", "default-run"),
    }
    await relay.wait(lambda: len(relay.events("delivery")) == 2)
    by_rcpt = {e["recipient"]: e for e in relay.events("delivery")}
    assert (by_rcpt["a@one.test"]["tenant"], by_rcpt["a@one.test"]["campaign"]) == (
        "acme",
        "black friday",
    )
    assert by_rcpt["b@one.test"]["tenant"] == "house"

    status, answer = await inject(
        relay,
        {"from": "s@sender.test", "to": ["c@one.test"], "text": "hi", "tenant": "http-t"},
    )
    assert status == 201
    await relay.wait(lambda: len(sink.messages) == 3)
    (event,) = [e for e in relay.events("reception") if e["message_id"] == answer["id"]]
    assert event["tenant"] == "http-t" and "campaign" not in event
    # A bad X-Tenant is refused at the end of DATA, nothing queued.
    status, answer = await inject(
        relay,
        {"from": "s@sender.test", "to": ["c@one.test"], "content": f"X-Tenant: {'x' * 300}\n\nx"},
    )
    assert (status, answer["field"]) == (422, "content")
    assert answer["smtp_reply"].startswith("550 5.6.0 X-Tenant")


async def test_tenant_filters_lookup_and_restart(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    await smtp_sink("127.0.0.10", script=Script(rcpt={"*": ["451 4.3.2 later"] * 10}))
    relay = await relay_factory(
        config(smtp_sink.port), dns=dns, admin=True, clock=clock, listener='binding_group = "g"'
    )
    ids = {}
    for name, tenant, campaign in (("a", "t1", "c1"), ("b", "t2", "c1"), ("c", "t2", "c2")):
        status, answer = await inject(
            relay,
            {
                "from": "s@sender.test",
                "to": [f"{name}@one.test"],
                "text": "hi",
                "tenant": tenant,
                "campaign": campaign,
            },
        )
        assert status == 201
        ids[name] = answer["id"]
    await relay.wait(lambda: len(relay.events("transient_failure")) == 3)
    failures = relay.events("transient_failure")
    assert {e["tenant"] for e in failures} == {"t1", "t2"}

    relay = await relay_factory.restart(relay, clock=clock)
    status, found, _ = await call(
        relay, "GET", f"/api/v1/messages/{ids['b']}", token=relay.tokens["read"]
    )
    assert status == 200 and (found["tenant"], found["campaign"]) == ("t2", "c1")

    status, answer = await admin(relay, "/api/v1/delete", {"tenant": "t2", "campaign": "c2"})
    assert (status, answer) == (200, {"deleted": {"messages": 1, "recipients": 1}})
    status, answer = await admin(relay, "/api/v1/bounce", {"campaign": "c1"})
    assert (status, answer) == (200, {"bounced": {"messages": 2, "recipients": 2}})
    (deleted,) = relay.events("deleted")
    assert (deleted["message_id"], deleted["tenant"]) == (ids["c"], "t2")


async def test_tenants_cross_from_injection_workers(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    from tests.integration import test_relay_workers as workers

    dns = await dns_server(workers.ZONE)
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        workers.config(smtp_sink.port), dns=dns, listener='binding_group = "g" tenant = "w"'
    )
    for i in range(4):
        headers = {"X-Tenant": "acme", "X-Campaign": "k"} if i % 2 else {}
        await relay.send("s@sender.test", [f"r{i}@one.test"], headers=headers)
    await relay.wait(lambda: len(relay.events("delivery")) == 4, within=20)
    assert not any(b"X-Tenant" in m.content for m in sink.messages)
    tenants = {e["recipient"]: (e["tenant"], e.get("campaign")) for e in relay.events("delivery")}
    assert tenants == {
        "r0@one.test": ("w", None),
        "r1@one.test": ("acme", "k"),
        "r2@one.test": ("w", None),
        "r3@one.test": ("acme", "k"),
    }
