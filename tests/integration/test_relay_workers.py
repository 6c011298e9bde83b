"""Injection in worker processes (injection_workers): every accepted message is delivered
once, a killed worker comes back, and mail spooled by workers survives a scheduler restart."""

from __future__ import annotations

import asyncio
import os
import signal

from tests.integration.relay_harness import RelayFactory
from tests.support.fixtures import DnsServerFactory, SinkFactory

ZONE = {"one.test": {"MX": ["10 mx.one.test."]}, "mx.one.test": {"A": ["127.0.0.10"]}}


def config(port: int) -> str:
    return f"""
injection_workers = 2
remote_smtp_port = {port}
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 }}
  binding "b2" {{ bind_address = 127.0.0.3 }}
}}
"""


async def test_workers_inject_and_the_scheduler_delivers_once(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(config(smtp_sink.port), dns=dns, listener='binding_group = "g"')
    assert len(relay.daemon.workers) == 2
    await asyncio.gather(*(relay.send("s@sender.test", [f"r{i}@one.test"]) for i in range(60)))
    await relay.wait(lambda: len(sink.messages) == 60, within=20)
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == sorted(
        f"r{i}@one.test" for i in range(60)
    )
    assert {m.peer_ip for m in sink.messages} == {"127.0.0.2", "127.0.0.3"}
    assert len(relay.events("reception")) == 60
    shards = sorted(
        p.name
        for p in (relay.directory / "spool").iterdir()
        if p.is_dir() and p.name.startswith("shard-")
    )
    assert shards == ["shard-1", "shard-2"]
    assert relay.daemon.shards is not None
    await relay.wait(lambda: len(relay.daemon.shards.owners) == 0)  # all final, all removed
    # The admin figures cover the workers' shards: 60 stored there, none left.
    parts = await relay.daemon.spool_statistics()
    assert sorted(parts) == ["local", "shard-1", "shard-2"]
    assert sum(p.stored for name, p in parts.items() if name != "local") == 60
    assert sum(p.messages for p in parts.values()) == 0

    # A worker killed outright is restarted and mail keeps flowing.
    victim = relay.daemon.workers[0]
    os.kill(victim.pid, signal.SIGKILL)
    await relay.wait(
        lambda: victim not in relay.daemon.workers and len(relay.daemon.workers) == 2, within=15
    )
    await asyncio.gather(*(relay.send("s@sender.test", [f"q{i}@one.test"]) for i in range(20)))
    await relay.wait(lambda: len(sink.messages) == 80, within=20)


async def test_mail_in_worker_shards_survives_a_scheduler_restart(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        config(smtp_sink.port).replace(
            "injection_workers = 2",
            'injection_workers = 2\ndomain "one.test" { suspend_delivery = true }',
        ),
        dns=dns,
        listener='binding_group = "g"',
    )
    await asyncio.gather(*(relay.send("s@sender.test", [f"r{i}@one.test"]) for i in range(20)))
    assert relay.daemon.shards is not None
    await relay.wait(lambda: len(relay.daemon.shards.owners) == 20)  # type: ignore[union-attr]
    conf = relay.directory / "relay.conf"
    conf.write_text(conf.read_text().replace("suspend_delivery = true", ""))
    relay = await relay_factory.restart(relay)
    await relay.wait(lambda: len(sink.messages) == 20, within=20)
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == sorted(
        f"r{i}@one.test" for i in range(20)
    )
