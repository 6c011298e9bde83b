"""Fair scheduling through the whole daemon with a real sink: with one connection busy and
a tenant's bulk mail queued behind it, another tenant's message and a transactional
message (X-Priority-Class) are delivered within a few messages, not after the queue."""

from __future__ import annotations

import asyncio

from tests.integration.relay_harness import RelayFactory, RelayUnderTest
from tests.integration.test_admin_http import call, inject
from tests.support.fixtures import DnsServerFactory, SinkFactory
from tests.support.sinks import Script

ZONE = {"one.test": {"MX": ["10 mx.one.test."]}, "mx.one.test": {"A": ["127.0.0.10"]}}


def config(port: int) -> str:
    return f"""
remote_smtp_port = {port}
max_outbound_connections = 1
binding_group "g" {{ binding "b1" {{ bind_address = 127.0.0.2 }} }}
tenant "big" {{ weight = 1 }}
"""


async def test_another_tenant_and_transactional_mail_overtake_queued_bulk(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10", script=Script(stall="DATA"))
    relay = await relay_factory(config(smtp_sink.port), dns=dns, listener='binding_group = "g"')
    await asyncio.gather(
        *(
            relay.send("s@sender.test", [f"bulk{i}@one.test"], headers={"X-Tenant": "big"})
            for i in range(60)
        )
    )
    await relay.wait(lambda: sink.commands.count("DATA") == 1)  # the one connection is busy
    await relay.send("s@sender.test", ["small@one.test"], headers={"X-Tenant": "small"})
    await relay.send(
        "s@sender.test",
        ["urgent@one.test"],
        headers={"X-Tenant": "big", "X-Priority-Class": "transactional"},
    )
    await asyncio.sleep(0.2)
    sink.script.stall = None
    sink._release.set()
    await relay.wait(lambda: len(sink.messages) == 62, within=30)
    order = [m.rcpt_tos[0] for m in sink.messages]
    assert order.index("urgent@one.test") <= 2  # transactional first (after the one in DATA)
    assert order.index("small@one.test") <= 4  # one turn of "big", not 60 messages
    for message in sink.messages:
        assert b"x-priority-class" not in message.content.split(b"\r\n\r\n")[0].lower()


async def test_a_bad_priority_class_is_refused(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    import aiosmtplib
    import pytest

    dns = await dns_server(ZONE)
    await smtp_sink("127.0.0.10")
    relay = await relay_factory(config(smtp_sink.port), dns=dns, listener='binding_group = "g"')
    with pytest.raises(aiosmtplib.SMTPDataError) as err:
        await relay.send("s@sender.test", ["x@one.test"], headers={"X-Priority-Class": "urgent"})
    assert err.value.code == 550 and "transactional or bulk" in err.value.message


PRIORITY_ZONE = {"one.test": {"MX": ["10 mx.one.test."]}, "mx.one.test": {"A": ["127.0.0.10"]}}


async def lookup(relay: RelayUnderTest, message_id: str) -> tuple[str, str]:
    status, found, _ = await call(
        relay, "GET", f"/api/v1/messages/{message_id}", token=relay.tokens["read"]
    )
    assert status == 200, found
    return found["priority"], found["priority_from"]


async def test_listener_peer_and_http_priority_defaults_and_the_header_wins(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(PRIORITY_ZONE)
    await smtp_sink("127.0.0.10", script=Script(rcpt={"*": ["451 4.3.2 later"] * 50}))
    relay = await relay_factory(
        config(smtp_sink.port) + 'tenant "vip" { priority_class = transactional }\n',
        dns=dns,
        admin=True,
        listener='binding_group = "g" priority_class = transactional',
    )
    await relay.send("s@sender.test", ["l@one.test"])  # the listener's class
    await relay.send("s@sender.test", ["h@one.test"], headers={"X-Priority-Class": "bulk"})
    await relay.wait(lambda: len(relay.events("reception")) == 2)
    listener_id, header_id = (r["message_id"] for r in relay.events("reception"))
    assert await lookup(relay, listener_id) == ("transactional", "message")
    assert await lookup(relay, header_id) == ("bulk", "message")  # X-Priority-Class wins
    ids = {}
    for name, extra in (
        ("http", {"priority": "transactional"}),
        ("tenant", {"tenant": "vip"}),
        ("plain", {}),
        ("header", {"priority": "transactional", "headers": {"X-Priority-Class": "bulk"}}),
    ):
        body = {"from": "s@sender.test", "to": ["r@one.test"], "text": "x", **extra}
        status, answer = await inject(relay, body)
        assert status == 201, answer
        ids[name] = answer["id"]
    assert await lookup(relay, ids["http"]) == ("transactional", "message")
    assert await lookup(relay, ids["tenant"]) == ("transactional", "tenant")
    assert await lookup(relay, ids["plain"]) == ("bulk", "default")
    assert await lookup(relay, ids["header"]) == ("bulk", "message")
    status, answer = await inject(
        relay, {"from": "s@sender.test", "to": ["r@one.test"], "text": "x", "priority": "urgent"}
    )
    assert status == 400 and answer["field"] == "priority"
    assert "transactional or bulk" in answer["error"]


async def test_a_peer_stanza_priority_class_beats_the_listeners(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(PRIORITY_ZONE)
    await smtp_sink("127.0.0.10", script=Script(rcpt={"*": ["451 4.3.2 later"] * 50}))
    relay = await relay_factory(
        config(smtp_sink.port),
        dns=dns,
        admin=True,
        listener='binding_group = "g" priority_class = bulk '
        'peer "127.0.0.1/32" { priority_class = transactional }',
    )
    await relay.send("s@sender.test", ["p@one.test"])
    await relay.wait(lambda: len(relay.events("reception")) == 1)
    (reception,) = relay.events("reception")
    assert await lookup(relay, reception["message_id"]) == ("transactional", "message")


async def pipelined_bdat(port: int, messages: list[tuple[str, bytes]]) -> list[bytes]:
    """One session, every message pipelined as MAIL, RCPT, BDAT LAST: the final reply of
    each message (the quick way to queue thousands of messages through the listener)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def reply() -> bytes:
        lines = []
        while True:
            line = await reader.readline()
            lines.append(line)
            if line[3:4] != b"-":
                return b"".join(lines)

    await reply()  # greeting
    writer.write(b"EHLO fair.test\r\n")
    await reply()
    finals = []
    for start in range(0, len(messages), 500):
        batch = messages[start : start + 500]
        for rcpt, content in batch:
            writer.write(
                b"MAIL FROM:<s@sender.test>\r\nRCPT TO:<%s>\r\nBDAT %d LAST\r\n%s"
                % (rcpt.encode(), len(content), content)
            )
        await writer.drain()
        for _ in batch:
            await reply()
            await reply()
            finals.append(await reply())
    writer.write(b"QUIT\r\n")
    await reply()
    writer.close()
    return finals


def content(tenant: str, n: int) -> bytes:
    return (
        f"From: s@sender.test\r\nTo: r{n}@one.test\r\nSubject: {n}\r\nX-Tenant: {tenant}\r\n"
        f"\r\nbody {n}\r\n"
    ).encode()


async def test_one_message_of_another_tenant_is_not_buried_behind_10000_bulk(
    relay_factory: RelayFactory, dns_server: DnsServerFactory, smtp_sink: SinkFactory
) -> None:
    dns = await dns_server(ZONE)
    sink = await smtp_sink("127.0.0.10", script=Script(stall="DATA"))
    relay = await relay_factory(config(smtp_sink.port), dns=dns, listener='binding_group = "g"')
    bulk = [(f"bulk{i}@one.test", content("big", i)) for i in range(10_000)]
    finals = await pipelined_bdat(relay.port, bulk)
    assert all(final.startswith(b"250") for final in finals), finals[:3]
    await relay.wait(lambda: sink.commands.count("DATA") == 1)  # the one connection is busy
    (final,) = await pipelined_bdat(relay.port, [("small@one.test", content("small", 0))])
    assert final.startswith(b"250")
    await asyncio.sleep(0.2)
    sink.script.stall = None
    sink._release.set()
    await relay.wait(lambda: any(m.rcpt_tos == ["small@one.test"] for m in sink.messages))
    order = [m.rcpt_tos[0] for m in sink.messages]
    # As with 60 queued (above): the stalled one, those already handed to the connection and
    # one turn of "big", not 10,000.
    assert order.index("small@one.test") <= 4, order[:10]
