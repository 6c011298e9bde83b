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
