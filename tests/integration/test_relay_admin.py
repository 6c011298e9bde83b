"""The admin API and `relay admin` against a running daemon: inspect, suspend, resume,
override, reset, flush, reload, metrics."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import sys
from typing import Any

from relay.admin.client import request
from relay.clock import ManualClock
from tests.integration.relay_harness import RelayFactory, RelayUnderTest
from tests.support.fixtures import DnsServerFactory, SinkFactory
from tests.support.sinks import Script

ZONE = {"one.test": {"MX": ["10 mx.one.test."]}, "mx.one.test": {"A": ["127.0.0.10"]}}
START = 1_800_000_000.0


def config(port: int) -> str:
    return f"""
remote_smtp_port = {port}
retry_interval = 100
adaptive_enabled = true
adaptive_max_outbound_connections = ( 1 20 )
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 }}
  binding "b2" {{ bind_address = 127.0.0.3 }}
}}
"""


async def api(relay: RelayUnderTest, method: str, path: str, body: Any = None) -> Any:
    return await asyncio.to_thread(
        functools.partial(
            request, relay.admin_url, method, path, body, token=relay.tokens.get("admin")
        )
    )


async def cli(relay: RelayUnderTest, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay.cli",
        "admin",
        "--url",
        relay.admin_url,
        "--token-file",
        str(relay.token_file),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_inspect_suspend_resume_override_reset(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        config(smtp_sink.port), dns=dns, admin=True, listener='binding_group = "g"'
    )
    summary = await api(relay, "GET", "/api/v1/summary")
    assert summary["spool"]["messages"] == 0
    assert list(summary["spool_parts"]) == ["local"]  # one process: the daemon's spool
    bindings = await api(relay, "GET", "/api/v1/bindings")
    assert [b["binding"] for b in bindings["binding_groups"]["g"]] == ["b1", "b2"]
    assert bindings["binding_groups"]["g"][0]["bind_address"] == "127.0.0.2"

    code, out, _ = await cli(relay, "suspend", "b1", "one.test", "--duration", "1 hour")
    assert code == 0 and "until" in out  # a table by default
    code, out, _ = await cli(relay, "--json", "resume", "b1", "one.test")
    code, out, _ = await cli(relay, "--json", "suspend", "b1", "one.test", "--duration", "1 hour")
    assert code == 0 and json.loads(out)["until"] > 0
    await relay.wait(
        lambda: relay.daemon.suspensions.is_suspended("b1", "one.test", relay.daemon.clock.now())
    )
    for i in range(6):
        await relay.send("s@sender.test", [f"r{i}@one.test"])
    await relay.wait(lambda: len(sink.messages) == 6)
    assert {m.peer_ip for m in sink.messages} == {"127.0.0.3"}
    bindings = await api(relay, "GET", "/api/v1/bindings")
    assert bindings["binding_groups"]["g"][0]["suspended"][0]["domain"] == "one.test"

    code, out, _ = await cli(relay, "resume", "b1", "one.test")
    assert code == 0
    await relay.wait(
        lambda: (
            not relay.daemon.suspensions.is_suspended("b1", "one.test", relay.daemon.clock.now())
        )
    )
    for i in range(6):
        await relay.send("s@sender.test", [f"q{i}@one.test"])
    await relay.wait(lambda: len(sink.messages) == 12)
    assert "127.0.0.2" in {m.peer_ip for m in sink.messages[6:]}

    code, out, _ = await cli(relay, "override", "b1", "one.test", "max_outbound_connections", "3")
    assert code == 0, out
    adaptive = await api(relay, "GET", "/api/v1/adaptive")
    (pair,) = [p for p in adaptive["pairs"] if p["binding"] == "b1"]
    assert pair["overrides"] == {"max_outbound_connections": 3}
    assert relay.daemon.scheduler is not None
    await relay.wait(
        lambda: relay.daemon.scheduler.policy("b1", "one.test").max_connections == 3  # type: ignore[union-attr]
    )
    code, _, _ = await cli(relay, "reset", "b1", "one.test")
    assert code == 0
    await relay.wait(
        lambda: relay.daemon.scheduler.policy("b1", "one.test").max_connections == 20  # type: ignore[union-attr]
    )

    code, _, err = await cli(relay, "suspend", "nope", "one.test")
    assert code == 1 and err == 'error: 400: no binding "nope"\n'


async def test_flush_queues_metrics_and_reload(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10", script=Script(rcpt={"*": ["451 4.3.2 later"]}))
    relay = await relay_factory(
        config(smtp_sink.port), dns=dns, admin=True, clock=clock, listener='binding_group = "g"'
    )
    await relay.send("s@sender.test", ["r@one.test"])
    await relay.wait(lambda: len(relay.events("transient_failure")) == 1)
    queues = await api(relay, "GET", "/api/v1/queues")
    assert queues["scheduled"] == [
        {"binding_group": "g", "domain": "one.test", "due": 0, "delayed": 1, "blocked_until": None}
    ]
    assert (await api(relay, "POST", "/api/v1/flush", {"domain": "one.test"})) == {"flushed": 1}
    await relay.wait(lambda: len(sink.messages) == 1)  # no clock advance needed

    metrics = await api(relay, "GET", "/metrics")
    assert "relay_spool_messages 0.0" in metrics
    assert 'relay_recipients_total{outcome="delivered"} 1.0' in metrics
    assert 'relay_events_total{event="transient_failure"} 1.0' in metrics
    assert re.search(r"^relay_asyncio_tasks [1-9]", metrics, re.M)  # this daemon's own loop

    conf = relay.directory / "relay.conf"
    good = conf.read_text()
    conf.write_text(good + "\nretry_interval = soon\n")
    code, _, err = await cli(relay, "reload")
    assert code == 1 and "retry_interval" in err
    conf.write_text(good.replace("retry_interval = 100", "retry_interval = 50"))
    assert (await api(relay, "POST", "/api/v1/reload"))["reloaded"]
    assert relay.daemon.scheduler is not None
    assert relay.daemon.scheduler.policy("b1", "one.test").retry.retry_interval == 50
