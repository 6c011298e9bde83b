"""Retries, expiry and bounces through the whole daemon, on a driven clock."""

from __future__ import annotations

import asyncio
import email

from relay.clock import ManualClock
from tests.integration.relay_harness import RelayFactory, RelayUnderTest
from tests.support.fixtures import DnsServerFactory, SinkFactory
from tests.support.sinks import Script

ZONE = {
    "one.test": {"MX": ["10 mx.one.test."]},
    "mx.one.test": {"A": ["127.0.0.10"]},
    "never.one.test": {"MX": ["10 mx.one.test."]},
    "sender.test": {"MX": ["10 mx.sender.test."]},
    "mx.sender.test": {"A": ["127.0.0.11"]},
}
START = 1_800_000_000.0


def base(port: int, extra: str = "") -> str:
    return f"""
remote_smtp_port = {port}
retry_interval = 100
max_retry_interval = 10000
idle_timeout = 0.5
{extra}
binding_group "g" {{
  binding "b1" {{ bind_address = 127.0.0.2 }}
}}
"""


async def settle() -> None:
    await asyncio.sleep(0.3)


def spool_size(relay: RelayUnderTest) -> int:
    assert relay.daemon.spool is not None
    return len(relay.daemon.spool)


async def test_451_twice_then_delivered_at_1x_and_2x_the_retry_interval(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10", script=Script(rcpt={"*": ["451 4.7.1 later"] * 2}))
    relay = await relay_factory(
        base(smtp_sink.port), dns=dns, clock=clock, listener='binding_group = "g"'
    )
    await relay.send("s@sender.test", ["r@one.test"])
    await relay.wait(lambda: len(relay.events("transient_failure")) == 1)
    first = relay.events("transient_failure")[0]
    assert first["next_attempt"] == START + 100 and first["attempt"] == 1
    await clock.advance(99)
    await settle()
    assert len(relay.events("transient_failure")) == 1
    await clock.advance(1)
    await relay.wait(lambda: len(relay.events("transient_failure")) == 2)
    second = relay.events("transient_failure")[1]
    assert second["next_attempt"] == START + 100 + 200 and second["attempt"] == 2
    await clock.advance(199)
    await settle()
    assert sink.messages == []
    await clock.advance(1)
    await relay.wait(lambda: len(sink.messages) == 1)
    await relay.wait(lambda: spool_size(relay) == 0)


async def test_one_of_three_rejected_gets_one_dsn(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink(
        "127.0.0.10",
        script=Script(rcpt={"bad@one.test": ["550 5.1.1 <bad@one.test>: no such user"]}),
    )
    sender_mx = await smtp_sink("127.0.0.11")
    relay = await relay_factory(base(smtp_sink.port), dns=dns, listener='binding_group = "g"')
    await relay.send("s@sender.test", ["a@one.test", "bad@one.test", "c@one.test"])
    await relay.wait(lambda: len(sender_mx.messages) == 1)
    assert len(sink.messages) == 1
    assert sorted(sink.messages[0].rcpt_tos) == ["a@one.test", "c@one.test"]
    dsn = sender_mx.messages[0]
    assert dsn.mail_from in ("", "<>") and dsn.rcpt_tos == ["s@sender.test"]
    parsed = email.message_from_bytes(dsn.content)
    assert parsed.get_content_type() == "multipart/report"
    status = parsed.get_payload()[1].get_payload()  # type: ignore[index,union-attr]
    assert [b["Final-Recipient"] for b in status[1:]] == ["rfc822; bad@one.test"]
    assert status[1]["Status"] == "5.1.1"
    assert "no such user" in status[1]["Diagnostic-Code"]
    await relay.wait(lambda: spool_size(relay) == 0)


async def test_expiry_with_4xx_sink_sends_one_547_dsn(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    await smtp_sink("127.0.0.10", script=Script(rcpt={"*": ["451 4.3.2 busy"] * 100}))
    sender_mx = await smtp_sink("127.0.0.11")
    relay = await relay_factory(
        base(smtp_sink.port, "message_expiration = 250"),
        dns=dns,
        clock=clock,
        listener='binding_group = "g"',
    )
    await relay.send("s@sender.test", ["r@one.test"])
    await relay.wait(lambda: len(relay.events("transient_failure")) == 1)
    for _ in range(4):
        await clock.advance(100)
        await settle()
    await relay.wait(lambda: len(sender_mx.messages) == 1)
    status = email.message_from_bytes(sender_mx.messages[0].content).get_payload()[1]
    block = status.get_payload()[1]  # type: ignore[union-attr]
    assert block["Status"] == "5.4.7"
    assert len(relay.events("expiration")) == 1
    await relay.wait(lambda: spool_size(relay) == 0)
    await clock.advance(10000)
    await settle()
    assert len(sender_mx.messages) == 1


async def test_null_sender_failure_gets_no_dsn(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    await smtp_sink("127.0.0.10", script=Script(rcpt={"*": ["550 5.1.1 unknown"]}))
    sender_mx = await smtp_sink("127.0.0.11")
    relay = await relay_factory(base(smtp_sink.port), dns=dns, listener='binding_group = "g"')
    await relay.send("", ["r@one.test"])
    await relay.wait(lambda: len(relay.events("dsn_suppressed")) == 1)
    assert "null sender" in str(relay.events("dsn_suppressed")[0]["reason"])
    assert len(relay.events("bounce")) == 1
    await relay.wait(lambda: spool_size(relay) == 0)
    await settle()
    assert sender_mx.messages == []


async def test_never_retry_and_max_retries(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    await smtp_sink("127.0.0.10", script=Script(rcpt={"*": ["451 4.3.2 busy"] * 100}))
    sender_mx = await smtp_sink("127.0.0.11")
    relay = await relay_factory(
        base(
            smtp_sink.port,
            'domain "one.test" { max_retries = 2 }\ndomain "never.one.test" { never_retry = true }',
        ),
        dns=dns,
        clock=clock,
        listener='binding_group = "g"',
    )
    await relay.send("s@sender.test", ["r@one.test"])
    await relay.wait(lambda: len(relay.events("transient_failure")) == 1)
    await clock.advance(100)
    await relay.wait(lambda: len(relay.events("transient_failure")) == 2)
    await clock.advance(200)
    await relay.wait(lambda: len(relay.events("expiration")) == 1)  # 3rd attempt: no retries left
    await relay.wait(lambda: len(sender_mx.messages) == 1)
    assert relay.events("expiration")[0]["recipient"] == "r@one.test"

    await relay.send("s@sender.test", ["n@never.one.test"])  # never_retry: the first 4xx is final
    await relay.wait(lambda: len(relay.events("bounce")) == 1)
    assert relay.events("bounce")[0]["recipient"] == "n@never.one.test"
    assert len(relay.events("transient_failure")) == 2
    await relay.wait(lambda: len(sender_mx.messages) == 2)


async def test_delay_dsn_once_per_interval(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    await smtp_sink("127.0.0.10", script=Script(rcpt={"*": ["451 4.3.2 busy"] * 100}))
    sender_mx = await smtp_sink("127.0.0.11")
    relay = await relay_factory(
        base(
            smtp_sink.port,
            "generate_delay_dsn = true\ndelay_dsn_retry_interval = 150\n"
            "delay_dsn_max_retry_interval = 1000",
        ),
        dns=dns,
        clock=clock,
        listener='binding_group = "g"',
    )
    await relay.send("s@sender.test", ["r@one.test"])
    await relay.wait(lambda: len(relay.events("transient_failure")) == 1)  # t=0
    await clock.advance(100)  # attempt 2 at t=100: too early for a delay DSN
    await relay.wait(lambda: len(relay.events("transient_failure")) == 2)
    await settle()
    assert sender_mx.messages == []
    await clock.advance(200)  # attempt 3 at t=300: first delay DSN (due at 150)
    await relay.wait(lambda: len(sender_mx.messages) == 1)
    msg = email.message_from_bytes(sender_mx.messages[0].content)
    assert msg["Subject"].startswith("Delivery delayed")
    assert msg.get_payload()[1].get_payload()[1]["Action"] == "delayed"  # type: ignore[index,union-attr]
    await clock.advance(400)  # attempt 4 at t=700: next due at 150+300=450 -> second
    await relay.wait(lambda: len(relay.events("transient_failure")) == 4)
    await relay.wait(lambda: len(sender_mx.messages) == 2)
    await clock.advance(800)  # attempt 5 at t=1500: due at 450+600=1050 -> third
    await relay.wait(lambda: len(relay.events("transient_failure")) == 5)
    await relay.wait(lambda: len(sender_mx.messages) == 3)


async def test_restart_between_attempts_keeps_the_attempt_count(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    clock = ManualClock(START)
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10", script=Script(rcpt={"*": ["451 4.7.1 later"] * 2}))
    relay = await relay_factory(
        base(smtp_sink.port), dns=dns, clock=clock, listener='binding_group = "g"'
    )
    await relay.send("s@sender.test", ["r@one.test"])
    await relay.wait(lambda: len(relay.events("transient_failure")) == 1)
    relay = await relay_factory.restart(relay, clock=clock)
    assert relay.daemon.spool is not None
    (envelope,) = relay.daemon.spool.scan()
    assert envelope.recipients[0].attempts == 1
    assert envelope.recipients[0].next_attempt == START + 100
    await clock.advance(100)
    await relay.wait(lambda: len(relay.events("transient_failure")) == 2)
    second = relay.events("transient_failure")[1]
    assert second["attempt"] == 2 and second["next_attempt"] == START + 100 + 200
    await clock.advance(200)
    await relay.wait(lambda: len(sink.messages) == 1)
