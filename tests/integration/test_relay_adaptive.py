"""Adaptive delivery through the whole daemon: real sinks, a driven clock."""

from __future__ import annotations

import asyncio
import email
import itertools
from collections import Counter

from relay.clock import ManualClock
from tests.integration.relay_harness import RelayFactory, RelayUnderTest
from tests.support.fixtures import DnsServerFactory, SinkFactory
from tests.support.sinks import Script

START = 1_800_000_000.0
ZONE = {
    "one.test": {"MX": ["10 mx.one.test."]},
    "mx.one.test": {"A": ["127.0.0.10"]},
    "sender.test": {"MX": ["10 mx.sender.test."]},
    "mx.sender.test": {"A": ["127.0.0.11"]},
    "ops.test": {"MX": ["10 mx.ops.test."]},
    "mx.ops.test": {"A": ["127.0.0.12"]},
}


def suspension_config(port: int) -> str:
    return f"""
remote_smtp_port = {port}
idle_timeout = 1
adaptive_enabled = true
adaptive_default_suspension_enabled = true
adaptive_attempt_threshold = 20
adaptive_rejection_rate_suspension_percentage = 20
adaptive_default_suspension = 600
adaptive_alert_email_destination = "ops@ops.test"
adaptive_alert_email_sender = "relay-alerts@relay.test"
adaptive_notification_interval = 3600
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 }}
  binding "b2" {{ bind_address = 127.0.0.3 }}
}}
"""


def rejecting_30_percent_from(ip: str) -> Script:
    seen: Counter[str] = Counter()

    def hook(peer: str, address: str) -> str | None:
        if peer != ip:
            return None
        seen[peer] += 1
        return "550 5.7.1 blocked for policy reasons" if seen[peer] % 10 in (1, 4, 7) else None

    return Script(rcpt_hook=hook)


async def send_many(relay: RelayUnderTest, start: int, count: int) -> None:
    for i in range(start, start + count):
        await relay.send("s@sender.test", [f"r{i}@one.test"])


