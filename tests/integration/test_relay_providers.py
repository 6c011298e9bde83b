"""Provider limits through the whole daemon: two domains whose MX hosts are one provider's
share its per binding connection cap (the sink counts), the admin API and `config eval`
show a domain's provider."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relay.cli import main
from relay.clock import ManualClock
from tests.integration.relay_harness import RelayFactory
from tests.integration.test_relay_admin import api
from tests.support.fixtures import DnsServerFactory, SinkFactory
from tests.support.sinks import Script

ZONE = {
    "alpha.test": {"MX": ["10 mx1.bigmail.test.", "20 mx2.bigmail.test."]},
    "beta.test": {"MX": ["10 mx2.bigmail.test."]},
    "own.test": {"MX": ["10 mx.own.test."]},
    "mx1.bigmail.test": {"A": ["127.0.0.10"]},
    "mx2.bigmail.test": {"A": ["127.0.0.10"]},
    "mx.own.test": {"A": ["127.0.0.11"]},
    "sender.test": {"MX": ["10 mx.own.test."]},
}

START = 1_800_000_000.0
PROVIDER = """
provider "bigmail" {
  match_mx = ( "*.bigmail.test" )
  match_domain = ( "bigmail.test" )
  max_outbound_connections = 2
}
"""


def config(port: int) -> str:
    return f"""
remote_smtp_port = {port}
retry_interval = 100
connection_allocation_aggressiveness = high
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 }}
}}
{PROVIDER}
"""


async def test_two_domains_of_one_provider_share_its_connection_cap(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    big = await smtp_sink("127.0.0.10", script=Script(stall="DATA"))
    own = await smtp_sink("127.0.0.11", script=Script(stall="DATA"))
    relay = await relay_factory(
        config(smtp_sink.port), dns=dns, listener='binding_group = "g"', admin=True
    )
    await asyncio.gather(
        *(
            relay.send("s@sender.test", [f"{d[0]}{i}@{d}"])
            for i in range(6)
            for d in ("alpha.test", "beta.test", "own.test")
        )
    )
    # own.test, in no provider, opens more than 2 connections alone.
    await relay.wait(lambda: big.active == 2 and own.active > 2)
    await asyncio.sleep(0.5)
    assert big.max_active == 2  # alpha.test and beta.test together, not 2 x 32
    answer = await api(relay, "GET", "/api/v1/providers")
    assert answer["domains"] == {"alpha.test": "bigmail", "beta.test": "bigmail", "own.test": None}
    assert answer["providers"][0]["max_outbound_connections"] == 2
    one = await api(relay, "GET", "/api/v1/providers?domain=Alpha.test")
    assert one == {"domain": "alpha.test", "provider": "bigmail", "known": True}
    queues = await api(relay, "GET", "/api/v1/queues")
    assert sum(r["connections"] for r in queues["ready"] if r["domain"] != "own.test") == 2
    big._release.set()
    own._release.set()
    await relay.wait(lambda: len(big.messages) == 12 and len(own.messages) == 6, within=20)
    assert big.max_active == 2


@pytest.mark.parametrize(
    ("domain", "printed"),
    [
        ("alpha.test", 'provider = "bigmail"\n# provider "bigmail" :: match_mx (MX: '),
        ("bigmail.test", 'provider = "bigmail"\n# provider "bigmail" :: match_domain\n'),
        ("own.test", "provider = none\n# not every MX host matches one provider (MX: mx.own"),
    ],
)
async def test_config_eval_shows_the_provider_of_a_domain(
    dns_server: DnsServerFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    domain: str,
    printed: str,
) -> None:
    dns = await dns_server(ZONE)
    path = tmp_path / "relay.conf"
    path.write_text(f'resolv_conf = "{dns.resolv_conf}"\ndns_port = {dns.port}\n{PROVIDER}')
    code = await asyncio.to_thread(
        main, ["config", "eval", "-c", str(path), "domain", domain, "provider"]
    )
    assert code == 0
    assert capsys.readouterr().out.startswith(printed)


async def test_a_rolled_up_suspension_covers_every_domain_of_the_provider(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    big = await smtp_sink(
        "127.0.0.10",
        script=Script(
            rcpt_hook=lambda peer, rcpt: (
                "451 4.7.1 Please slow down" if peer == "127.0.0.2" and "alpha" in rcpt else None
            )
        ),
    )
    relay = await relay_factory(
        f"""
remote_smtp_port = {smtp_sink.port}
retry_interval = 3600
adaptive_enabled = true
adaptive_reply_rule "pushback" {{
  pattern = "please slow down"
  threshold = "2/60"
  action = ( "suspend" "10 minutes" )
  replies = 4xx
}}
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 }}
  binding "b2" {{ bind_address = 127.0.0.3 }}
}}
provider "bigmail" {{
  match_mx = ( "*.bigmail.test" )
  adaptive_provider_rollup = true
}}
""",
        dns=dns,
        clock=clock,
        listener='binding = "b1"',
    )
    for i in range(2):
        await relay.send("s@sender.test", [f"a{i}@alpha.test"])
    await relay.wait(lambda: len(relay.events("adaptive_suspension")) == 1)
    suspension = relay.events("adaptive_suspension")[0]
    # Decided per binding x provider: alpha.test's replies suspend b1 for all of bigmail.
    assert (suspension["binding"], suspension["domain"]) == ("b1", "provider:bigmail")
    await relay.send("s@sender.test", ["b0@beta.test"])
    await asyncio.sleep(0.3)
    assert big.messages == []  # beta.test's mail waits on b1, without an attempt
    assert [e for e in relay.events("transient_failure") if "beta" in str(e)] == []
    await clock.advance(601)  # the suspension ends
    await relay.wait(lambda: any("b0@beta.test" in m.rcpt_tos for m in big.messages))