async def test_rejections_from_one_ip_suspend_that_binding_for_that_domain(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10", script=rejecting_30_percent_from("127.0.0.2"))
    await smtp_sink("127.0.0.11")  # the sender's MX takes the DSNs
    ops = await smtp_sink("127.0.0.12")
    relay = await relay_factory(
        suspension_config(smtp_sink.port), dns=dns, clock=clock, listener='binding_group = "g"'
    )
    await send_many(relay, 0, 60)
    await relay.wait(lambda: len(relay.events("adaptive_suspension")) == 1)
    suspension = relay.events("adaptive_suspension")[0]
    assert (suspension["binding"], suspension["domain"]) == ("b1", "one.test")
    assert suspension["until"] == START + 600
    await relay.wait(lambda: len(ops.messages) == 1)
    alert = email.message_from_bytes(ops.messages[0].content)
    assert ops.messages[0].mail_from == "relay-alerts@relay.test"
    assert "b1" in alert["Subject"] and "one.test" in alert["Subject"]

    # While suspended, the group's other binding carries everything for one.test.
    await relay.wait(lambda: len(sink.messages) + len(relay.events("bounce")) >= 60)
    before = len(sink.messages)
    await send_many(relay, 100, 20)
    await relay.wait(lambda: len(sink.messages) == before + 20)
    assert {m.peer_ip for m in sink.messages[before:]} == {"127.0.0.3"}

    # The suspension ends after its duration; b1 carries mail again.
    await clock.advance(600)
    await relay.wait(lambda: len(relay.events("adaptive_resume")) == 1)
    before = len(sink.messages)
    await send_many(relay, 200, 6)
    await relay.wait(lambda: len(sink.messages) >= before + 4)
    await asyncio.sleep(0.2)
    assert "127.0.0.2" in {m.peer_ip for m in sink.messages[before:]}
    assert len(ops.messages) == 1  # one alert per notification interval


async def test_suspension_survives_a_restart(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10", script=rejecting_30_percent_from("127.0.0.2"))
    await smtp_sink("127.0.0.11")
    await smtp_sink("127.0.0.12")
    relay = await relay_factory(
        suspension_config(smtp_sink.port), dns=dns, clock=clock, listener='binding_group = "g"'
    )
    await send_many(relay, 0, 60)
    await relay.wait(lambda: len(relay.events("adaptive_suspension")) == 1)
    relay = await relay_factory.restart(relay, clock=clock)
    assert relay.daemon.suspensions.is_suspended("b1", "one.test", clock.now())
    before = len(sink.messages)
    await send_many(relay, 100, 10)
    await relay.wait(lambda: len(sink.messages) >= before + 10)
    assert {m.peer_ip for m in sink.messages[before:]} == {"127.0.0.3"}
    await clock.advance(600)
    await relay.wait(lambda: len(relay.events("adaptive_resume")) == 1)


async def test_421_too_many_connections_shrinks_then_grows_connections(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    sink = await smtp_sink(
        "127.0.0.10", script=Script(greeting="421 4.7.0 Too many connections, slow down")
    )
    relay = await relay_factory(
        f"""
remote_smtp_port = {smtp_sink.port}
retry_interval = 5
max_retry_interval = 5
idle_timeout = 1
adaptive_enabled = true
adaptive_adjustment_interval = 10
adaptive_positive_adjustment_interval = 100
max_outbound_connections = 8
adaptive_max_outbound_connections = ( 1 8 )
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 }}
}}
""",
        dns=dns,
        clock=clock,
        listener='binding_group = "g"',
    )
    assert relay.daemon.adaptive is not None
    engine = relay.daemon.adaptive.engine

    def live() -> int:
        settings = relay.daemon.adaptive.settings("b1", "one.test")  # type: ignore[union-attr]
        return int(engine.live_value("b1", "one.test", "max_outbound_connections", 8, settings))

    seen = [live()]
    await send_many(relay, 0, 10)
    for _ in range(12):  # retries every 5 s; each 421 is a refused connection
        await clock.advance(5)
        await asyncio.sleep(0.05)
        if live() != seen[-1]:
            seen.append(live())
    assert seen[0] == 8
    assert seen[-1] == 1  # shrunk to the low bound
    assert seen == sorted(seen, reverse=True) and len(seen) >= 3  # step by step
    downs = relay.events("adaptive_throttle")
    assert len(downs) == len(seen) - 1
    down_times = [float(e["at"]) for e in downs]  # type: ignore[arg-type]
    assert all(b - a >= 10 for a, b in itertools.pairwise(down_times))

    # The receiver recovers: deliveries succeed, and once the hour-long statistics window
    # holds only good news the value grows back, paced by the positive interval.
    sink.script.greeting = None
    await clock.advance(6)  # retries are fuzzed by up to a tenth of the interval
    await relay.wait(lambda: len(sink.messages) == 10)
    grown = [live()]
    for step in range(8):
        await clock.advance(1000)
        await send_many(relay, 1000 + step * 25, 25)
        expected = 10 + 25 * (step + 1)
        await relay.wait(lambda n=expected: len(sink.messages) == n)  # type: ignore[misc]
        grown.append(live())
    assert grown[0] == 1 and grown[-1] > 1
    assert grown[-1] <= 8
    assert grown == sorted(grown)
    ups = relay.events("adaptive_throttle")[len(downs) :]
    up_times = [float(e["at"]) for e in ups]  # type: ignore[arg-type]
    assert ups and all(b - a >= 100 for a, b in itertools.pairwise(up_times))


def test_every_adaptive_option_is_acted_on_or_reported(tmp_path: object) -> None:
    import re
    import subprocess
    import sys
    from pathlib import Path

    from relay.config import options

    reference = Path(__file__).parents[3] / "shared" / "reference" / "binding_group.md"
    names = {n for n in options.OPTIONS if n.startswith("adaptive_")}
    if reference.exists():
        table = set(re.findall(r"\[(adaptive_[a-z_]+)\]", reference.read_text()))
        assert table - {"adaptive_sweep_rule"} <= names
    not_active = sorted(n for n in names if options.OPTIONS[n].status != "active")
    assert not_active == ["adaptive_scope"]  # cluster-wide state needs the cluster store
    conf = Path(str(tmp_path)) / "r.conf"
    conf.write_text("".join(f"{n} = {options.OPTIONS[n].default}\n" for n in not_active))
    done = subprocess.run(
        [sys.executable, "-m", "relay.cli", "config", "check", str(conf)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for name in not_active:
        assert f"{name}: parsed and validated, but relay does not act on it yet" in done.stderr


async def test_fbl_complaints_suspend_the_binding_for_that_domain(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:

    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10")
    relay = await relay_factory(
        f"""
remote_smtp_port = {smtp_sink.port}
fbl_address = "fbl@relay.test"
enable_fbl_header_insertion = enabled
adaptive_enabled = true
adaptive_fbl_volume_threshold = 20
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 }}
  binding "b2" {{ bind_address = 127.0.0.3 }}
}}
""",
        dns=dns,
        clock=clock,
        listener='binding_group = "g"',
    )
    await send_many(relay, 0, 40)
    await relay.wait(lambda: len(sink.messages) == 40)
    marked = [m for m in sink.messages if m.peer_ip == "127.0.0.2"]
    assert all(m.content.startswith(b"X-Relay-FBL: b=b1; d=one.test; i=") for m in marked)
    headers = marked[0].content.split(b"\r\n\r\n")[0] + b"\r\n"
    report = (
        b"Subject: FBL\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
        b"\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n" + headers + b"\r\n--B--\r\n"
    )
    import aiosmtplib

    await aiosmtplib.send(
        report,
        sender="fbl@isp.test",
        recipients=["fbl@relay.test"],
        hostname="127.0.0.1",
        port=relay.port,
    )
    await relay.wait(lambda: len(relay.events("fbl_complaint")) == 1)
    # 1 complaint in 20 deliveries is 5%: above the default rule's 0.5% high threshold.
    await relay.wait(lambda: len(relay.events("adaptive_suspension")) == 1)
    suspension = relay.events("adaptive_suspension")[0]
    assert (suspension["binding"], suspension["domain"]) == ("b1", "one.test")
    assert len(sink.messages) == 40  # the report itself was not relayed


async def test_configured_reply_rule_acts_on_the_receivers_words(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    sink = await smtp_sink(
        "127.0.0.10",
        script=Script(
            rcpt_hook=lambda peer, rcpt: (
                "451 4.7.1 Please slow down, mate" if peer == "127.0.0.2" else None
            )
        ),
    )
    relay = await relay_factory(
        f"""
remote_smtp_port = {smtp_sink.port}
adaptive_enabled = true
domain "one.test" {{
  adaptive_reply_rule "polite_pushback" {{
    pattern = "please slow down"
    threshold = "2/60"
    action = ( "suspend" "10 minutes" )
    replies = 4xx
  }}
}}
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 }}
  binding "b2" {{ bind_address = 127.0.0.3 }}
}}
""",
        dns=dns,
        clock=clock,
        listener='binding_group = "g"',
    )
    await send_many(relay, 0, 6)
    await relay.wait(lambda: len(relay.events("adaptive_suspension")) == 1)
    suspension = relay.events("adaptive_suspension")[0]
    assert (suspension["binding"], suspension["until"]) == ("b1", START + 600)
    assert "polite_pushback" in str(suspension["reason"])
    await relay.wait(lambda: len(sink.messages) >= 3)  # b2 carries on


def test_reply_rules_follow_the_fallback_chain() -> None:
    from relay.adaptive.rules import DEFAULT_REPLY_RULES
    from relay.config import loads
    from relay.config.resolve import chain
    from relay.wiring.adaptive import collect_reply_rules

    config = loads(
        """
adaptive_reply_rule "rate_limited" { enabled = false
  pattern = "x" threshold = "1/1" action = ( "throttle" "down" ) }
binding "b" {
  domain "d.test" {
    adaptive_reply_rule "mine" { pattern = "go away" threshold = "5/10m"
      action = ( "throttle" "down" ) options = ( max_outbound_connections ) }
  }
}
"""
    )
    rules = {r.name: r for r in collect_reply_rules(chain(config, binding="b", domain="d.test"))}
    assert "rate_limited" not in rules  # turned off globally
    assert rules["mine"].count == 5 and rules["mine"].period == 600
    assert rules["mine"].action.options == ("max_outbound_connections",)
    others = {r.name for r in collect_reply_rules(chain(config, binding="b", domain="e.test"))}
    assert others == {r.name for r in DEFAULT_REPLY_RULES} - {"rate_limited"}
